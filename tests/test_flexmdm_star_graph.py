"""Star-graph data and the FlexMDM / LFlexMDM / AR pipeline through fairseq-train and fairseq-generate."""
import json
import re

import networkx as nx
import pytest

from iterref_fairseq.data.star_graphs import (DIFFICULTIES, failure_kind, failure_report, generate_splits, graph_of,
                                               is_valid_path, junction_of, parse_prompt)

from conftest import USER_DIR, cli


@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
def test_every_target_is_the_unique_path_through_the_junction(difficulty):
    cfg = DIFFICULTIES[difficulty]
    splits = generate_splits(difficulty, seed=5, sizes={"train": 150, "valid": 20, "test": 30})
    keys = [ex.key() for exs in splits.values() for ex in exs]
    assert len(keys) == len(set(keys)) == 200, "no graph/query repeats within or across splits"
    for ex in (ex for exs in splits.values() for ex in exs):
        edges, source, goal = parse_prompt(ex.prompt())
        assert sorted(map(sorted, edges)) == sorted(map(sorted, ex.edges))
        g = graph_of(edges)
        assert nx.is_tree(g) and junction_of(edges) == ex.junction and g.degree(ex.junction) == cfg["degree"]
        path = [int(x) for x in ex.target().split()]
        assert is_valid_path(edges, source, goal, path) and ex.junction in path[1:-1]
        assert list(nx.all_simple_paths(g, source, goal)) == [path], "the target is the only path"
        assert max(max(e) for e in edges) < cfg["n_ids"]
        arm_lengths = [len(p) - 1 for p in (path[: path.index(ex.junction) + 1], path[path.index(ex.junction):])]
        assert all(cfg["arm_min"] <= n <= cfg["arm_max"] for n in arm_lengths)


def test_generation_is_reproducible_and_seed_dependent():
    a = generate_splits("medium", 1, {"test": 10})["test"]
    b = generate_splits("medium", 1, {"test": 10})["test"]
    c = generate_splits("medium", 2, {"test": 10})["test"]
    assert a == b and a != c


def test_path_validator_rejects_wrong_paths():
    edges = [(0, 1), (1, 2), (1, 3), (2, 4), (3, 5), (1, 6), (6, 7)]
    assert is_valid_path(edges, 4, 5, [4, 2, 1, 3, 5])
    assert not is_valid_path(edges, 4, 5, [4, 2, 3, 5])  # not an edge
    assert not is_valid_path(edges, 4, 5, [4, 2, 1, 3])  # wrong end
    assert not is_valid_path(edges, 4, 5, [4, 2, 1, 2, 1, 3, 5])  # repeats


DOC_PROMPT, DOC_TARGET = "4 17 , 9 4 , 3 4 , 17 2 , 11 9 , 5 3 | 11 2", "11 9 4 17 2"  # junction 4 at index 2


@pytest.mark.parametrize("hypothesis,kind", [
    ("11 9 4 17 2", "exact"), ("11 9 4 3 5", "wrong_arm"), ("11 9 4 3 5 2", "wrong_arm"),
    ("11 9 4 17", "on_goal_arm"), ("11 9 4 17 2 2", "on_goal_arm"), ("11 9 4 17 5", "on_goal_arm"),
    ("11 4 17 2", "before_junction"), ("9 4 17 2", "before_junction"), ("", "before_junction"),
    ("11 9", "before_junction"), ("11 9 3 17 2", "before_junction")])
def test_failure_kind_locates_the_first_wrong_token_relative_to_the_junction(hypothesis, kind):
    assert failure_kind(DOC_PROMPT, DOC_TARGET, hypothesis) == kind


def test_failure_report_counts():
    hyps = ["11 9 4 17 2", "11 9 4 3 5", "11 9 4 3 5 2", "11 4 17 2", "2 9 4 17 11"]
    report = failure_report([(DOC_PROMPT, DOC_TARGET, h) for h in hyps])
    assert report == {"exact": 1, "wrong_arm": 2, "before_junction": 2, "on_goal_arm": 0, "total": 5,
                      "right_length": 3, "source_token_right": 4, "goal_token_right": 3,
                      "token_accuracy_right_length": round((5 + 3 + 3) / 15, 4)}
    with pytest.raises(ValueError, match="does not pass a junction"):
        failure_kind("1 2 , 2 3 | 1 3", "1 2 3", "1 3")


@pytest.mark.parametrize("line", ["1 2 , 2 3", "1 2 , 2 | 1 3", "a b | 1 2"])
def test_malformed_prompt_is_a_clear_error(line):
    with pytest.raises(ValueError, match="malformed star-graph prompt .*expected 'u v , u v , ... \\| source goal'"):
        parse_prompt(line)


