"""Unit tests of the refinement NAT building blocks: corruption, copy mapping, lengths, stopping, repeats."""
import argparse

import pytest
import torch

import iterref_fairseq  # noqa: F401  (registers everything, applies compat)
from iterref_fairseq.data.corruption import REPEAT, SWAP, apply_corruption, corrupt_tokens
from iterref_fairseq.generators import in_eval_mode
from iterref_fairseq.generators.refinement import (
    IterativeRefinementDecoder,
    RefinementState,
    collapse_repeats,
    same_multiset,
)
from iterref_fairseq.models.refinement_nat import copy_source_positions
from iterref_fairseq.modules.highway import HighwayConnection
from iterref_fairseq.modules.length_predictor import LengthOffsetPredictor

PAD = 1


# ---------------------------------------------------------------- corruption C (Hill et al.)
def test_corruption_rate_matches_beta():
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, 100, (400, 50), generator=g)
    tokens[:, 40:] = PAD  # padded tail must stay untouched
    for beta in (0.0, 0.1, 0.3, 1.0):
        out, events = corrupt_tokens(tokens, PAD, beta, 4, 100, generator=g, return_events=True)
        assert out[:, 40:].eq(PAD).all()
        rate = events[:, :40].float().mean().item()
        assert abs(rate - beta) < 0.01, (beta, rate)
        assert not events[:, 40:].any()
        assert out[:, :40].ge(4).all(), "special symbols must never be introduced"
    same = corrupt_tokens(tokens, PAD, 0.0, 4, 100)
    assert torch.equal(same, tokens)


def test_corruption_worked_example_and_input_untouched():
    # docstring example: a b c -> repeat at 1 -> a a c -> swap at 2 -> a c a -> replace at 3 -> a c z
    a, b, c, z = 10, 11, 12, 99
    tokens = torch.tensor([[a, b, c, PAD]])
    before = tokens.clone()
    fire = torch.tensor([[True, True, True, True]])
    ops = torch.tensor([[REPEAT, SWAP, SWAP, REPEAT]])  # the last real token falls back to replace
    out = apply_corruption(tokens, PAD, fire, ops, torch.full((1, 4), z))
    assert out.tolist() == [[a, c, z, PAD]]
    assert torch.equal(tokens, before)
    # nothing fires -> identity
    assert torch.equal(apply_corruption(tokens, PAD, fire & False, ops, torch.full((1, 4), z)), tokens)


def test_corruption_rejects_bad_beta():
    with pytest.raises(ValueError, match="beta"):
        corrupt_tokens(torch.ones(1, 3, dtype=torch.long), PAD, 1.5, 4, 10)


# ---------------------------------------------------------------- decoder-1 input mapping
def test_copy_source_positions_examples():
    mask = torch.ones(1, 4, dtype=torch.bool)
    assert copy_source_positions(torch.tensor([2]), mask).tolist() == [[0, 0, 1, 1]]
    mask = torch.ones(1, 2, dtype=torch.bool)
    assert copy_source_positions(torch.tensor([4]), mask).tolist() == [[1, 3]]
    mask = torch.ones(1, 7, dtype=torch.bool)
    assert copy_source_positions(torch.tensor([7]), mask).tolist() == [list(range(7))]


def test_copy_source_positions_monotone_in_range_and_padded():
    src_len = torch.tensor([5, 13, 1])
    tgt_len = torch.tensor([9, 4, 3])
    mask = torch.arange(9).unsqueeze(0) < tgt_len.unsqueeze(1)
    idx = copy_source_positions(src_len, mask)
    for b in range(3):
        row = idx[b, : tgt_len[b]]
        assert row.min() >= 0 and row.max() <= src_len[b] - 1
        assert (row[1:] >= row[:-1]).all()
        assert row[0] == 0 or src_len[b] > tgt_len[b]
        assert idx[b, tgt_len[b]:].eq(0).all()


# ---------------------------------------------------------------- length prediction targets
def test_length_targets_clamped_and_topk_lengths():
    pred = LengthOffsetPredictor(8, max_offset=3)
    tgt = torch.tensor([5, 10, 1, 4])
    src = torch.tensor([5, 4, 9, 6])
    assert pred.offset_targets(tgt, src).tolist() == [3, 6, 0, 1]  # offsets 0, +6->+3, -8->-3, -2
    logits = torch.full((1, 7), -10.0)
    logits[0, 5] = 5.0  # offset +2 most likely
    logits[0, 2] = 4.0  # offset -1 second
    lengths, scores = pred.topk_lengths(logits, torch.tensor([4]), k=2, max_length=100)
    assert lengths.tolist() == [[6, 3]]
    assert scores[0, 0] > scores[0, 1]
    lengths, _ = pred.topk_lengths(logits, torch.tensor([1]), k=2, max_length=2)
    assert lengths.tolist() == [[2, 1]], "lengths are clamped to [1, max_length]"


