"""Molecule featurization (data/molecules.py), on-disk caching, masking statistics and the prepare scripts."""
import glob
import importlib.util
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from iterref_fairseq.data import molecules as M
from iterref_fairseq.data.smiles_splits import write_data_dir

REPO = Path(__file__).resolve().parents[1]


def qm9_smiles(n: int, seed: int = 0):
    import qm9pack

    path = os.path.join(os.path.dirname(qm9pack.__file__), "data", "qm9_part1.csv")
    smiles = pd.read_csv(path, usecols=["SMILES"])["SMILES"].astype(str).tolist()
    return random.Random(seed).sample(smiles, n)


def moses_smiles(n: int, seed: int = 0):
    spec = importlib.util.find_spec("moses")
    path = os.path.join(list(spec.submodule_search_locations)[0], "dataset", "data", "test.csv.gz")
    smiles = pd.read_csv(path).iloc[:, 0].astype(str).tolist()
    return random.Random(seed).sample(smiles, n)


def round_trip_failures(smiles):
    vocab = M.MolVocab.from_smiles(smiles)
    failures = []
    for s in smiles:
        g = M.smiles_to_graph(s, vocab)
        if g is None:
            failures.append((s, "not featurized"))
            continue
        out, valid = M.graph_to_smiles(g[0], M.dense_edges(g[1], len(g[0])), vocab)
        if not valid or out != M.canonical_smiles(s):
            failures.append((s, out))
    return failures


@pytest.mark.parametrize("source", ["qm9", "moses"])
def test_round_trip_1000_molecules(source):
    smiles = qm9_smiles(1000) if source == "qm9" else moses_smiles(1000)
    failures = round_trip_failures(smiles)
    # failures are reported, not dropped: the assertion message lists them
    assert len(failures) <= 10, f"{len(failures)} / 1000 {source} molecules do not round-trip: {failures[:20]}"


def test_round_trip_keeps_tetrahedral_stereo_and_charges():
    smiles = ["C[C@H](N)C(=O)O", "C[C@@H](N)C(=O)O", "N[C@@H](C)C(=O)O", "F[C@](Cl)(Br)I", "C[N+](C)(C)C",
              "O=[N+]([O-])c1ccccc1", "c1ccc2[nH]ccc2c1", "O[C@@H]1CC[C@H](O)CC1"]
    assert round_trip_failures(smiles) == []


def test_graph_features_of_ethanol():
    vocab = M.MolVocab.from_smiles(["CCO"])
    nodes, bonds = M.smiles_to_graph("CCO", vocab)
    assert nodes.shape == (3, 6)
    decoded = [[vocab.values[p][v] for p, v in zip(M.NODE_PROPERTIES, row)] for row in nodes]
    assert [d[0] for d in decoded] == ["C", "C", "O"]
    assert [d[1] for d in decoded] == [3, 2, 1]
    assert bonds.tolist() == [[0, 1, 1], [1, 2, 1]]
    adj = M.dense_edges(bonds, 3)
    assert (adj == adj.T).all() and adj[0, 2] == M.NO_BOND


def test_invalid_and_masked_graphs_are_not_molecules():
    vocab = M.MolVocab.from_smiles(["CCO"])
    assert M.smiles_to_graph("C1CC", vocab) is None  # unclosed ring: RDKit rejects it
    assert M.smiles_to_graph("CCS", vocab) is None  # S is not in the vocabulary
    nodes, bonds = M.smiles_to_graph("CCO", vocab)
    edges = M.dense_edges(bonds, 3)
    masked = nodes.copy()
    masked[0, 0] = vocab.mask_index[0]
    assert M.graph_to_mol(masked, edges, vocab) is None
    edges = M.dense_edges(bonds, 3)
    edges[0, 1] = edges[1, 0] = 3  # C#C with 3 H on the first carbon: valence 6
    assert M.graph_to_smiles(nodes, edges, vocab) == (M.INVALID_SMILES, False)
    assert M.canonical_smiles(M.INVALID_SMILES) is None


