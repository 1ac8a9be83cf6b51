"""LaNMT end to end through the fairseq CLIs on tiny data: both training stages, the score and energy networks,
fairseq-generate with every --latent-inference, latent search with the AR teacher, fairseq-interactive, the
benchmark, 2-rank gloo training, and one clear error per bad input."""
import json
from pathlib import Path

import pytest
import torch

from conftest import USER_DIR, cli, generate_refine, tagged_lines, train_two_ranks

pytestmark = pytest.mark.slow

LANMT_FLAGS = ["--arch", "lanmt_tiny", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
               "--encoder-attention-heads", "2", "--prior-layers", "1", "--posterior-layers", "1",
               "--decoder-layers", "1"]
SCORE_FLAGS = ["--arch", "lanmt_score_tiny", "--score-embed-dim", "16", "--score-ffn-embed-dim", "32",
               "--score-attention-heads", "2", "--score-layers", "1"]
TRAIN = ["--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--cpu", "--no-epoch-checkpoints",
         "--log-format", "simple", "--seed", "1"]


def _train(data, save_dir, *flags):
    cli("fairseq-train", data, "--user-dir", USER_DIR, "--task", "translation_refine", *TRAIN, "--save-dir",
        save_dir, *flags)
    return save_dir / "checkpoint_last.pt"


