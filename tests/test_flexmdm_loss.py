"""Noising (compaction, gaps), the FlexMDM/LFlexMDM loss and its reduction to FlexMDM at a = b = 1."""
import argparse
import math

import pytest
import torch
from fairseq.data import Dictionary

from iterref_fairseq.criterions.flexmdm_loss import (bregman, flexmdm_linear_loss, kuma_kl, reinforce_term,
                                                     sample_loss, schedule_regularizer, state_log_prob,
                                                     stratified_grid, tail_penalty)
from iterref_fairseq.data.insertion_noise import (DROPPED, MASKED, REVEALED, compact, content_mask, gap_sums,
                                                  token_states)
from iterref_fairseq.models.flexmdm import MASK_SYMBOL, FlexMDMModel, flexmdm_tiny, lflexmdm_tiny
from iterref_fairseq.modules import kumaraswamy as kuma


def make_dict(n: int = 12) -> Dictionary:
    d = Dictionary()
    for i in range(n):
        d.add_symbol(f"w{i}")
    d.add_symbol(MASK_SYMBOL)
    return d


def tiny_model(learned: bool, **over) -> FlexMDMModel:
    d = make_dict()
    args = argparse.Namespace(decoder_embed_dim=32, decoder_ffn_embed_dim=64, decoder_layers=1,
                              decoder_attention_heads=2, aux_embed_dim=16, aux_attention_heads=2, **over)
    (lflexmdm_tiny if learned else flexmdm_tiny)(args)
    return FlexMDMModel(args, d, d)


# ------------------------------------------------------------------ compaction and gaps (hand-worked example)
def test_compaction_and_gaps_hand_example():
    pad, eos, mask = 1, 2, 99
    A, B, C, D = 10, 11, 12, 13
    x1 = torch.tensor([[A, B, C, D, eos], [A, B, eos, pad, pad]])
    state = torch.tensor([[DROPPED, REVEALED, DROPPED, MASKED, -1], [DROPPED, DROPPED, -1, -1, -1]])
    n = compact(x1, state, pad, eos, mask, torch.tensor([0.5, 0.1]))
    assert n.tokens.tolist() == [[B, mask, eos], [eos, pad, pad]]
    assert n.x1_index.tolist() == [[1, 3, 4], [2, 0, 0]]
    assert n.padding_mask.tolist() == [[False, False, False], [False, True, True]]
    assert n.is_mask.tolist() == [[False, True, False], [False, False, False]]
    assert n.gap_count.tolist() == [[1, 1, 0], [2, 0, 0]]
    assert n.gap_of[0].tolist()[:4] == [0, 0, 1, 1]
    vals = torch.tensor([[0.5, 7.0, 2.0, 9.0, 0.0], [1.5, 2.5, 0.0, 0.0, 0.0]])
    assert gap_sums(vals, n).tolist() == [[0.5, 2.0, 0.0], [4.0, 0.0, 0.0]]


def test_gap_counts_sum_to_dropped_tokens_random():
    gen = torch.Generator().manual_seed(3)
    pad, eos, mask = 1, 2, 3
    x1 = torch.randint(4, 20, (16, 9), generator=gen)
    lengths = torch.randint(0, 9, (16,), generator=gen)
    pos = torch.arange(9).unsqueeze(0)
    x1 = torch.where(pos < lengths.unsqueeze(1), x1, pad).scatter(1, lengths.unsqueeze(1), eos)
    x1 = torch.cat([x1, torch.full((16, 1), pad)], 1)
    content = content_mask(x1, pad, eos)
    t_in, t_um = kuma.sample_times(1.0, torch.ones(x1.shape), torch.ones(x1.shape), generator=gen)
    t = torch.rand(16, generator=gen)
    state = token_states(t, t_in, t_um, content)
    n = compact(x1, state, pad, eos, mask, t)
    dropped = state.eq(DROPPED).sum(1)
    assert n.gap_count.sum(1).tolist() == dropped.tolist()
    present = (~n.padding_mask).sum(1)
    assert present.tolist() == (content.sum(1) - dropped + 1).tolist()  # + EOS
    # revealed tokens keep their order and identity; x1_index is increasing
    for r in range(16):
        idx = n.x1_index[r][~n.padding_mask[r]]
        assert bool((idx[1:] > idx[:-1]).all())
        toks = n.tokens[r][~n.padding_mask[r]]
        assert torch.equal(toks[~n.is_mask[r][~n.padding_mask[r]]], x1[r][idx][~n.is_mask[r][~n.padding_mask[r]]])


