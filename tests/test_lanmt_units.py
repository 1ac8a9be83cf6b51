"""LaNMT and its latent-space inference: closed forms, schedules, the length transform, the generator's steps and
the score objective, each against an independent computation."""
import argparse
import copy

import numpy as np
import pytest
import torch
from fairseq.data import Dictionary

from iterref_fairseq.criterions.lanmt_loss import free_bits, kl_budget_at
from iterref_fairseq.criterions.lanmt_score_loss import score_objective
from iterref_fairseq.generators.latent import LatentInferenceDecoder, delta_steps, energy_direction
from iterref_fairseq.generators.refinement import RefinementState
from iterref_fairseq.models.lanmt import LatentNATModel, kl_gaussians, lanmt_tiny, right_align
from iterref_fairseq.models.lanmt_score import LatentScoreModel, lanmt_score_tiny
from iterref_fairseq.modules.latent_blocks import LengthTransform


class _Task:
    def __init__(self, d):
        self.source_dictionary = self.target_dictionary = d


def _dictionary(n=40):
    d = Dictionary()
    for i in range(n):
        d.add_symbol(f"w{i}")
    return d


def _model(seed=0, dim=32, **extra):
    args = argparse.Namespace(encoder_embed_dim=dim, encoder_ffn_embed_dim=64, encoder_attention_heads=2,
                              prior_layers=1, posterior_layers=1, decoder_layers=1, dropout=0.0, **extra)
    lanmt_tiny(args)
    torch.manual_seed(seed)
    return LatentNATModel.build_model(args, _Task(_dictionary())).eval()


def _sources(model, lengths, left_pad=True, seed=0):
    """(B, S) source tokens (content + EOS), padded on the left like fairseq's translation task."""
    g = torch.Generator().manual_seed(seed)
    d = model.src_dict
    width = max(lengths) + 1
    rows = []
    for n in lengths:
        content = torch.randint(d.nspecial, len(d), (n,), generator=g).tolist() + [d.eos()]
        padding = [d.pad()] * (width - len(content))
        rows.append(padding + content if left_pad else content + padding)
    return torch.tensor(rows)


# ---------------------------------------------------------------------- closed forms and schedules
def test_kl_closed_form_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(8, generator=g), torch.randn(8, generator=g)
    s_q, s_p = torch.rand(8, generator=g) + 0.3, torch.rand(8, generator=g) + 0.5
    z = mu_q + s_q * torch.randn(400000, 8, generator=g)
    log_q = torch.distributions.Normal(mu_q, s_q).log_prob(z).sum(-1)
    log_p = torch.distributions.Normal(mu_p, s_p).log_prob(z).sum(-1)
    mc = float((log_q - log_p).mean())
    exact = float(kl_gaussians(mu_q, s_q, mu_p, s_p))
    assert abs(mc - exact) < 0.02 * max(1.0, exact)
    assert float(kl_gaussians(mu_q, s_q, mu_q, s_q)) == pytest.approx(0.0, abs=1e-6)


def test_free_bits_and_budget_schedule():
    kl = torch.tensor([[0.2, 3.0, 0.9, 7.0], [5.0, 0.1, 0.0, 0.0]])
    mask = torch.tensor([[True, True, True, False], [True, True, False, False]])
    assert free_bits(kl, mask, 1.0).tolist() == pytest.approx([1.0 + 3.0 + 1.0, 5.0 + 1.0])
    assert free_bits(kl, mask, 0.0).tolist() == pytest.approx([0.2 + 3.0 + 0.9, 5.1])
    # below the budget the term is flat: no gradient reaches the KL
    x = torch.tensor([[0.5, 2.0]], requires_grad=True)
    free_bits(x, torch.ones(1, 2, dtype=torch.bool), 1.0).sum().backward()
    assert x.grad.tolist() == [[0.0, 1.0]]
    # b for the first half, then linear to 0 at the end, 0 afterwards
    assert [kl_budget_at(u, 1.0, 100, "anneal") for u in (0, 50, 75, 100, 150)] == pytest.approx(
        [1.0, 1.0, 0.5, 0.0, 0.0])
    assert kl_budget_at(90, 2.0, 100, "anneal") == pytest.approx(0.4)
    assert kl_budget_at(90, 2.0, 100, "constant") == 2.0


