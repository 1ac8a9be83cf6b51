"""The refinement NAT's example scripts on tiny local data: the update-cost benchmark, the learning curves and the
paper pipeline (prepare -> teacher -> distill -> NAT -> table) with every stage offline."""
import json
import os
import subprocess
import sys

import pytest

from conftest import BIN, REPO, TINY_MODEL_FLAGS, USER_DIR, cli, load_module, write_reversal_corpus

pytestmark = pytest.mark.slow
EXAMPLES = REPO / "examples" / "refinement_nat"


def _env(**extra):
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore",
                PYTHON=sys.executable, **extra)


def write_paper_raw(raw):
    """A tiny de-en corpus in the layout the paper scripts' extract stage writes: {train,valid,test}.{de,en}."""
    write_reversal_corpus(raw, 200, 12, seed=3)
    for split in ("train", "valid", "test"):
        (raw / f"{split}.src").rename(raw / f"{split}.de")
        (raw / f"{split}.tgt").rename(raw / f"{split}.en")
    return raw


def test_update_cost_benchmark_times_every_system(tiny_data, tmp_path):
    out = tmp_path / "cost.json"
    proc = subprocess.run([sys.executable, EXAMPLES / "benchmark_update.py", tiny_data, "--dim", "16",
                           "--heads", "2", "--layers", "1", "--max-tokens", "300", "--batches", "2", "--warmup", "1",
                           "--updates", "2", "--rounds", "1", "--out", out], capture_output=True, text=True,
                          env=_env(), timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    rows = {r["system"]: r for r in result["systems"]}
    assert set(rows) == {"cmlm", "nat", "nat-itrain1", "nat-0.2"}
    assert rows["nat"]["train_steps"] == 4 and rows["nat-itrain1"]["train_steps"] == 1
    assert all(r["median_update_s"] > 0 for r in rows.values())
    # the 0.2 decoder has a highway gate on every sublayer: 2 decoders x 3 extra (dim x dim + dim) gates
    assert rows["nat-0.2"]["params"] - rows["nat"]["params"] == 2 * 3 * (16 * 16 + 16)
    assert result["provenance"]["command"] and "| nat-itrain1 | 1 |" in out.with_suffix(".md").read_text()


def test_learning_curve_reads_interval_checkpoints_and_minutes(tiny_data, tmp_path):
    run = tmp_path / "nat"
    proc = cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine",
               "--criterion", "refinement_nat_loss", *TINY_MODEL_FLAGS, "--optimizer", "adam", "--lr", "1e-3",
               "--max-tokens", "1000", "--max-update", "6", "--cpu", "--save-dir", run,
               "--save-interval-updates", "3", "--keep-interval-updates", "-1", "--no-epoch-checkpoints",
               "--log-format", "simple", "--log-interval", "1", "--disable-validation", "--seed", "1")
    (run / "train.log").write_text(proc.stdout + proc.stderr)
    out = tmp_path / "lc.json"
    ref = tiny_data.parent / "raw" / "valid.tgt"
    # the run's name does not say what it is: the checkpoint's model picks our generator (a name like "ours" once
    # sent a refinement NAT to fairseq's generator)
    res = subprocess.run([sys.executable, EXAMPLES / "learning_curve.py", tiny_data, "--run", f"ours={run}",
                          "--refs", ref, "--max-examples", "10", "--idec", "1,3", "--reference-bleu", "50",
                          "--target-lang", "en", "--out", out], capture_output=True, text=True, env=_env(),
                         timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    points = json.loads(out.read_text())["runs"]["ours"]
    assert [p["update"] for p in points] == [3, 6]
    assert points[0]["minutes"] <= points[1]["minutes"]
    assert set(points[0]["bleu"]) == {"idec1", "idec3"} and all(0 <= v <= 100 for v in points[0]["bleu"].values())
    assert out.with_suffix(".png").exists() and "50% of 50.00 BLEU" in out.with_suffix(".md").read_text()


def test_paper_pipeline_runs_offline_on_local_text(tmp_path):
    raw = write_paper_raw(tmp_path / "raw")
    env = _env(DATA_STAGE="prepare", DIRECTIONS="de-en", DEVICE_FLAGS="--cpu", NAT_ARCH="refinement_nat_tiny",
               AR_ARCH="transformer", NAT_MAX_UPDATE="3", AR_MAX_UPDATE="3", BPE_OPS="30", WORKERS="1",
               SPEED_SENTENCES="2", MAX_TOKENS="500", DISTILL_ARGS="--max-len-a 1 --max-len-b 3",
               AR_FLAGS=" ".join(TINY_MODEL_FLAGS[2:]))  # an untrained teacher would write 200-token outputs
    proc = subprocess.run(["bash", EXAMPLES / "paper.sh", "iwslt16-en-de", raw, tmp_path / "out"], env=env,
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((tmp_path / "out" / "table31-de-en.json").read_text())
    assert [r["system"] for r in result["rows"]] == ["AR b=1", "AR b=4", "NAT idec=1", "NAT idec=2", "NAT idec=5",
                                                     "NAT idec=10", "NAT idec=20", "NAT adaptive"]
    assert all(r["batched"]["sentences"] == 12 for r in result["rows"])
    assert json.loads((tmp_path / "out" / "de-en" / "distill" / "distill.json").read_text())
    bad = subprocess.run(["bash", EXAMPLES / "paper.sh", "wmt99", raw, tmp_path / "x"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown dataset wmt99" in bad.stderr


def test_learning_curve_minutes_continue_across_a_resumed_run(tmp_path):
    module = load_module(EXAMPLES / "learning_curve.py")
    line = "2026-12-05 {} | INFO | train_inner | epoch 001: loss=1.0, num_updates={}, lr=0.001, train_wall=3, wall={}"
    log = tmp_path / "train.log"
    # fairseq restores the wall meter of a mid-epoch checkpoint without restarting it: wall=0 after the resumption
    log.write_text("\n".join([
        line.format("09:01:00", 25, 60), line.format("09:02:00", 50, 120),
        "2026-12-05 10:00:00 | INFO | fairseq.trainer | Loaded checkpoint ck/checkpoint_last.pt (epoch 1 @ 50 updates)",
        line.format("10:01:00", 75, 0), line.format("10:02:30", 100, 0)]) + "\n")
    assert module.wall_minutes(log) == {25: 1.0, 50: 2.0, 75: 3.0, 100: 4.5}
    # a run that was never resumed reads its walls
    log.write_text("\n".join([line.format("09:01:00", 25, 60), line.format("09:05:00", 50, 90)]) + "\n")
    assert module.wall_minutes(log) == {25: 1.0, 50: 1.5}


def test_learning_curve_reuse_merges_several_files_and_refuses_a_name_twice(tmp_path):
    module = load_module(EXAMPLES / "learning_curve.py")
    point = {"update": 200, "minutes": 1.0, "bleu": {"idec1": 2.0}}
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps({"runs": {"nat-s1": [point], "cmlm-s1": [point]}}))
    b.write_text(json.dumps({"runs": {"nat-t2-s1": [dict(point, update=400)]}}))
    c.write_text(json.dumps({"runs": {"cmlm-s1": []}}))
    merged = module.merge_runs([a, b])
    assert sorted(merged) == ["cmlm-s1", "nat-s1", "nat-t2-s1"] and merged["nat-t2-s1"][0]["update"] == 400
    assert module.merge_runs([]) == {}
    with pytest.raises(SystemExit, match="run 'cmlm-s1' is in both .*a.json and .*c.json"):
        module.merge_runs([a, c])


def test_learning_curve_main_takes_every_point_from_two_reuse_files(tmp_path):
    """Two --reuse files, one run each: the curve is drawn from their BLEU without decoding anything (DATA does not
    even exist), with the minutes read again from each run's log."""
    line = "2026-12-05 09:0{}:00 | INFO | train_inner | epoch 001: loss=1.0, num_updates={}, lr=0.001, wall={}"
    runs, reuse = {}, []
    for k, name in enumerate(("nat-s1", "cmlm-s1")):
        run = tmp_path / name
        run.mkdir()
        (run / "train.log").write_text(line.format(1, 200, 60 * (k + 1)) + "\n")
        (run / "checkpoint_1_200.pt").write_bytes(b"")
        earlier = tmp_path / f"earlier-{name}.json"
        earlier.write_text(json.dumps({"runs": {name: [{"update": 200, "minutes": 0.0,
                                                         "bleu": {"idec1": 3.0 + k}}]}}))
        runs[name], reuse = run, reuse + ["--reuse", earlier]
    ref = tmp_path / "ref.txt"
    ref.write_text("a b c\n" * 5)
    out = tmp_path / "lc.json"
    res = subprocess.run([sys.executable, EXAMPLES / "learning_curve.py", tmp_path / "no-data",
                          "--run", f"nat-s1={runs['nat-s1']}", "--run", f"cmlm-s1={runs['cmlm-s1']}", *reuse,
                          "--refs", ref, "--max-examples", "5", "--reference-bleu", "7", "--out", out],
                         capture_output=True, text=True, env=_env(), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(out.read_text())["runs"]
    assert got == {"nat-s1": [{"update": 200, "minutes": 1.0, "bleu": {"idec1": 3.0}}],
                   "cmlm-s1": [{"update": 200, "minutes": 2.0, "bleu": {"idec1": 4.0}}]}
    assert "| cmlm-s1 | idec1 | 2.0 |" in out.with_suffix(".md").read_text()  # 4.0 >= 50% of 7 at 2 minutes

