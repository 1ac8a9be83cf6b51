"""The refinement NAT against the reference code's choices and against independent computations:

connections and their initial behaviour, the layerwise corruption schedule, the per-sentence DAE/LVM choice, the
curriculum switch, the split attention modules against torch.nn.MultiheadAttention, the chunked output loss
against autograd through log_softmax, and cached decoding against an uncached decoder written here.
"""
import argparse
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.data import Dictionary

import iterref_fairseq  # noqa: F401
from iterref_fairseq.generators.refinement import IterativeRefinementDecoder
from iterref_fairseq.models.refinement_nat import RefinementNATModel, refinement_nat_base, refinement_nat_tiny
from iterref_fairseq.modules import projected_cross_entropy as pce
from iterref_fairseq.modules.nat_attention import PositionalAttention, SplitMultiheadAttention, key_keep_mask
from iterref_fairseq.modules.sinusoidal_positions import SinusoidalPositions
from iterref_fairseq.tasks.translation_refine import TranslationRefineConfig, TranslationRefineTask, layerwise_beta


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def _dictionary(n=500):
    d = Dictionary()
    for i in range(n):
        d.add_symbol(f"w{i}")
    return d


def _model(connections=None, dim=128, layers=2, vocab=500, seed=0, **extra):
    args = argparse.Namespace(encoder_embed_dim=dim, encoder_layers=layers, decoder_layers=layers, dropout=0.0,
                              **extra)
    if connections is not None:
        args.decoder_connections = connections
    refinement_nat_tiny(args)
    torch.manual_seed(seed)
    return RefinementNATModel.build_model(args, _Task(_dictionary(vocab)))


