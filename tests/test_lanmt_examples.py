"""examples/lanmt/paper.sh offline on tiny local text (prepare -> teacher -> distill -> LaNMT -> budget-0 fine-tuning
-> score and energy networks -> the talk's table), the learning curve and the diagnosis of a LaNMT run."""
import json
import subprocess
import sys

import pytest

from conftest import REPO, TINY_MODEL_FLAGS, USER_DIR, cli
from test_refinement_nat_examples import _env, write_paper_raw

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "examples"


def test_paper_pipeline_runs_offline_on_local_text(tmp_path):
    raw = write_paper_raw(tmp_path / "raw")
    env = _env(DATA_STAGE="prepare", DIRECTIONS="de-en", DEVICE_FLAGS="--cpu", LANMT_ARCH="lanmt_tiny",
               SCORE_ARCH="lanmt_score_tiny", AR_ARCH="transformer", LANMT_MAX_UPDATE="3", SCORE_MAX_UPDATE="2",
               AR_MAX_UPDATE="3", BPE_OPS="30", WORKERS="1", SPEED_SENTENCES="2", MAX_TOKENS="500",
               SEARCH_SAMPLES="2", DISTILL_ARGS="--max-len-a 1 --max-len-b 3",
               AR_FLAGS=" ".join(TINY_MODEL_FLAGS[2:]))
    proc = subprocess.run(["bash", EXAMPLES / "lanmt" / "paper.sh", "iwslt16-en-de", raw, tmp_path / "out"],
                          env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "out" / "lanmt-de-en.json").read_text())
    assert [r["system"] for r in result["rows"]] == [
        "AR b=3", "AR b=1", "lanmt prior", "lanmt delta", "lanmt energy", "lanmt score", "lanmt score+search",
        "lanmt score+search+ar"]
    assert all(r["batched"]["sentences"] == 12 for r in result["rows"])
    d = tmp_path / "out" / "de-en"
    ft = __import__("torch").load(d / "lanmt_ft" / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert ft["cfg"]["criterion"]["kl_budget"] == 0 and ft["cfg"]["optimization"]["lr"] == [1e-4]
    assert "speed-up vs AR b=3" in (tmp_path / "out" / "lanmt-de-en.md").read_text()
    bad = subprocess.run(["bash", EXAMPLES / "lanmt" / "paper.sh", "wmt99", raw, tmp_path / "x"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown dataset wmt99" in bad.stderr


def test_learning_curve_of_a_lanmt_run(tiny_data, tmp_path):
    run = tmp_path / "lanmt"
    proc = cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", "--arch",
               "lanmt_tiny", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
               "--encoder-attention-heads", "2", "--prior-layers", "1", "--posterior-layers", "1",
               "--decoder-layers", "1", "--criterion", "lanmt_loss", "--optimizer", "adam", "--lr", "1e-3",
               "--max-tokens", "1000", "--max-update", "6", "--cpu", "--save-dir", run, "--save-interval-updates",
               "3", "--keep-interval-updates", "-1", "--no-epoch-checkpoints", "--log-format", "simple",
               "--log-interval", "1", "--disable-validation", "--seed", "1")
    (run / "train.log").write_text(proc.stdout + proc.stderr)
    out = tmp_path / "lc.json"
    ref = tiny_data.parent / "raw" / "valid.tgt"
    res = subprocess.run([sys.executable, EXAMPLES / "refinement_nat" / "learning_curve.py", tiny_data, "--latent",
                          f"lanmt={run}", "--refs", ref, "--max-examples", "10", "--target-lang", "en", "--out", out],
                         capture_output=True, text=True, env=_env(), timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    points = json.loads(out.read_text())["runs"]["lanmt"]
    assert [p["update"] for p in points] == [3, 6]
    assert set(points[0]["bleu"]) == {"prior", "delta"}
    # score decoding: each checkpoint with the score network trained on it frozen (DIR/<update>/)
    curve_args = [sys.executable, EXAMPLES / "refinement_nat" / "learning_curve.py", tiny_data, "--latent",
                  f"lanmt={run}", "--refs", ref, "--max-examples", "10", "--target-lang", "en", "--latent-settings",
                  "prior,score", "--out", out]
    missing = subprocess.run(curve_args, capture_output=True, text=True, env=_env(), timeout=1800)
    assert missing.returncode != 0 and "pass --latent-score-nets DIR" in missing.stderr
    nets = tmp_path / "nets"
    cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", "--arch",
        "lanmt_score_tiny", "--score-embed-dim", "16", "--score-ffn-embed-dim", "32", "--score-attention-heads", "2",
        "--score-layers", "1", "--criterion", "lanmt_score_loss", "--lanmt-path", next(run.glob("checkpoint_*_6.pt")), "--delta-steps", "1",
        "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "2", "--cpu",
        "--no-epoch-checkpoints", "--save-dir", nets / "6", "--seed", "1")
    # --latent-every 2 decodes the checkpoint at update 6 only (the last), which has its network
    res = subprocess.run(curve_args + ["--latent-score-nets", nets, "--latent-every", "2"], capture_output=True,
                         text=True, env=_env(), timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    points = json.loads(out.read_text())["runs"]["lanmt"]
    assert [p["update"] for p in points] == [6] and set(points[0]["bleu"]) == {"prior", "score"}
    missing = subprocess.run(curve_args + ["--latent-score-nets", nets], capture_output=True, text=True,
                             env=_env(), timeout=1800)  # every checkpoint: update 3 has no network
    assert missing.returncode != 0 and f"lanmt update 3: no score network at {nets}/3/checkpoint_last.pt" \
        in missing.stderr
    # the diagnosis of the last checkpoint
    diag = tmp_path / "diag.json"
    res = subprocess.run([sys.executable, EXAMPLES / "lanmt" / "diagnose.py", tiny_data, "--path",
                          run / "checkpoint_last.pt", "--max-examples", "10", "--steps", "2", "--out", diag],
                         capture_output=True, text=True, env=_env(), timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    result = json.loads(diag.read_text())
    assert result["sentences"] == 10 and result["kl_per_position"] >= 0
    assert set(result["reference_at_true_length"]) == {"posterior mean", "prior mean", "delta step 1",
                                                       "delta step 2"}
    assert all(0 <= r["token_accuracy"] <= 1 for r in result["reference_at_true_length"].values())
    assert len(result["delta_changed_fraction"]) == 2 and result["num_updates"] == 6
    # several checkpoints: one point each, in the order given, with their update counts
    res = subprocess.run([sys.executable, EXAMPLES / "lanmt" / "diagnose.py", tiny_data, "--path",
                          run / "checkpoint_last.pt", *sorted(run.glob("checkpoint_*_3.pt")), "--max-examples", "10",
                          "--steps", "1", "--out", diag], capture_output=True, text=True, env=_env(), timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    curve = json.loads(diag.read_text())
    assert [q["num_updates"] for q in curve["points"]] == [6, 3] and curve["provenance"]["command"]
    assert curve["points"][0]["reference_at_true_length"]["prior mean"] == result["reference_at_true_length"][
        "prior mean"]
    bad = subprocess.run([sys.executable, EXAMPLES / "lanmt" / "diagnose.py", tiny_data, "--path",
                          run / "checkpoint_last.pt", run / "checkpoint_last.pt", "--score-path", "x.pt", "--out",
                          diag], capture_output=True, text=True, env=_env(), timeout=600)
    assert bad.returncode != 0 and "single --path" in bad.stderr