def test_length_predictor_does_not_backprop_into_encoder():
    pred = LengthOffsetPredictor(4, 2)
    states = [torch.randn(3, 2, 4, requires_grad=True) for _ in range(2)]
    loss = pred.loss(pred(states, torch.zeros(2, 3, dtype=torch.bool)), torch.tensor([3, 3]), torch.tensor([3, 2]))
    loss.backward()
    assert all(s.grad is None for s in states)
    assert pred.proj.weight.grad is not None


def test_highway_gate_mixes_and_residual_option_adds():
    hw = HighwayConnection(4)
    torch.nn.init.constant_(hw.gate.weight, 0.0)
    torch.nn.init.constant_(hw.gate.bias, 0.0)
    x, f = torch.ones(2, 4), torch.full((2, 4), 3.0)
    assert torch.allclose(hw(x, f), torch.full((2, 4), 2.0))  # g = 0.5
    assert torch.allclose(HighwayConnection(4, residual=True)(x, f), torch.full((2, 4), 4.0))


# ---------------------------------------------------------------- repeats and multisets
def test_collapse_repeats():
    toks, scores = collapse_repeats(torch.tensor([5, 5, 6, 7, 7, 7, 5]), torch.arange(7.0))
    assert toks.tolist() == [5, 6, 7, 5]
    assert scores.tolist() == [0.0, 2.0, 3.0, 6.0]
    assert collapse_repeats(torch.tensor([], dtype=torch.long))[0].numel() == 0


def test_same_multiset_ignores_order_and_pads():
    a = torch.tensor([[4, 5, 6, PAD], [4, 4, 5, PAD]])
    b = torch.tensor([[6, 4, 5, PAD], [4, 5, 5, PAD]])
    assert same_multiset(a, b, PAD).tolist() == [True, False]


# ---------------------------------------------------------------- adaptive stopping, per sentence
class _Dict:
    def pad(self):
        return PAD

    def eos(self):
        return 2


class ScriptedModel:
    """A model whose refinement outputs follow a fixed script per row: row r emits script[r][k] at step k.

    Records which rows were fed to each refinement call, so we can check that converged rows are not recomputed.
    """

    def __init__(self, scripts, src_len=3):
        self.scripts = [torch.tensor(s) for s in scripts]
        self.calls = []
        self.src_len = src_len

    def eval(self):
        return self

    def encode(self, src_tokens, src_lengths):
        return {"rows": torch.arange(src_tokens.size(0)), "step": torch.zeros(src_tokens.size(0), dtype=torch.long)}

    def reorder_encoder_out(self, enc, order):
        return {k: v.index_select(0, order) for k, v in enc.items()}

    def source_content_lengths(self, src_tokens):
        return torch.full((src_tokens.size(0),), self.src_len)

    def predict_target_lengths(self, enc, src_tokens, k):
        n = enc["rows"].numel()
        return torch.full((n, k), self.scripts[0].size(1)), torch.zeros(n, k)

    def _tokens(self, rows):
        return torch.stack([self.scripts[r][min(self.step[r], self.scripts[r].size(0) - 1)] for r in rows])

    def _state(self, rows):
        toks = self._tokens(rows)
        return RefinementState(toks, torch.zeros(toks.shape), toks.eq(PAD), torch.zeros(*toks.shape, 1))

    def initialize_refinement(self, enc, src_tokens, lengths):
        self.step = {int(r): 0 for r in enc["rows"]}
        return self._state(enc["rows"].tolist())

    def refine(self, enc, state):
        rows = enc["rows"].tolist()
        self.calls.append(rows)
        for r in rows:
            self.step[r] += 1
        return self._state(rows)


def _sample(bsz):
    return {"net_input": {"src_tokens": torch.full((bsz, 4), 7), "src_lengths": torch.full((bsz,), 4)},
            "target": None, "id": torch.arange(bsz)}


def test_adaptive_unchanged_stops_each_row_independently():
    scripts = [
        [[4, 5], [6, 7], [6, 7], [8, 9], [8, 9]],  # converges at pass 3 (pass 3 equals pass 2)
        [[4, 5], [5, 4], [4, 5], [5, 4], [4, 5], [5, 4], [4, 5], [5, 4]],  # oscillates forever
    ]
    model = ScriptedModel(scripts)
    dec = IterativeRefinementDecoder(_Dict(), max_iter=6, remove_repeats=False, retain_history=True)
    hyps = dec.generate([model], _sample(2))
    assert hyps[0][0]["steps"] == 3 and hyps[0][0]["tokens"].tolist() == [6, 7, 2]
    assert hyps[1][0]["steps"] == 6, "the oscillating row runs to the cap"
    # row 0 is fed to the model in passes 2 and 3 only; later calls contain row 1 alone
    assert model.calls[:2] == [[0, 1], [0, 1]] and all(c == [1] for c in model.calls[2:])
    assert len(hyps[0][0]["history"]) == 3 and len(hyps[1][0]["history"]) == 6
    assert [h["tokens"].tolist() for h in hyps[0][0]["history"]] == [[4, 5, 2], [6, 7, 2], [6, 7, 2]]


