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
    """Runs ``python -m iterref_fairseq.cli.<name>`` with this interpreter (the console scripts are run with
    ``cli``)."""
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
    gen = cli("iterref-generate-molecules", mol_data, "--path", mgm_checkpoint, "--num-samples", "24",
              "--init", init, "--mask-rate", "0.1", "--steps", "6", "--trajectory-every", "2",
              "--batch-size", "10", "--out", out, "--cpu")
    assert gen.returncode == 0
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
    assert summary["provenance"]["command"].startswith("iterref-generate-molecules ")
    assert summary["provenance"]["seed"] == 1

    # the Python API draws the same molecules for the same options and seed (default seed 1)
    from iterref_fairseq import from_pretrained
    from iterref_fairseq.models.masked_graph import MaskedGraphModel

    hub = MaskedGraphModel.from_pretrained(mgm_checkpoint.parent, mgm_checkpoint.name, str(mol_data))
    assert hub.sample(24, init=init, mask_rate=0.1, steps=6, batch_size=10) == lines
    assert from_pretrained(mgm_checkpoint.parent, mgm_checkpoint.name, str(mol_data)).sample(
        5, init=init, steps=2, seed=7, with_validity=True)[0][1] in (True, False)

    if init == "marginal":
        return  # evaluation and plots are exercised once (training init) to keep the test short
    ev = cli("iterref-evaluate-molecules", "--reference", mol_data / "train.smi", out, mol_data / "test.smi",
             "--max-reference", "200", "--out", tmp_path / "metrics.json")
    assert ev.returncode == 0
    res = json.loads((tmp_path / "metrics.json").read_text())["results"]
    r = res[str(out)]
    assert r["validity"] == pytest.approx(summary["validity"])
    assert res[str(mol_data / "test.smi")]["validity"] == 1.0
    for key in ("validity", "uniqueness", "novelty", "kl_div", "frechet"):
        assert 0.0 <= r[key] <= 1.0
    assert "uniqueness" in ev.stdout.splitlines()[0]
    table = (tmp_path / "metrics.md").read_text().splitlines()
    assert table[0] == "| samples | validity | uniqueness | novelty | kl_div | frechet |" and len(table) == 4
    assert table[2].startswith(f"| {out.name} | {r['validity']:.3f} |")

    # novelty against a larger reference (the thesis scores against all of QM9), beside the training-set one,
    # checked against a direct RDKit computation (canonical SMILES without stereo)
    from rdkit import Chem

    whole = tmp_path / "all.smi"
    whole.write_text("".join((mol_data / f"{s}.smi").read_text() for s in ("train", "valid", "test")))
    # samples: the held-out test molecules (novel against train, not against all) and two molecules QM9 lacks
    held_out = tmp_path / "held_out.smi"
    lines = (mol_data / "test.smi").read_text().split() + ["CCCCCCCCCCCCCCCC", "OCCCCCCCCCCCCCCCC"]
    held_out.write_text("\n".join(lines) + "\n")
    ev2 = cli("iterref-evaluate-molecules", held_out, "--reference", mol_data / "train.smi", "--novelty-reference",
              whole, "--no-fcd", "--max-reference", "200", "--out", tmp_path / "metrics2.json")
    assert ev2.returncode == 0
    r2 = json.loads((tmp_path / "metrics2.json").read_text())["results"][str(held_out)]

    def canon(smi):
        mol = Chem.MolFromSmiles(smi)
        return None if mol is None or mol.GetNumAtoms() == 0 else Chem.MolToSmiles(mol, isomericSmiles=False)

    uniq = {c for c in map(canon, lines) if c is not None}
    ref = {c for c in map(canon, whole.read_text().split()) if c is not None}
    assert r2["novelty_full_reference"] == pytest.approx(len(uniq - ref) / len(uniq)) == pytest.approx(2 / len(uniq))
    assert r2["novelty"] == pytest.approx(1.0)
    assert "novelty_full_reference" in (tmp_path / "metrics2.md").read_text().splitlines()[0]

    for argv in (["trajectory", "--trajectory", tmp_path / f"{init}.smi.trajectory.jsonl", "--index", "1",
                  "--out", tmp_path / "traj.png"],
                 ["steps", "--trajectory", tmp_path / f"{init}.smi.trajectory.jsonl", "--reference",
                  mol_data / "train.smi", "--max-reference", "100", "--no-fcd", "--out", tmp_path / "steps.png"],
                 ["tradeoff", tmp_path / "metrics.json", "--out", tmp_path / "tradeoff.png"]):
        assert cli("iterref-plot-molecules", *argv).returncode == 0
    for png in ("traj.png", "steps.png", "tradeoff.png"):
        assert (tmp_path / png).stat().st_size > 1000
    steps = json.loads((tmp_path / "steps.json").read_text())["per_step"]
    assert [s["step"] for s in steps] == [0, 2, 4, 6]


