"""iterref-benchmark-nat and iterref-analyze-nat-steps on tiny data: every system decodes every sentence; JSON and
markdown are written; the deprecated names and flags still work."""
import json
import math

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
    proc = cli("iterref-benchmark-nat", tiny_data, "--path", tiny_checkpoint, "--ar-path", tiny_ar, "--cpu",
               "--refs", ref, ref, "--systems", "ar:1,ar:2,nat:1,nat:3,nat:adaptive", "--speed-sentences", "4",
               "--target-lang", "en", "--out", out, "--save-hypotheses", tmp_path / "hyps")
    assert proc.returncode == 0
    result = json.loads(out.read_text())
    names = [r["system"] for r in result["rows"]]
    assert names == ["AR b=1", "AR b=2", "NAT idec=1", "NAT idec=3", "NAT adaptive"]
    for row in result["rows"]:
        assert 0.0 <= row["bleu"] <= 100.0
        details = row["bleu_details"]  # BLEU = BP x geometric mean of the precisions, BP = min(1, e^(1 - 1/ratio))
        ratio, precisions = details["length_ratio"], details["precisions"]
        assert ratio > 0 and len(precisions) == 4
        assert details["brevity_penalty"] == pytest.approx(min(1.0, math.exp(1 - 1 / ratio)), rel=1e-6)
        if min(precisions) > 0:
            geo = math.exp(sum(math.log(p / 100) for p in precisions) / 4)
            assert row["bleu"] == pytest.approx(100 * details["brevity_penalty"] * geo, rel=1e-6)
        assert row["batched"]["sentences"] == 24 and row["batch1"]["sentences"] == 4
        assert row["batched"]["src_tokens_per_s"] > 0
    steps = {r["system"]: r["mean_steps"] for r in result["rows"]}
    assert steps["NAT idec=1"] == 1 and steps["NAT idec=3"] == 3 and 1 <= steps["NAT adaptive"] <= 20
    assert "hardware" in result and result["seed"] == 1 and result["cuda"] is False
    assert result["split"] == "test" and result["nat"] == str(tiny_checkpoint) and result["ar"] == str(tiny_ar)
    md = out.with_suffix(".md").read_text()
    assert "| NAT adaptive |" in md
    assert len((tmp_path / "hyps" / "NAT_idec3.txt").read_text().splitlines()) == 24


def test_speed_rounds_interleave_systems_and_report_the_median(tiny_data, tiny_checkpoint, tiny_ar, tmp_path):
    out = tmp_path / "rounds.json"
    proc = cli("iterref-benchmark-nat", tiny_data, "--path", tiny_checkpoint, "--ar-path", tiny_ar, "--cpu",
               "--systems", "ar:1,nat:2", "--speed-sentences", "3", "--speed-rounds", "3", "--out", out)
    rounds = [line.split("timing ", 1)[1] for line in proc.stderr.splitlines() if "sentence by sentence on" in line]
    # every round times both systems before the next round starts
    assert [(r.split(" sentence")[0], r.rsplit("(round ", 1)[1]) for r in rounds] == [
        (name, f"{k} of 3)") for k in (1, 2, 3) for name in ("AR b=1", "NAT idec=2")]
    for row in json.loads(out.read_text())["rows"]:
        b1 = row["batch1"]
        assert len(b1["seconds_per_round"]) == 3 and b1["sentences"] == 3
        assert b1["seconds"] == sorted(b1["seconds_per_round"])[1]
        assert b1["src_tokens_per_s"] == pytest.approx(b1["src_tokens"] / b1["seconds"])
    assert "median of 3 rounds" in out.with_suffix(".md").read_text()
    bad = cli("iterref-benchmark-nat", tiny_data, "--path", tiny_checkpoint, "--speed-rounds", "0",
              "--out", tmp_path / "x.json", check=False)
    assert bad.returncode != 0 and "--speed-rounds must be >= 1, got 0" in bad.stderr


