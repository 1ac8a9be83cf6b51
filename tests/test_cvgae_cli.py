"""The conformer task end to end: prepare -> fairseq-train (cvgae) -> iterref-generate-conformers (+MMFF) /
iterref-baseline-conformers -> iterref-evaluate-conformers; the task's cache and bad input; metric values on
hand-made conformer sets; 2-rank gloo training."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rdkit")
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

from conftest import REPO, USER_DIR, cli, load_module, train_two_ranks  # noqa: E402

SMILES = ["CCO", "CC(=O)O", "CC(C)O", "OCCO", "CC#N", "CCN", "CC(=O)N", "C1CC1", "C1CCOC1", "CC(O)C(=O)N",
          "COC", "CCOC", "OC1CC1", "CC(C)(C)O", "C=CC=O", "NCC(=O)O", "CC1=CC=CN1", "c1ccncc1", "CC(N)C#N",
          "OCC(O)CO", "CN(C)C=O", "O=C1CCC1", "CCCC", "CC(F)F", "FC(F)(F)C", "N#CC#N", "C1COC1", "CCC(=O)C",
          "OC(=O)C=O", "CC(=O)OC", "CCCN", "NC(=O)N", "C1CNC1", "CCC#C", "OCC#N", "CC=CC"]


def write_embedded_sdf(path: Path, smiles, seed: int = 7) -> None:
    w = Chem.SDWriter(str(path))
    for k, s in enumerate(smiles):
        m = Chem.AddHs(Chem.MolFromSmiles(s))
        AllChem.EmbedMolecule(m, randomSeed=seed + k)
        m.SetProp("_Name", f"mol{k}")
        w.write(m)
    w.close()


@pytest.fixture(scope="module")
def conformer_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("conformers")
    write_embedded_sdf(root / "all.sdf", SMILES)
    data = root / "data"
    subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_conformers.py"), "--sdf", str(root / "all.sdf"),
                    "--out", str(data), "--valid-size", "6", "--test-size", "6", "--max-atoms", "9"], check=True,
                   capture_output=True)
    return data


def test_task_caches_features_and_refuses_bad_splits(conformer_data, tmp_path, monkeypatch):
    import iterref_fairseq.data.conformers as conformers
    from iterref_fairseq.data.conformers import ConformerDataError
    from iterref_fairseq.tasks.conformer import ConformerConfig, ConformerTask

    task = ConformerTask.setup_task(ConformerConfig(data=str(conformer_data)))
    ds = task.load_dataset("valid")
    assert len(ds) == 6 and task.node_dim == 22
    assert (conformer_data / "cache" / "valid.qm9.conformers.npz").is_file()
    mols = conformers.read_sdf(str(conformer_data / "valid.sdf"))
    nodes, pairs, coords = ds.cs.graph(2)
    assert np.allclose(coords, mols[2].GetConformer().GetPositions(), atol=1e-5)
    assert np.array_equal(nodes, conformers.atom_features(mols[2], "qm9")[0])
    assert np.array_equal(pairs, conformers.pair_features(mols[2]))

    def no_rdkit(*a, **k):
        raise AssertionError("featurized again although the cache is valid")

    monkeypatch.setattr(conformers, "featurize_conformers", no_rdkit)
    again = ConformerTask.setup_task(ConformerConfig(data=str(conformer_data))).load_dataset("valid")
    assert np.array_equal(again.cs.pairs, ds.cs.pairs) and again.cs.names == ds.cs.names
    monkeypatch.undo()

    batch = ds.collater([ds[0], ds[3]])
    n0, n3 = int(ds.sizes[0]), int(ds.sizes[3])
    N = max(n0, n3)
    assert batch["net_input"]["pairs"].shape == (2, N, N, 10) and batch["ntokens"] == n0 + n3
    assert batch["net_input"]["node_mask"].sum(1).tolist() == [n0, n3]

    with pytest.raises(ConformerDataError, match=r"molecules have more than --max-atoms 3 heavy atoms"):
        ConformerTask.setup_task(ConformerConfig(data=str(conformer_data), max_atoms=3)).load_dataset("valid")
    bad = tmp_path / "bad"
    bad.mkdir()
    write_embedded_sdf(bad / "train.sdf", ["CCO"])  # hydrogens kept: not a prepared split
    bad_task = ConformerTask.setup_task(ConformerConfig(data=str(bad)))
    with pytest.raises(ConformerDataError, match="has explicit hydrogens.*prepare_conformers.py"):
        bad_task.load_dataset("train")
    m = Chem.RemoveHs(conformers.read_sdf(str(bad / "train.sdf"))[0])
    m.SetProp("smiles", "CCCO")
    conformers.write_sdf(str(bad / "valid.sdf"), [m])
    with pytest.raises(ConformerDataError, match=r"has 3 atoms but its smiles property 'CCCO' has 4"):
        bad_task.load_dataset("valid")
    with pytest.raises(ConformerDataError, match="test.sdf not found"):
        bad_task.load_dataset("test")


# ------------------------------------------------------------------ metrics on hand-made sets
def test_metrics_on_hand_made_conformer_sets():
    from iterref_fairseq.metrics.conformers import MoleculeScores, aggregate, score_molecule

    ref = np.array([[0.0, 0, 0], [1.5, 0, 0], [1.5, 1.5, 0], [0, 1.2, 0.9]])
    same = np.stack([ref, ref + 3.0])  # a translated copy is the same conformer
    s = score_molecule(same, ref, requested=2, symmetric=False)
    assert s.mean == pytest.approx(0, abs=1e-5) and s.best == pytest.approx(0, abs=1e-5)
    assert s.diversity_mean == pytest.approx(0, abs=1e-5)
    # two conformers that differ only in atom 3 (moved by 1 A along z): RMSD to each other sqrt(1/4) minus
    # what alignment can recover; the one pair i < k gives the diversity (a self-pair would add zeros)
    other = ref.copy()
    other[3, 2] += 1.0
    pair = score_molecule(np.stack([ref, other]), ref, requested=4, symmetric=False)
    from iterref_fairseq.metrics.conformers import rmsd_to_reference

    d = float(rmsd_to_reference(other[None], ref)[0])
    assert 0.2 < d < 0.5
    assert pair.diversity_mean == pytest.approx(d, abs=1e-9) and pair.diversity_std == pytest.approx(0, abs=1e-9)
    assert pair.mean == pytest.approx(d / 2, abs=1e-9) and pair.std == pytest.approx(d / 2, abs=1e-9)
    assert pair.best == pytest.approx(0, abs=1e-5) and pair.obtained == 2 and pair.requested == 4
    # aggregation: medians on the molecules every method succeeded on; success rates on all
    scores = {"a": [MoleculeScores(2, 2, 0.1, 0.0, 0.1), MoleculeScores(1, 2, 0.3, 0.0, 0.3),
                    MoleculeScores(2, 2, 0.9, 0.0, 0.5)],
              "b": [MoleculeScores(2, 2, 0.2, 0.0, 0.2), MoleculeScores(0, 2), MoleculeScores(2, 2, 0.4, 0.0, 0.4)]}
    agg = aggregate(scores)
    assert agg["a"]["common_molecules"] == 2 and agg["a"]["median_mean_rmsd"] == pytest.approx(0.5)
    assert agg["a"]["success_per_test_set"] == 1.0 and agg["a"]["success_per_molecule"] == pytest.approx(5 / 6)
    assert agg["b"]["success_per_test_set"] == pytest.approx(2 / 3)
    assert agg["b"]["success_per_molecule"] == pytest.approx(2 / 3)


def test_symmetry_aware_rmsd_and_coverage():
    from iterref_fairseq.metrics.conformers import score_molecule

    mol = Chem.AddHs(Chem.MolFromSmiles("OC(F)(F)C"))
    AllChem.EmbedMolecule(mol, randomSeed=1)
    mol = Chem.RemoveHs(mol)
    ref = mol.GetConformer().GetPositions()
    f = [a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "F"]
    swapped = ref.copy()
    swapped[f] = ref[f[::-1]]  # the two F exchanged: far in identity-mapped RMSD, identical up to symmetry
    far = ref + np.random.default_rng(0).normal(0, 0.8, ref.shape)
    s = score_molecule(np.stack([swapped, far]), ref, requested=2, mol=mol, delta=0.5)
    assert s.best > 0.3 and s.sym_best == pytest.approx(0, abs=1e-4)
    assert s.cov_r == 1.0 and s.mat_r == pytest.approx(0, abs=1e-4) and s.cov_p == 0.5
    assert s.mat_p == pytest.approx(s.sym_mean)


# ------------------------------------------------------------------ end to end
TRAIN_FLAGS = ["--user-dir", USER_DIR, "--task", "conformer", "--arch", "cvgae_tiny", "--criterion", "cvgae_loss",
               "--optimizer", "adam", "--lr", "3e-3", "--batch-size", "6", "--required-batch-size-multiple", "1",
               "--cpu", "--log-format", "simple", "--log-interval", "10", "--no-epoch-checkpoints",
               "--valid-prior-samples", "2", "--best-checkpoint-metric", "prior_rmsd"]


@pytest.mark.slow
def test_train_generate_baselines_evaluate(conformer_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    cli("fairseq-train", conformer_data, *TRAIN_FLAGS, "--max-update", "40", "--save-dir", ckpt, "--seed", "1")
    best = ckpt / "checkpoint_best.pt"
    assert best.is_file()
    out = {}
    for name, extra in (("cvgae", []), ("cvgae_mmff", ["--mmff"])):
        out[name] = tmp_path / f"{name}.sdf"
        cli("iterref-generate-conformers", conformer_data, "--path", best, "--num-confs", "4", "--batch-size", "4",
            "--out", out[name], "--cpu", *extra)
    first = (tmp_path / "cvgae.sdf").read_text()
    cli("iterref-generate-conformers", conformer_data, "--path", best, "--num-confs", "4", "--batch-size", "4",
        "--out", tmp_path / "stereo.sdf", "--cpu", "--handedness", "stereo")
    stereo = json.loads((tmp_path / "stereo.sdf.json").read_text())
    assert stereo["handedness"] == "stereo" and stereo["conformers"] == 24
    assert 0 <= stereo["handedness_counts"].get("random_mirror", 0) <= 24
    cli("iterref-generate-conformers", conformer_data, "--path", best, "--num-confs", "4", "--out",
        tmp_path / "again.sdf", "--cpu", "--batch-size", "2")
    summary = json.loads((tmp_path / "cvgae.sdf.json").read_text())
    assert summary["conformers"] == 24 and summary["molecules"] == 6 and summary["failures"] == {}
    # seeded: the same conformers again (another batch size changes nothing: one generator, molecules in order)
    recs = [m.GetConformer().GetPositions() for m in Chem.SDMolSupplier(str(tmp_path / "cvgae.sdf"))]
    recs2 = [m.GetConformer().GetPositions() for m in Chem.SDMolSupplier(str(tmp_path / "again.sdf"))]
    assert len(recs) == len(recs2) == 24 and first.count("$$$$") == 24
    # one embedding shared by UFF and MMFF; the MMFF file equals a separate MMFF-only run with 2 workers
    cli("iterref-baseline-conformers", conformer_data, "--method", "etkdg+uff", "etkdg+mmff", "--num-confs", "4",
        "--out", tmp_path / "{method}.sdf", "--seed", "3")
    out.update({m: tmp_path / f"{m}.sdf" for m in ("etkdg+uff", "etkdg+mmff")})
    cli("iterref-baseline-conformers", conformer_data, "--method", "etkdg+mmff", "--num-confs", "4", "--out",
        tmp_path / "mmff2.sdf", "--seed", "3", "--workers", "2")
    a = [m.GetConformer().GetPositions() for m in Chem.SDMolSupplier(str(out["etkdg+mmff"]))]
    b = [m.GetConformer().GetPositions() for m in Chem.SDMolSupplier(str(tmp_path / "mmff2.sdf"))]
    assert len(a) == len(b) == 24 and all(np.allclose(x, y) for x, y in zip(a, b)), "deterministic with a seed"
    result = tmp_path / "eval.json"
    cli("iterref-evaluate-conformers", "--reference", conformer_data / "test.sdf", out["etkdg+uff"],
        out["etkdg+mmff"], out["cvgae"], out["cvgae_mmff"], "--out", result)
    res = json.loads(result.read_text())
    assert res["methods"] == ["etkdg+uff", "etkdg+mmff", "cvgae", "cvgae+mmff"]
    agg = res["aggregate"]
    assert agg["cvgae"]["success_per_test_set"] == 1.0 and agg["cvgae"]["common_molecules"] == 6
    for m in res["methods"]:
        assert 0 <= agg[m]["median_best_rmsd"] <= agg[m]["median_mean_rmsd"]
        assert agg[m]["median_best_rmsd_symmetric"] <= agg[m]["median_best_rmsd"] + 1e-6
        assert agg[m]["seconds_per_conformer"] > 0
    for suffix in (".md", ".png", ".molecules.png"):
        assert (tmp_path / f"eval{suffix}").is_file()
    assert "| mean RMSD (A) |" in (tmp_path / "eval.md").read_text()
    # the first molecules only: a file generated for 3 molecules scores as complete against the first 3
    cli("iterref-generate-conformers", conformer_data, "--path", best, "--num-confs", "2", "--max-examples", "3",
        "--out", tmp_path / "three.sdf", "--cpu")
    three = tmp_path / "three.json"
    cli("iterref-evaluate-conformers", "--reference", conformer_data / "test.sdf", tmp_path / "three.sdf",
        "--max-examples", "3", "--out", three, "--pictures", "0")
    agg3 = json.loads(three.read_text())["aggregate"]["cvgae"]
    assert agg3["molecules"] == 3 and agg3["success_per_test_set"] == 1.0
    # a generated file from another reference is refused with a count
    bad = cli("iterref-evaluate-conformers", "--reference", conformer_data / "valid.sdf", out["cvgae"], check=False)
    assert bad.returncode == 2 and "records do not match the reference" in bad.stderr


def _cip_labels(mol) -> dict:
    m = Chem.Mol(mol)
    Chem.AssignStereochemistry(m, cleanIt=True, force=True)
    return {a.GetIdx(): a.GetProp("_CIPCode") for a in m.GetAtoms() if a.HasProp("_CIPCode")}


def test_handedness_stereo_matches_the_stereocentres_and_draws_the_rest_uniformly():
    """--handedness stereo: every conformer of a molecule with stereocentres gets the molecule's CIP labels
    (checked through CIP codes, not the chiral tags the function compares), whichever mirror image it came as;
    without stereocentres each conformer is itself or its mirror image, mirrored about half of the time."""
    from iterref_fairseq.cli.generate_conformers import assign_handedness
    from iterref_fairseq.data.conformers import mol_with_coordinates

    mh = Chem.AddHs(Chem.MolFromSmiles("C[C@H](N)[C@@H](O)C#N"))
    AllChem.EmbedMolecule(mh, randomSeed=3)
    mol = Chem.RemoveHs(mh)
    want = _cip_labels(mol)
    assert len(want) == 2
    x = mol.GetConformer().GetPositions()
    mirror = x * np.array([1.0, -1.0, 1.0])
    out, done = assign_handedness(mol, [x, mirror, x, mirror, mirror], np.random.default_rng(0))
    for conf in out:
        m = mol_with_coordinates(mol, conf)
        Chem.AssignStereochemistryFrom3D(m)
        assert _cip_labels(m) == want
    assert done["stereo_mirror"] >= 1

    plain = Chem.RemoveHs(Chem.AddHs(Chem.MolFromSmiles("CCCCO")))
    y = np.random.default_rng(1).normal(size=(plain.GetNumAtoms(), 3))
    out, done = assign_handedness(plain, [y] * 400, np.random.default_rng(2))
    is_mirror = np.array([np.allclose(c, y * np.array([-1.0, 1.0, 1.0])) for c in out])
    assert all(np.allclose(c, y) or m for c, m in zip(out, is_mirror))
    assert 0.4 < is_mirror.mean() < 0.6 and done["random_mirror"] == is_mirror.sum() and "stereo_mirror" not in done


@pytest.mark.slow
def test_two_rank_gloo_training(conformer_data, tmp_path):
    save = tmp_path / "ckpt"
    train_two_ranks([conformer_data, *TRAIN_FLAGS, "--max-update", "4", "--save-dir", save, "--seed", "2"], save, 4)


def test_baseline_counts_molecules_etkdg_cannot_embed():
    """A strained QM9 aziridine whose stereocentres (from its DFT geometry) ETKDG often cannot satisfy: every
    requested conformer is either returned or counted as an embedding failure, for every method."""
    from iterref_fairseq.cli.baseline_conformers import embed_molecule

    mol = Chem.MolFromSmiles("C[C@]12[C@H]3C[C@H]3[C@H]1N2C=O")  # qm9_67505, stereo as in the test split
    failed = 0
    for seed in (1, 2, 3):
        res = embed_molecule((0, mol.ToBinary(), ("etkdg", "etkdg+mmff"), 4, 1, seed, 200))["methods"]
        for method in ("etkdg", "etkdg+mmff"):
            r = res[method]
            assert len(r["confs"]) + r["failures"].get("embedding_failed", 0) == 4
            assert all(len(c) == mol.GetNumAtoms() for c in r["confs"])
        assert len(res["etkdg"]["confs"]) == len(res["etkdg+mmff"]["confs"]), "one shared embedding"
        failed += res["etkdg"]["failures"].get("embedding_failed", 0)
    assert failed > 0


def test_mmff_diagnosis_counts_inverted_stereocentres_and_pairs_starts_with_ends(tmp_path):
    """examples/cvgae/diagnose_mmff.py on hand-made files: "cvgae" = mirror images of the references (every
    stereocentre inverted), "cvgae+mmff" and "etkdg+mmff" = the references themselves."""
    from iterref_fairseq.cli.baseline_conformers import write_conformers

    data = tmp_path / "data"
    data.mkdir()
    refs = []
    for k, smi in enumerate(["C[C@H](N)[C@@H](O)C#N", "C[C@@H](O)C(=O)N"]):
        mh = Chem.AddHs(Chem.MolFromSmiles(smi))
        AllChem.EmbedMolecule(mh, randomSeed=11 + k)
        AllChem.MMFFOptimizeMolecule(mh)
        refs.append(Chem.RemoveHs(mh))
    w = Chem.SDWriter(str(data / "test.sdf"))
    for m in refs:
        w.write(m)
    w.close()
    gen = tmp_path / "gen"
    gen.mkdir()
    for name, sign in (("cvgae", -1.0), ("cvgae+mmff", 1.0), ("etkdg+mmff", 1.0)):
        with Chem.SDWriter(str(gen / f"{name}.sdf")) as w:
            for i, m in enumerate(refs):
                x = m.GetConformer().GetPositions() * np.array([sign, 1.0, 1.0])
                write_conformers(w, m, i, [x] * 3, name)
        (gen / f"{name}.sdf.json").write_text(json.dumps({"num_confs": 3}))
    out = tmp_path / "diag.json"
    res = subprocess.run([sys.executable, str(REPO / "examples" / "cvgae" / "diagnose_mmff.py"), "--data", str(data),
                          "--generated", str(gen), "--noise", "0", "0.3", "--noise-copies", "2", "--long-iters", "50",
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["stereo"]["cvgae"] == {"conformers": 6, "all_centres_right": 0.0, "rmsd_all_right": None,
                                    "rmsd_some_inverted": pytest.approx(d["paired"]["mean_start"])}
    assert d["stereo"]["etkdg+mmff"]["all_centres_right"] == 1.0
    # mirror images and copies have the references' principal axes
    assert np.allclose(d["shape"]["cvgae"], d["shape"]["reference"]) and d["shape"]["reference"][2] > 0.1
    assert d["stereo"]["etkdg+mmff"]["rmsd_all_right"] == pytest.approx(0.0, abs=1e-6)
    assert d["paired"]["conformers"] == 6 and d["paired"]["mean_start"] > 0.1
    assert d["paired"]["mean_after_mmff"] == pytest.approx(0.0, abs=1e-6) and d["paired"]["flipped_fraction"] == 1.0
    assert d["noise"][0]["noise_rmsd"] == 0 and d["noise"][0]["mean_start"] == pytest.approx(0.0, abs=1e-6)
    assert d["noise"][1]["conformers"] == 4 and 0.15 < d["noise"][1]["mean_start"] <= 0.3 + 1e-6
    assert d["provenance"]["command"] and (tmp_path / "diag.md").is_file()


def test_rmsd_by_flexibility_groups_molecules_by_rotatable_bonds(tmp_path):
    """examples/cvgae/rmsd_by_flexibility.py on a hand-made evaluation: CC#N and c1ccccc1 have no rotatable bond,
    CCCC one, CCCCCC three; medians per group are checked by hand, a missing molecule is left out of its median."""
    refs = tmp_path / "test.sdf"
    write_embedded_sdf(refs, ["CC#N", "CCCC", "c1ccccc1", "CCCCCC"])
    row = lambda mean, best: {"mean": mean, "best": best}  # noqa: E731
    evaluation = {"per_molecule": {"cvgae": [row(0.5, 0.4), row(0.7, 0.6), row(0.3, 0.2), row(0.9, 0.8)],
                                   "etkdg+mmff": [row(0.1, 0.05), None, row(0.2, 0.1), row(1.0, 0.3)]}}
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(evaluation))
    evaluation["per_molecule"]["cvgae"][0] = row(0.1, 0.1)  # another model, the same baseline
    second.write_text(json.dumps(evaluation))
    out = tmp_path / "flex.json"
    res = subprocess.run([sys.executable, str(REPO / "examples" / "cvgae" / "rmsd_by_flexibility.py"), "--reference",
                          str(refs), "--eval", f"a={first}", "--eval", f"b={second}", "--dedupe", "--groups",
                          "0,1-2,3+", "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["rotatable_bond_counts"] == {"0": 2, "1": 1, "3": 1}
    rigid, one, flexible = d["rows"]
    assert [r["molecules"] for r in d["rows"]] == [2, 1, 1]
    assert list(rigid["methods"]) == ["a:cvgae", "a:etkdg+mmff", "b:cvgae"]  # b's baseline equals a's
    assert rigid["methods"]["a:cvgae"] == {"median_mean_rmsd": pytest.approx(0.4), "median_best_rmsd":
                                           pytest.approx(0.3), "molecules": 2}
    assert rigid["methods"]["b:cvgae"]["median_mean_rmsd"] == pytest.approx(0.2)
    assert one["methods"]["a:etkdg+mmff"] == {"median_mean_rmsd": None, "median_best_rmsd": None, "molecules": 0}
    assert flexible["methods"]["a:etkdg+mmff"]["median_mean_rmsd"] == pytest.approx(1.0)
    bad = subprocess.run([sys.executable, str(REPO / "examples" / "cvgae" / "rmsd_by_flexibility.py"), "--reference",
                          str(refs), "--eval", str(first), "--out", str(out)], capture_output=True, text=True)
    assert bad.returncode != 0 and "expected LABEL=FILE" in bad.stderr


def test_learning_curve_power_law_fit_recovers_a_known_curve(tmp_path, capsys):
    """examples/cvgae/learning_curve.py --fit-from / --fit-target on a log whose prior RMSD is 2 * u^-0.15 exactly
    from update 1,000 on; the point at 500 lies off the curve and must be left out of the fit."""
    import math

    curve = load_module(REPO / "examples" / "cvgae" / "learning_curve.py")
    lines = []
    for u in (500, 1000, 2000, 4000, 8000, 16000):
        r = 5.0 if u == 500 else 2.0 * u ** -0.15
        lines.append(f"2026-12-06 | INFO | valid | epoch 001 | valid on 'valid' subset | loss {r:.6f} | rmsd {r:.6f} "
                     f"| prior_rmsd {r:.6f} | num_updates {u}")
    log = tmp_path / "train.log"
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "curve.json"
    assert curve.main([str(log), "--out", str(out), "--fit-from", "1000", "--fit-target", "0.5"]) == 0
    fit = json.loads(out.read_text())["power_law_fit"]
    assert fit["points"] == 5 and abs(fit["a"] - 2.0) < 1e-3 and abs(fit["b"] - 0.15) < 1e-4
    assert math.isclose(fit["updates_to_target"], (0.5 / 2.0) ** (-1 / 0.15), rel_tol=1e-3)  # about 10,321
    assert curve.updates_to_reach({"a": 1.0, "b": 0.0}, 0.5) == float("inf")
    with pytest.raises(SystemExit):  # one point from 16,000 on: no fit
        curve.main([str(log), "--out", str(out), "--fit-from", "16000"])
    assert "--fit-from 16000.0: 1 validation point(s) from there on; need at least 2" in capsys.readouterr().err


def test_learning_curve_reads_a_resumed_run_and_tests_the_fit_on_later_points(tmp_path, capsys):
    """Two logs of one run, the second resumed from an older checkpoint (4,000) than the first log's end (5,000):
    the second log's points replace the first's from 4,000 on. --fit-until fits the points up to it and compares
    the later ones with the prediction."""
    curve = load_module(REPO / "examples" / "cvgae" / "learning_curve.py")

    def line(u, r):
        return (f"2026-12-06 | INFO | valid | epoch 001 | valid on 'valid' subset | loss {r:.6f} | rmsd {r:.6f} "
                f"| prior_rmsd {r:.6f} | num_updates {u}\n")

    first, second = tmp_path / "train.log", tmp_path / "train2.log"
    # the first log's 5,000 point (9.9) was lost with the crash; the resumed run retrains from 4,000
    first.write_text("".join(line(u, 2.0 * u ** -0.15) for u in (1000, 2000, 3000)) + line(4000, 9.9)
                     + line(5000, 9.9))
    # later points lie 10% above the law, and 16,000 lies 20% above it
    second.write_text(line(4000, 2.0 * 4000 ** -0.15) + "".join(
        line(u, f * 2.0 * u ** -0.15) for u, f in ((5000, 1.1), (8000, 1.1), (16000, 1.2))))
    out = tmp_path / "curve.json"
    assert curve.main([str(first), str(second), "--out", str(out), "--fit-from", "1000", "--fit-until", "4000"]) == 0
    result = json.loads(out.read_text())
    assert [p["num_updates"] for p in result["points"]] == [1000, 2000, 3000, 4000, 5000, 8000, 16000]
    assert result["points"][3]["prior_rmsd"] == pytest.approx(2.0 * 4000 ** -0.15, rel=1e-5)
    fit = result["power_law_fit"]
    assert fit["points"] == 4 and abs(fit["b"] - 0.15) < 1e-4 and fit["until_update"] == 4000
    assert [h["num_updates"] for h in fit["held_out"]] == [5000, 8000, 16000]
    assert fit["held_out"][2]["predicted"] == pytest.approx(2.0 * 16000 ** -0.15, rel=1e-4)
    assert fit["held_out_mean_relative_error"] == pytest.approx((0.1 + 0.1 + 0.2) / 3, rel=1e-3)
    assert fit["held_out_max_abs_relative_error"] == pytest.approx(0.2, rel=1e-3)
    # nothing after --fit-until: a warning, no error
    assert curve.main([str(first), str(second), "--out", str(out), "--fit-from", "1000", "--fit-until", "20000"]) == 0
    assert "no validation point after --fit-until 20000" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        curve.main([str(first), "--out", str(out), "--fit-until", "4000"])
    assert "--fit-until needs --fit-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        curve.main([str(first), "--out", str(out), "--fit-from", "2500", "--fit-until", "3500"])
    assert "--fit-from 2500.0: 1 validation point(s) between it and --fit-until 3500.0" in capsys.readouterr().err
