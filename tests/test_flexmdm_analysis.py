"""Order analysis (paper Fig. 5) and the molecule-string task: metrics, data preparation, sampling CLI."""
import json
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from iterref_fairseq.cli.analyze_star_order import choice_last, order_pairs, pearson, summarize
from iterref_fairseq.metrics.molecule_strings import string_metrics, tokenize

from conftest import REPO, USER_DIR, cli


# ------------------------------------------------------------------ order analysis
def _record(path, junction, reveal, correct=True):
    return {"path": path, "junction": junction, "reveal_steps": reveal, "total_steps": 10, "correct": correct}


def test_order_pairs_and_correlation_signs():
    path = [7, 3, 5, 9, 2]  # junction 5 in the middle; target tokens 7 3 3 5 5 9 9 2 (nodes 0 1 1 2 2 3 3 4)
    reveal = [1, 2, 2, 3, 3, 2, 2, 1]  # arm ends first, junction last
    assert order_pairs(path, 5, reveal, 10) == [(0.5, 0.1), (0.25, 0.2), (0.25, 0.2), (0.0, 0.3), (0.0, 0.3),
                                                (0.25, 0.2), (0.25, 0.2), (0.5, 0.1)]
    star = [4, 6, 8]  # junction = source 4 (easy's layout): tokens 4 6 6 8
    ends_first = summarize([_record(path, 5, reveal), _record(star, 4, [3, 2, 2, 1])])
    d = [0.5, 0.25, 0.25, 0, 0, 0.25, 0.25, 0.5, 0, 0.5, 0.5, 1]  # pooled over both paths, by hand
    r = [0.1, 0.2, 0.2, 0.3, 0.3, 0.2, 0.2, 0.1, 0.3, 0.2, 0.2, 0.1]
    assert ends_first["pearson"] == pytest.approx(float(np.corrcoef(d, r)[0, 1])) and ends_first["pearson"] < -0.8
    assert ends_first["mean_per_example_pearson"] == pytest.approx(-1.0)
    assert ends_first["choice_revealed_last"] == 1.0
    junction_first = summarize([_record(path, 5, [3, 2, 2, 1, 1, 2, 2, 3])])
    assert junction_first["pearson"] == pytest.approx(1.0) and "pearson_insert" not in junction_first
    assert junction_first["choice_revealed_last"] == 0.0
    both = summarize([{**_record(path, 5, [3, 2, 2, 1, 1, 2, 2, 3]), "insert_steps": reveal}])
    assert both["pearson"] == pytest.approx(1.0) and both["pearson_insert"] == pytest.approx(-1.0)
    # the choice (token 2j + 1 = 5, node 9) tied with the goal side's last token still counts as last
    assert choice_last(path, 5, [1, 1, 1, 1, 1, 4, 4, 4]) and not choice_last(path, 5, [1, 1, 1, 1, 1, 3, 3, 4])
    assert choice_last([4, 6], 4, [1, 2]) is None  # nothing follows the choice node
    # wrong outputs are excluded; none correct -> no pairs, NaN correlation, 0 % exact match
    none = summarize([_record(path, 5, reveal, correct=False)])
    assert none["tokens"] == 0 and math.isnan(none["pearson"]) and none["exact_match"] == 0.0
    assert math.isnan(none["choice_revealed_last"])
    assert math.isnan(pearson([1.0], [2.0]))
    with pytest.raises(ValueError, match="junction 42 is not on the path"):
        order_pairs(path, 42, [1] * 8, 10)
    with pytest.raises(ValueError, match="5 reveal steps for a path of 5 nodes: expected one per target token"):
        order_pairs(path, 5, [1] * 5, 10)


# ------------------------------------------------------------------ molecule strings
def test_tokenizer_round_trip_and_error():
    for s in ["CC(=O)Oc1ccccc1C(=O)O", "C[C@@H](N)C(=O)O", "c1ccc2c(c1)[nH]c1ccccc12", "ClCBr", "C1CC%10CC1"]:
        assert "".join(tokenize(s)) == s
    assert tokenize("CCl") == ["C", "Cl"] and tokenize("[NH4+]C") == ["[NH4+]", "C"]
    with pytest.raises(ValueError, match="cannot tokenize molecule string 'CC€'"):
        tokenize("CC€")


