"""Two scripts of examples/refinement_nat on hand-made files: table33.py (Table 3.3 from two benchmark JSONs, repeats
removed / kept) and distilled_stats.py (how distilled targets differ from the references)."""
import json

import pytest

from conftest import REPO, load_module


def _module():
    return load_module(REPO / "examples" / "refinement_nat" / "table33.py")


def _benchmark(bleu, remove_repeats):
    """A benchmark JSON in iterref-benchmark-nat's layout: bleu = {system: (idec1, idec10, adaptive)}."""
    rows = [{"system": "AR b=1", "kind": "ar", "setting": "1", "bleu": 30.0}]
    for name, values in bleu.items():
        for setting, value, steps in zip(("1", "10", "adaptive"), values, (1.0, 10.0, 3.5)):
            rows.append({"system": f"{name} idec={setting}", "kind": name, "setting": setting, "bleu": value,
                         "mean_steps": steps})
    return {"rows": rows, "remove_repeats": remove_repeats, "seed": 1, "refs": ["r"], "split": "test"}


REMOVED = {"nat-s1": (4.0, 6.0, 5.9), "nat-raw-s1": (1.0, 2.5, 2.4), "nat-pdae0-s1": (4.2, 5.0, 5.1)}
KEPT = {"nat-s1": (3.0, 5.25, 5.0), "nat-raw-s1": (0.5, 2.0, 2.0), "nat-pdae0-s1": (3.9, 4.0, 4.0)}
ROWS = ["nat-s1=distilled,0.5", "nat-raw-s1=raw,0.5", "nat-pdae0-s1=distilled,0"]


def _write(tmp_path, removed=REMOVED, kept=KEPT, kept_flag=False):
    a, b = tmp_path / "removed.json", tmp_path / "kept.json"
    a.write_text(json.dumps(_benchmark(removed, True)))
    b.write_text(json.dumps(_benchmark(kept, kept_flag)))
    return a, b


def test_table_lines_and_the_three_contrasts(tmp_path):
    a, b = _write(tmp_path)
    out = tmp_path / "t33.json"
    args = ["--removed", str(a), "--kept", str(b), "--out", str(out)]
    for row in ROWS:
        args += ["--row", row]
    _module().main(args)
    table = json.loads(out.read_text())
    assert [(x["name"], x["repeats"]) for x in table["lines"]] == [
        ("nat-s1", "removed"), ("nat-s1", "kept"), ("nat-raw-s1", "removed"), ("nat-raw-s1", "kept"),
        ("nat-pdae0-s1", "removed"), ("nat-pdae0-s1", "kept")]
    assert table["lines"][1]["scores"]["10"]["bleu"] == 5.25 and table["lines"][4]["pdae"] == 0.0
    contrasts = table["contrasts_bleu_idec10"]
    assert contrasts == {"distillation (distilled - raw)": pytest.approx(3.5), "pDAE 0.5 - pDAE 0": pytest.approx(1.0),
                         "repeat removal (removed - kept)": pytest.approx(0.75)}
    md = out.with_suffix(".md").read_text()
    assert "| nat-raw-s1 | raw | 0.5 | removed | 1.00 | 2.50 | 2.40 (3.5) |" in md
    assert table["provenance"]["seed"] == 1


def test_a_missing_setting_and_mixed_up_files_are_named(tmp_path):
    module = _module()
    a, b = _write(tmp_path, kept={k: v for k, v in KEPT.items() if k != "nat-raw-s1"})
    with pytest.raises(SystemExit, match="kept.json: system nat-raw-s1 has no rows for idec 1, 10, adaptive"):
        module.main(["--removed", str(a), "--kept", str(b), "--out", str(tmp_path / "o.json"), "--row", ROWS[1]])
    a, b = _write(tmp_path, kept_flag=True)
    with pytest.raises(SystemExit, match="--keep-repeats"):
        module.main(["--removed", str(b), "--kept", str(a), "--out", str(tmp_path / "o.json"), "--row", ROWS[0]])
    with pytest.raises(SystemExit, match="expected NAME=DATA,PDAE"):
        module.parse_row("nat-s1")
    with pytest.raises(SystemExit, match="must not be empty"):
        module.parse_row("nat-s1=,0.5")


def test_every_distilled_data_is_contrasted_with_raw():
    module = _module()
    removed = dict(REMOVED, **{"nat-b4-s1": (6.0, 8.0, 8.1)})
    kept = dict(KEPT, **{"nat-b4-s1": (5.0, 7.0, 7.0)})
    rows = [module.parse_row(r) for r in ROWS + ["nat-b4-s1=distilled-beam4,0.5"]]
    table = module.build(_benchmark(removed, True), _benchmark(kept, False), rows)
    assert table["contrasts_bleu_idec10"]["distillation (distilled-beam4 - raw)"] == pytest.approx(5.5)
    assert table["contrasts_bleu_idec10"]["distillation (distilled - raw)"] == pytest.approx(3.5)
    assert len(table["lines"]) == 8


def _stats_module():
    return load_module(REPO / "examples" / "refinement_nat" / "distilled_stats.py")


def test_distilled_target_statistics_on_hand_made_text(tmp_path):
    ref = tmp_path / "ref.en"
    ref.write_text("a b c d\ne f g h\n")
    loop = tmp_path / "loop.en"
    loop.write_text("a a a a\nx y z x y z x y z\n")  # 3 of 13 tokens repeat the one before; sentence 2 loops
    out = tmp_path / "stats.json"
    _stats_module().main(["--reference", str(ref), "--distilled", f"greedy={loop}", "--out", str(out)])
    result = json.loads(out.read_text())
    refs, greedy = result["targets"]["references"], result["targets"]["greedy"]
    assert refs["consecutive_repeats"] == 0 and refs["looping_sentences"] == 0 and refs["types"] == 8
    assert greedy["consecutive_repeats"] == pytest.approx(3 / 13)
    assert greedy["looping_sentences"] == pytest.approx(0.5)  # "a a a a" has the 3-gram (a, a, a) only twice
    assert greedy["types"] == 4 and greedy["mean_length"] == pytest.approx(6.5)
    assert greedy["length_ratio_mean"] == pytest.approx((1 + 9 / 4) / 2)
    assert result["provenance"]["note"]
    short = tmp_path / "short.en"
    short.write_text("a b\n")
    with pytest.raises(SystemExit, match="must pair with the references line by line"):
        _stats_module().main(["--reference", str(ref), "--distilled", f"x={short}", "--out", str(out)])