def test_featurized_cache_is_reused_without_rdkit(tmp_path, monkeypatch):
    smi = tmp_path / "train.smi"
    smi.write_text("CCO\nc1ccccc1\nnot_a_smiles\nCC(=O)O\n")
    vocab = M.MolVocab.from_smiles(M.read_smiles_file(str(smi)))
    first = M.load_featurized(str(smi), vocab)
    assert len(first) == 3 and first.num_rejected == 1 and first.rejected_examples == ["not_a_smiles"]
    assert list((tmp_path / "cache").glob("train.graphs.npz"))
    parsed = []
    real = M.smiles_to_graph
    monkeypatch.setattr(M, "smiles_to_graph", lambda s, v: parsed.append(s) or real(s, v))
    second = M.load_featurized(str(smi), vocab)
    assert parsed == [], "a cached split must not be parsed by RDKit again"
    assert second.smiles == first.smiles and (second.nodes == first.nodes).all()
    assert (second.bonds == first.bonds).all() and second.num_rejected == 1
    assert second.rejected_examples == ["not_a_smiles"]
    smi.write_text("CCO\n")  # an edited file invalidates the cache
    third = M.load_featurized(str(smi), vocab)
    assert len(third) == 1 and parsed == ["CCO"] and third.rejected_examples == []
    other = M.MolVocab.from_smiles(["CCN"])  # another vocabulary featurizes again too
    M.load_featurized(str(smi), other)
    assert parsed == ["CCO", "CCO"]


def test_feature_cache_rebuilds_only_on_another_key(tmp_path, monkeypatch):
    import hashlib

    from iterref_fairseq.data import feature_cache as fc

    src = tmp_path / "a.smi"
    src.write_bytes(b"CCO\n")
    assert fc.file_digest(str(src)) == hashlib.sha1(b"CCO\n").hexdigest()[:16]
    cache = fc.default_cache_path(str(src), "graphs.npz")
    assert cache == str(tmp_path / "cache" / "a.graphs.npz")
    assert fc.default_cache_path(str(src), "x.npz", str(tmp_path / "elsewhere")) == str(tmp_path / "elsewhere" / "a.x.npz")
    builds = []

    def build():
        builds.append(1)
        return {"x": np.arange(3), "names": np.array(["ab", "c"], dtype=str)}

    assert fc.cached_arrays(cache, "k1", build)["x"].tolist() == [0, 1, 2]
    z = fc.cached_arrays(cache, "k1", build)
    assert len(builds) == 1 and [str(n) for n in z["names"]] == ["ab", "c"]
    assert sorted(z) == ["names", "x"]  # the key is not returned as an array
    fc.cached_arrays(cache, "k2", build)
    assert len(builds) == 2
    assert os.listdir(tmp_path / "cache") == ["a.graphs.npz"], "the temporary file is renamed into place"

    (tmp_path / "cache" / "a.graphs.npz").write_bytes(b"PK\x03\x04 damaged")  # not a readable npz: rebuilt
    assert fc.cached_arrays(cache, "k2", build)["x"].tolist() == [0, 1, 2] and len(builds) == 3

    def killed():  # the write fails half way: the old cache stays, no temporary file is left behind
        raise KeyboardInterrupt

    monkeypatch.setattr(fc.np, "savez", lambda *a, **k: killed())
    with pytest.raises(KeyboardInterrupt):
        fc.cached_arrays(cache, "k3", build)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "cache") == ["a.graphs.npz"]
    assert len(builds) == 4  # the failed attempt built once
    assert fc.cached_arrays(cache, "k2", build)["x"].tolist() == [0, 1, 2] and len(builds) == 4  # k2 kept
    with pytest.raises(ValueError, match=r"b\.npz returned an array named 'key'"):
        fc.cached_arrays(str(tmp_path / "b.npz"), "k", lambda: {"key": np.zeros(1)})


def test_cache_files_of_the_earlier_layout_still_load(tmp_path, monkeypatch):
    """Cache files written before the cache moved to data/feature_cache.py (same key, arrays saved by np.savez with
    a fixed temporary name) load without featurizing again."""
    smi = tmp_path / "train.smi"
    smi.write_text("CCO\nc1ccccc1\n")
    vocab = M.MolVocab.from_smiles(M.read_smiles_file(str(smi)))
    fs = M.featurize(M.read_smiles_file(str(smi)), vocab)
    from iterref_fairseq.data.feature_cache import file_digest

    (tmp_path / "cache").mkdir()
    key = f"v{M.CACHE_VERSION}-{file_digest(str(smi))}-{vocab.digest()}"
    np.savez(tmp_path / "cache" / "train.graphs.npz", key=np.array(key), smiles=np.array(fs.smiles, dtype=str),
             nodes=fs.nodes, node_offsets=fs.node_offsets, bonds=fs.bonds, bond_offsets=fs.bond_offsets,
             num_rejected=np.array(0), rejected_examples=np.array([""], dtype=str)[:0])
    monkeypatch.setattr(M, "featurize", lambda *a: pytest.fail("featurized although the cache is valid"))
    back = M.load_featurized(str(smi), vocab)
    assert back.smiles == ["CCO", "c1ccccc1"] and back.rejected_examples == [] and back.num_rejected == 0
    assert (back.nodes == fs.nodes).all() and (back.bond_offsets == fs.bond_offsets).all()


