"""End to end through the real fairseq CLIs with --user-dir: preprocess -> train -> generate -> interactive.

Every fairseq-generate call runs in a new process, so each also checks that a checkpoint written by one
process (fairseq-train) loads in another under torch >= 2.6 without any environment variable.
"""
import re
import shutil
from collections import defaultdict

import pytest

from conftest import USER_DIR, binarize, cli, generate_refine, tagged_lines, write_reversal_corpus

pytestmark = pytest.mark.slow

N_TEST = 24


def test_generate_adaptive_every_sentence_with_steps(tiny_data, tiny_checkpoint):
    out = generate_refine(tiny_data, tiny_checkpoint, "--iter-decode-max-iter", "10", "--print-step").stdout
    hyps, steps = tagged_lines(out, "H"), tagged_lines(out, "I")
    assert sorted(hyps) == list(range(N_TEST)), "no test sentence may be skipped (batch tail included)"
    assert all(1 <= int(s[0]) <= 10 for s in steps.values())


def test_generate_forced_iterations(tiny_data, tiny_checkpoint):
    out = generate_refine(tiny_data, tiny_checkpoint, "--iter-decode-max-iter", "4", "--iter-decode-force-max-iter",
                          "--print-step").stdout
    assert {int(s[0]) for s in tagged_lines(out, "I").values()} == {4}


def test_generate_history_has_one_entry_per_pass(tiny_data, tiny_checkpoint):
    out = generate_refine(tiny_data, tiny_checkpoint, "--iter-decode-max-iter", "6", "--retain-iter-history",
                          "--print-step").stdout
    steps = tagged_lines(out, "I")
    history = defaultdict(int)
    for line in out.splitlines():
        m = re.match(r"^E-(\d+)_(\d+)\t", line)
        if m:
            history[int(m.group(1))] += 1
    assert history and all(history[i] == int(steps[i][0]) for i in steps)


def test_generate_length_beam_returns_sorted_candidates(tiny_data, tiny_checkpoint):
    out = generate_refine(tiny_data, tiny_checkpoint, "--iter-decode-with-beam", "3", "--nbest", "3").stdout
    hyps = tagged_lines(out, "H")
    assert sorted(hyps) == list(range(N_TEST))
    for cands in hyps.values():
        assert len(cands) == 3
        scores = [float(c.split("\t")[0]) for c in cands]
        assert scores == sorted(scores, reverse=True)


def test_generate_oracle_length_matches_reference_length(tiny_data, tiny_checkpoint):
    out = generate_refine(tiny_data, tiny_checkpoint, "--oracle-length", "--keep-repeats",
                          "--stop-criterion", "jaccard").stdout
    hyps, refs = tagged_lines(out, "H"), tagged_lines(out, "T")
    for i, ref in refs.items():
        assert len(hyps[i][0].split("\t")[1].split()) == len(ref[0].split())


def test_interactive_translates_and_warns_on_unknown_and_empty(tiny_data, tiny_checkpoint):
    proc = cli("fairseq-interactive", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine",
               "--path", tiny_checkpoint, "--cpu", "--source-lang", "src", "--target-lang", "tgt",
               "--iter-decode-max-iter", "3", input_text="w1 w2 w3\nw4 zzzunknown w5\n\n")
    hyps = tagged_lines(proc.stdout, "H")
    assert sorted(hyps) == [0, 1, 2]
    assert hyps[2][0].split("\t")[1:] in ([], [""]), "an empty line gets an empty translation"
    assert "read as <unk>" in proc.stderr
    assert "source sentence" in proc.stderr and "is empty" in proc.stderr


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("value", ["0", "-2"])
def test_bad_max_iter_is_a_clear_error(tiny_data, tiny_checkpoint, value):
    proc = generate_refine(tiny_data, tiny_checkpoint, "--iter-decode-max-iter", value, check=False)
    assert proc.returncode != 0
    assert "--iter-decode-max-iter must be >= 1" in proc.stderr


def test_missing_and_corrupt_checkpoint(tiny_data, tiny_checkpoint, tmp_path):
    missing = tmp_path / "nope.pt"
    proc = generate_refine(tiny_data, missing, check=False)
    assert proc.returncode != 0 and f"not found: {missing}" in proc.stderr
    bad = tmp_path / "bad.pt"
    bad.write_bytes(tiny_checkpoint.read_bytes()[:2000])
    proc = generate_refine(tiny_data, bad, check=False)
    assert proc.returncode != 0 and f"cannot read checkpoint {bad}" in proc.stderr


def test_dictionary_mismatch(tiny_checkpoint, tmp_path):
    write_reversal_corpus(tmp_path / "raw", 50, 5, seed=1, vocab=40)
    other = binarize(tmp_path / "raw", tmp_path / "bin")
    proc = generate_refine(other, tiny_checkpoint, check=False)
    assert proc.returncode != 0 and "dictionary mismatch" in proc.stderr


def test_over_long_sentence_is_reported_not_dropped(tiny_data, tiny_checkpoint, tmp_path):
    write_reversal_corpus(tmp_path / "raw", 20, 4, seed=2, min_len=30, max_len=30)
    data = tmp_path / "bin"
    shutil.copytree(tiny_data, data)
    for f in data.glob("test.*"):
        f.unlink()
    cli("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--testpref", tmp_path / "raw" / "test",
        "--destdir", data, "--srcdict", data / "dict.src.txt", "--tgtdict", data / "dict.tgt.txt", "--workers", "1")
    proc = generate_refine(data, tiny_checkpoint, "--max-source-positions", "10", check=False)
    assert proc.returncode != 0
    assert "skip-invalid-size-inputs-valid-test" in proc.stderr
