"""Learning test: on sequence reversal the NAT reaches high exact match on held-out data within a small CPU
budget, and iterative refinement (idec = 10) beats the initial decoder alone (idec = 1)."""
import re

import pytest

from conftest import USER_DIR, binarize, cli, write_reversal_corpus

pytestmark = pytest.mark.slow


def exact_match(out: str) -> float:
    refs, hyps = {}, {}
    for line in out.splitlines():
        m = re.match(r"^([TH])-(\d+)\t(.*)$", line)
        if m:
            (refs if m.group(1) == "T" else hyps)[m.group(2)] = m.group(3).split("\t")[-1]
    assert refs and set(refs) == set(hyps)
    return sum(refs[k] == hyps[k] for k in refs) / len(refs)


def test_reversal_is_learned_and_refinement_helps(tmp_path):
    # With this release's defaults and seed 1, 450 updates gave exact match 0.32 / 0.425 at idec 1 / 10 with two torch
    # threads and 0.91 / 0.99 with one (2026-12-05; the 0.2 decoder: 0.885 / 0.98); 700 updates 0.995 / 1.0 with one
    # thread. Refinement is checked at 450 updates, learning at 700.
    write_reversal_corpus(tmp_path / "raw", 3000, 200, seed=0)
    data = binarize(tmp_path / "raw", tmp_path / "bin")
    cli("fairseq-train", data, "--user-dir", USER_DIR, "--task", "translation_refine",
        "--criterion", "refinement_nat_loss", "--arch", "refinement_nat_tiny", "--encoder-embed-dim", "64",
        "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128", "--decoder-ffn-embed-dim", "128",
        "--encoder-layers", "2", "--decoder-layers", "1", "--encoder-attention-heads", "4",
        "--decoder-attention-heads", "4", "--dropout", "0", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)",
        "--lr", "3e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50", "--max-tokens", "2000",
        "--max-update", "700", "--cpu", "--save-dir", tmp_path / "ckpt", "--no-epoch-checkpoints",
        "--save-interval-updates", "450", "--keep-interval-updates", "-1",
        "--disable-validation", "--seed", "1", "--log-format", "simple")
    scores = {}
    for name in ("checkpoint_1_450.pt", "checkpoint_last.pt"):
        path = next((tmp_path / "ckpt").glob(name.replace("1_", "*_")))
        for idec in (1, 10):
            out = cli("fairseq-generate", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--path",
                      path, "--cpu", "--batch-size", "100", "--keep-repeats", "--iter-decode-max-iter", idec).stdout
            scores[name, idec] = exact_match(out)
    assert scores["checkpoint_1_450.pt", 10] > scores["checkpoint_1_450.pt", 1], scores  # refinement helps
    assert scores["checkpoint_last.pt", 10] >= 0.6, scores  # learned
    assert scores["checkpoint_last.pt", 10] >= scores["checkpoint_last.pt", 1], scores


# Calibration (2026-12-05, one thread, the other core busy): exact match of the prior mean 0.895 at 200 updates and
# 1.0 at 400 (delta inference the same at both).
LANMT_UPDATES = "300"
LANMT_PRIOR_MATCH = 0.8


