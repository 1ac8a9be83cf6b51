"""End to end on tiny QM9 data: prepare_qm9.py -> fairseq-train (mol_graph / masked_graph_model_tiny /
masked_graph_loss) -> iterref-generate-molecules -> iterref-evaluate-molecules -> iterref-plot-molecules, and the
error messages for bad input."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import USER_DIR, cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def module(name: str, *args, check: bool = True):
    """Runs ``python -m iterref_fairseq.cli.<name>`` with this interpreter."""
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-m", f"iterref_fairseq.cli.{name}", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="module")
def mol_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("qm9tiny")
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_qm9.py"), "--out", str(out), "--seed", "2",
                    "--max-molecules", "700", "--valid-size", "50", "--test-size", "50"], check=True,
                   capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def mgm_checkpoint(mol_data, tmp_path_factory) -> Path:
    save_dir = tmp_path_factory.mktemp("mgm_ckpt")
    proc = cli("fairseq-train", mol_data, "--user-dir", USER_DIR, "--task", "mol_graph", "--arch",
               "masked_graph_model_tiny", "--graph-embed-dim", "32", "--criterion", "masked_graph_loss",
               "--optimizer", "adam", "--lr", "2e-3", "--adam-betas", "(0.9,0.98)", "--clip-norm", "10",
               "--batch-size", "50", "--max-update", "40", "--cpu", "--save-dir", save_dir,
               "--no-epoch-checkpoints", "--log-format", "simple", "--seed", "1")
    log = proc.stdout + proc.stderr
    assert "valid on 'valid' subset" in log and "edge_acc" in log
    assert (mol_data / "vocab.json").exists() and (mol_data / "cache" / "train.graphs.npz").exists()
    return save_dir / "checkpoint_best.pt"


@pytest.mark.parametrize("init", ["train", "marginal"])
def test_generate_evaluate_plot(mol_data, mgm_checkpoint, tmp_path, init):
    out = tmp_path / f"{init}.smi"
    gen = module("generate_molecules", "--path", mgm_checkpoint, "--data", mol_data, "--num-samples", "24",
                 "--init", init, "--mask-rate", "0.1", "--steps", "6", "--trajectory-every", "2",
                 "--batch-size", "10", "--out", out, "--cpu")
    summary = json.loads((tmp_path / f"{init}.smi.json").read_text())
    assert summary["num_samples"] == 24 and summary["init"] == init and summary["steps"] == 6
    lines = out.read_text().splitlines()
    assert len(lines) == 24
    assert summary["num_valid"] == sum(line != "INVALID" for line in lines)
    traj = [json.loads(x) for x in (tmp_path / f"{init}.smi.trajectory.jsonl").read_text().splitlines()]
    assert [t["step"] for t in traj] == [0, 2, 4, 6] and all(len(t["smiles"]) == 24 for t in traj)
    assert traj[-1]["smiles"] == lines
    if init == "train":  # step 0 = training molecules
        train = set((mol_data / "train.smi").read_text().split())
        assert set(traj[0]["smiles"]) <= train
    assert "generated 24 molecules" in gen.stdout

    if init == "marginal":
        return  # evaluation and plots are exercised once (training init) to keep the test short
    ev = module("evaluate_molecules", "--reference", mol_data / "train.smi", out, mol_data / "test.smi",
                "--max-reference", "200", "--out", tmp_path / "metrics.json")
    res = json.loads((tmp_path / "metrics.json").read_text())["results"]
    r = res[str(out)]
    assert r["validity"] == pytest.approx(summary["validity"])
    assert res[str(mol_data / "test.smi")]["validity"] == 1.0
    for key in ("validity", "uniqueness", "novelty", "kl_div", "frechet"):
        assert 0.0 <= r[key] <= 1.0
    assert "uniqueness" in ev.stdout.splitlines()[0]

    module("plot_molecules", "trajectory", "--trajectory", tmp_path / f"{init}.smi.trajectory.jsonl",
           "--index", "1", "--out", tmp_path / "traj.png")
    module("plot_molecules", "steps", "--trajectory", tmp_path / f"{init}.smi.trajectory.jsonl", "--reference",
           mol_data / "train.smi", "--max-reference", "100", "--no-fcd", "--out", tmp_path / "steps.png")
    module("plot_molecules", "tradeoff", tmp_path / "metrics.json", "--out", tmp_path / "tradeoff.png")
    for png in ("traj.png", "steps.png", "tradeoff.png"):
        assert (tmp_path / png).stat().st_size > 1000
    steps = json.loads((tmp_path / "steps.json").read_text())["per_step"]
    assert [s["step"] for s in steps] == [0, 2, 4, 6]


def test_bad_inputs_give_one_clear_message(mol_data, mgm_checkpoint, tmp_path):
    missing = tmp_path / "nope.pt"
    p = module("generate_molecules", "--path", missing, "--data", mol_data, "--out", tmp_path / "x.smi",
               check=False)
    assert p.returncode != 0 and f"checkpoint not found: {missing}" in p.stderr and "--path" in p.stderr
    assert "Traceback" not in p.stderr

    p = module("generate_molecules", "--path", mgm_checkpoint, "--data", mol_data, "--mask-rate", "1.5",
               "--out", tmp_path / "x.smi", check=False)
    assert p.returncode != 0 and "--mask-rate must be in (0, 1], got 1.5" in p.stderr
    assert "Traceback" not in p.stderr

    bad_ref = tmp_path / "bad.smi"
    bad_ref.write_text("CCO\nC1CC\n")
    samples = tmp_path / "s.smi"
    samples.write_text("CCO\n")
    p = module("evaluate_molecules", "--reference", bad_ref, samples, "--no-fcd", check=False)
    assert p.returncode != 0 and str(bad_ref) in p.stderr and "line 2" in p.stderr and "prepare_qm9" in p.stderr
    assert "Traceback" not in p.stderr

    # a data directory whose train.smi has SMILES RDKit rejects
    bad_data = tmp_path / "bad_data"
    bad_data.mkdir()
    for split in ("train", "valid", "test"):
        (bad_data / f"{split}.smi").write_text("CCO\nC1CC\nCCN\n")
    # without the training vocabulary the checkpoint does not fit the data: the message says so
    p = module("generate_molecules", "--path", mgm_checkpoint, "--data", bad_data, "--out", tmp_path / "x.smi",
               check=False)
    assert p.returncode != 0 and "vocabulary mismatch" in p.stderr and "--data" in p.stderr
    assert "Traceback" not in p.stderr
    shutil.copy(mol_data / "vocab.json", bad_data / "vocab.json")
    p = module("generate_molecules", "--path", mgm_checkpoint, "--data", bad_data, "--out", tmp_path / "x.smi",
               check=False)
    assert p.returncode != 0 and str(bad_data / "train.smi") in p.stderr
    assert "--skip-invalid-smiles" in p.stderr and "Traceback" not in p.stderr
    p = cli("fairseq-train", bad_data, "--user-dir", USER_DIR, "--task", "mol_graph", "--arch",
            "masked_graph_model_tiny", "--criterion", "masked_graph_loss", "--batch-size", "2", "--max-update", "1",
            "--cpu", "--save-dir", tmp_path / "ck", check=False)
    assert p.returncode != 0 and "1 SMILES are rejected by RDKit" in p.stderr
