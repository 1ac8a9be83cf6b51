"""examples/lanmt/two_mode_toy.py: its corpus and how it scores fairseq-generate output (the training pipeline is
exercised by tests/test_learning.py::test_lanmt_refinement_resolves_the_mode_the_prior_cannot_know)."""
import importlib.util

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("two_mode_toy", REPO / "examples" / "lanmt" / "two_mode_toy.py")
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)


def test_corpus_has_one_vocabulary_per_sentence_and_both_modes(tmp_path):
    toy.write_corpus(tmp_path, 400, 30, seed=3)
    src = (tmp_path / "train.src").read_text().splitlines()
    tgt = (tmp_path / "train.tgt").read_text().splitlines()
    assert len(src) == len(tgt) == 400 and len((tmp_path / "test.src").read_text().splitlines()) == 30
    modes = []
    for s, t in zip(src, tgt):
        s, t = s.split(), t.split()
        assert 3 <= len(s) <= 8 and len(t) == len(s)
        assert len({w[0] for w in t}) == 1 and [w[1:] for w in t] == [w[1:] for w in s]
        modes.append(t[0][0])
    assert 0.4 < modes.count("a") / len(modes) < 0.6  # a fair coin per sentence


@pytest.mark.parametrize("hyp,expected", [("a3 a7 a1", True), ("b3 b7 b1", True), ("a3 b7 a1", False),
                                          ("a3 a7", False), ("a3 a1 a7", False), ("c3 c7 c1", False)])
def test_consistent_means_the_source_in_one_vocabulary(hyp, expected):
    assert toy.consistent("w3 w7 w1", hyp) is expected


def test_generate_output_is_scored_by_the_chosen_hypothesis():
    out = "\n".join([
        "S-0\tw1 w2", "T-0\ta1 a2", "H-0\t-0.1\tb1 b2", "H-0\t-0.5\ta1 a2", "I-0\t2",   # nbest: the first H counts
        "S-1\tw4 w5 w6", "T-1\tb4 b5 b6", "H-1\t-0.2\tb4 b5 b6", "I-1\t1",
        "S-2\tw7", "T-2\ta7", "H-2\t-0.3\tb7 a7", "I-2\t3",
    ])
    assert toy.score_generate(out) == pytest.approx(
        {"sentences": 3, "consistent": 2 / 3, "exact": 1 / 3, "decoder_passes": 2.0})


def test_generate_output_without_hypotheses_stops():
    with pytest.raises(SystemExit, match="no hypothesis"):
        toy.score_generate("S-0\tw1\nT-0\ta1\n")