def test_adaptive_jaccard_stops_oscillation_within_window():
    scripts = [
        [[4, 5], [5, 4], [4, 5], [5, 4], [4, 5], [5, 4], [4, 5], [5, 4]],  # a permutation: multiset constant
        [[4, 5], [6, 7], [8, 9], [10, 11], [12, 13], [14, 15], [16, 17], [18, 19]],  # always new
    ]
    model = ScriptedModel(scripts)
    dec = IterativeRefinementDecoder(_Dict(), max_iter=7, stop_criterion="jaccard", remove_repeats=False)
    hyps = dec.generate([model], _sample(2))
    assert hyps[0][0]["steps"] == 2, "pass 2 has the same multiset as pass 1"
    assert hyps[1][0]["steps"] == 7


def test_force_max_iter_runs_every_pass():
    scripts = [[[4, 5]] * 8]
    dec = IterativeRefinementDecoder(_Dict(), max_iter=5, force_max_iter=True)
    assert dec.generate([ScriptedModel(scripts)], _sample(1))[0][0]["steps"] == 5
    dec = IterativeRefinementDecoder(_Dict(), max_iter=5)
    assert dec.generate([ScriptedModel(scripts)], _sample(1))[0][0]["steps"] == 2


def test_idec_one_is_initial_decoder_only_and_zero_is_rejected():
    model = ScriptedModel([[[4, 5], [6, 7]]])
    hyps = IterativeRefinementDecoder(_Dict(), max_iter=1).generate([model], _sample(1))
    assert hyps[0][0]["steps"] == 1 and model.calls == []
    for bad in (0, -3):
        with pytest.raises(ValueError, match="--iter-decode-max-iter must be >= 1"):
            IterativeRefinementDecoder(_Dict(), max_iter=bad)
    with pytest.raises(ValueError, match="unknown stop criterion"):
        IterativeRefinementDecoder(_Dict(), stop_criterion="bogus")


def test_in_eval_mode_walks_the_modules_only_of_a_training_model():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Sequential(torch.nn.Dropout(0.5)))
    model.train()
    assert in_eval_mode(model) is model
    assert not any(m.training for m in model.modules())
    walked = []
    model.eval = lambda: walked.append(1) or model  # an eval-mode model is returned as it is
    assert in_eval_mode(model) is model and walked == []
    model.training = True
    in_eval_mode(model)
    assert walked == [1]


def test_remove_repeats_on_output():
    model = ScriptedModel([[[4, 4, 5, 5, 5, 6]]])
    hyp = IterativeRefinementDecoder(_Dict(), max_iter=1).generate([model], _sample(1))[0][0]
    assert hyp["tokens"].tolist() == [4, 5, 6, 2]
    hyp = IterativeRefinementDecoder(_Dict(), max_iter=1, remove_repeats=False).generate(
        [ScriptedModel([[[4, 4, 5, 5, 5, 6]]])], _sample(1))[0][0]
    assert hyp["tokens"].tolist() == [4, 4, 5, 5, 5, 6, 2]


def test_empty_source_gives_empty_translation_with_warning(caplog):
    model = ScriptedModel([[[4, 5]], [[6, 7]]])
    model.source_content_lengths = lambda src: torch.tensor([0, 3])
    with caplog.at_level("WARNING"):
        hyps = IterativeRefinementDecoder(_Dict(), max_iter=2).generate([model], _sample(2))
    assert hyps[0][0]["tokens"].tolist() == [2]
    assert hyps[1][0]["tokens"].tolist() == [6, 7, 2]
    assert "source sentence 0 is empty" in caplog.text


def test_oracle_length_without_target_is_a_clear_error():
    dec = IterativeRefinementDecoder(_Dict(), oracle_length=True)
    with pytest.raises(ValueError, match="--oracle-length needs reference targets"):
        dec.generate([ScriptedModel([[[4, 5]]])], _sample(1))


def test_pyplot_draws_a_file_without_matplotlib_debug_lines(tmp_path):
    """A fresh interpreter with the root logger at DEBUG (as after importing fairseq): the figure is written and
    matplotlib / PIL log nothing below WARNING (their import and font search used to print hundreds of lines)."""
    import subprocess
    import sys

    png = tmp_path / "figure.png"
    code = ("import logging; logging.basicConfig(level=logging.DEBUG)\n"
            "from iterref_fairseq.plotting import pyplot\n"
            "plt = pyplot(); fig, ax = plt.subplots(); ax.plot([0, 1], [1, 0], label='a'); ax.legend()\n"
            "ax.set_title('title'); fig.savefig(%r); logging.getLogger('check').debug('root still at debug')\n" % str(png))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert png.stat().st_size > 1000
    assert "DEBUG:check:root still at debug" in res.stderr  # other loggers are untouched
    assert "DEBUG:matplotlib" not in res.stderr and "DEBUG:PIL" not in res.stderr, res.stderr[:500]
