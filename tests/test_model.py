"""In-process tests of the refinement_nat model: Eq. (3.4) input mixing, decoder-1 input, decoding hooks."""
import argparse

import pytest
import torch
from fairseq.data import Dictionary

import iterref_fairseq  # noqa: F401
from iterref_fairseq.models.refinement_nat import RefinementNATModel, refinement_nat_tiny


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


@pytest.fixture(scope="module")
def model():
    d = Dictionary()
    for i in range(30):
        d.add_symbol(f"w{i}")
    args = argparse.Namespace(
        encoder_embed_dim=16, encoder_ffn_embed_dim=32, encoder_layers=1, encoder_attention_heads=2,
        decoder_layers=1, dropout=0.0,
    )
    refinement_nat_tiny(args)
    torch.manual_seed(0)
    m = RefinementNATModel.build_model(args, _Task(d))
    return m


def batch(model, bsz=3, src_len=6, tgt_len=5):
    d = model.tgt_dict
    src = torch.randint(d.nspecial, len(d), (bsz, src_len))
    src[:, -1] = d.eos()
    tgt = torch.randint(d.nspecial, len(d), (bsz, tgt_len))
    tgt[:, -1] = d.eos()
    return src, torch.full((bsz,), src_len), tgt


def test_forward_loss_spec_shapes_and_length_target(model):
    src, src_len, tgt = batch(model)
    out = model(src, src_len, tgt_tokens=tgt, train_steps=4, dae_prob=0.5, corrupt=lambda t, step: t)
    assert len(out["steps"]) == 4 and out["steps"][0]["input"] == "copy"
    for i, step in enumerate(out["steps"]):
        assert step["mask"].sum() == 3 * 4  # EOS is not a target of the NAT
        assert step["loss"].shape == step["nll"].shape == (12,)
        assert step["loss"].requires_grad and not step["nll"].requires_grad
        if i < 3:  # the next step's input; never pad / EOS inside a target, pads outside it
            assert step["tokens"].shape == (3, 5)
            inside = step["tokens"][step["mask"]]
            assert not any(bool(inside.eq(sym).any()) for sym in (model.pad, model.eos, model.bos))
            assert step["tokens"][~step["mask"]].eq(model.pad).all()
        else:
            assert step["tokens"] is None  # the last step's argmax is never used in training
    # target length 4, source content length 5 -> offset -1 -> class max_offset - 1
    assert out["length"]["target"].tolist() == [model.length_predictor.max_offset - 1] * 3


@pytest.mark.parametrize("p_dae", [0.0, 0.3, 1.0])
def test_lvm_dae_mixing_ratio(model, p_dae):
    torch.manual_seed(1)
    src, src_len, tgt = batch(model, bsz=1)
    calls = []

    def corrupt(t, step):
        calls.append(t.clone())
        return t

    kinds = []
    with torch.no_grad():
        for _ in range(300):
            out = model(src, src_len, tgt_tokens=tgt, train_steps=4, dae_prob=p_dae, corrupt=corrupt)
            kinds += [s["input"] for s in out["steps"][1:]]
    frac = sum(k == "dae" for k in kinds) / len(kinds)
    assert abs(frac - p_dae) < 0.05, frac
    assert len(calls) == sum(k == "dae" for k in kinds), "every DAE step is fed a corrupted reference"
    if calls:
        assert calls[0].eq(model.eos).sum() == 0, "the corruption sees the target without EOS"


def test_stochastic_lvm_inputs_are_samples(model):
    src, src_len, tgt = batch(model)
    torch.manual_seed(2)
    with torch.no_grad():
        out = model(src, src_len, tgt_tokens=tgt, train_steps=2, dae_prob=0.0, stochastic=True)
    assert out["steps"][1]["input"] == "lvm"


def test_decoder1_is_invariant_to_source_padding_side(model):
    model.eval()
    d = model.tgt_dict
    content = torch.tensor([5, 6, 7, 8])
    left = torch.tensor([[d.pad(), d.pad(), *content.tolist(), d.eos()]])
    right = torch.tensor([[*content.tolist(), d.eos(), d.pad(), d.pad()]])
    with torch.no_grad():
        outs = []
        for src in (left, right):
            enc = model.encode(src, torch.tensor([5]))
            outs.append(model.initialize_refinement(enc, src, torch.tensor([6])))
    # fairseq positions count non-pad tokens and pads are masked, so only the copy mapping could differ
    assert torch.equal(outs[0].tokens, outs[1].tokens)
    assert torch.allclose(outs[0].scores, outs[1].scores, atol=1e-5)