# ------------------------------------------------------------------ loss pieces
def test_bregman_properties():
    n = torch.tensor([0.0, 0.0, 1.0, 3.0, 2.5])
    g = torch.tensor([0.3, 2.0, 1.0, 3.0, 0.7])
    d = bregman(n, g)
    assert torch.allclose(d[:2], g[:2]) and torch.allclose(d[2:4], torch.zeros(2))
    assert float(d[4]) == pytest.approx(0.7 - 2.5 + 2.5 * torch.log(torch.tensor(2.5 / 0.7)).item())
    assert (bregman(torch.rand(100) * 3, torch.rand(100) * 3 + 0.01) >= 0).all()
    # the minimiser of E_n[D(n, g)] over g is E[n] (Bregman property the insertion head relies on)
    samples = torch.tensor([0.0, 1.0, 4.0])
    gs = torch.linspace(0.5, 3.0, 251)
    best = gs[torch.stack([bregman(samples, g.expand(3)).mean() for g in gs]).argmin()]
    assert float(best) == pytest.approx(5.0 / 3.0, abs=0.011)
    n0 = torch.zeros(3, requires_grad=True)
    bregman(n0, torch.ones(3)).sum().backward()
    assert torch.isfinite(n0.grad).all()


def _batch(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    d = model.dictionary
    x1 = torch.randint(d.nspecial, d.nspecial + 10, (6, 7), generator=gen)
    x1[:, -1] = d.eos()
    x1[0, 4:] = torch.tensor([d.eos(), d.pad(), d.pad()])
    src = torch.randint(d.nspecial, d.nspecial + 10, (6, 5), generator=gen)
    return src, x1


def test_a_b_one_reduces_exactly_to_flexmdm():
    torch.manual_seed(0)
    model = tiny_model(learned=True)  # aux heads start at b = 1; make that exact
    with torch.no_grad():
        model.aux_head.weight.zero_()
        model.aux_head.bias.fill_(torch.log(torch.expm1(torch.tensor(1.0 - 1e-2))).item())
    src, x1 = _batch(model)
    spec = model(src, None, tgt_tokens=x1)
    assert torch.allclose(spec["b_in_phi"], torch.ones_like(spec["b_in_phi"]), atol=1e-6)
    for s in spec["samples"]:
        general = sample_loss(s, x1, spec["b_in_phi"], spec["b_um_phi"], spec["t"], 1.0, False, spec["l_max"])
        reference = flexmdm_linear_loss(s, x1, spec["t"], spec["l_max"])
        torch.testing.assert_close(general["um"] + general["in"], reference, rtol=1e-5, atol=1e-6)
        independent = published_flexmdm_loss(x1, s["noisy"].state, s["noisy"].tokens, s["logits"],
                                              s["b_in_theta"], spec["t"], spec["l_max"], model)
        torch.testing.assert_close(general["um"] + general["in"], independent, rtol=1e-5, atol=1e-6)
        assert (general["in"] > 0).any() and (general["um"] > 0).any()


def published_flexmdm_loss(x1, state, xt_tokens, logits, g, t, l_max, model):
    """FlexMDM's loss with linear schedules alpha_t = beta_t = t, written from the paper with plain loops (no
    helper of the code under test): per sequence, with w = alpha_dot / (1 - alpha) = 1 / (1 - t),

        L = w * mean over masked positions i of -log f_theta(x_t)[i, x1^i]
            + w * (1 / L_max) * sum over gaps j of D(n_j, g_theta[j]),   D(n, g) = g - n + n log(n / g),

    where gap j is the gap left of x_t position j (the trailing EOS owns the last one) and n_j the number of
    dropped tokens of x1 in it. The normalization (mean over masks, gap sum / L_max, mean over sequences in the
    criterion) is the one the criterion documents. Also checks the compaction x_t itself. Returns (B,)."""
    d = model.dictionary
    out = []
    for b in range(x1.size(0)):
        w = 1.0 / (1.0 - float(t[b]))
        xt, target, masked, gap_n, dropped = [], [], [], [], 0
        for i in range(x1.size(1)):
            tok = int(x1[b, i])
            if tok == d.pad():
                break
            if tok == d.eos():
                xt.append(tok); target.append(tok); masked.append(False); gap_n.append(dropped)
                break
            if int(state[b, i]) == DROPPED:
                dropped += 1
                continue
            is_mask = int(state[b, i]) == MASKED
            xt.append(model.mask_index if is_mask else tok)
            target.append(tok); masked.append(is_mask); gap_n.append(dropped)
            dropped = 0
        assert xt_tokens[b, : len(xt)].tolist() == xt
        logp = torch.log_softmax(logits[b].double(), -1)
        nll = [-float(logp[j, target[j]]) for j in range(len(xt)) if masked[j]]
        um = w * sum(nll) / max(1, len(nll))
        div = 0.0
        for j, n in enumerate(gap_n):
            gj = float(g[b, j])
            div += gj - n + (n * math.log(n / gj) if n > 0 else 0.0)
        out.append(um + w * div / float(l_max))
    return torch.tensor(out, dtype=torch.float32)


def test_reinforce_zero_under_identical_samples_and_unbiased_baseline():
    l1 = torch.tensor([3.0, 1.0])
    lp = torch.tensor([-2.0, -5.0], requires_grad=True)
    term = reinforce_term((l1, l1.clone()), (lp, lp))
    assert torch.equal(term.detach(), torch.zeros(2))
    term.sum().backward()
    assert torch.equal(lp.grad, torch.zeros(2))
    # with the model: the same noisy sample twice gives an exactly zero term and zero gradient through it
    torch.manual_seed(1)
    model = tiny_model(learned=True)
    src, x1 = _batch(model, seed=1)
    spec = model(src, None, tgt_tokens=x1)
    s = spec["samples"][0]
    b_in, b_um, t = spec["b_in_phi"], spec["b_um_phi"], spec["t"]
    lp1 = state_log_prob(s["noisy"], t, 1.0, b_in, b_um, spec["content"])
    loss = sample_loss(s, x1, b_in, b_um, t, 1.0, False, spec["l_max"])
    rt = reinforce_term((loss["um"] + loss["in"],) * 2, (lp1, lp1))
    assert torch.equal(rt.detach(), torch.zeros_like(rt))


def test_score_function_mean_zero_monte_carlo():
    # E_z[grad log p_phi(z)] = 0 for the closed-form state probabilities: the REINFORCE baseline is unbiased
    b = torch.tensor([0.7, 2.0], requires_grad=True)
    logp = kuma.state_log_probs(torch.tensor(0.4), 1.3, b[:1], b[1:]).squeeze(0)  # (3,)
    probs = logp.exp().detach()
    grads = [torch.autograd.grad(logp[k], b, retain_graph=True)[0] for k in range(3)]
    expected = sum(p * g for p, g in zip(probs, grads))
    assert torch.allclose(expected, torch.zeros(2), atol=1e-6)


def test_schedule_regularizer_zero_at_linear_and_positive_otherwise():
    grid = torch.tensor([0.01, 0.25, 0.5, 0.75, 0.99])
    mask = torch.ones(2, 3, dtype=torch.bool)
    for form in ("per_sequence", "pooled"):
        assert float(schedule_regularizer(1.0, torch.ones(2, 3), mask, grid, form)) == pytest.approx(0.0, abs=1e-12)
        assert float(schedule_regularizer(1.0, torch.full((2, 3), 5.0), mask, grid, form)) > 0.1


def test_schedule_regularizer_forms_against_a_direct_computation():
    # two sequences that compensate each other: pooled, the batch's mean CDF is near linear; per sequence it is not
    grid = [0.2, 0.5, 0.9]
    b = [[0.3, 0.3, 9.0], [3.0, 3.0, 3.0]]  # the third token of sequence 0 is padding
    mask = [[True, True, False], [True, True, True]]
    cdf = lambda t, v: 1 - (1 - t) ** v  # a = 1
    per_seq = [sum((sum(cdf(t, v) for v, m in zip(bs, ms) if m) / sum(ms) - t) ** 2 for t in grid)
               for bs, ms in zip(b, mask)]
    pooled = sum((sum(cdf(t, v) for bs, ms in zip(b, mask) for v, m in zip(bs, ms) if m) / 5 - t) ** 2 for t in grid)
    args = (1.0, torch.tensor(b, dtype=torch.float64), torch.tensor(mask), torch.tensor(grid, dtype=torch.float64))
    assert float(schedule_regularizer(*args, "per_sequence")) == pytest.approx(sum(per_seq) / 2, rel=1e-10)
    assert float(schedule_regularizer(*args, "pooled")) == pytest.approx(pooled, rel=1e-10)
    assert sum(per_seq) / 2 > 3 * pooled  # what pooling hides
    with pytest.raises(ValueError, match="--schedule-reg-form must be one of per_sequence, pooled, got 'x'"):
        schedule_regularizer(*args, "x")


def test_stratified_grid_has_one_point_per_cell():
    g = torch.Generator().manual_seed(0)
    pts = stratified_grid(100, generator=g, dtype=torch.float64)
    lo, width = 1e-4, (1 - 2e-4) / 100
    cells = ((pts - lo) / width).floor()
    assert pts.shape == (100,) and torch.equal(cells, torch.arange(100, dtype=torch.float64))
    assert not torch.equal(pts, stratified_grid(100, generator=g, dtype=torch.float64)), "fresh times per call"


def test_tail_penalty_reference_form_closed_form_and_minimum():
    mask = torch.tensor([[True, True, False]])
    eps = delta = 0.01
    # a = 1: F(eps) = 1 - (1 - eps)^b, 1 - F(1 - eps) = eps^b; relu(. - delta)^2 each, summed over the sequence
    relu2 = lambda x: max(x, 0.0) ** 2
    pen1 = lambda v: relu2(1 - (1 - eps) ** v - delta) + relu2(eps ** v - delta)
    b = torch.tensor([[0.01, 3.0, 100.0]], dtype=torch.float64, requires_grad=True)
    pen = tail_penalty(1.0, b, mask, eps, delta, "squared_relu")
    assert float(pen) == pytest.approx(pen1(0.01) + pen1(3.0), rel=1e-9)
    pen.backward()
    assert b.grad[0, 0] < 0 and b.grad[0, 1] > 0 and b.grad[0, 2] == 0  # floor token pushed up, fast one down
    # the minimum is at b = 1 (the linear schedule), unlike the linear form's ~1.33
    bs = torch.linspace(0.5, 2.0, 301, dtype=torch.float64).view(1, -1)
    ones = torch.ones_like(bs, dtype=torch.bool)
    per_token = lambda form: torch.stack([tail_penalty(1.0, bs[:, i:i + 1], ones[:, i:i + 1], eps, delta, form)
                                          for i in range(bs.size(1))])
    assert float(bs[0, per_token("squared_relu").argmin()]) == pytest.approx(1.0, abs=0.006)
    assert float(bs[0, per_token("linear").argmin()]) == pytest.approx(1.333, abs=0.006)
    with pytest.raises(ValueError, match="--tail-penalty-form must be one of squared_relu, linear"):
        tail_penalty(1.0, b, mask, eps, delta, "cubic")


def test_tail_penalty_linear_form_closed_form_and_direction():
    mask = torch.tensor([[True, True, False]])
    eps = 0.01
    # a = b = 1: F(eps) + 1 - F(1 - eps) = eps + eps
    assert float(tail_penalty(1.0, torch.ones(1, 3), mask, eps, form="linear")) == pytest.approx(2 * eps, rel=1e-6)
    # a = 1: F(t) = 1 - (1 - t)^b, so the penalty of one token is 1 - (1 - eps)^b + eps^b
    b = torch.tensor([[0.01, 3.0, 100.0]], requires_grad=True)  # the padded third token must not count
    expected = sum(1 - (1 - eps) ** v + eps ** v for v in (0.01, 3.0)) / 2
    pen = tail_penalty(1.0, b, mask, eps, form="linear")
    assert float(pen) == pytest.approx(expected, rel=1e-5)
    pen.backward()
    assert b.grad[0, 0] < 0 and b.grad[0, 1] > 0 and b.grad[0, 2] == 0


def test_kuma_kl_reduction_and_value_at_the_floor():
    # a = 1: KL(Kuma(1, b) || U) = -H = log b + 1/b - 1 (independent closed form of the a = 1 case)
    kl1 = lambda v: math.log(v) + 1 / v - 1
    b = torch.tensor([[0.01, 2.0, 5.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert float(kuma_kl(1.0, b, mask)) == pytest.approx(((kl1(0.01) + kl1(2.0)) / 2 + 0.0) / 2, rel=1e-9)
    assert kl1(0.01) == pytest.approx(94.4, abs=0.1)  # the reference code's KL: ~94 at the floor


def test_criterion_defaults_are_the_reference_forms():
    from iterref_fairseq.criterions.flexmdm_loss import FlexMDMLossConfig

    cfg = FlexMDMLossConfig()
    assert (cfg.schedule_reg_form, cfg.schedule_reg_points, cfg.tail_penalty_form) == ("per_sequence", 100,
                                                                                        "squared_relu")
    assert (cfg.kuma_kl_weight, cfg.tail_penalty_weight, cfg.schedule_reg_weight, cfg.tail_delta) == (1.0, 1.0,
                                                                                                     1.0, 0.01)


def test_remaining_count_head_loss_is_outside_the_reinforce_losses():
    """LFlexMDM's count head is trained with D(n_gap, c) per gap; FlexMDM has none (its b_in^theta is the count)."""
    from iterref_fairseq.criterions.flexmdm_loss import FlexMDMLoss

    torch.manual_seed(3)
    model = tiny_model(learned=True)
    src, x1 = _batch(model, seed=3)
    spec = model(src, None, tgt_tokens=x1)
    s = spec["samples"][0]
    part = sample_loss(s, x1, spec["b_in_phi"], spec["b_um_phi"], spec["t"], 1.0, False, 7.0)
    expected = bregman(s["noisy"].gap_count.float(), s["count_theta"]).masked_fill(s["noisy"].padding_mask, 0.0)
    torch.testing.assert_close(part["count"], expected.sum(1) / 7.0)
    flex = tiny_model(learned=False)
    assert flex.count_head is None and flex(src, None, tgt_tokens=x1)["samples"][0]["count_theta"] is None
    # the count head gets gradient from the loss, but the REINFORCE term does not depend on it: zeroing the
    # count head's output changes the loss by exactly the change of the count term
    crit = FlexMDMLoss(None, 1.0, 0.0, False, 0.999)
    batch = {"net_input": {"src_tokens": src, "src_lengths": None}, "target": x1}
    torch.manual_seed(4)
    loss, _, log = crit(model, batch)
    loss.backward()
    assert model.count_head.weight.grad.abs().sum() > 0 and log["count_loss"] > 0
    with torch.no_grad():
        model.count_head.weight.zero_()
        model.count_head.bias.fill_(-30.0)  # c ~ 0: the count term becomes sum of n_gap / L_max
    torch.manual_seed(4)
    _, _, log2 = crit(model, batch)
    assert log2["reinforce"] == pytest.approx(log["reinforce"], rel=1e-5, abs=1e-7)
    assert log2["count_loss"] != pytest.approx(log["count_loss"])


def test_no_count_head_ablation_uses_the_insertion_multiplier():
    """--no-count-head: no count parameters, no count loss, and the remaining count the sampler reads is b_in^theta."""
    from iterref_fairseq.criterions.flexmdm_loss import FlexMDMLoss

    torch.manual_seed(5)
    model = tiny_model(True, no_count_head=True)
    assert model.count_head is None and not any(n.startswith("count_head") for n, _ in model.named_parameters())
    src, x1 = _batch(model, seed=5)
    _, _, log = FlexMDMLoss(None)(model, {"net_input": {"src_tokens": src, "src_lengths": None}, "target": x1})
    assert "count_loss" not in log and log["kuma_kl"] >= 0 and "tail" in log
    x, t = x1[:, :4], torch.full((6,), 0.5)
    _, b_in, _, remaining = model.generator_outputs(src, x, x.eq(model.pad), t)
    assert torch.equal(remaining, b_in)
    with_head = tiny_model(True)
    with_head.load_state_dict({**model.state_dict(), **{k: v for k, v in with_head.state_dict().items()
                                                        if k.startswith("count_head")}})
    model.load_state_dict(model.state_dict())  # loads without the count head


def test_old_lflexmdm_checkpoint_without_count_head_is_a_clear_error():
    model = tiny_model(learned=True)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("count_head.")}
    with pytest.raises(ValueError, match="predates the remaining-count head"):
        model.load_state_dict(state)
    tiny_model(learned=False).load_state_dict(tiny_model(learned=False).state_dict())  # FlexMDM unaffected


@pytest.mark.parametrize("learned,backbone,learn_um", [(False, "separate", False), (True, "separate", False),
                                                        (True, "shared", True)])
def test_criterion_gradients_reach_generator_and_aux(learned, backbone, learn_um):
    from iterref_fairseq.criterions.flexmdm_loss import FlexMDMLoss

    torch.manual_seed(2)
    model = tiny_model(learned, aux_backbone=backbone, learn_unmask_order=learn_um)
    src, x1 = _batch(model, seed=2)
    crit = FlexMDMLoss(None, 1.0, 0.1, False, 0.999)
    loss, size, log = crit(model, {"net_input": {"src_tokens": src, "src_lengths": None}, "target": x1})
    loss.backward()
    assert torch.isfinite(loss) and size == 1 and log["nsentences"] == 6
    assert model.rate_head.weight.grad.abs().sum() > 0
    if learned:
        assert model.aux_head.weight.grad.abs().sum() > 0
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    else:
        assert not hasattr(model, "aux_head")


@pytest.mark.parametrize("learned,backbone", [(False, "separate"), (True, "separate"), (True, "shared")])
def test_every_parameter_gets_gradient_after_one_update(learned, backbone):
    """adaLN-Zero starts every gate at 0, so the first backward reaches only the modulation maps; after one update
    every parameter tensor must receive gradient. (The auxiliary network's modulation used to be a zero linear map
    of a constant zero vector: its weights and that vector never got any gradient.)"""
    from iterref_fairseq.criterions.flexmdm_loss import FlexMDMLoss

    torch.manual_seed(3)
    model = tiny_model(learned, aux_backbone=backbone)
    src, x1 = _batch(model, seed=3)
    crit = FlexMDMLoss(None, 1.0, 0.1, False, 0.999)
    sample = {"net_input": {"src_tokens": src, "src_lengths": None}, "target": x1}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        crit(model, sample)[0].backward()
        opt.step()
    opt.zero_grad()
    crit(model, sample)[0].backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, f"parameters without gradient: {dead}"


def test_old_aux_modulation_checkpoint_loads_to_the_same_function():
    """A checkpoint of the earlier auxiliary network (adaLN as a zero linear map of aux_c = 0, plus its bias)
    loads into the unconditioned one and gives the same b_in^phi."""
    torch.manual_seed(4)
    model = tiny_model(True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ada_const"):
                p.normal_()
    old = {}
    for key, value in model.state_dict().items():
        if key.startswith("aux.") and key.endswith("ada_const"):
            stem = key[: -len("ada_const")]
            old[stem + "ada.bias"] = value.clone()
            old[stem + "ada.weight"] = torch.zeros(value.numel(), model.aux.embed.weight.size(1))
        else:
            old[key] = value.clone()
    old["aux_c"] = torch.zeros(model.aux.embed.weight.size(1))
    fresh = tiny_model(True)
    fresh.load_state_dict(old)
    src, x1 = _batch(model, seed=4)
    model.eval(), fresh.eval()
    torch.testing.assert_close(fresh.aux_multipliers(src, x1)[0], model.aux_multipliers(src, x1)[0])


def test_stratified_training_times_cover_every_bin_once():
    from iterref_fairseq.models.flexmdm import sample_training_times

    torch.manual_seed(0)
    for bsz in (1, 7, 64):
        t = sample_training_times(bsz, 0.9, "stratified")
        assert t.shape == (bsz,) and bool(((t >= 0) & (t < 0.9)).all())
        bins = torch.floor(t / 0.9 * bsz).long()
        assert sorted(bins.tolist()) == list(range(bsz))  # one time in each of the bsz equal bins
    # marginally uniform: the mean of many stratified draws of a batch of 3 is t_max / 2
    means = torch.stack([sample_training_times(3, 1.0, "stratified") for _ in range(4000)])
    assert abs(float(means.mean()) - 0.5) < 0.01 and abs(float(means[:, 0].mean()) - 0.5) < 0.03
    iid = sample_training_times(1000, 0.5, "iid")
    assert bool((iid < 0.5).all()) and 0.2 < float(iid.mean()) < 0.3
    with pytest.raises(ValueError, match="unknown t sampling 'sobol'"):
        sample_training_times(4, 0.9, "sobol")