def _batch(model, bsz=4, src_len=9, tgt_len=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = model.tgt_dict
    src = torch.randint(d.nspecial, len(d), (bsz, src_len), generator=g)
    src[:, -1] = d.eos()
    tgt = torch.randint(d.nspecial, len(d), (bsz, tgt_len), generator=g)
    tgt[:, -1] = d.eos()
    return src, torch.full((bsz,), src_len), tgt


# ---------------------------------------------------------------------------------------------- connections
@pytest.mark.parametrize("connections,gated", [("highway-ffn", [False, False, False, True]),
                                               ("highway", [True] * 4), ("residual", [False] * 4)])
def test_highway_gates_sit_where_the_connection_mode_puts_them(connections, gated):
    model = _model(connections, dim=16, layers=2, vocab=30)
    for stack in (model.decoder_initial, model.decoder_refine):
        for layer in stack.layers:  # sublayers: self-attention, positional, cross-attention, feed-forward
            assert [c.gate is not None for c in layer.connections] == gated


def test_decoder2_starts_near_the_identity_with_the_reference_connections():
    """At initialization, decoder 2 with residual attention blocks hands its input token back (argmax of the
    tied output projection); with highway gates of bias 0 everywhere (0.2) it does not."""
    copies = {}
    for connections in ("highway-ffn", "highway"):
        model = _model(connections).eval()
        src, src_len, _ = _batch(model)
        tokens = torch.randint(model.tgt_dict.nspecial, len(model.tgt_dict), (4, 8))
        with torch.no_grad():
            enc = model.encode(src, src_len)
            ctx = model.decoder_context(model.decoder_refine, enc, torch.ones(4, 8, dtype=torch.bool))
            hidden = model.refine_hidden(ctx, tokens, torch.randn(4, 8, 128))
            copies[connections] = float((model._output(hidden).argmax(-1) == tokens).float().mean())
    assert copies["highway-ffn"] >= 0.9 and copies["highway"] <= 0.1, copies


@pytest.mark.parametrize("stored,expected", [({}, "highway-ffn"), ({"decoder_residual": False}, "highway"),
                                             ({"decoder_residual": True}, "residual"),
                                             ({"decoder_connections": "residual"}, "residual")])
def test_checkpoints_of_0_2_keep_their_connections(stored, expected):
    args = argparse.Namespace(**stored)
    refinement_nat_base(args)
    assert args.decoder_connections == expected


# ---------------------------------------------------------------------------------------------- noise schedule
@pytest.mark.parametrize("itrain", [2, 3, 4, 5, 8])
def test_layerwise_beta_is_the_reference_schedule(itrain):
    # the reference code: np.arange(start=0.1, stop=0.9, step=0.8 / (itrain - 1)) reversed, indexed by step - 1
    diff = (0.9 - 0.1) / (itrain - 1)
    reference = np.arange(start=0.1, stop=0.9, step=diff).tolist()[::-1]
    reference = reference[: itrain - 1]  # float arange may add one point just below 0.9
    ours = [layerwise_beta(step, itrain) for step in range(1, itrain)]
    assert ours == pytest.approx(reference)


def test_layerwise_beta_at_itrain_4_and_bad_steps():
    assert [round(layerwise_beta(s, 4), 3) for s in (1, 2, 3)] == [0.633, 0.367, 0.1]
    with pytest.raises(ValueError, match="outside 1 .. 3"):
        layerwise_beta(4, 4)


def test_task_beta_follows_the_schedule_flag():
    d = _dictionary(30)
    layerwise = TranslationRefineTask(TranslationRefineConfig(), d, d)
    constant = TranslationRefineTask(TranslationRefineConfig(corruption_schedule="constant", corruption_prob=0.3),
                                     d, d)
    assert layerwise.corruption_beta(1, 4) == pytest.approx(0.6333, abs=1e-4)
    assert constant.corruption_beta(1, 4) == constant.corruption_beta(3, 4) == 0.3
    # the corruption rate of each step follows its beta: events counted over many tokens
    torch.manual_seed(0)
    target = torch.randint(d.nspecial, len(d), (400, 30))
    for step, beta in ((1, 0.6333), (3, 0.1)):
        changed = (layerwise.corrupt(target, step, 4) != target).float().mean()
        # an event changes its own token unless a repeat/swap/replace happens to rewrite the same symbol; repeats
        # and swaps also rewrite the next token, so the changed fraction lies between beta/2 and 2 beta
        assert beta / 2 < changed < 2 * beta


# ---------------------------------------------------------------------------------------------- DAE choice
def test_per_sentence_dae_choice_mixes_rows_and_counts_them():
    model = _model(dim=16, layers=1, vocab=30)
    src, src_len, tgt = _batch(model, bsz=8)
    seen = []
    original = model.refine_hidden

    def spy(context, prev_tokens, prev_hidden):
        seen.append(prev_tokens.clone())
        return original(context, prev_tokens, prev_hidden)

    model.refine_hidden = spy
    marker = 7
    dae_rows, rows, kinds = 0, 0, set()
    torch.manual_seed(0)
    with torch.no_grad():
        for _ in range(150):
            seen.clear()
            out = model(src, src_len, tgt_tokens=tgt, train_steps=3, dae_prob=0.3, dae_choice="sentence",
                        corrupt=lambda t, step: torch.full_like(t, marker))
            for step, tokens in zip(out["steps"][1:], seen):
                corrupted = tokens[:, :7].eq(marker).all(1)  # 7 real target positions per row
                assert int(corrupted.sum()) == step["dae_rows"]
                kinds.add(step["input"])
                dae_rows += step["dae_rows"]
                rows += 8
    assert abs(dae_rows / rows - 0.3) < 0.03
    assert "mixed" in kinds


def test_per_batch_dae_choice_never_mixes():
    model = _model(dim=16, layers=1, vocab=30)
    src, src_len, tgt = _batch(model, bsz=8)
    torch.manual_seed(1)
    with torch.no_grad():
        kinds = {s["input"] for _ in range(40) for s in model(
            src, src_len, tgt_tokens=tgt, train_steps=3, dae_prob=0.5, dae_choice="batch",
            corrupt=lambda t, step: t)["steps"][1:]}
    assert kinds == {"dae", "lvm"}


# ---------------------------------------------------------------------------------------------- curriculum
def test_curriculum_trains_decoder1_alone_until_the_named_update():
    from iterref_fairseq.criterions.refinement_nat_loss import RefinementNATLoss

    model = _model(dim=16, layers=1, vocab=30)
    d = model.tgt_dict
    task = TranslationRefineTask(TranslationRefineConfig(), d, d)
    criterion = RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 5, 0.0, 1.0)
    src, src_len, tgt = _batch(model)
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_len}, "target": tgt}

    class _Optimizer:
        def backward(self, loss):
            loss.backward()

    steps = {}
    for update in (0, 4, 5, 9):
        task.train_step(sample, model, criterion, _Optimizer(), update)  # the task tells the criterion the update
        _, _, log = criterion(model, sample)
        steps[update] = sum(k.startswith("nll_step") for k in log)
    assert steps == {0: 1, 4: 1, 5: 4, 9: 4}
    model.eval()
    _, _, log = criterion(model, sample)  # validation always runs the whole chain
    assert sum(k.startswith("nll_step") for k in log) == 4


