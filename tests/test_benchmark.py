"""iterref-benchmark-decode on tiny data: every system decodes every sentence; JSON and markdown are written."""
import json

import pytest

from conftest import TINY_MODEL_FLAGS, USER_DIR, cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_ar(tiny_data, tmp_path_factory):
    save = tmp_path_factory.mktemp("ar")
    flags = [f.replace("refinement_nat_tiny", "transformer") for f in TINY_MODEL_FLAGS]
    cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation", *flags,
        "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "5", "--cpu",
        "--save-dir", save, "--no-epoch-checkpoints", "--criterion", "cross_entropy")
    return save / "checkpoint_last.pt"


def test_benchmark_table(tiny_data, tiny_checkpoint, tiny_ar, tmp_path):
    out = tmp_path / "res" / "table.json"
    ref = tiny_data.parent / "raw" / "test.tgt"
    cli("iterref-benchmark-decode", "--data", tiny_data, "--nat", tiny_checkpoint, "--ar", tiny_ar,
        "--refs", ref, ref, "--systems", "ar:1,ar:2,nat:1,nat:3,nat:adaptive", "--speed-sentences", "4",
        "--target-lang", "en", "--out", out, "--save-hypotheses", tmp_path / "hyps")
    result = json.loads(out.read_text())
    names = [r["system"] for r in result["rows"]]
    assert names == ["AR b=1", "AR b=2", "NAT idec=1", "NAT idec=3", "NAT adaptive"]
    for row in result["rows"]:
        assert 0.0 <= row["bleu"] <= 100.0
        assert row["batched"]["sentences"] == 24 and row["batch1"]["sentences"] == 4
        assert row["batched"]["src_tokens_per_s"] > 0
    steps = {r["system"]: r["mean_steps"] for r in result["rows"]}
    assert steps["NAT idec=1"] == 1 and steps["NAT idec=3"] == 3 and 1 <= steps["NAT adaptive"] <= 20
    assert "hardware" in result and result["seed"] == 1
    md = out.with_suffix(".md").read_text()
    assert "| NAT adaptive |" in md
    assert len((tmp_path / "hyps" / "NAT_idec3.txt").read_text().splitlines()) == 24


def test_benchmark_bad_systems_and_missing_checkpoint(tiny_data, tmp_path):
    proc = cli("iterref-benchmark-decode", "--data", tiny_data, "--systems", "nat:0", "--nat", tmp_path / "x.pt",
               "--out", tmp_path / "r.json", check=False)
    assert proc.returncode != 0 and "checkpoint not found" in proc.stderr
    proc = cli("iterref-benchmark-decode", "--data", tiny_data, "--systems", "foo:1", "--out", tmp_path / "r.json",
               check=False)
    assert proc.returncode != 0 and "bad entry 'foo:1'" in proc.stderr


def test_nat_step_nll_reports_every_step(tiny_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "steps.json"
    proc = cli("iterref-nat-step-nll", tiny_checkpoint, "--data", tiny_data, "--split", "valid",
               "--max-sentences", "7", "--steps", "3", "--out", out)
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["sentences"] == 7 and row["tokens"] > 7 and result["steps"] == 3
    assert len(row["nll"]) == len(row["accuracy"]) == 3
    assert all(n > 0 for n in row["nll"]) and all(0.0 <= a <= 1.0 for a in row["accuracy"])
    assert "| checkpoint_last.pt |" in proc.stdout
    proc = cli("iterref-nat-step-nll", tmp_path / "missing.pt", "--data", tiny_data, check=False)
    assert proc.returncode != 0 and "checkpoint not found" in proc.stderr