# ---------------------------------------------------------------------- length transform
def _squared_weights(n, length, sigma=1.0):
    mu = np.arange(length) * n / length
    logits = -((np.arange(n)[None, :] - mu[:, None]) ** 2) / (2 * sigma ** 2)
    w = np.exp(logits - logits.max(1, keepdims=True))
    return w / w.sum(1, keepdims=True)


def test_length_transform_weights_are_the_squared_form():
    lt = LengthTransform()
    src_mask = torch.tensor([[True] * 6 + [False] * 2, [True] * 3 + [False] * 5])
    lengths = torch.tensor([9, 4])
    w = lt.weights(src_mask, lengths).detach()
    assert w.shape == (2, 9, 8)
    assert torch.allclose(w.sum(-1), torch.ones(2, 9))
    assert float(w[:, :, :][~src_mask.unsqueeze(1).expand(-1, 9, -1)].abs().max()) == 0.0  # pads get nothing
    assert np.allclose(w[0].numpy()[:, :6], _squared_weights(6, 9), atol=1e-6)
    assert np.allclose(w[1, :4].numpy()[:, :3], _squared_weights(3, 4), atol=1e-6)
    # peak at i * n / L_y (the nearest source slot)
    assert w[0].argmax(-1).tolist() == [min(5, round(i * 6 / 9 + 1e-9)) for i in range(9)]
    # not the public code's default 2^(j - mu_i) form
    mu = np.arange(9) * 6 / 9
    exp_logits = -np.power(2.0, np.clip(np.arange(6)[None, :] - mu[:, None], -100, 100)) / 2.0
    exp_w = np.exp(exp_logits) / np.exp(exp_logits).sum(1, keepdims=True)
    assert not np.allclose(w[0].numpy()[:, :6], exp_w, atol=1e-2)


def test_length_transform_output_and_sigma_gradient():
    lt = LengthTransform(init_sigma=1.5)
    z = torch.randn(1, 5, 3)
    out, mask = lt(z, torch.ones(1, 5, dtype=torch.bool), torch.tensor([4]))
    expected = torch.tensor(_squared_weights(5, 4, 1.5), dtype=torch.float) @ z[0]
    assert torch.allclose(out[0], expected, atol=1e-5) and mask.all()
    out.sum().backward()
    assert lt.sigma.grad is not None and torch.isfinite(lt.sigma.grad)


# ---------------------------------------------------------------------- the model
def test_padding_side_does_not_change_the_model():
    model = _model()
    left, right = _sources(model, [3, 6, 4]), _sources(model, [3, 6, 4], left_pad=False)
    assert torch.equal(right_align(left, model.src_pad), right)
    enc_l, enc_r = model.encode(left), model.encode(right)
    mu_l, _ = model.prior(enc_l)
    mu_r, _ = model.prior(enc_r)
    m = enc_l["mask"]
    assert torch.allclose(mu_l[m], mu_r[m], atol=1e-5)
    assert model.predict_lengths(enc_l, mu_l).tolist() == model.predict_lengths(enc_r, mu_r).tolist()


def test_forward_spec_shapes_and_masks():
    model = _model()
    model.train()
    src = _sources(model, [3, 6])
    d = model.tgt_dict
    tgt = torch.tensor([[7, 8, 9, d.eos(), d.pad()], [10, 11, 12, 13, d.eos()]])
    out = model(src, torch.tensor([4, 7]), tgt_tokens=tgt, label_smoothing=0.1)
    assert out["tokens"]["mask"].sum(1).tolist() == [3, 4]
    assert out["tokens"]["loss"].shape == (7,) and torch.isfinite(out["tokens"]["loss"]).all()
    assert out["kl"].shape == out["src_mask"].shape == (2, 7)
    assert out["kl"][~out["src_mask"]].abs().max() == 0 and (out["kl"][out["src_mask"]] >= -1e-5).all()
    # length class = target length - source length + M
    assert out["length"]["target"].tolist() == [3 - 3 + 50, 4 - 6 + 50]


def _decoder_input(model, enc, z, lengths):
    """The (B, T, d) tensor that enters the decoder stack, captured with a forward pre-hook."""
    seen = {}

    def keep(module, args):
        seen["x"] = args[0].clone()  # returns None: the stack's arguments stay as they are

    handle = model.decoder.register_forward_pre_hook(keep)
    model.decoder_states(enc, z, lengths)
    handle.remove()
    return seen["x"]