@pytest.fixture(scope="module")
def lanmt_models(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("lanmt")
    stage1 = _train(tiny_data, root / "stage1", *LANMT_FLAGS, "--criterion", "lanmt_loss", "--max-update", "30")
    # the reference's second stage: budget 0 at a constant learning rate
    stage2 = _train(tiny_data, root / "stage2", *LANMT_FLAGS, "--criterion", "lanmt_loss", "--max-update", "5",
                    "--finetune-from-model", stage1, "--kl-budget", "0", "--kl-budget-schedule", "constant",
                    "--lr-scheduler", "fixed")
    score = _train(tiny_data, root / "score", *SCORE_FLAGS, "--criterion", "lanmt_score_loss", "--lanmt-path",
                   stage2, "--max-update", "8", "--delta-steps", "2")
    energy = _train(tiny_data, root / "energy", *SCORE_FLAGS, "--score-param", "energy", "--criterion",
                    "lanmt_score_loss", "--lanmt-path", stage2, "--max-update", "4", "--delta-steps", "1")
    return {"stage1": stage1, "stage2": stage2, "score": score, "energy": energy, "root": root}


def test_training_stages_log_the_objective(lanmt_models):
    stage2 = torch.load(lanmt_models["stage2"], map_location="cpu", weights_only=False)
    assert stage2["cfg"]["criterion"]["kl_budget"] == 0
    score = torch.load(lanmt_models["score"], map_location="cpu", weights_only=False)
    assert not any(k.startswith("prior_encoder") for k in score["model"])  # the frozen LaNMT is not stored
    assert score["model"]["lanmt_fingerprint"][:, 0].min() > 0  # parameter count at fp32 / fp16 / bf16


@pytest.mark.parametrize("inference", ["prior", "delta", "score", "energy"])
def test_generate_with_every_latent_inference(tiny_data, lanmt_models, inference):
    flags = ["--latent-inference", inference, "--iter-decode-max-iter", "3", "--print-step"]
    if inference in ("score", "energy"):
        flags += ["--score-path", lanmt_models[inference]]
    out = generate_refine(tiny_data, lanmt_models["stage2"], *flags).stdout
    hyps, steps = tagged_lines(out, "H"), tagged_lines(out, "I")
    assert len(hyps) == 24 and "BLEU4" in out
    passes = {int(v[0]) for v in steps.values()}
    assert passes <= ({1} if inference == "prior" else {1, 2, 3})
    if inference == "prior":
        assert passes == {1}


def test_forced_score_inference_decodes_once(tiny_data, lanmt_models):
    out = generate_refine(tiny_data, lanmt_models["stage2"], "--latent-inference", "score", "--score-path",
                          lanmt_models["score"], "--iter-decode-max-iter", "4", "--iter-decode-force-max-iter",
                          "--print-step").stdout
    assert {v[0] for v in tagged_lines(out, "I").values()} == {"1"}


def test_latent_search_with_the_teacher(tiny_data, lanmt_models, ar_checkpoint):
    out = generate_refine(tiny_data, lanmt_models["stage2"], "--latent-inference", "score", "--score-path",
                          lanmt_models["score"], "--latent-search-samples", "5", "--rescore-path", ar_checkpoint,
                          "--nbest", "5").stdout
    hyps = tagged_lines(out, "H")
    assert len(hyps) == 24 and all(len(v) == 5 for v in hyps.values())
    for v in hyps.values():  # candidates come best first by the teacher's mean log-probability
        scores = [float(h.split("\t")[0]) for h in v]
        assert scores == sorted(scores, reverse=True)


def test_interactive(tiny_data, lanmt_models):
    out = cli("fairseq-interactive", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", "--path",
              lanmt_models["stage2"], "--cpu", "--latent-inference", "delta", "--source-lang", "src",
              "--target-lang", "tgt", input_text="w1 w2 w3\nw4 w5\n").stdout
    assert len(tagged_lines(out, "H")) == 2


def test_python_api(tiny_data, lanmt_models):
    from iterref_fairseq import from_pretrained

    ckpt = lanmt_models["stage2"]
    hub = from_pretrained(str(ckpt.parent), checkpoint_file=ckpt.name, data_name_or_path=str(tiny_data), bpe=None,
                          tokenizer=None)
    delta = hub.translate(["w1 w2 w3", "w4 w5"], latent_inference="delta", iter_decode_max_iter=3)
    score = hub.translate("w1 w2 w3", latent_inference="score", score_path=str(lanmt_models["score"]))
    assert len(delta) == 2 and all(isinstance(t, str) for t in delta) and isinstance(score, str)


def test_benchmark_rows(tiny_data, lanmt_models, ar_checkpoint, tmp_path):
    refs = tmp_path / "ref.txt"
    raw = Path(tiny_data).parent / "raw" / "test.tgt"
    refs.write_text(raw.read_text())
    out = tmp_path / "bench.json"
    cli("iterref-benchmark-nat", tiny_data, "--latent", f"lanmt={lanmt_models['stage2']}", "--ar-path", ar_checkpoint,
        "--score-path", lanmt_models["score"], "--energy-path", lanmt_models["energy"], "--systems",
        "ar:3,lanmt:prior,lanmt:delta,lanmt:energy,lanmt:score,lanmt:score+search,lanmt:score+search+ar",
        "--latent-search-samples", "4", "--refs", refs, "--cpu", "--speed-sentences", "3", "--speed-base", "AR b=3",
        "--out", out)
    rows = {r["system"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"AR b=3", "lanmt prior", "lanmt delta", "lanmt energy", "lanmt score",
                         "lanmt score+search", "lanmt score+search+ar"}
    assert rows["lanmt prior"]["mean_steps"] == 1 and rows["lanmt score"]["mean_steps"] == 1
    assert 1 <= rows["lanmt delta"]["mean_steps"] <= 2
    assert "speed-up vs AR b=3" in out.with_suffix(".md").read_text()


def test_two_rank_gloo_training(tiny_data, tmp_path):
    save_dir = tmp_path / "ckpt"
    train_two_ranks([tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", "--criterion", "lanmt_loss",
                     *LANMT_FLAGS, "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "500", "--max-update", "4",
                     "--cpu", "--save-dir", save_dir, "--no-epoch-checkpoints", "--seed", "3", "--log-format",
                     "simple"], save_dir, 4)


@pytest.mark.parametrize("flags, message", [
    (["--latent-inference", "score"], "needs --score-path"),
    (["--latent-inference", "score", "--score-path", "/nonexistent/score.pt"], "--score-path: file not found"),
    (["--latent-search-samples", "0"], "--latent-search-samples must be >= 1"),
    (["--latent-inference", "score", "--latent-step-size", "-1", "SCORE"], "--latent-step-size must be > 0"),
    (["--latent-inference", "sideways"], "invalid choice: 'sideways'"),
    (["--latent-inference", "energy", "SCORE"], "is a score network"),
])
def test_bad_decoding_input_gives_one_clear_error(tiny_data, lanmt_models, flags, message):
    flags = [f for f in flags if f != "SCORE"] + (["--score-path", lanmt_models["score"]] if "SCORE" in flags else [])
    proc = generate_refine(tiny_data, lanmt_models["stage2"], *flags, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr + proc.stdout


def test_score_network_of_another_lanmt_is_refused(tiny_data, lanmt_models):
    # the score network was trained on stage 2; stage 1 has other weights
    proc = generate_refine(tiny_data, lanmt_models["stage1"], "--latent-inference", "score", "--score-path",
                           lanmt_models["score"], check=False)
    assert proc.returncode != 0 and "trained for another LaNMT" in proc.stderr


def test_lanmt_path_must_be_a_latent_model(tiny_data, tiny_checkpoint, tmp_path):
    proc = cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", *SCORE_FLAGS,
               "--criterion", "lanmt_score_loss", "--lanmt-path", tiny_checkpoint, *TRAIN, "--max-update", "1",
               "--save-dir", tmp_path, check=False)
    assert proc.returncode != 0 and "not a latent-variable model" in proc.stderr
    proc = cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", *SCORE_FLAGS,
               "--criterion", "lanmt_score_loss", *TRAIN, "--max-update", "1", "--save-dir", tmp_path, check=False)
    assert proc.returncode != 0 and "--lanmt-path" in proc.stderr
