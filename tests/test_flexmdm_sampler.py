"""tau-leaping sampler: insertion arithmetic, length guard, no masks left, fixed starts, determinism, filtering."""
import pytest
import torch

from iterref_fairseq.generators.tau_leaping import TauLeapingSampler, filter_logprobs, insert_masks

from test_flexmdm_loss import tiny_model


def test_insert_masks_hand_example():
    pad, mask, eos = 1, 9, 2
    A = 5
    tokens = torch.tensor([[A, mask, eos], [eos, pad, pad]])
    counts = torch.tensor([[1, 0, 2], [3, 0, 0]])
    steps = torch.tensor([[0, 4, 0], [0, -1, -1]])
    out, moved = insert_masks(tokens, counts, pad, mask, steps)
    assert out.tolist() == [[mask, A, mask, mask, mask, eos], [mask, mask, mask, eos, pad, pad]]
    assert moved.tolist() == [[-1, 0, 4, -1, -1, 0], [-1, -1, -1, 0, -1, -1]]


def test_filter_logprobs_top_k_top_p():
    logp = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    k2 = filter_logprobs(logp, top_k=2).exp()
    assert torch.allclose(k2, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    p = filter_logprobs(logp, top_p=0.7).exp()  # smallest prefix with mass >= 0.7: {0.5, 0.3}
    assert torch.allclose(p, torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    assert torch.allclose(filter_logprobs(logp).exp(), logp.exp())


class _Greedy:
    """Deterministic rates: a stand-in *environment* for the sampler (the model under test is the sampler)."""

    def __init__(self, model, ins_rate):
        self.model, self.ins_rate = model, ins_rate
        self.mask_index = model.mask_index

    def max_decoder_positions(self):
        return self.model.max_decoder_positions()

    def eval(self):
        return self

    def rates(self, prompt, tokens, padding_mask, t):
        logp, lam_in, lam_um, _ = self.model.rates(prompt, tokens, padding_mask, t)
        lam = torch.full_like(lam_in, self.ins_rate).masked_fill(padding_mask, 0.0)
        return logp, lam, lam_um, lam * (1 - t.unsqueeze(1))


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = tiny_model(learned=False, max_target_positions=12)
    m.eval()
    return m


def _prompt(model, bsz=5):
    d = model.dictionary
    return torch.randint(d.nspecial, d.nspecial + 10, (bsz, 6), generator=torch.Generator().manual_seed(0))


def test_length_cap_rejects_a_rows_whole_step_without_favouring_left_gaps(model):
    """Start from 4 given tokens (5 gaps) with room for 2 more; in the first of two steps every gap draws
    Poisson(0.5) insertions (the total passes the room in about half of the rows), the last step inserts none
    (round(0.5) = 0). A row either takes all its draws or none, so the leftmost and the rightmost gap receive the
    same number of insertions on average; accepting draws left-first up to the cap gave the left gap 2.6 times
    as many (296 vs 114)."""
    d = model.dictionary
    rows = 600
    init = torch.arange(d.nspecial, d.nspecial + 4).repeat(rows, 1)
    sampler = TauLeapingSampler(d, sampling_steps=2, max_len=6, seed=0)
    out = sampler.sample(_Greedy(model, ins_rate=1.0), _prompt(model, rows), init_tokens=init)
    given = out["insert_step"].eq(0) & out["tokens"].ne(d.eos())
    content = out["tokens"].ne(d.pad()) & out["tokens"].ne(d.eos())
    assert bool((content.sum(1) <= 6).all()) and bool((given.sum(1) == 4).all())
    first = given.float().argmax(1)                                  # index of the first given token
    last = given.size(1) - 1 - given.flip(1).float().argmax(1)       # index of the last given token
    left = int(first.sum())                                          # insertions before the first given token
    right = int(((content & ~given).cumsum(1).gather(1, content.sum(1, keepdim=True) - 1).squeeze(1)
                 - (content & ~given).cumsum(1).gather(1, last.unsqueeze(1)).squeeze(1)).sum())
    inserted = int((content & ~given).sum())
    # rows over the cap insert nothing, the others all they drew: never a partial step
    assert int(out["rejected"].sum()) > 0 and inserted + int(out["rejected"].sum()) > 2 * rows
    assert left > 30 and right > 30
    assert abs(left - right) <= 0.25 * (left + right) / 2


@pytest.mark.parametrize("confidence", ["none", "top_prob", "prob_diff", "entropy"])
def test_never_exceeds_max_length_and_no_masks_left(model, confidence):
    d = model.dictionary
    sampler = TauLeapingSampler(d, sampling_steps=8, max_len=7, confidence=confidence, seed=0)
    out = sampler.sample(_Greedy(model, ins_rate=50.0), _prompt(model))  # huge insertion rate: the guard must act
    toks = out["tokens"]
    content = toks.ne(d.pad()) & toks.ne(d.eos())
    assert int(content.sum(1).max()) <= 7
    assert int(out["rejected"].sum()) > 0
    assert not bool(toks.eq(model.mask_index).any())
    assert (toks.ne(d.pad()).sum(1) - 1 == content.sum(1)).all(), "exactly one EOS, at the end"
    ins, rev = out["insert_step"][content], out["reveal_step"][content]
    assert bool((ins >= 1).all()) and bool((rev >= ins).all()) and bool((rev <= 9).all())


def test_respects_fixed_start_and_prompt_is_untouched(model):
    d = model.dictionary
    w = [d.index(f"w{i}") for i in range(4)]
    init = torch.tensor([[w[0], model.mask_index, w[1]], [w[2], w[3], d.pad()]])
    prompt = _prompt(model, 2)
    before = prompt.clone()
    out = TauLeapingSampler(d, sampling_steps=6, seed=3).sample(_Greedy(model, 2.0), prompt, init_tokens=init)
    assert torch.equal(prompt, before)
    toks, ins, rev = out["tokens"], out["insert_step"], out["reveal_step"]
    content = toks.ne(d.pad()) & toks.ne(d.eos())
    start0 = toks[0][content[0] & ins[0].eq(0)].tolist()  # the three starting cells, in order
    assert len(start0) == 3 and start0[0] == w[0] and start0[2] == w[1]
    assert rev[0][content[0] & ins[0].eq(0)].tolist()[::2] == [0, 0]  # given tokens never re-sampled
    assert rev[0][content[0] & ins[0].eq(0)].tolist()[1] >= 1  # the given mask was revealed later
    assert toks[1][content[1] & ins[1].eq(0)].tolist() == [w[2], w[3]]
    assert int(content.sum()) > 5, "new tokens were inserted around the fixed ones"
    assert not bool(out["tokens"].eq(model.mask_index).any())


def test_deterministic_with_seed(model):
    d = model.dictionary
    prompt = _prompt(model)
    a = TauLeapingSampler(d, sampling_steps=10, seed=7, top_k=5).sample(model, prompt)
    b = TauLeapingSampler(d, sampling_steps=10, seed=7, top_k=5).sample(model, prompt)
    c = TauLeapingSampler(d, sampling_steps=10, seed=8, top_k=5).sample(_Greedy(model, 3.0), prompt)
    assert torch.equal(a["tokens"], b["tokens"]) and torch.equal(a["reveal_step"], b["reveal_step"])
    assert c["tokens"].size(1) > 1


def test_generate_returns_fairseq_hypotheses(model):
    d = model.dictionary
    sample = {"net_input": {"src_tokens": _prompt(model, 3), "src_lengths": torch.full((3,), 6)}}
    hyps = TauLeapingSampler(d, sampling_steps=5, seed=0).generate([_Greedy(model, 1.5)], sample)
    assert len(hyps) == 3
    for (h,) in hyps:
        assert h["tokens"][-1] == d.eos() and len(h["insert_steps"]) == h["tokens"].numel() - 1
        assert h["positional_scores"].shape == h["tokens"].shape


@pytest.mark.parametrize("kwargs,message", [({"sampling_steps": 0}, "--sampling-steps must be >= 1"),
                                            ({"confidence": "margin"}, "unknown confidence 'margin'"),
                                            ({"top_p": 0.0}, "--sampling-topp must be in (0, 1]")])
def test_bad_sampler_options_are_clear_errors(model, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        TauLeapingSampler(model.dictionary, **kwargs)


class _Oracle(_Greedy):
    """Rates of the exact process for a target of ``n`` tokens whose schedules all have a = 1 and shape ``b``: the
    trailing gap expects the n - (present tokens) still absent, lambda_in = b remaining / (1 - t)."""

    def __init__(self, model, n, b=1.0):
        super().__init__(model, 0.0)
        self.n, self.b = n, b

    def rates(self, prompt, tokens, padding_mask, t):
        logp, lam_in, lam_um, _ = self.model.rates(prompt, tokens, padding_mask, t)
        present = (~padding_mask).sum(1, keepdim=True) - 1  # content tokens (EOS excluded)
        remaining = (self.n - present).clamp(min=0).float()
        is_last = torch.arange(tokens.size(1)).unsqueeze(0) == present  # the EOS owns the last gap
        count = torch.where(is_last, remaining, torch.zeros_like(lam_in))
        return logp, self.b * count / (1 - t.unsqueeze(1)), lam_um, count


def test_last_step_inserts_every_token_still_absent(model):
    """With one step, plain tau-leaping would draw Poisson(n) tokens; the interval [0, 1] brings every absent token,
    so the sampler inserts exactly the expected remaining count."""
    d = model.dictionary
    for n in (1, 3, 7):
        out = TauLeapingSampler(d, sampling_steps=1, seed=0).sample(_Oracle(model, n), _prompt(model))
        assert (out["tokens"].ne(d.pad()).sum(1) - 1).tolist() == [n] * 5
    # many steps, capped at the target length: Poisson steps may overshoot, the cap rejects such a step whole,
    # and the last step brings exactly the tokens still absent, so every sequence has exactly n tokens
    for n in (3, 6):
        out = TauLeapingSampler(d, sampling_steps=16, max_len=n, seed=1).sample(_Oracle(model, n), _prompt(model, 40))
        assert (out["tokens"].ne(d.pad()).sum(1) - 1).tolist() == [n] * 40
    # uncapped, tau-leaping can only overshoot (a step draws more than remain); never undershoot
    out = TauLeapingSampler(d, sampling_steps=16, seed=1).sample(_Oracle(model, 6), _prompt(model, 40))
    lengths = out["tokens"].ne(d.pad()).sum(1) - 1
    assert bool(lengths.ge(6).all()) and float(lengths.float().mean()) < 7.0


def test_last_step_reads_the_remaining_count_not_the_rate():
    """Learned schedules: remaining tokens with b = 0.01 give a rate multiplier of 0.01 per token, so rounding the
    multiplier (the FlexMDM rule) would insert none of them; the remaining-count output brings all of them."""
    torch.manual_seed(0)
    m = tiny_model(learned=True, max_target_positions=12)
    m.eval()
    d = m.dictionary
    for n in (2, 5):
        out = TauLeapingSampler(d, sampling_steps=4, seed=0).sample(_Oracle(m, n, b=0.01), _prompt(m))
        assert (out["tokens"].ne(d.pad()).sum(1) - 1).tolist() == [n] * 5