@pytest.mark.parametrize("copy_source", [False, True])
def test_decoder_input_is_the_length_transformed_latent_and_optionally_the_source(copy_source):
    """Eq. of the decoder input, by a loop over target slots: sum_j w_ij (W z_j + b [+ sqrt(d) E[x_j]]) / sqrt(2)
    + pos_i / 2 + len / 2, w_ij proportional to exp(-(j - i n / L)^2 / 2 sigma^2) over the n real source slots."""
    model = _model(decoder_source_copy=copy_source)
    src = _sources(model, [4, 2])
    enc = model.encode(src)
    z = torch.randn(2, src.size(1), model.latent_dim, generator=torch.Generator().manual_seed(3))
    lengths = torch.tensor([5, 3])
    got = _decoder_input(model, enc, z, lengths)
    tokens = right_align(src, model.src_pad)
    sigma = float(model.length_transform.sigma)
    pos = model.positions(5, torch.float32)
    for b in range(2):
        n = int(tokens[b].ne(model.src_pad).sum())  # content + EOS
        for i in range(int(lengths[b])):
            w = torch.tensor([np.exp(-(j - i * n / float(lengths[b])) ** 2 / (2 * sigma ** 2)) for j in range(n)])
            w = w / w.sum()
            vec = torch.zeros(model.dim)
            for j in range(n):
                item = model.latent_to_hidden.weight @ z[b, j] + model.latent_to_hidden.bias
                if copy_source:
                    item = item + model.dim ** 0.5 * model.embed_src.weight[tokens[b, j]]
                vec += float(w[j]) * item
            want = vec / 2 ** 0.5 + 0.5 * pos[i] + 0.5 * model.length_embed.weight[int(lengths[b])]
            assert torch.allclose(got[b, i], want, atol=1e-4), (b, i)
    # the source words reach the decoder input only with the flag
    other = src.clone()
    other[src.ne(model.src_pad) & src.ne(model.src_dict.eos())] = model.src_dict.nspecial
    changed = not torch.allclose(_decoder_input(model, enc, z, lengths),
                                 _decoder_input(model, {**enc, "tokens": right_align(other, model.src_pad)}, z, lengths))
    assert changed == copy_source


def test_decode_latent_is_argmax_of_the_output_distribution():
    model = _model()
    src = _sources(model, [4, 2])
    enc = model.encode(src)
    mu, _ = model.prior(enc)
    lengths = torch.tensor([5, 3])
    state = model.decode_latent(enc, mu, lengths)
    states, mask = model.decoder_states(enc, mu, lengths)
    logp = torch.log_softmax(model.output_projection(states) + model.output_mask, -1)
    assert torch.equal(state.tokens[mask], logp.argmax(-1)[mask])
    assert torch.allclose(state.scores[mask], logp.max(-1).values[mask], atol=1e-5)
    assert state.padding_mask.tolist() == (~mask).tolist() and (state.tokens[~mask] == model.pad).all()


# ---------------------------------------------------------------------- the generator
class _ToyLatent:
    """A latent model where decoding rounds the latent of each source slot to a token id and the posterior mean of
    token t is (t + 10) / 2: delta inference contracts to the fixed point z = 10."""

    pad, eos = 1, 2

    def encode(self, src_tokens, src_lengths=None):
        mask = src_tokens.ne(self.pad)
        return {"mask": mask, "tokens": src_tokens}

    def reorder_encoder_out(self, enc, order):
        return {k: v.index_select(0, order) for k, v in enc.items()}

    def source_content_lengths(self, src_tokens):
        return src_tokens.ne(self.pad).sum(1)

    def prior(self, enc):
        b, s = enc["mask"].shape
        mu = 4.3 + 0.1 * torch.arange(s, dtype=torch.float).repeat(b, 1)
        return mu.unsqueeze(2), torch.ones(b, s, 1)

    def predict_lengths(self, enc, z):
        return enc["mask"].sum(1)

    def decode_latent(self, enc, z, lengths):
        tokens = z[..., 0].round().long().clamp(min=3)
        pad = ~enc["mask"]
        return RefinementState(tokens.masked_fill(pad, self.pad), torch.zeros_like(z[..., 0]), pad)

    def posterior_mean(self, enc, tokens, padding_mask):
        return ((tokens.float() + 10) / 2).masked_fill(padding_mask, 0).unsqueeze(2)

    def eval(self):
        return self