def test_deprecated_name_and_flags_still_benchmark(tiny_data, tiny_checkpoint, tmp_path, capsys):
    # in-process (the subprocess behaviour of the alias is in test_console_scripts.py): old name, old flags
    from iterref_fairseq.cli import aliases

    out = tmp_path / "old.json"
    status = aliases.benchmark_decode(["--data", str(tiny_data), "--nat", str(tiny_checkpoint), "--split", "valid",
                                       "--systems", "nat:2", "--speed-sentences", "0", "--cuda", "--cpu",
                                       "--out", str(out)])
    assert status == 0
    err = capsys.readouterr().err
    assert err.startswith("iterref-benchmark-decode is deprecated, use iterref-benchmark-nat\n")
    for flag in ("--data", "--nat", "--split", "--cuda"):
        assert f"iterref-benchmark-nat: warning: {flag} is deprecated" in err
    result = json.loads(out.read_text())
    assert result["split"] == "valid" and [r["system"] for r in result["rows"]] == ["NAT idec=2"]
    assert result["rows"][0]["batched"]["sentences"] == 24 and out.with_suffix(".md").exists()


def test_benchmark_bad_systems_and_values(tiny_data, tiny_checkpoint, tmp_path, capsys):
    from iterref_fairseq.cli import benchmark_nat

    def run(*argv):
        status = benchmark_nat.main([str(tiny_data), "--out", str(tmp_path / "r.json"), *map(str, argv)])
        return status, capsys.readouterr().err.strip().splitlines()[-1]

    status, err = run("--systems", "foo:1")
    assert status == 2 and err.startswith("iterref-benchmark-nat: error: --systems: bad entry 'foo:1'")
    status, err = run("--systems", "nat:0", "--path", tiny_checkpoint)
    assert status == 2 and "beams and idec are integers >= 1" in err
    status, err = run("--systems", "ar:1", "--path", tiny_checkpoint)
    assert status == 2 and "--systems asks for ar but --ar-path CHECKPOINT is missing" in err
    status, err = run("--systems", "nat:1", "--path", tiny_checkpoint, "--refs", tmp_path / "none.ref")
    assert status == 2 and f"reference file not found: {tmp_path / 'none.ref'}" in err
    status, err = run("--systems", "nat:1", "--path", tiny_checkpoint, "--gen-subset", "nosuch")
    assert status == 2 and "--gen-subset nosuch" in err
    status, err = run("--systems", "nat:1", "--path", tiny_checkpoint, "--fp16", "--cpu")
    assert status == 2 and "--fp16 needs a GPU" in err
    assert not (tmp_path / "r.json").exists()


def test_analyze_nat_steps_reports_every_step(tiny_data, tiny_checkpoint, tmp_path):
    out = tmp_path / "steps.json"
    proc = cli("iterref-analyze-nat-steps", tiny_data, "--path", tiny_checkpoint, "--gen-subset", "valid",
               "--max-examples", "7", "--steps", "3", "--batch-size", "4", "--cpu", "--out", out)
    assert proc.returncode == 0
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    assert row["sentences"] == 7 and row["tokens"] > 7 and result["steps"] == 3 and result["split"] == "valid"
    assert len(row["nll"]) == len(row["accuracy"]) == 3
    assert all(n > 0 for n in row["nll"]) and all(0.0 <= a <= 1.0 for a in row["accuracy"])
    assert "| checkpoint_last.pt |" in proc.stdout
    assert "| checkpoint_last.pt |" in out.with_suffix(".md").read_text()


def test_analyze_nat_steps_batches_do_not_change_the_numbers(tiny_data, tiny_checkpoint, tmp_path, capsys):
    # in-process; the old positional form (CHECKPOINT... --data DATA) still works and warns
    from iterref_fairseq.cli import analyze_nat_steps

    outs = []
    for argv in ([str(tiny_checkpoint), "--data", str(tiny_data), "--batch-size", "50"],
                 [str(tiny_data), "--path", str(tiny_checkpoint), "--batch-size", "3"]):
        out = tmp_path / f"s{len(outs)}.json"
        assert analyze_nat_steps.main([*argv, "--gen-subset", "valid", "--max-examples", "10", "--steps", "2",
                                       "--cpu", "--out", str(out)]) == 0
        outs.append(json.loads(out.read_text())["rows"][0])
    assert "checkpoints as positional arguments are deprecated" in capsys.readouterr().err
    assert outs[0]["tokens"] == outs[1]["tokens"] and outs[0]["sentences"] == 10
    assert outs[0]["nll"] == pytest.approx(outs[1]["nll"], rel=1e-5)
    assert outs[0]["accuracy"] == pytest.approx(outs[1]["accuracy"])
    assert analyze_nat_steps.main([str(tiny_data), "--path", str(tiny_data / "dict.src.txt")]) == 2
    assert "cannot read checkpoint" in capsys.readouterr().err


