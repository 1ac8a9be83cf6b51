"""Coordinate-selection strategies on hand-made probability tensors (thesis Eq. 4.2, §4.4)."""
import math

import pytest
import torch

from iterref_fairseq.generators.strategies import (
    STRATEGY_REGISTRY, StrategyInput, build_strategy, parse_weights,
)

MASK = 9  # a symbol outside the 4-word vocabulary below, stands for <mask>


def dist(*rows):
    """Rows of probabilities over a 4-word vocabulary -> (1, L, V) log-probs (a 0 entry becomes -inf)."""
    return torch.tensor([rows], dtype=torch.float).log()


PEAKED, FLAT = (0.97, 0.01, 0.01, 0.01), (0.25, 0.25, 0.25, 0.25)
MID = (0.6, 0.2, 0.1, 0.1)


def all_masked_input(log_probs, **kw):
    n, length, _ = log_probs.shape
    tokens = torch.full((n, length), MASK)
    return StrategyInput.from_log_probs(log_probs, tokens, torch.ones(n, length, dtype=torch.bool), **kw)


def filled_input(log_probs, tokens, **kw):
    tokens = torch.tensor([tokens])
    return StrategyInput.from_log_probs(log_probs, tokens, torch.zeros_like(tokens, dtype=torch.bool), **kw)


def test_registry_has_every_named_strategy():
    assert {"uniform", "left2right", "least2most", "easy-first", "hard-first", "loglinear", "learned"} <= set(
        STRATEGY_REGISTRY)


def test_left2right_takes_leftmost_masked_position():
    lp = dist(PEAKED, FLAT, MID, PEAKED, FLAT)
    tokens = torch.tensor([[1, 2, MASK, MASK, MASK]])
    inp = StrategyInput.from_log_probs(lp, tokens, tokens.eq(MASK), candidates=tokens.eq(MASK))
    assert build_strategy("left2right").select(inp).item() == 2
    # distribution peaks at the leftmost candidate and decays with distance (phi_pos = -log(|t-i|+eps))
    pz = build_strategy("left2right").log_probs(inp).exp()[0]
    assert pz[2] > pz[3] > pz[4] and pz[:2].sum() == 0


def test_least2most_takes_least_likely_current_token():
    lp = dist(PEAKED, MID, FLAT, PEAKED)
    inp = filled_input(lp, [0, 0, 0, 1])  # current p: 0.97, 0.6, 0.25, 0.01
    assert build_strategy("least2most").select(inp).item() == 3
    inp = filled_input(lp, [0, 0, 0, 0])  # current p: 0.97, 0.6, 0.25, 0.97
    assert build_strategy("least2most").select(inp).item() == 2


def test_least2most_fills_masks_before_revising():
    lp = dist(PEAKED, MID, FLAT)
    tokens = torch.tensor([[0, MASK, 3]])  # position 2 holds a very unlikely symbol, position 1 a mask
    inp = StrategyInput.from_log_probs(lp, tokens, tokens.eq(MASK))
    assert build_strategy("least2most").select(inp).item() == 1


def test_easy_first_and_hard_first_by_entropy_and_logp():
    lp = dist(FLAT, MID, PEAKED, MID)
    inp = all_masked_input(lp)
    assert build_strategy("easy-first").select(inp).item() == 2  # most peaked
    assert build_strategy("hard-first").select(inp).item() == 0  # flattest
    # filled canvas: log-prob of the current symbol matters too
    inp = filled_input(dist(PEAKED, PEAKED, MID), [0, 3, 0])
    assert build_strategy("easy-first").select(inp).item() == 1  # peaked but current symbol incompatible
    assert build_strategy("hard-first").select(inp).item() == 2


@pytest.mark.parametrize("name,weights", [("left2right", "0,0,1"), ("least2most", "0,1,0"),
                                          ("easy-first", "1,1,0"), ("hard-first", "-1,-1,0")])
def test_loglinear_with_weights_reproduces_named_strategy(name, weights):
    torch.manual_seed(0)
    for _ in range(5):
        probs = torch.rand(2, 6, 5).softmax(-1)
        tokens = torch.randint(0, 5, (2, 6))
        masked = torch.rand(2, 6) < 0.5
        tokens = tokens.masked_fill(masked, MASK)
        inp = StrategyInput.from_log_probs(probs.log(), tokens, masked)
        named = build_strategy(name)
        loglin = build_strategy("loglinear", parse_weights(weights))
        assert torch.allclose(named.log_probs(inp), loglin.log_probs(inp))
        assert torch.equal(named.select(inp, 2), loglin.select(inp, 2))


def test_temperature_sharpens_but_keeps_argmax():
    inp = all_masked_input(dist(FLAT, MID, PEAKED))
    hot = build_strategy("easy-first", temperature=10.0).log_probs(inp).exp()[0]
    cold = build_strategy("easy-first", temperature=0.1).log_probs(inp).exp()[0]
    assert hot.argmax() == cold.argmax() == 2
    assert cold.max() > hot.max()
    assert math.isclose(float(hot.sum()), 1.0, rel_tol=1e-5)


def test_uniform_is_uniform_over_candidates_and_never_repeats():
    length = 7
    strategy = build_strategy("uniform", seed=3)
    tokens = torch.full((1, length), MASK)
    seen = []
    for step in range(length):
        masked = tokens.eq(MASK)
        inp = StrategyInput.from_log_probs(dist(*[MID] * length), tokens, masked, candidates=masked, step=step)
        pz = strategy.log_probs(inp).exp()[0]
        assert torch.allclose(pz[masked[0]], torch.full((int(masked.sum()),), 1.0 / int(masked.sum())))
        pos = strategy.select(inp).item()
        assert pos not in seen
        seen.append(pos)
        tokens[0, pos] = 0
    assert sorted(seen) == list(range(length))


def test_select_respects_candidates_and_batch_rows():
    probs = torch.tensor([[PEAKED, FLAT, MID], [FLAT, FLAT, PEAKED]]).log()
    tokens = torch.full((2, 3), MASK)
    cand = torch.tensor([[False, True, True], [True, True, True]])
    inp = StrategyInput.from_log_probs(probs, tokens, tokens.eq(MASK), candidates=cand)
    assert build_strategy("easy-first").select(inp).squeeze(1).tolist() == [2, 2]


@pytest.mark.parametrize("bad", ["1,2", "a,b,c", "1,2,3,4"])
def test_bad_weights_are_a_clear_error(bad):
    with pytest.raises(ValueError, match="alpha_negent,alpha_logp,alpha_pos"):
        parse_weights(bad)


def test_unknown_strategy_and_missing_policy_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown decoding strategy 'best-first'.*left2right"):
        build_strategy("best-first")
    with pytest.raises(ValueError, match="needs --policy-path"):
        build_strategy("learned")
    with pytest.raises(FileNotFoundError, match="policy file not found"):
        build_strategy("learned", policy_path=str(tmp_path / "none.pt"))
    with pytest.raises(ValueError, match="tau"):
        build_strategy("easy-first", temperature=0.0)