def test_bad_inputs_give_one_clear_message(mol_data, mgm_checkpoint, tmp_path, capsys):
    missing = tmp_path / "nope.pt"
    # python -m runs the same main as the console script (exit status 2, one message)
    p = module("generate_molecules", mol_data, "--path", missing, "--out", tmp_path / "x.smi", check=False)
    assert p.returncode == 2 and f"checkpoint not found: {missing}" in p.stderr and "--path" in p.stderr
    assert "Traceback" not in p.stderr

    # the rest in-process: the console scripts' main() returns the exit status (test_console_scripts.py runs
    # each script as a subprocess)
    from iterref_fairseq.cli import evaluate_molecules, generate_molecules

    def status(module, *argv):
        code = module.main([str(a) for a in argv])
        return code, capsys.readouterr().err.strip().splitlines()[-1]

    code, err = status(generate_molecules, mol_data, "--path", mgm_checkpoint, "--mask-rate", "1.5",
                       "--out", tmp_path / "x.smi")
    assert code == 2 and "--mask-rate must be in (0, 1], got 1.5" in err

    bad_ref = tmp_path / "bad.smi"
    bad_ref.write_text("CCO\nC1CC\n")
    samples = tmp_path / "s.smi"
    samples.write_text("CCO\n")
    code, err = status(evaluate_molecules, "--reference", bad_ref, samples, "--no-fcd")
    assert code == 2 and str(bad_ref) in err and "line 2" in err and "prepare_qm9" in err
    code, err = status(evaluate_molecules, "--reference", mol_data / "train.smi", samples, tmp_path / "none.smi")
    assert code == 2 and f"samples file not found: {tmp_path / 'none.smi'}" in err

    # a data directory whose train.smi has SMILES RDKit rejects
    bad_data = tmp_path / "bad_data"
    bad_data.mkdir()
    for split in ("train", "valid", "test"):
        (bad_data / f"{split}.smi").write_text("CCO\nC1CC\nCCN\n")
    # without the training vocabulary the checkpoint does not fit the data: the message says so
    code, err = status(generate_molecules, bad_data, "--path", mgm_checkpoint, "--out", tmp_path / "x.smi")
    assert code == 2 and "vocabulary mismatch" in err and "trained with (DATA)" in err
    shutil.copy(mol_data / "vocab.json", bad_data / "vocab.json")
    code, err = status(generate_molecules, bad_data, "--path", mgm_checkpoint, "--out", tmp_path / "x.smi")
    assert code == 2 and str(bad_data / "train.smi") in err and "--skip-invalid-smiles" in err
    # an invalid value
    code, err = status(generate_molecules, mol_data, "--path", mgm_checkpoint,
                       "--out", tmp_path / "x.smi", "--num-samples", "0")
    assert code == 2 and "--num-samples and --batch-size >= 1" in err
    p = cli("fairseq-train", bad_data, "--user-dir", USER_DIR, "--task", "mol_graph", "--arch",
            "masked_graph_model_tiny", "--criterion", "masked_graph_loss", "--batch-size", "2", "--max-update", "1",
            "--cpu", "--save-dir", tmp_path / "ck", check=False)
    assert p.returncode != 0 and "1 SMILES are rejected by RDKit" in p.stderr