def test_refiner_init_copies_decoder1_once_at_the_curriculum_switch():
    from iterref_fairseq.criterions.refinement_nat_loss import RefinementNATLoss

    model = _model(dim=16, layers=1, vocab=30)
    d = model.tgt_dict
    task = TranslationRefineTask(TranslationRefineConfig(), d, d)
    criterion = RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 5, 0.0, 1.0, refiner_init="decoder1")
    src, src_len, tgt = _batch(model)
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_len}, "target": tgt}
    initial = {k: v.clone() for k, v in model.decoder_initial.state_dict().items()}
    refiner = {k: v.clone() for k, v in model.decoder_refine.state_dict().items()}
    assert set(initial) == set(refiner) and any(not torch.equal(initial[k], refiner[k]) for k in initial)

    def run(update):
        criterion.set_update_num(update)
        criterion(model, sample)

    run(4)  # before the switch: decoder 2 untouched
    assert all(torch.equal(v, refiner[k]) for k, v in model.decoder_refine.state_dict().items())
    run(5)  # the switch: decoder 2 = decoder 1, parameter by parameter
    assert all(torch.equal(v, initial[k]) for k, v in model.decoder_refine.state_dict().items())
    with torch.no_grad():  # later updates (or a resumed run past the switch) never copy again
        for p in model.decoder_refine.parameters():
            p.add_(1.0)
    run(6)
    assert all(torch.equal(v, initial[k] + 1.0) for k, v in model.decoder_refine.state_dict().items()
               if v.is_floating_point())
    model.eval()
    criterion.set_update_num(5)
    criterion(model, sample)  # validation at the switch's update number copies nothing either
    assert all(torch.equal(v, initial[k] + 1.0) for k, v in model.decoder_refine.state_dict().items()
               if v.is_floating_point())
    with pytest.raises(ValueError, match="needs --refine-from-update N > 0"):
        RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 0, 0.0, 1.0, refiner_init="decoder1")


# ---------------------------------------------------------------------------------------------- attention modules
def test_split_attention_equals_torch_multihead_attention():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 4, batch_first=True)
    ours = SplitMultiheadAttention(16, 4)
    ours.load_state_dict(reference.state_dict())  # same parameter names: 0.2 checkpoints load
    x, memory = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    pad = torch.zeros(3, 7, dtype=torch.bool)
    pad[1, 4:] = True
    expected = reference(x, memory, memory, key_padding_mask=pad, need_weights=False)[0]
    k, v = ours.project_kv(memory)
    assert torch.allclose(ours.attend(ours.project_q(x), k, v, key_keep_mask(pad)), expected, atol=1e-5)
    self_pad = torch.zeros(3, 5, dtype=torch.bool)
    self_pad[2, 3:] = True
    expected = reference(x, x, x, key_padding_mask=self_pad, need_weights=False)[0]
    assert torch.allclose(ours.self_attention(x, key_keep_mask(self_pad)), expected, atol=1e-5)