class _Dict:
    def pad(self):
        return 1

    def eos(self):
        return 2


def test_delta_inference_reaches_a_fixed_point_and_stops():
    model = _ToyLatent()
    src = torch.tensor([[5, 6, 7], [5, 6, 1]])
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([3, 2])}, "id": torch.arange(2)}
    enc = model.encode(src)
    z0, _ = model.prior(enc)
    z = delta_steps(model, enc, z0, 6)
    assert torch.equal(delta_steps(model, enc, z, 1), z)  # fixed point
    assert torch.allclose(z[enc["mask"]], torch.full((5, 1), 10.0))
    gen = LatentInferenceDecoder(_Dict(), inference="delta", max_iter=10, remove_repeats=False)
    hyps = gen.generate([model], sample)
    # tokens per pass (round half to even): 4, 7, 8, 9, 10, 10 -> unchanged after 6 passes, 5 E-steps
    assert [h[0]["steps"] for h in hyps] == [6, 6] and [h[0]["latent_steps"] for h in hyps] == [5, 5]
    assert hyps[0][0]["tokens"].tolist() == [10, 10, 10, 2] and hyps[1][0]["tokens"].tolist() == [10, 10, 2]
    capped = LatentInferenceDecoder(_Dict(), inference="delta", max_iter=3, remove_repeats=False)
    assert capped.generate([model], sample)[0][0]["tokens"].tolist() == [8, 8, 8, 2]
    history = LatentInferenceDecoder(_Dict(), inference="delta", max_iter=10, remove_repeats=False,
                                     retain_history=True).generate([model], sample)[0][0]["history"]
    assert [h["tokens"][0].item() for h in history] == [4, 7, 8, 9, 10, 10]


def test_latent_search_with_one_sample_and_no_noise_is_prior_decoding():
    model = _model(seed=3)
    src = _sources(model, [4, 6, 3], seed=2)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([5, 7, 4])}, "id": torch.arange(3)}
    prior = LatentInferenceDecoder(model.tgt_dict, inference="prior", remove_repeats=False).generate([model], sample)
    search = LatentInferenceDecoder(model.tgt_dict, inference="prior", search_samples=1, search_noise=0.0,
                                    remove_repeats=False).generate([model], sample)
    quiet = LatentInferenceDecoder(model.tgt_dict, inference="prior", search_samples=3, search_noise=0.0,
                                   remove_repeats=False).generate([model], sample)
    noisy = LatentInferenceDecoder(model.tgt_dict, inference="prior", search_samples=3, search_noise=2.0,
                                   remove_repeats=False).generate([model], sample)
    enc = model.encode(src)
    mu, _ = model.prior(enc)
    direct = model.decode_latent(enc, mu, model.predict_lengths(enc, mu))
    for i in range(3):
        expected = direct.tokens[i][~direct.padding_mask[i]].tolist() + [model.eos]
        assert prior[i][0]["tokens"].tolist() == search[i][0]["tokens"].tolist() == expected
        assert all(h["tokens"].tolist() == expected for h in quiet[i])
    assert any(h["tokens"].tolist() != quiet[i][0]["tokens"].tolist() for i in range(3) for h in noisy[i])


class _LengthRescorer:
    """Scores a candidate by minus its distance to a wanted length (a known function, so the choice is checkable)."""

    def __init__(self, wanted):
        self.wanted = wanted

    def score(self, src_tokens, src_lengths, hyps):
        return torch.tensor([-abs(h.numel() - 1 - self.wanted) for h in hyps], dtype=torch.float)


def test_best_of_n_picks_the_highest_rescorer_score():
    model = _model(seed=4)
    src = _sources(model, [5, 5], seed=1)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([6, 6])}, "id": torch.arange(2)}
    gen = LatentInferenceDecoder(model.tgt_dict, inference="prior", search_samples=12, search_noise=3.0,
                                 rescorer=_LengthRescorer(4), remove_repeats=False)
    out = gen.generate([model], sample)
    for group in out:
        assert len(group) == 12
        scores = [-abs(h["tokens"].numel() - 1 - 4) for h in group]
        assert group[0]["score"] == max(scores) and scores == sorted(scores, reverse=True)
    # without a rescorer: the model's own mean log-probability decides
    own = LatentInferenceDecoder(model.tgt_dict, inference="prior", search_samples=12, search_noise=3.0,
                                 remove_repeats=False).generate([model], sample)
    for group in own:
        means = [float(h["positional_scores"][:-1].mean()) for h in group]
        assert means[0] == pytest.approx(max(means))


