"""Reference conformers (thesis ch. 6 data): QM9 geometries -> RDKit molecules, SDF reading, the prepare script."""
import itertools
import json

import numpy as np
import pytest

pytest.importorskip("rdkit")
pytest.importorskip("qm9pack")
from rdkit import Chem  # noqa: E402
from rdkit.Chem import AllChem  # noqa: E402

from iterref_fairseq.data.conformers import (QM9Record, Rejections, mol_from_qm9, parse_xyz,  # noqa: E402
                                             read_qm9_records, read_sdf, sdf_molecules)

from conftest import REPO, load_module  # noqa: E402


@pytest.fixture(scope="module")
def qm9_first_1000():
    return list(itertools.islice(read_qm9_records(), 1000))


def test_qm9_geometries_become_the_smiles_molecules(qm9_first_1000):
    kept, rejections = 0, Rejections()
    for rec in qm9_first_1000:
        mol, reason = mol_from_qm9(rec)
        if reason:
            rejections.add(reason, rec.smiles)
            continue
        kept += 1
        # the same molecule as the SMILES (RDKit's canonical form, stereo aside) ...
        ref = Chem.MolFromSmiles(rec.smiles)
        assert Chem.MolToSmiles(mol, isomericSmiles=False) == Chem.MolToSmiles(ref, isomericSmiles=False)
        # ... with the DFT coordinates of its heavy atoms, in the file's order
        heavy = np.array([xyz for e, xyz in zip(rec.elements, rec.xyz) if e != "H"])
        assert mol.GetNumAtoms() == len(heavy) and mol.GetNumConformers() == 1
        assert np.allclose(mol.GetConformer().GetPositions(), heavy, atol=1e-6)
        assert [a.GetSymbol() for a in mol.GetAtoms()] == [e for e in rec.elements if e != "H"]
    assert kept + rejections.total == 1000 and kept >= 990, rejections.to_json()


def test_bicyclo_bridgeheads_are_not_bonded(qm9_first_1000):
    # bicyclo[1.1.1]pentane: bridgeheads 1.88 A apart, bonded by RDKit's default perception (see PERCEPTION_ATTEMPTS)
    rec = next(r for r in read_qm9_records() if r.smiles == "C1C2CC1C2")
    mol, reason = mol_from_qm9(rec)
    assert reason is None and mol.GetNumBonds() == 6


def test_a_geometry_that_is_not_the_smiles_is_rejected_with_its_reason(qm9_first_1000):
    by_smiles = {r.smiles: r for r in qm9_first_1000}
    acetaldehyde = by_smiles["CC=O"]
    # same heavy-atom graph, other hydrogens and bond orders: the geometry's hydrogens decide
    assert mol_from_qm9(QM9Record(0, "C=CO", acetaldehyde.elements, acetaldehyde.xyz)) == (None, "molecule_differs")
    # another graph (a ring the geometry does not have)
    assert mol_from_qm9(QM9Record(0, "C1CO1", acetaldehyde.elements, acetaldehyde.xyz))[1] in (
        "connectivity_differs", "molecule_differs")
    assert mol_from_qm9(QM9Record(0, "CC=O", acetaldehyde.elements[:-1], acetaldehyde.xyz)) == (None,
                                                                                             "xyz_unreadable")
    assert mol_from_qm9(QM9Record(0, "C(", acetaldehyde.elements, acetaldehyde.xyz)) == (None, "smiles_unreadable")


def test_parse_xyz_reads_the_files_number_forms():
    assert parse_xyz("[[0.,1.,-2.5],[1.5*^-6,0,3e-1]]") == ((0.0, 1.0, -2.5), (1.5e-6, 0.0, 0.3))
    assert parse_xyz("[[0,1],[2,3,4]]") == () and parse_xyz("not a list") == ()


def _record(mol, name):
    mol.SetProp("_Name", name)
    return Chem.MolToMolBlock(mol) + "$$$$\n"


@pytest.fixture
def bad_sdf(tmp_path):
    good = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(good, randomSeed=1)
    flat = Chem.MolFromSmiles("c1ccccc1")
    AllChem.Compute2DCoords(flat)
    hydrogen = Chem.MolFromMolBlock("\n  test  3D\n\n  2  1  0  0  0  0  0  0  0  0999 V2000\n"
                                    "    0.0000    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
                                    "    0.7400    0.0000    0.0000 H   0  0  0  0  0  0  0  0  0  0  0  0\n"
                                    "  1  2  1  0\nM  END\n", removeHs=False)
    hydrogen.GetConformer().Set3D(True)
    big = Chem.AddHs(Chem.MolFromSmiles("CCCCCCO"))
    AllChem.EmbedMolecule(big, randomSeed=1)
    pentavalent = _record(good, "bad").replace("  1  2  1  0", "  1  2  3  0", 1)  # C#C-O with 3 H: valence error
    text = (_record(good, "ethanol") + _record(flat, "benzene_2d") + _record(hydrogen, "dihydrogen")
            + _record(big, "hexanol") + pentavalent)
    path = tmp_path / "mixed.sdf"
    path.write_text(text)
    return path


def test_sdf_molecules_count_every_rejection(bad_sdf):
    rejections = Rejections()
    mols = sdf_molecules(str(bad_sdf), max_atoms=5, rejections=rejections)
    assert [m.GetProp("_Name") for m in mols] == ["ethanol"]
    assert mols[0].GetNumAtoms() == 3 and mols[0].GetConformer().Is3D()
    assert dict(rejections.counts) == {"no_3d_coordinates": 1, "no_heavy_atoms": 1, "too_many_atoms": 1,
                                       "sdf_unreadable": 1}
    assert rejections.examples["too_many_atoms"] == ["hexanol"]