def test_positional_attention_equals_attention_over_position_encodings():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(16, 2, batch_first=True)
    ours = PositionalAttention(16, 2)
    ours.attn.load_state_dict(reference.state_dict())
    positions = SinusoidalPositions(16)(6)
    values = torch.randn(3, 6, 16)
    pad = torch.zeros(3, 6, dtype=torch.bool)
    pad[0, 4:] = True
    pos = positions.unsqueeze(0).expand(3, -1, -1)
    expected = reference(pos, pos, values, key_padding_mask=pad, need_weights=False)[0]
    assert torch.allclose(ours(positions, values, pad), expected, atol=1e-5)
    # unpadded batches share one (1, H, T, T) weight tensor
    assert ours.weights(positions, None).shape == (1, 2, 6, 6)


# ---------------------------------------------------------------------------------------------- output loss
@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("chunk_elements", [pce.CHUNK_ELEMENTS, 64])
@pytest.mark.parametrize("learned_bias", [False, True])
def test_projected_cross_entropy_matches_autograd_through_log_softmax(eps, chunk_elements, learned_bias, monkeypatch):
    monkeypatch.setattr(pce, "CHUNK_ELEMENTS", chunk_elements)  # 64 logits: 2 rows per chunk
    torch.manual_seed(0)
    hidden = torch.randn(13, 8, requires_grad=True)
    weight = torch.randn(30, 8, requires_grad=True)
    mask = torch.zeros(30)
    mask[[0, 1, 2]] = float("-inf")
    learned = torch.randn(30, requires_grad=True) if learned_bias else torch.zeros(30)
    target = torch.randint(3, 30, (13,))
    loss, nll, tokens = pce.projected_cross_entropy(hidden, weight, learned + mask, target, eps)
    upstream = torch.rand(13)
    inputs = (hidden, weight, learned) if learned_bias else (hidden, weight)
    grads = torch.autograd.grad((loss * upstream).sum(), inputs)

    lprobs = F.log_softmax(hidden @ weight.t() + learned + mask, dim=-1)
    ref_nll = -lprobs.gather(1, target.unsqueeze(1)).squeeze(1)
    ref_loss = (1 - eps) * ref_nll - eps * lprobs[:, 3:].mean(-1)  # smoothing over the 27 allowed symbols
    ref_grads = torch.autograd.grad((ref_loss * upstream).sum(), inputs)
    assert torch.allclose(loss, ref_loss, atol=1e-5) and torch.allclose(nll, ref_nll, atol=1e-5)
    for ours, ref in zip(grads, ref_grads):
        assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.equal(tokens, lprobs.argmax(-1))


def test_projected_cross_entropy_samples_follow_the_softmax():
    torch.manual_seed(0)
    hidden = torch.zeros(20000, 2)
    hidden[:, 0] = 1.0
    weight = torch.tensor([[0.0, 0.0], [9.0, 0.0], [0.0, 0.0], [math.log(3.0), 0.0]])
    bias = torch.tensor([0.0, float("-inf"), 0.0, 0.0])
    _, _, tokens = pce.projected_cross_entropy(hidden, weight, bias, torch.zeros(20000, dtype=torch.long),
                                               tokens="sample")
    freq = torch.bincount(tokens, minlength=4).float() / 20000
    assert freq[1] == 0  # a -inf symbol is never drawn, however large its logit
    assert freq.tolist() == pytest.approx([0.2, 0.0, 0.2, 0.6], abs=0.02)