def test_refinement_nat_systems_decode_like_the_main_nat(tiny_data, tiny_checkpoint, tmp_path):
    """--refinement-nat NAME=PATH is decoded with this package's generator: the same checkpoint as --path gives
    the same hypotheses, BLEU and passes, and its refinement-pass time is reported."""
    out = tmp_path / "two.json"
    ref = tiny_data.parent / "raw" / "test.tgt"
    cli("iterref-benchmark-nat", tiny_data, "--path", tiny_checkpoint, "--refinement-nat",
        f"again={tiny_checkpoint}", "--cpu", "--refs", ref, "--systems", "nat:1,nat:10,again:1,again:10",
        "--speed-sentences", "3", "--target-lang", "en", "--out", out, "--save-hypotheses", tmp_path / "h")
    result = json.loads(out.read_text())
    rows = {r["system"]: r for r in result["rows"]}
    for idec in ("1", "10"):
        assert rows[f"NAT idec={idec}"]["bleu"] == rows[f"again idec={idec}"]["bleu"]
        assert rows[f"NAT idec={idec}"]["mean_steps"] == rows[f"again idec={idec}"]["mean_steps"] == int(idec)
        assert (tmp_path / "h" / f"NAT_idec{idec}.txt").read_text() == \
            (tmp_path / "h" / f"again_idec{idec}.txt").read_text()
    assert set(result["refinement_pass_ms"]) == {"nat", "again"}
    assert "One refinement pass at batch 1" in out.with_suffix(".md").read_text()


def test_content_tokens_leave_out_pad_eos_and_bos():
    import torch
    from fairseq.data import Dictionary

    from iterref_fairseq.cli.benchmark_nat import content_tokens

    d = Dictionary()
    a, b = d.add_symbol("a"), d.add_symbol("b")
    # a translation_lev source (BOS first) and a translation source, left-padded: both hold 3 and 2 words
    lev = torch.tensor([[d.bos(), a, b, a, d.eos()], [d.pad(), d.bos(), b, b, d.eos()]])
    plain = torch.tensor([[a, b, a, d.eos()], [d.pad(), b, b, d.eos()]])
    assert content_tokens(lev, d) == content_tokens(plain, d) == 5


def test_refinement_pass_time_from_idec_rows():
    from iterref_fairseq.cli.benchmark_nat import refinement_pass_ms

    def row(kind, setting, seconds, sentences, steps):
        return {"kind": kind, "setting": setting,
                "batch1": {"seconds": seconds, "sentences": sentences, "mean_steps": steps}}

    rows = [row("ar", "4", 9.0, 10, None), row("nat", "1", 1.0, 10, 1), row("nat", "10", 10.0, 10, 10),
            row("cmlm", "1", 2.0, 10, 2), row("cmlm", "10", 5.0, 10, 8), row("other", "adaptive", 1.0, 10, 3)]
    # nat: (1.0 - 0.1) s per sentence over 9 extra passes; cmlm: (0.5 - 0.2) s over 6 extra passes
    assert refinement_pass_ms(rows) == pytest.approx({"nat": 100.0, "cmlm": 50.0})


def test_refinement_nat_flag_needs_a_name(tiny_data, tiny_checkpoint, tmp_path, capsys):
    from iterref_fairseq.cli import benchmark_nat

    for item in (str(tiny_checkpoint), f"nat={tiny_checkpoint}"):
        status = benchmark_nat.main([str(tiny_data), "--refinement-nat", item, "--out", str(tmp_path / "r.json")])
        assert status == 2
        assert "use NAME=PATH with a NAME other than ar and nat" in capsys.readouterr().err