def test_string_metrics_against_rdkit():
    from rdkit import Chem
    from rdkit.Chem import QED

    from iterref_fairseq.metrics.molecule_strings import sa_score

    gen = ["CCO", "OCC", "c1ccccc1", "C1CC", "", "CC(=O)Oc1ccccc1C(=O)O", "CN1CCC[C@H]1c1cccnc1"]
    m = string_metrics(gen)
    valid = [Chem.MolFromSmiles(s) for s in gen if s and Chem.MolFromSmiles(s) is not None]
    assert m["n"] == 7 and m["validity"] == pytest.approx(len(valid) / 7) and len(valid) == 5
    assert m["uniqueness"] == pytest.approx(4 / 5)  # CCO == OCC after canonicalisation
    expected_q = sum(QED.qed(x) >= 0.6 and sa_score(x) <= 4 for x in valid) / 7
    assert m["quality"] == pytest.approx(expected_q)
    assert 0.0 < m["diversity"] <= 1.0
    assert string_metrics(["CCO", "CCO"])["diversity"] is None  # undefined with one unique molecule
    with pytest.raises(ValueError, match="no generated molecules"):
        string_metrics([])


@pytest.mark.slow
def test_molecule_task_prepare_train_sample(tmp_path):
    smi = tmp_path / "smi"
    smi.mkdir()
    pool = ["CCO", "CCN", "c1ccccc1O", "CC(=O)O", "CCOC(=O)C", "c1ccncc1", "CC(C)O", "OCCN", "CCCl", "C1CCCCC1"]
    for split, n in (("train", 120), ("valid", 8), ("test", 8)):
        (smi / f"{split}.smi").write_text("".join(pool[i % len(pool)] + "\n" for i in range(n)))
    data = tmp_path / "bin"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "prepare_molecule_strings.py"), "--out", data,
                           "--smi-dir", smi, "--valid-size", "8", "--max-test", "8"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1][5:])
    assert summary["train"] == 120 and summary["skipped"]["train"] == 0
    ckpt_dir = tmp_path / "ckpt"
    cli("fairseq-train", data, "--user-dir", USER_DIR, "--task", "molecule_strings", "-s", "src", "-t", "tgt",
        "--arch", "lflexmdm_tiny", "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64", "--decoder-layers",
        "1", "--decoder-attention-heads", "2", "--aux-embed-dim", "16", "--aux-attention-heads", "2",
        "--criterion", "flexmdm_loss", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "500",
        "--max-update", "4", "--cpu", "--save-dir", ckpt_dir, "--no-epoch-checkpoints", "--seed", "1")
    proc = cli("iterref-generate-molecule-strings", data, "--path", ckpt_dir / "checkpoint_last.pt", "--num-samples",
               "6", "--batch-size", "4", "--sampling-steps", "6", "--cpu", "--out", tmp_path / "gen.txt")
    assert proc.returncode == 0
    res = json.loads(re.search(r"^JSON (.*)$", proc.stdout, re.M).group(1))
    assert res["n"] == 6 and 0 <= res["validity"] <= 100 and res["format"] == "smiles" and res["device"] == "cpu"
    assert len((tmp_path / "gen.txt").read_text().splitlines()) == 6
    assert json.loads((tmp_path / "gen.txt.json").read_text()) == res  # the summary beside --out


def test_molecule_cli_bad_data_dir(tmp_path, capsys):
    from iterref_fairseq.cli.generate_molecule_strings import main

    assert main([str(tmp_path), "--path", str(tmp_path / "x.pt")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} has no dict.src.txt" in err and "prepare_molecule_strings.py" in err
    (tmp_path / "dict.src.txt").write_text("MOL 1\n")
    assert main([str(tmp_path), "--path", str(tmp_path / "x.pt")]) == 2
    assert f"checkpoint not found: {tmp_path / 'x.pt'}" in capsys.readouterr().err
    assert main([str(tmp_path), "--path", str(tmp_path / "x.pt"), "--num-samples", "0"]) == 2
    assert "--num-samples must be >= 1, got 0" in capsys.readouterr().err


def test_order_plot_is_written(tmp_path):
    from iterref_fairseq.cli.analyze_star_order import plot

    pairs = order_pairs([7, 3, 5, 9, 2], 5, [1, 2, 2, 3, 3, 2, 2, 1], 10) + order_pairs([4, 6, 8], 4, [3, 2, 2, 1], 10)
    out = tmp_path / "order.png"
    plot(pairs, out, "test")
    assert out.stat().st_size > 1000 and out.read_bytes()[:4] == b"\x89PNG"