# ---------------------------------------------------------------------------------------------- cached decoding
def _uncached_decode(model, src, src_len, max_iter, force, k):
    """Reference decoder: every pass recomputes everything for the whole batch (no context, no shrinking); a
    row's output is frozen at the pass where it stopped (output equal to the previous one)."""
    enc = model.encode(src, src_len)
    lengths, _ = model.predict_target_lengths(enc, src, k)
    rows = torch.arange(src.size(0)).repeat_interleave(k)
    enc = model.reorder_encoder_out(enc, rows)
    state = model.initialize_refinement(enc, src.index_select(0, rows), lengths.reshape(-1))._replace(context=None)
    tokens, scores = state.tokens.clone(), state.scores.clone()
    steps = torch.ones(tokens.size(0), dtype=torch.long)
    done = torch.zeros(tokens.size(0), dtype=torch.bool)
    for _ in range(max_iter - 1):
        new = model.refine(enc, state)._replace(context=None)
        live = ~done
        if not force:
            done = done | (live & new.tokens.eq(state.tokens).all(1))
        tokens[live], scores[live] = new.tokens[live], new.scores[live]
        steps[live] += 1
        state = new._replace(tokens=tokens.clone(), scores=scores.clone(),
                             hidden=torch.where(live[:, None, None], new.hidden, state.hidden))
        if bool(done.all()):
            break
    return tokens, scores, steps, state.padding_mask


@pytest.mark.parametrize("force,k", [(False, 1), (True, 1), (False, 2)])
def test_cached_decoding_gives_the_outputs_of_uncached_decoding(force, k):
    model = _model(dim=32, layers=2, vocab=40, seed=3).eval()
    src, src_len, _ = _batch(model, bsz=12, src_len=7, seed=5)
    generator = IterativeRefinementDecoder(model.tgt_dict, max_iter=8, force_max_iter=force, length_beam=k,
                                           remove_repeats=False)
    with torch.no_grad():
        tokens, scores, steps, padding = _uncached_decode(model, src, src_len, 8, force, k)
    hyps = generator.generate([model], {"net_input": {"src_tokens": src, "src_lengths": src_len}})
    if not force and k == 1:
        assert len(set(steps.tolist())) > 1, "the test needs rows that stop at different passes"
    for i, sentence in enumerate(hyps):
        expected = []
        for r in range(i * k, (i + 1) * k):
            real = ~padding[r]
            expected.append((tokens[r][real].tolist() + [model.eos], int(steps[r]),
                             float(scores[r][real].mean())))
        expected.sort(key=lambda e: -e[2])
        got = [(h["tokens"].tolist(), h["steps"], h["score"]) for h in sentence]
        assert [e[:2] for e in expected] == [g[:2] for g in got]
        assert [e[2] for e in expected] == pytest.approx([g[2] for g in got], abs=1e-5)