def test_generator_rejects_bad_settings():
    d = _Dict()
    with pytest.raises(ValueError, match="--latent-inference 'sideways' is unknown"):
        LatentInferenceDecoder(d, inference="sideways")
    with pytest.raises(ValueError, match="--latent-step-size must be > 0"):
        LatentInferenceDecoder(d, step_size=-0.5)
    with pytest.raises(ValueError, match="--latent-search-samples must be >= 1"):
        LatentInferenceDecoder(d, search_samples=0)
    with pytest.raises(ValueError, match="--score-path"):
        LatentInferenceDecoder(d, inference="score")


# ---------------------------------------------------------------------- score / energy
def test_score_objective_is_squared_error_up_to_a_constant_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 5, 4, generator=g, requires_grad=True)
    delta = torch.randn(3, 5, 4, generator=g)
    mask = torch.rand(3, 5, generator=g) > 0.3
    loss = score_objective(s, delta, mask)
    mse = ((s - delta).pow(2).sum(-1) * mask).sum()
    const = (delta.pow(2).sum(-1) * mask).sum()
    assert float(loss) == pytest.approx(float(mse - const), rel=1e-5)
    loss.backward()
    assert torch.allclose(s.grad, 2 * (s - delta).detach() * mask.unsqueeze(2), atol=1e-5)


def test_energy_direction_is_minus_the_gradient_of_a_quadratic():
    g = torch.Generator().manual_seed(1)
    a = torch.randn(4, 4, generator=g)
    a = a @ a.T + torch.eye(4)
    z = torch.randn(2, 3, 4, generator=g)

    def energy(v):  # 1/2 sum_i v_i^T A v_i per row
        return 0.5 * torch.einsum("bsi,ij,bsj->b", v, a, v)

    assert torch.allclose(energy_direction(energy, z), -(z @ a), atol=1e-5)
    # a step along it lowers the energy
    assert (energy(z + 0.01 * energy_direction(energy, z)) < energy(z)).all()


def _score_net(lanmt, param):
    args = argparse.Namespace(score_param=param, score_embed_dim=16, score_ffn_embed_dim=32,
                              score_attention_heads=2, score_layers=1, dropout=0.0, latent_dim=lanmt.latent_dim,
                              memory_dim=lanmt.dim)
    lanmt_score_tiny(args)
    return LatentScoreModel(args, lanmt)


def test_score_network_training_terms_and_fingerprint():
    lanmt = _model(seed=5)
    net = _score_net(lanmt, "score").train()
    src = _sources(lanmt, [4, 3], seed=3)
    out = net(src, torch.tensor([5, 4]), delta_steps_k=2)
    assert out["direction"].shape == out["target"].shape == (2, 5, lanmt.latent_dim)
    assert out["direction"].requires_grad and not out["target"].requires_grad
    assert out["target"][~out["mask"]].abs().max() == 0
    assert not any(n.startswith("_lanmt") or "prior_encoder" in n for n in net.state_dict())
    other = _model(seed=6)
    with pytest.raises(ValueError, match="trained for another LaNMT"):
        net.attach(other)
    net.attach(lanmt)  # the same model passes, also halved for --fp16 / --bf16 decoding
    net.attach(copy.deepcopy(lanmt).half())
    net.attach(copy.deepcopy(lanmt).bfloat16())
    with pytest.raises(ValueError, match="trained for another LaNMT"):
        net.attach(copy.deepcopy(other).half())


def test_energy_network_direction_matches_autograd_of_its_energy():
    lanmt = _model(seed=7)
    net = _score_net(lanmt, "energy").eval()
    enc = lanmt.encode(_sources(lanmt, [4, 2], seed=4))
    z = torch.randn(2, enc["mask"].size(1), lanmt.latent_dim)
    v = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(net.energy(enc, v).sum(), v)
    expected = (-grad).masked_fill(~enc["mask"].unsqueeze(2), 0.0)
    assert torch.allclose(net.direction(enc, z), expected, atol=1e-6)


