"""examples/flexmdm/summarize_star.py: tables from run dirs, and rows reused from earlier summaries."""
import json
import subprocess
import sys

import torch

from conftest import REPO

SCRIPT = REPO / "examples" / "flexmdm" / "summarize_star.py"
PROMPT = "7 0 3 9 7 3 0 6 9 12 12 5 7 1 1 14 6 11 14 2 11 19 2 8 7 5"   # easy graph, goal 5 (the module docstring)
TARGET = "7 3 3 9 9 12 12 5"


def _generate_txt(hypotheses):
    lines = []
    for i, h in enumerate(hypotheses):
        lines += [f"S-{i}\t{PROMPT}", f"T-{i}\t{TARGET}", f"H-{i}\t-0.1\t{h}"]
    correct = sum(h == TARGET for h in hypotheses)
    lines.append("JSON " + json.dumps({"exact_match": 100.0 * correct / len(hypotheses), "correct": correct,
                                       "total": len(hypotheses)}))
    return "\n".join(lines) + "\n"


def _run_dir(root, name, hypotheses, curve, updates=3000, params=10):
    run = root / name
    (run / "curve").mkdir(parents=True)
    torch.save({"model": {"w": torch.zeros(params)}, "optimizer_history": [{"num_updates": updates}]},
               run / "checkpoint_last.pt")
    (run / "generate.txt").write_text(_generate_txt(hypotheses))
    for n, hyps in curve.items():
        (run / "curve" / f"generate_{n}.txt").write_text(_generate_txt(hyps))
    return run


def _summarize(out, *args, check=True):
    return subprocess.run([sys.executable, str(SCRIPT), "--max-update", "3000", "--batch", "64", "--steps", "64",
                           "--out-dir", str(out), *args], cwd=REPO, capture_output=True, text=True, check=check)


def test_tables_count_failures_and_reuse_earlier_rows(tmp_path):
    wrong_arm, short = "7 0 0 6 6 11 11 19", "7 3 3 9"
    a = _run_dir(tmp_path, "a", [TARGET, wrong_arm, short, TARGET], {1000: [short] * 4, 3000: [TARGET] * 4})
    _summarize(tmp_path / "first", f"easy:lflexmdm:2:{a}", "--tag", "first")
    first = next((tmp_path / "first").glob("flexmdm_star_cpu_first_*.json"))
    row = json.loads(first.read_text())["rows"][0]
    assert (row["exact_match"], row["correct"], row["total"], row["parameters"], row["updates"]) == (50.0, 2, 4, 10,
                                                                                                     3000)
    assert row["failures"]["wrong_arm"] == 1 and row["failures"]["right_length"] == 3
    assert [(p["updates"], p["exact_match"]) for p in row["curve"]] == [(1000, 0.0), (3000, 100.0)]

    # a second table: a new run with other curve points beside the reused row
    b = _run_dir(tmp_path, "b", [wrong_arm] * 2, {2000: [wrong_arm] * 2})
    _summarize(tmp_path / "second", f"easy:flexmdm:2:{b}", "--reuse", str(first), "--tag", "second")
    second = next((tmp_path / "second").glob("flexmdm_star_cpu_second_*.json"))
    rows = json.loads(second.read_text())["rows"]
    assert [(r["variant"], r["exact_match"], r.get("from")) for r in rows] == [("flexmdm", 0.0, None),
                                                                              ("lflexmdm", 50.0, first.name)]
    table = second.with_suffix(".md").read_text()
    assert "| 1000 | 2000 | 3000 |" in table
    assert "| easy | FlexMDM (uniform order) | 2 | - | 0.0 | - |" in table
    assert first.name in table


def test_reuse_refuses_duplicates_and_other_setups(tmp_path):
    a = _run_dir(tmp_path, "a", [TARGET], {})
    _summarize(tmp_path / "first", f"easy:ar:1:{a}", "--tag", "t")
    first = next((tmp_path / "first").glob("*.json"))
    dup = _summarize(tmp_path / "x", f"easy:ar:1:{a}", "--reuse", str(first), check=False)
    assert dup.returncode != 0 and "two rows for easy ar seed 1" in dup.stderr
    other = subprocess.run([sys.executable, str(SCRIPT), "--max-update", "2000", "--batch", "64", "--steps", "64",
                            "--out-dir", str(tmp_path / "y"), "--reuse", str(first)], cwd=REPO,
                           capture_output=True, text=True)
    assert other.returncode != 0 and "its max_update is 3000, this table's is 2000" in other.stderr