# ---------------------------------------------------------------------------------------------- glancing
def test_glance_positions_reveal_ratio_times_the_wrong_count_uniformly():
    torch.manual_seed(0)
    target = torch.tensor([[5, 6, 7, 8, 1, 1], [5, 6, 7, 8, 9, 10]])
    mask = target.ne(1)
    predicted = torch.tensor([[5, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])  # 3 and 6 wrong
    counts = torch.zeros(2, 6)
    for _ in range(3000):
        glanced = RefinementNATModel.glance_positions(predicted, target, mask, 0.5)
        assert glanced.sum(1).tolist() == [2, 3]  # round(1.5) = 2, round(3.0) = 3
        assert not bool((glanced & ~mask).any())
        counts += glanced.float()
    freq = counts / 3000
    assert freq[0, :4].tolist() == pytest.approx([0.5] * 4, abs=0.04)  # 2 of 4, right or wrong alike
    assert freq[1].tolist() == pytest.approx([0.5] * 6, abs=0.04)


def test_glancing_feeds_reference_tokens_to_decoder1_and_trains_on_the_rest():
    model = _model(dim=16, layers=1, vocab=30).train()
    src, src_len, tgt = _batch(model, bsz=6)
    inputs = []
    hook = model.decoder_initial.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    torch.manual_seed(4)
    try:
        out = model(src, src_len, tgt_tokens=tgt, train_steps=2, dae_prob=0.0, glance_ratio=1.0)
    finally:
        hook.remove()
    plain, glanced_input = inputs  # the no-gradient pass, then the glancing pass (no dropout: p = 0)
    first = out["steps"][0]
    target = tgt.masked_fill(tgt.eq(model.eos), model.pad)
    revealed = target.ne(model.pad) & ~first["mask"]
    assert first["input"] == "glance" and bool(revealed.any())
    expected = model._with_positions(model.embed_scale * model.embed_tgt(target))
    assert torch.allclose(glanced_input[revealed], expected[revealed], atol=1e-6)
    assert torch.allclose(glanced_input[first["mask"]], plain[first["mask"]], atol=1e-6)
    assert first["loss"].numel() == int(first["mask"].sum())


def test_glancing_ratio_anneals_with_the_update_number():
    from iterref_fairseq.criterions.refinement_nat_loss import RefinementNATLoss

    d = _dictionary(30)
    task = TranslationRefineTask(TranslationRefineConfig(), d, d)
    criterion = RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 0, 0.0, 1.0, 0.5, 0.3, 100)
    ratios = []
    for update in (0, 50, 100, 400):
        criterion.set_update_num(update)
        ratios.append(criterion.glance_ratio_now())
    assert ratios == pytest.approx([0.5, 0.4, 0.3, 0.3])
    with pytest.raises(ValueError, match="--glancing-ratio must be in"):
        RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 0, 0.0, 1.0, 1.5)


def test_corruption_prob_without_the_constant_schedule_is_an_error_in_training():
    from iterref_fairseq.criterions.refinement_nat_loss import RefinementNATLoss

    d = _dictionary(30)
    task = TranslationRefineTask(TranslationRefineConfig(corruption_prob=0.5), d, d)  # loading a model: fine
    with pytest.raises(ValueError, match="Add --corruption-schedule constant"):
        RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 0, 0.0, 1.0)


# ------------------------------------------------------------------------------- activation checkpointing
def _loss_grads_and_saved_bytes(checkpoint_activations: bool):
    """One itrain-4 training forward/backward with dropout; returns (loss, {name: grad}, bytes kept for backward)."""
    from iterref_fairseq.criterions.refinement_nat_loss import RefinementNATLoss

    # the flag at build time, as fairseq-train passes it: fairseq then also wraps the encoder layers
    model = _model(dim=32, layers=2, vocab=60, seed=3, checkpoint_activations=checkpoint_activations)
    model.args.dropout = model.dropout = 0.3
    for m in model.modules():  # the stacks' own dropout layers
        if isinstance(m, nn.Dropout):
            m.p = 0.3
    model.train()
    d = model.tgt_dict
    task = TranslationRefineTask(TranslationRefineConfig(), d, d)
    criterion = RefinementNATLoss(task, 4, 0.5, False, "previous", "batch", 0, 0.0, 1.0)
    src, src_len, tgt = _batch(model, bsz=6, src_len=11, tgt_len=10)
    sample = {"net_input": {"src_tokens": src, "src_lengths": src_len}, "target": tgt}
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    torch.manual_seed(11)  # the DAE coins, the corruption and the dropout masks
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _, _ = criterion(model, sample)
    kept = sum(saved)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}, kept


def test_checkpoint_activations_gives_the_same_loss_and_gradients_and_keeps_less():
    loss, grads, kept = _loss_grads_and_saved_bytes(False)
    loss_ckpt, grads_ckpt, kept_ckpt = _loss_grads_and_saved_bytes(True)
    assert torch.equal(loss, loss_ckpt)
    assert grads.keys() == grads_ckpt.keys() and len(grads) > 10
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-7, msg=name)
    # four decoder passes keep only their inputs and outputs: well under half of what the plain passes keep
    assert kept_ckpt < 0.5 * kept, (kept_ckpt, kept)