def test_cross_attention_has_its_own_weights():
    """The public code's cross-attention reused the self-attention weights (its --opt_fixbug2); ours does not."""
    model = _model()
    for stack in (model.decoder, model.posterior_encoder):
        for layer in stack.layers:
            assert layer.self_attn.in_proj_weight.data_ptr() != layer.multihead_attn.in_proj_weight.data_ptr()
            assert not torch.equal(layer.self_attn.in_proj_weight, layer.multihead_attn.in_proj_weight)


def test_ar_rescorer_matches_scoring_one_hypothesis_at_a_time():
    """The teacher's batched mean log-probability (ragged hypotheses in one padded batch) equals scoring each
    hypothesis alone with the model's own forward."""
    from fairseq.models.transformer import TransformerModel, base_architecture

    from iterref_fairseq.generators.generalized import ARRescorer

    d = _dictionary(30)
    args = argparse.Namespace(encoder_layers=1, decoder_layers=1, encoder_embed_dim=16, decoder_embed_dim=16,
                              encoder_ffn_embed_dim=32, decoder_ffn_embed_dim=32, encoder_attention_heads=2,
                              decoder_attention_heads=2, dropout=0.0, share_all_embeddings=True,
                              max_source_positions=64, max_target_positions=64)
    base_architecture(args)
    torch.manual_seed(0)
    ar = TransformerModel.build_model(args, _Task(d)).eval()
    src = torch.tensor([[d.pad(), 5, 6, 7, d.eos()], [8, 9, 10, 11, d.eos()], [d.pad(), d.pad(), 12, 13, d.eos()]])
    lengths = src.ne(d.pad()).sum(1)
    hyps = [torch.tensor([14, 15, 16, d.eos()]), torch.tensor([17, d.eos()]), torch.tensor([18, 19, 20, 21, 22, d.eos()])]
    batched = ARRescorer(ar, d, d).score(src, lengths, hyps)
    assert torch.allclose(ARRescorer(ar, d, d).score(src, lengths, hyps, max_rows=2), batched, atol=1e-5)
    for i, h in enumerate(hyps):
        prev = torch.cat([torch.tensor([d.eos()]), h[:-1]]).unsqueeze(0)
        row = src[i:i + 1][:, src[i].ne(d.pad())]
        with torch.no_grad():
            logp = torch.log_softmax(ar(row, lengths[i:i + 1], prev)[0][0], -1)
        alone = logp.gather(-1, h.unsqueeze(1)).mean()
        assert float(batched[i]) == pytest.approx(float(alone), abs=1e-4)


def test_energy_network_trains_through_its_gradient_at_a_realistic_width():
    """Training the energy differentiates its gradient (double backward): every attention kernel on the way must
    support it (CPU flash attention does not, at head widths like lanmt_score_tiny's 32)."""
    lanmt = _model(seed=8, dim=64)
    args = argparse.Namespace(score_param="energy", score_embed_dim=128, score_ffn_embed_dim=256,
                              score_attention_heads=4, score_layers=1, dropout=0.0, latent_dim=lanmt.latent_dim,
                              memory_dim=lanmt.dim)
    lanmt_score_tiny(args)
    net = LatentScoreModel(args, lanmt).train()
    out = net(_sources(lanmt, [12, 9, 15], seed=5), torch.tensor([13, 10, 16]), delta_steps_k=1)
    score_objective(out["direction"], out["target"], out["mask"]).backward()
    # biases added after the last nonlinearity do not change grad_z E and get no gradient; the rest does
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    assert len(grads) > len(list(net.parameters())) // 2 and all(torch.isfinite(g).all() for g in grads)
    assert net.input.weight.grad.abs().sum() > 0
    assert net.stack.layers[0].multihead_attn.in_proj_weight.grad.abs().sum() > 0


def test_a_checkpoint_remembers_the_source_copy_flag():
    copy_model, plain = _model(decoder_source_copy=True), _model()
    state = copy_model.state_dict()
    with pytest.raises(ValueError, match="trained with --decoder-source-copy and this run builds one without it"):
        plain.load_state_dict(state)
    with pytest.raises(ValueError, match="Remove --decoder-source-copy"):
        _model(decoder_source_copy=True).load_state_dict(plain.state_dict())
    fresh = _model(seed=1, decoder_source_copy=True)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.output_projection.weight, copy_model.output_projection.weight)
    older = {k: v for k, v in state.items() if k != "decoder_source_copy_flag"}  # written before the record
    _model(seed=1, decoder_source_copy=True).load_state_dict(older)