def test_make_star_graphs_bad_arguments(tmp_path, capsys):
    # in-process (the console script's exit status on bad input is checked in test_console_scripts.py)
    from iterref_fairseq.cli.make_star_graphs import main

    with pytest.raises(SystemExit) as exc:
        main(["--difficulty", "extreme", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "invalid choice: 'extreme'" in err and "easy" in err
    assert main(["--difficulty", "easy", "--out", str(tmp_path), "--test", "0"]) == 2
    assert "iterref-make-star-graphs: error: --test must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


def test_insertion_model_on_a_dictionary_without_mask_is_a_clear_error():
    import argparse

    from fairseq.data import Dictionary

    from iterref_fairseq.models.flexmdm import FlexMDMModel, flexmdm_tiny

    d = Dictionary()
    d.add_symbol("1")
    args = argparse.Namespace()
    flexmdm_tiny(args)
    with pytest.raises(ValueError, match="has no <mask> symbol; use --task star_graph or --task molecule_strings"):
        FlexMDMModel(args, d, d)


# ------------------------------------------------------------------ end to end (fairseq CLIs)
TINY = ["--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64", "--decoder-layers", "1",
        "--decoder-attention-heads", "2"]


@pytest.fixture(scope="module")
def star_data(tmp_path_factory):
    # medium: prompts and paths of varying length, so batches are padded (the order analysis once choked on pads)
    out = tmp_path_factory.mktemp("star") / "medium"
    proc = cli("iterref-make-star-graphs", "--difficulty", "medium", "--seed", "3", "--out", out,
               "--train", "200", "--valid", "16", "--test", "12")
    summary = json.loads(proc.stdout.strip().splitlines()[-1][len("JSON "):])
    assert summary["train"] == 200 and (out / "train.src-tgt.src.bin").exists()
    return out


def _train(data, save_dir, *flags):
    cli("fairseq-train", data, "--user-dir", USER_DIR, "--task", "star_graph", "-s", "src", "-t", "tgt",
        "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "600", "--max-update", "6", "--cpu",
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "simple", "--seed", "1", *flags)
    assert (save_dir / "checkpoint_last.pt").exists()
    return save_dir / "checkpoint_last.pt"


def _generate(data, ckpt, *flags, check=True):
    return cli("fairseq-generate", data, "--user-dir", USER_DIR, "--task", "star_graph", "-s", "src", "-t", "tgt",
               "--path", ckpt, "--cpu", "--batch-size", "5", "--scoring", "exact_match", *flags, check=check)


@pytest.mark.slow
@pytest.mark.parametrize("arch,extra", [("flexmdm_tiny", []), ("lflexmdm_tiny", ["--aux-embed-dim", "16",
                                                                                  "--aux-attention-heads", "2"])])
def test_train_and_generate_insertion_models(star_data, tmp_path, arch, extra):
    ckpt = _train(star_data, tmp_path, "--arch", arch, "--criterion", "flexmdm_loss", *TINY, *extra)
    out = _generate(star_data, ckpt, "--sampling-steps", "8", "--confidence", "top_prob", "--sampler-seed", "0",
                    "--max-insert-length", "9").stdout
    hyps = {int(m.group(1)): m.group(2) for m in re.finditer(r"^H-(\d+)\t\S+\t?(.*)$", out, re.M)}
    assert sorted(hyps) == list(range(12)), "every test example gets a hypothesis"
    assert all(len(h.split()) <= 9 and "<mask>" not in h for h in hyps.values())
    summary = json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))
    assert summary["total"] == 12 and 0 <= summary["exact_match"] <= 100
    if arch == "flexmdm_tiny":  # CLI-level checks once (each fairseq-generate run costs a process start)
        again = _generate(star_data, ckpt, "--sampling-steps", "8", "--confidence", "top_prob", "--sampler-seed",
                          "0", "--max-insert-length", "9").stdout
        assert re.findall(r"^H-.*$", again, re.M) == re.findall(r"^H-.*$", out, re.M), "seeded decoding repeats"
        bad = _generate(star_data, ckpt, "--sampling-steps", "0", check=False)
        assert bad.returncode != 0 and "--sampling-steps must be >= 1" in bad.stderr
    else:  # the order analysis CLI on the same checkpoint (no correct path is needed to exercise it)
        proc = cli("iterref-analyze-star-order", star_data, "--path", ckpt, "--sampling-steps", "6",
                   "--max-examples", "6", "--batch-size", "4", "--cpu", "--out", tmp_path / "order.json")
        assert proc.returncode == 0
        summary = json.loads(re.search(r"^JSON (.*)$", proc.stdout, re.M).group(1))
        assert summary["examples"] == 6 and summary["subset"] == "test"
        assert json.loads((tmp_path / "order.json").read_text())["examples"] == 6
        assert "| exact match % |" in (tmp_path / "order.md").read_text()


@pytest.mark.slow
def test_ar_baseline_runs_through_the_same_task(star_data, tmp_path):
    ckpt = _train(star_data, tmp_path, "--arch", "transformer", "--criterion", "cross_entropy",
                  "--encoder-embed-dim", "32", "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                  "--decoder-ffn-embed-dim", "64", "--encoder-layers", "1", "--decoder-layers", "1",
                  "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--share-all-embeddings")
    out = _generate(star_data, ckpt, "--beam", "1").stdout
    assert len(re.findall(r"^H-\d+\t", out, re.M)) == 12
    assert json.loads(re.search(r"^JSON (.*)$", out, re.M).group(1))["total"] == 12