def test_lanmt_learns_reversal_and_delta_inference_keeps_it(tmp_path):
    # LaNMT on the same task: the prior mean alone must translate most held-out sentences, and one step of delta
    # inference (E-step + decoding) must not lower exact match.
    write_reversal_corpus(tmp_path / "raw", 3000, 200, seed=0)
    data = binarize(tmp_path / "raw", tmp_path / "bin")
    cli("fairseq-train", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--criterion", "lanmt_loss",
        "--arch", "lanmt_tiny", "--encoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
        "--encoder-attention-heads", "4", "--prior-layers", "2", "--posterior-layers", "1", "--decoder-layers", "2",
        "--dropout", "0", "--optimizer", "adam", "--adam-betas", "(0.9,0.98)", "--lr", "3e-3", "--lr-scheduler",
        "inverse_sqrt", "--warmup-updates", "50", "--max-tokens", "2000", "--max-update", LANMT_UPDATES, "--cpu",
        "--save-dir", tmp_path / "ckpt", "--no-epoch-checkpoints", "--disable-validation", "--seed", "1",
        "--log-format", "simple")
    scores = {}
    for inference in ("prior", "delta"):
        out = cli("fairseq-generate", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--path",
                  tmp_path / "ckpt" / "checkpoint_last.pt", "--cpu", "--batch-size", "100", "--keep-repeats",
                  "--latent-inference", inference, "--iter-decode-max-iter", "2").stdout
        scores[inference] = exact_match(out)
    assert scores["prior"] >= LANMT_PRIOR_MATCH, scores
    assert scores["delta"] >= scores["prior"], scores


def test_lanmt_latents_carry_the_target_when_only_they_can():
    # One fixed source, random targets over 4 words: without z the decoder can only guess (~25% of tokens); with the
    # posterior mean it must write the target. 8 tokens of 2 bits are 11.1 nats, more than the free budget of
    # 9 positions x 1 nat, so the KL term is active and the posterior must fill the budget (KL per position near 1)
    # but not far beyond it. A decoder that ignores z or a posterior that does not read y fails on accuracy; a KL
    # that is detached, masked away or always 0 fails on the KL band. Seed 0, 500 updates, one thread
    # (2026-12-05): posterior mean 1.000, prior mean 0.22, KL 1.00 nats per source position.
    import argparse

    import torch
    from fairseq.data import Dictionary

    from iterref_fairseq.criterions.lanmt_loss import free_bits
    from iterref_fairseq.models.lanmt import LatentNATModel, lanmt_tiny

    class _Task:
        def __init__(self, d):
            self.source_dictionary = self.target_dictionary = d

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        d = Dictionary()
        for i in range(20):
            d.add_symbol(f"w{i}")
        args = argparse.Namespace(encoder_embed_dim=64, encoder_ffn_embed_dim=128, encoder_attention_heads=2,
                                  prior_layers=1, posterior_layers=1, decoder_layers=1, dropout=0.0)
        lanmt_tiny(args)
        torch.manual_seed(0)
        model = LatentNATModel.build_model(args, _Task(d))
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
        length, batch = 8, 64
        src = torch.tensor([[d.index(f"w{i}") for i in range(length)] + [d.eos()]] * batch)
        src_lengths = torch.full((batch,), length + 1)
        g = torch.Generator().manual_seed(1)

        def targets():
            words = torch.randint(d.index("w10"), d.index("w14"), (batch, length), generator=g)
            return torch.cat([words, torch.full((batch, 1), d.eos())], 1)

        for _ in range(500):
            out = model(src, src_lengths, tgt_tokens=targets(), label_smoothing=0.0)
            loss = out["tokens"]["loss"].sum() + free_bits(out["kl"], out["src_mask"], 1.0).sum()
            optimizer.zero_grad()
            (loss / batch).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            full = targets()
            y = full[:, :length]
            enc = model.encode(src)
            lengths = torch.full((batch,), length)

            def accuracy(z):
                return (model.decode_latent(enc, z, lengths).tokens[:, :length] == y).float().mean().item()

            posterior = accuracy(model.posterior(enc, y, y.ne(d.pad()))[0])
            prior = accuracy(model.prior(enc)[0])
            out = model(src, src_lengths, tgt_tokens=full)
            kl = out["kl"][out["src_mask"]].mean().item()
    finally:
        torch.set_num_threads(threads)
    assert posterior >= 0.95 and prior <= 0.4, (posterior, prior)
    assert 0.7 <= kl <= 1.3, kl


def two_mode_toy():
    """examples/lanmt/two_mode_toy.py, which defines the two-mode task (its corpus) and the toy's LaNMT flags."""
    from conftest import REPO, load_module

    return load_module(REPO / "examples" / "lanmt" / "two_mode_toy.py")


