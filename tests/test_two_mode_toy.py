"""examples/lanmt/two_mode_toy.py: its corpus, how it scores fairseq-generate output, its table and its refusal of a
used work directory. The script's training stages are not run here (about 4 minutes); the learning test
tests/test_learning.py::test_lanmt_refinement_resolves_the_mode_the_prior_cannot_know trains LaNMT and a score
network on the same corpus and checks the prior / delta / score rows."""
import pytest

from conftest import REPO, load_module

toy = load_module(REPO / "examples" / "lanmt" / "two_mode_toy.py")


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


def test_incomplete_generate_output_is_refused():
    with pytest.raises(ValueError, match=r"lacks the hypothesis \(H-\) line"):
        toy.score_generate("S-0\tw1\nT-0\ta1\n")
    with pytest.raises(ValueError, match=r"lacks the source \(S-\) line"):
        toy.score_generate("T-0\ta1\nH-0\t-0.1\ta1\n")
    passes_missing = toy.score_generate("S-0\tw1\nT-0\ta1\nH-0\t-0.1\ta1\nS-1\tw2\nT-1\tb2\nH-1\t-0.1\ta2\nI-0\t1\n")
    assert "decoder_passes" not in passes_missing and passes_missing["consistent"] == 1.0


def test_markdown_lists_every_row_and_the_diagnosis():
    result = {"rows": [{"model": "m", "system": "prior mean", "consistent": 0.25, "exact": 0.125, "decoder_passes": 1.0},
                       {"model": "AR", "system": "greedy", "consistent": 1.0, "exact": 0.5}],
              "diagnosis": {"stage 1": {"kl_per_position": 0.18, "reference_at_true_length": {
                  "posterior mean": {"token_accuracy": 0.99}, "prior mean": {"token_accuracy": 0.5}}}}}
    lines = toy.markdown(result).splitlines()
    assert "| m | prior mean | 0.250 | 0.125 | 1.00 |" in lines
    assert "| AR | greedy | 1.000 | 0.500 | – |" in lines
    assert "| stage 1 | 0.180 | 0.990 / 0.500 |" in lines


def test_a_used_work_directory_is_refused(tmp_path, capsys):
    (tmp_path / "lanmt").mkdir()
    with pytest.raises(SystemExit):
        toy.main(["--work", str(tmp_path), "--out", str(tmp_path / "out.json")])
    assert f"--work {tmp_path} is not empty" in capsys.readouterr().err