def _prepare():
    return load_module(REPO / "scripts" / "prepare_conformers.py").main


def test_prepare_script_writes_splits_and_a_summary(tmp_path, capsys):
    main = _prepare()
    out = tmp_path / "qm9"
    assert main(["--qm9", "--out", str(out), "--max-molecules", "60", "--valid-size", "10", "--test-size", "10"]) == 0
    summary = json.loads((out / "prepare.json").read_text())
    assert summary["splits"] == {"train": 40, "valid": 10, "test": 10} and summary["kept"] == 60
    test = read_sdf(str(out / "test.sdf"))
    assert len(test) == 10 and all(m.GetConformer().Is3D() for m in test)
    for m in test:  # the SDF round trip keeps the molecule
        assert Chem.MolToSmiles(m, isomericSmiles=False) == Chem.MolToSmiles(Chem.MolFromSmiles(m.GetProp("smiles")),
                                                                             isomericSmiles=False)
    names = {m.GetProp("_Name") for part in ("train", "valid", "test") for m in read_sdf(str(out / f"{part}.sdf"))}
    assert len(names) == 60, "splits are disjoint"
    # the same seed gives the same files
    again = tmp_path / "again"
    main(["--qm9", "--out", str(again), "--max-molecules", "60", "--valid-size", "10", "--test-size", "10"])
    assert (again / "test.sdf").read_text() == (out / "test.sdf").read_text()
    capsys.readouterr()


def test_prepare_script_bad_input_is_one_clear_message(tmp_path, bad_sdf, capsys):
    main = _prepare()
    with pytest.raises(SystemExit) as exc:
        main(["--sdf", str(tmp_path / "missing.sdf"), "--out", str(tmp_path / "o")])
    assert exc.value.code == 2 and "missing.sdf: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--sdf", str(bad_sdf), "--out", str(tmp_path / "o"), "--valid-size", "2", "--test-size", "1"])
    assert "(3) exceed the 2 molecules kept; lower them or raise --max-molecules" in capsys.readouterr().err
    assert main(["--sdf", str(bad_sdf), "--out", str(tmp_path / "o"), "--test-only", "--max-atoms", "5"]) == 0
    out = capsys.readouterr().out
    assert "kept 1, rejected 4" in out and "rejected 1: the record has no 3-D conformer (e.g. benzene_2d)" in out
    summary = json.loads((tmp_path / "o" / "prepare.json").read_text())
    assert summary["rejected_by_reason"]["no_heavy_atoms"]["examples"] == ["dihydrogen"]


# ------------------------------------------------------------------ features (the reference code's layout)
def test_atom_and_pair_features_of_a_hand_checked_molecule():
    from iterref_fairseq.data.conformers import atom_features, node_feature_dim, pair_features

    mol = Chem.MolFromSmiles("OC1CC1")  # O0 - C1, ring C1 C2 C3
    nodes, unknown = atom_features(mol, "qm9")
    assert nodes.shape == (4, 22) == (4, node_feature_dim("qm9")) and not unknown
    # [C N O F | SP SP2 SP3 | Z, degree, charge, H, implicit valence, radicals, aromatic | rings 3..8 | R S]
    assert nodes[0].tolist() == [0, 0, 1, 0, 0, 0, 1, 8, 1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert nodes[1].tolist() == [1, 0, 0, 0, 0, 0, 1, 6, 3, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    assert nodes[2].tolist() == [1, 0, 0, 0, 0, 0, 1, 6, 2, 0, 2, 2, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]
    pairs = pair_features(mol)
    # [single double triple aromatic | Z E | conjugated, bond in ring | same ring | graph distance]
    assert pairs[0, 1].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert pairs[1, 2].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert pairs[0, 2].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert pairs[2, 3].tolist() == pairs[3, 2].tolist() == [1, 0, 0, 0, 0, 0, 0, 1, 1, 1]
    assert not pairs[np.arange(4), np.arange(4)].any()


def test_features_of_aromatic_stereo_and_unknown_elements():
    from iterref_fairseq.data.conformers import atom_features, pair_features

    mol = Chem.AddHs(Chem.MolFromSmiles("F/C=C/c1ccc(Cl)cc1"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    mol = Chem.RemoveHs(mol)
    nodes, unknown = atom_features(mol, "qm9")
    assert unknown == {"Cl": 1}, "Cl is outside QM9's elements: zero one-hot, reported"
    cl = next(a.GetIdx() for a in mol.GetAtoms() if a.GetSymbol() == "Cl")
    assert not nodes[cl, :4].any() and nodes[cl, 7] == 17
    ring = [a.GetIdx() for a in mol.GetAtoms() if a.GetIsAromatic()]
    assert all(nodes[i, 13] == 1 and nodes[i, 17] == 1 and nodes[i, 5] == 1 for i in ring)  # aromatic, 6-ring, SP2
    pairs = pair_features(mol)
    double = next(b for b in mol.GetBonds() if str(b.GetBondType()) == "DOUBLE")
    i, j = double.GetBeginAtomIdx(), double.GetEndAtomIdx()
    assert pairs[i, j, 1] == 1 and pairs[i, j, 5] == 1 and pairs[i, j, 4] == 0, "E double bond from the 3-D geometry"
    a, b = ring[0], ring[3]
    assert pairs[a, b, 8] == 1 and pairs[a, b, :4].sum() == 0 and pairs[a, b, 9] == 3  # para positions
    cod, unknown = atom_features(mol, "cod")
    assert not unknown and cod[cl, 4] == 1
    with pytest.raises(ValueError, match="unknown element set 'csd'; choose one of qm9, cod"):
        atom_features(mol, "csd")