def test_collate_pads_and_masks():
    vocab = M.MolVocab.from_smiles(["CCO", "c1ccccc1"])
    graphs = [M.smiles_to_graph(s, vocab) for s in ("CCO", "c1ccccc1")]
    b = M.collate_graphs(graphs)
    assert b["nodes"].shape == (2, 6, 6) and b["edges"].shape == (2, 6, 6)
    assert b["node_mask"].sum(1).tolist() == [3, 6]
    assert b["edge_mask"][0].sum() == 3 * 2 and b["edge_mask"][1].sum() == 6 * 5
    assert (b["edges"][0, 3:] == 0).all() and (b["edges"][1] == b["edges"][1].T).all()
    assert (b["edges"][1][b["edges"][1] > 0] == 4).all()  # benzene: aromatic bonds only


def test_masking_statistics():
    torch.manual_seed(0)
    B, N = 400, 12
    sizes = torch.randint(3, N + 1, (B,))
    node_mask = torch.arange(N).unsqueeze(0) < sizes.unsqueeze(1)
    alpha = torch.rand(B) * 0.2
    node_sel, edge_sel = M.sample_component_masks(node_mask, alpha)
    # never on padding, the diagonal or only one direction of a pair
    assert not node_sel[~node_mask].any()
    assert not edge_sel[~M.pair_mask(node_mask)].any()
    assert torch.equal(edge_sel, edge_sel.transpose(1, 2))
    # per-graph rates follow alpha: the mean rate matches and the rate correlates with alpha
    n_comp = node_mask.sum(1) * 6 + sizes * (sizes - 1) // 2
    n_sel = node_sel.sum((1, 2)) + torch.triu(edge_sel, 1).sum((1, 2))
    rate = n_sel.float() / n_comp.float()
    expected = (alpha * n_comp).sum() / n_comp.sum()
    assert abs(float(n_sel.sum() / n_comp.sum()) - float(expected)) < 0.01
    assert np.corrcoef(rate.numpy(), alpha.numpy())[0, 1] > 0.8
    # properties are chosen independently: P(two properties of one node both masked) = alpha^2
    a = torch.full((B,), 0.3)
    ns, _ = M.sample_component_masks(node_mask, a)
    both = (ns[..., 0] & ns[..., 1])[node_mask].float().mean()
    assert abs(float(both) - 0.09) < 0.015
    masked_nodes, masked_edges = M.apply_masks(torch.zeros(B, N, 6, dtype=torch.long), torch.zeros(B, N, N,
                                               dtype=torch.long), ns, edge_sel, torch.tensor([9, 8, 7, 6, 5, 4]))
    assert (masked_nodes[ns] > 0).all() and (masked_nodes[~ns] == 0).all()
    assert (masked_edges[edge_sel] == M.BOND_MASK).all()


def test_write_data_dir_counts_rejected(tmp_path, capsys):
    summary = write_data_dir(str(tmp_path), {"train": ["CCO", "C1CC", "OCC", "xyz"], "valid": ["C"]}, seed=3,
                             source="test")
    assert summary["splits"]["train"] == {"read": 4, "written": 2, "rejected_by_rdkit": 2,
                                          "rejected_examples": ["C1CC", "xyz"]}
    assert (tmp_path / "train.smi").read_text().split() == ["CCO", "CCO"]  # canonical forms
    assert json.loads((tmp_path / "prepare.json").read_text())["seed"] == 3
    assert "rejected by RDKit 2" in capsys.readouterr().out


def test_prepare_qm9_is_seeded(tmp_path):
    def run(out, seed):
        subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_qm9.py"), "--out", str(out), "--seed",
                        str(seed), "--max-molecules", "300", "--valid-size", "30", "--test-size", "30"],
                       check=True, capture_output=True, text=True)
        return {s: (out / f"{s}.smi").read_text().split() for s in ("train", "valid", "test")}

    a, b = run(tmp_path / "a", 5), run(tmp_path / "b", 5)
    assert a == b
    assert [len(a[s]) for s in ("train", "valid", "test")] == [240, 30, 30]
    summary = json.loads((tmp_path / "a" / "prepare.json").read_text())
    assert summary["splits"]["train"]["rejected_by_rdkit"] == 0 and summary["source"].startswith("qm9pack")