def one_vocabulary_scores(out: str):
    """(fraction of hypotheses that translate their source S-line word by word in ONE of the two vocabularies,
    fraction equal to the reference T-line)."""
    lines = {"S": {}, "T": {}, "H": {}}
    for line in out.splitlines():
        m = re.match(r"^([STH])-(\d+)\t(.*)$", line)
        if m:
            lines[m.group(1)].setdefault(m.group(2), m.group(3).split("\t")[-1].split())
    src, ref, hyp = lines["S"], lines["T"], lines["H"]
    assert src and set(src) == set(hyp) == set(ref)
    good = sum(len(hyp[k]) == len(s) and any(hyp[k] == [mode + w[1:] for w in s] for mode in "ab")
               for k, s in src.items())
    return good / len(src), sum(hyp[k] == ref[k] for k in src) / len(src)


# Calibration (2026-12-06, one thread): this test's 200 sentences gave prior mean 0.19, one delta step 0.925, one
# score step 0.785; examples/lanmt/two_mode_toy.py (400 test sentences, seeds 1 / 2) 0.18 / 0.455, 0.94 / 0.96 and,
# after the budget-0 epoch, a score step 0.88 / 0.87.
def test_lanmt_refinement_resolves_the_mode_the_prior_cannot_know(tmp_path, monkeypatch):
    # The talk's claim in its simplest form: the target's vocabulary is a per-sentence coin flip, so the prior mean
    # lies between the two modes and its decoding mixes vocabularies; one delta step (E_q(z|x, y_hat), decode) and
    # one step of a trained score network must move the latents to one mode. A posterior that ignores y, a delta
    # step that does not re-encode the output, or a score step in the wrong direction fails the margins; a step
    # that leaked the reference would match it far more often than the coin flip allows. The corpus and the model and
    # optimizer flags are the example script's (examples/lanmt/two_mode_toy.py); the scoring here is independent.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the calibration's setting (the results differ with 2 threads)
    toy = two_mode_toy()
    toy.write_corpus(tmp_path / "raw", 6000, 200, seed=1)
    data = binarize(tmp_path / "raw", tmp_path / "bin")
    common = [*toy.COMMON, "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50", "--seed", "1"]
    cli("fairseq-train", data, *common, *toy.MODEL, "--criterion", "lanmt_loss", "--lr", "3e-3",
        "--max-update", "600", "--save-dir", tmp_path / "lanmt")
    lanmt = tmp_path / "lanmt" / "checkpoint_last.pt"
    cli("fairseq-train", data, *common, "--arch", "lanmt_score_tiny", "--score-param", "score",
        "--score-embed-dim", "64", "--score-ffn-embed-dim", "128", "--criterion", "lanmt_score_loss",
        "--lanmt-path", lanmt, "--lr", "1e-3", "--max-update", "400", "--self-step-from-update", "200",
        "--save-dir", tmp_path / "score")
    one_step = ["--iter-decode-max-iter", "2", "--iter-decode-force-max-iter"]
    found, exact = {}, {}
    for name, flags in (("prior", ["--latent-inference", "prior"]),
                        ("delta", ["--latent-inference", "delta", *one_step]),
                        ("score", ["--latent-inference", "score", "--score-path",
                                   tmp_path / "score" / "checkpoint_last.pt", *one_step])):
        out = cli("fairseq-generate", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--path", lanmt,
                  "--cpu", "--batch-size", "100", "--keep-repeats", "--gen-subset", "test", *flags).stdout
        found[name], exact[name] = one_vocabulary_scores(out)
    assert found["prior"] <= 0.7, found
    assert found["delta"] >= max(0.85, found["prior"] + 0.3), found
    assert found["score"] >= max(0.6, found["prior"] + 0.2), found
    # the mode is a coin flip: no system that cannot see the reference matches it much more than half the time
    assert max(exact.values()) <= 0.7, exact