def test_decoding_hooks_keep_padding(model):
    model.eval()
    src, src_len, _ = batch(model, bsz=2)
    with torch.no_grad():
        enc = model.encode(src, src_len)
        lengths, scores = model.predict_target_lengths(enc, src, 3)
        assert lengths.shape == scores.shape == (2, 3) and lengths.ge(1).all()
        state = model.initialize_refinement(enc, src, torch.tensor([2, 4]))
        assert state.tokens.shape == (2, 4) and state.hidden.shape == (2, 4, 16)
        assert state.tokens[0, 2:].eq(model.pad).all() and state.padding_mask[0].tolist() == [False, False, True, True]
        # tokens = argmax, scores = their log-probability, 0 at pads (computed here from the output projection)
        logp = torch.log_softmax(model._output(state.hidden), dim=-1)
        real = ~state.padding_mask
        assert torch.equal(state.tokens[real], logp.argmax(-1)[real])
        assert torch.allclose(state.scores[real], logp.gather(-1, state.tokens.unsqueeze(-1)).squeeze(-1)[real],
                              atol=1e-5)
        assert state.scores[~real].eq(0).all()
        nxt = model.refine(enc, state)
        assert nxt.tokens[0, 2:].eq(model.pad).all()
        assert nxt.tokens[~nxt.padding_mask].ge(model.tgt_dict.nspecial).all()
        reordered = model.reorder_encoder_out(enc, torch.tensor([1, 1, 0]))
        assert reordered["encoder_out"][0].size(1) == 3 and enc["encoder_out"][0].size(1) == 2


def _corrupt_by_shuffling(t, step):
    return t[:, torch.randperm(t.size(1))]


def test_chain_mode_conditions_every_lvm_step_on_the_models_own_iterate(model):
    """--lvm-input chain: an LVM step after a DAE step sees Y^{l-1} of the pure chain (Eq. 3.4)."""
    model.eval()  # no dropout: the same input gives the same logits
    src, src_len, tgt = batch(model, bsz=2)
    with torch.no_grad():
        pure = model(src, src_len, tgt_tokens=tgt, train_steps=5, dae_prob=0.0)["steps"]
        seen_mixed = {"chain": False, "previous": False}
        for seed in range(40):
            for mode in ("chain", "previous"):
                torch.manual_seed(seed)
                steps = model(src, src_len, tgt_tokens=tgt, train_steps=5, dae_prob=0.5,
                              corrupt=_corrupt_by_shuffling, lvm_input=mode)["steps"]
                kinds = [s["input"] for s in steps]
                after_dae = [i for i in range(2, 5) if kinds[i] == "lvm" and "dae" in kinds[1:i]]
                for i in after_dae:
                    same = torch.allclose(steps[i]["nll"], pure[i]["nll"])
                    assert same == (mode == "chain"), (mode, kinds, i)
                    seen_mixed[mode] = True
    model.train()
    assert all(seen_mixed.values())


@pytest.mark.parametrize("mode", ["both", "embedding", "hidden"])
def test_refine_input_modes_read_only_their_inputs(model, mode):
    old = model.args.refine_input
    model.args.refine_input = mode
    try:
        tokens = torch.randint(model.tgt_dict.nspecial, len(model.tgt_dict), (2, 4))
        hidden = torch.randn(2, 4, model.args.decoder_embed_dim)
        x = model._refine_input(tokens, hidden)
        x_other_hidden = model._refine_input(tokens, hidden + 1.0)
        x_other_tokens = model._refine_input((tokens + 1) % len(model.tgt_dict), hidden)
        assert torch.equal(x, x_other_hidden) == (mode == "embedding")
        assert torch.equal(x, x_other_tokens) == (mode == "hidden")
    finally:
        model.args.refine_input = old


def test_highway_gate_bias_sets_the_initial_carry():
    from iterref_fairseq.modules.highway import HighwayConnection

    torch.manual_seed(0)
    x, f = torch.randn(64, 8), torch.randn(64, 8)
    hw = HighwayConnection(8, gate_bias=-6.0)
    nn_gate = torch.sigmoid(hw.gate(x))
    assert nn_gate.mean() < 0.05  # mostly carries x
    assert torch.allclose(hw(x, f), nn_gate * f + (1 - nn_gate) * x)


@pytest.mark.parametrize("mode", ["flow", "detach"])
def test_refine_hidden_grad_controls_whether_later_steps_train_decoder1(model, mode):
    """The loss of a decoder-2 step reaches decoder 1 through the carried hidden states only with 'flow'."""
    old = model.args.refine_hidden_grad
    model.args.refine_hidden_grad = mode
    try:
        torch.manual_seed(3)
        src, src_len, tgt = batch(model)
        model.zero_grad()
        out = model(src, src_len, tgt_tokens=tgt, train_steps=2, dae_prob=0.0)
        assert out["steps"][1]["input"] == "lvm"
        out["steps"][1]["loss"].sum().backward()
        grads = [p.grad for p in model.decoder_initial.parameters() if p.grad is not None]
        reached = any(bool(g.abs().sum() > 0) for g in grads)
        assert reached == (mode == "flow")
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.decoder_refine.parameters())
    finally:
        model.args.refine_hidden_grad = old
        model.zero_grad()
