"""Star-graph data and the FlexMDM / LFlexMDM / AR pipeline through fairseq-train and fairseq-generate."""
import json
import re

import networkx as nx
import pytest

from iterref_fairseq.data.star_graphs import (BLOCK_SIZES, DIFFICULTIES, failure_kind, failure_report,
                                               generate_splits, graph_of, is_valid_path, junction_of, max_lengths,
                                               parse_prompt, parse_target)

from conftest import USER_DIR, cli


# The module docstring's easy graph, written out by hand: centre (= source) 7, arms 7-3-9-12-5, 7-1-14-2-8,
# 7-0-6-11-19, goal 5; the target is arm 7-3-9-12-5 as edge pairs.
DOC_PROMPT = "7 0 3 9 7 3 0 6 9 12 12 5 7 1 1 14 6 11 14 2 11 19 2 8 7 5"
DOC_TARGET = "7 3 3 9 9 12 12 5"
# A hand-made medium graph: paths 4-8-2-6 (junction 8 at index 1, the target), 8-5-1 (index 0) and 9-3-8-0-7
# (index 2); source 4, goal 6.
MEDIUM_PROMPT = "8 5 3 8 4 8 2 6 9 3 8 0 5 1 8 2 0 7 4 6"
MEDIUM_TARGET = "4 8 8 2 2 6"


def test_hand_made_examples_parse_to_the_paper_format():
    edges, source, goal = parse_prompt(DOC_PROMPT)
    assert (source, goal, len(edges)) == (7, 5, 12) and junction_of(edges) == 7
    assert parse_target(DOC_TARGET) == [7, 3, 9, 12, 5]
    assert is_valid_path(edges, 7, 5, [7, 3, 9, 12, 5])
    assert not is_valid_path(edges, 5, 7, [5, 12, 9, 3, 7]), "edges are directed: the reversed path is not a path"
    assert not is_valid_path(edges, 7, 5, [7, 3, 9, 5]), "9 -> 5 is not an edge"
    edges, source, goal = parse_prompt(MEDIUM_PROMPT)
    assert (source, goal, junction_of(edges)) == (4, 6, 8) and parse_target(MEDIUM_TARGET) == [4, 8, 2, 6]
    g = graph_of(edges)
    assert (g.in_degree(8), g.out_degree(8)) == (2, 3), "paths entering at index 1 and 2, three leaving"


@pytest.mark.parametrize("difficulty", list(DIFFICULTIES))
def test_generated_graphs_follow_the_papers_definition(difficulty):
    cfg = DIFFICULTIES[difficulty]
    splits = generate_splits(difficulty, seed=5, sizes={"train": 150, "valid": 20, "test": 30})
    keys = [ex.key() for exs in splits.values() for ex in exs]
    assert len(keys) == len(set(keys)) == 200, "no graph/query repeats within or across splits"
    prompt_block, target_block = BLOCK_SIZES[difficulty]
    for ex in (ex for exs in splits.values() for ex in exs):
        edges, source, goal = parse_prompt(ex.prompt())
        assert sorted(edges) == sorted(ex.edges) and len(ex.prompt().split()) + 2 <= prompt_block
        path = parse_target(ex.target())
        assert len(ex.target().split()) == 2 * (len(path) - 1) and len(ex.target().split()) + 2 <= target_block
        g = graph_of(edges)
        assert list(nx.all_simple_paths(g, source, goal)) == [path], "the target is the only directed path"
        assert all(max(e) < cfg["n_ids"] for e in edges) and junction_of(edges) == ex.junction
        # the edges are exactly the paths' consecutive pairs, directed along them; nodes are shared only at the
        # junction
        assert sorted(edges) == sorted((p[i], p[i + 1]) for p in ex.paths for i in range(len(p) - 1))
        nodes = [n for p in ex.paths for n in p if n != ex.junction]
        assert len(nodes) == len(set(nodes)) and all(ex.junction in p for p in ex.paths)
        assert len(ex.paths) == cfg["degree"] == g.out_degree(ex.junction) and tuple(path) == ex.paths[0]
        if cfg["kind"] == "path_star":
            assert source == ex.junction and g.in_degree(source) == 0, "easy: the source is the centre"
            assert all(len(p) == cfg["path_length"] and p[0] == ex.junction for p in ex.paths)
            assert g.out_degree(goal) == 0
        else:
            for p in ex.paths:
                assert cfg["min_length"] <= len(p) <= cfg["max_length"]
                assert p.index(ex.junction) < len(p) - cfg["min_plan"], "at least min_plan nodes follow the junction"
    prompt_max, target_max = max_lengths(difficulty)
    assert prompt_max + 2 <= prompt_block and target_max + 2 <= target_block


def test_samplers_give_hand_checked_graphs_for_a_fixed_seed():
    # pinned outputs, checked by hand against the paper's definition (edge by edge, in the shuffled order)
    import random
    from iterref_fairseq.data.star_graphs import sample_crossing_paths, sample_path_star
    easy = sample_path_star(random.Random(3), degree=3, path_length=5, n_ids=20)
    # centre 7 = source; arms 7-18-17-4-11 (goal 11), 7-14-9-19-10, 7-13-1-0-12
    assert easy.paths == ((7, 18, 17, 4, 11), (7, 14, 9, 19, 10), (7, 13, 1, 0, 12))
    assert easy.prompt() == "18 17 7 18 17 4 14 9 1 0 9 19 0 12 19 10 13 1 4 11 7 13 7 14 7 11"
    assert easy.target() == "7 18 18 17 17 4 4 11"
    medium = sample_crossing_paths(random.Random(3), degree=3, min_length=3, max_length=6, min_plan=2, n_ids=20)
    # junction 19 at index 1 of 15-19-2-0 (the target) and of 18-19-4-8, at index 2 of 3-12-19-7-13
    assert medium.junction == 19
    assert medium.paths == ((15, 19, 2, 0), (18, 19, 4, 8), (3, 12, 19, 7, 13))
    assert medium.prompt() == "19 2 4 8 12 19 15 19 19 7 19 4 3 12 7 13 18 19 2 0 15 0"
    assert medium.target() == "15 19 19 2 2 0"


def test_junction_index_is_uniform_over_its_range():
    # medium, path of n nodes: index uniform on [0, n - 2); pooled over lengths 3..6 the index 0 has probability
    # (1/1 + 1/2 + 1/3 + 1/4) / 4 = 0.521 (independent computation of the reference generator's distribution)
    exs = generate_splits("medium", seed=11, sizes={"train": 4000})["train"]
    zero = sum(p.index(ex.junction) == 0 for ex in exs for p in ex.paths) / (3 * len(exs))
    assert zero == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4, abs=0.02)
    source_is_junction = sum(ex.source == ex.junction for ex in exs) / len(exs)
    assert source_is_junction == pytest.approx(zero, abs=0.03)


def test_generation_is_reproducible_and_seed_dependent():
    a = generate_splits("medium", 1, {"test": 10})["test"]
    b = generate_splits("medium", 1, {"test": 10})["test"]
    c = generate_splits("medium", 2, {"test": 10})["test"]
    assert a == b and a != c


@pytest.mark.parametrize("prompt,target,hypothesis,kind", [
    (DOC_PROMPT, DOC_TARGET, DOC_TARGET, "exact"),
    (DOC_PROMPT, DOC_TARGET, "7 0 0 6 6 11 11 19", "wrong_arm"),   # the centre's wrong outgoing edge
    (DOC_PROMPT, DOC_TARGET, "7 1 1 14 14 2 2 5", "wrong_arm"),
    (DOC_PROMPT, DOC_TARGET, "7 3 3 9 9 12", "on_goal_arm"),        # too short
    (DOC_PROMPT, DOC_TARGET, "7 3 3 9 9 12 12 5 5 1", "on_goal_arm"),
    (DOC_PROMPT, DOC_TARGET, "7 3 9 12 12 5", "on_goal_arm"),       # the choice was right, the chain breaks
    (DOC_PROMPT, DOC_TARGET, "3 9 9 12 12 5", "before_junction"),
    (DOC_PROMPT, DOC_TARGET, "", "before_junction"),
    (MEDIUM_PROMPT, MEDIUM_TARGET, "4 8 8 5 5 1", "wrong_arm"),      # junction at index 1: token 3 is the choice
    (MEDIUM_PROMPT, MEDIUM_TARGET, "4 8 8 2 2 7", "on_goal_arm"),
    (MEDIUM_PROMPT, MEDIUM_TARGET, "4 8 8 0 0 7", "wrong_arm"),
    (MEDIUM_PROMPT, MEDIUM_TARGET, "4 9 8 2 2 6", "before_junction"),
    (MEDIUM_PROMPT, MEDIUM_TARGET, "4 8 2 2 2 6", "before_junction"),  # token 2 is the junction's second copy
])
def test_failure_kind_locates_the_first_wrong_token_relative_to_the_junction(prompt, target, hypothesis, kind):
    assert failure_kind(prompt, target, hypothesis) == kind


def test_failure_report_counts():
    hyps = [DOC_TARGET, "7 0 0 6 6 11 11 19", "7 1 1 14 14 2 2 5", "3 9 9 12 12 5", "7 3 3 9 9 12 12 19"]
    report = failure_report([(DOC_PROMPT, DOC_TARGET, h) for h in hyps])
    assert report == {"exact": 1, "wrong_arm": 2, "before_junction": 1, "on_goal_arm": 1, "total": 5,
                      "right_length": 4, "source_token_right": 4, "goal_token_right": 3,
                      "token_accuracy_right_length": round((8 + 1 + 2 + 7) / 32, 4)}
    with pytest.raises(ValueError, match="does not pass a junction"):
        failure_kind("1 2 2 3 1 3", "1 2 2 3", "1 3")


@pytest.mark.parametrize("line", ["1 2 3", "1 2", "a b 1 2"])
def test_malformed_prompt_is_a_clear_error(line):
    with pytest.raises(ValueError, match="malformed star-graph prompt .*expected 'u1 v1 u2 v2 ... source goal'"):
        parse_prompt(line)


@pytest.mark.parametrize("line", ["1 2 3", "1 2 3 4", "x 2"])
def test_malformed_target_is_a_clear_error(line):
    with pytest.raises(ValueError, match="malformed star-graph target .*the path's edges as node pairs"):
        parse_target(line)


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


def _load_probe():
    from conftest import REPO, load_module

    return load_module(REPO / "examples" / "flexmdm" / "probe_star_lookup.py")


def test_lookup_probe_masks_both_copies_of_one_interior_node():
    """The docstring's example: path 20 -> 4 -> 19 -> 8 -> 9, target 20 4 4 19 19 8 8 9 (+ EOS, pads)."""
    import torch

    probe = _load_probe()
    x1 = torch.tensor([[20, 4, 4, 19, 19, 8, 8, 9, 2], [20, 5, 5, 9, 2, 1, 1, 1, 1]])
    content = torch.tensor([8, 4])
    tokens, valid = probe.node_copies_masked(x1, content, 2, mask_index=99)
    assert tokens[0].tolist() == [20, 4, 4, 99, 99, 8, 8, 9, 2] and valid.tolist() == [True, False]
    assert tokens[1].tolist() == x1[1].tolist(), "a 3-node path has no node 2 with a successor"
    tokens, valid = probe.node_copies_masked(x1, content, 1, mask_index=99)
    assert tokens[1].tolist() == [20, 99, 99, 9, 2, 1, 1, 1, 1] and valid.tolist() == [True, True]
    tokens, pos = probe.one_token_masked(x1, content, 99, torch.Generator().manual_seed(0))
    assert all(0 <= p < c for p, c in zip(pos.tolist(), content.tolist()))
    assert (tokens != x1).sum().item() == 2 and tokens[torch.arange(2), pos].tolist() == [99, 99]


@pytest.mark.slow
def test_lookup_probe_runs_on_a_trained_checkpoint(star_data, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    ckpt = _train(star_data, tmp_path, "--arch", "flexmdm_tiny", "--criterion", "flexmdm_loss", *TINY)
    out = tmp_path / "probe.json"
    res = subprocess.run([sys.executable, str(REPO / "examples" / "flexmdm" / "probe_star_lookup.py"), star_data,
                          "--path", ckpt, "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    d = json.loads(out.read_text())
    assert d["examples"] == 12 and 0 <= d["single_token_accuracy"] <= 1 and 0 <= d["node_lookup_accuracy"] <= 1
    # medium paths have 3-6 nodes: every test graph has node 1 with a successor
    assert d["per_node"]["1"]["examples"] == 12 and d["node_lookup_probes"] == sum(
        v["examples"] for v in d["per_node"].values())
    assert d["provenance"]["command"] and d["num_updates"] == 6
    # medium graphs: 3 paths of 3-6 nodes through one junction -> 7 to 16 distinct nodes, chance 1/16 .. 1/7
    assert 1 / 16 <= d["chance"] <= 1 / 7 and d["chance"] < d["chance_informed"] <= 1
    # the roles split the same probes: counts add up, and the pooled accuracy is their weighted mean
    roles = d["per_role"]
    assert sum(r["examples"] for r in roles.values()) == d["node_lookup_probes"]
    assert sum(r["accuracy"] * r["examples"] for r in roles.values()) == pytest.approx(
        d["node_lookup_accuracy"] * d["node_lookup_probes"], abs=1e-4)
    assert roles["junction"]["examples"] > 0 and roles["after_junction"]["examples"] > 0
    # a curve: several checkpoints, sorted by their updates (read from the checkpoint, not the file name)
    early = tmp_path / "checkpoint_9_99.pt"
    cli("fairseq-train", star_data, "--user-dir", USER_DIR, "--task", "star_graph", "-s", "src", "-t", "tgt",
        "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "600", "--max-update", "2", "--cpu",
        "--save-dir", tmp_path / "early", "--no-epoch-checkpoints", "--seed", "1", "--arch", "flexmdm_tiny",
        "--criterion", "flexmdm_loss", *TINY)
    (tmp_path / "early" / "checkpoint_last.pt").rename(early)
    res = subprocess.run([sys.executable, str(REPO / "examples" / "flexmdm" / "probe_star_lookup.py"), star_data,
                          "--path", ckpt, early, "--out", out], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    curve = json.loads(out.read_text())
    assert [q["num_updates"] for q in curve["points"]] == [2, 6]
    assert curve["points"][1]["node_lookup_accuracy"] == d["node_lookup_accuracy"]


def test_lookup_probe_finds_the_junction_on_the_path():
    probe = _load_probe()
    shift = 4  # token index = node id + 4 (4 special symbols); pads (1) and EOS (2) are skipped
    ids = lambda text: [int(x) + shift for x in text.split()]  # noqa: E731
    # MEDIUM: node 8 has five incident edges; path 4 -> 8 -> 2 -> 6
    assert probe.junction_index([1, 1] + ids(MEDIUM_PROMPT) + [2], ids(MEDIUM_TARGET) + [2], shift) == 1
    # easy graph of the module docstring: the source 7 is the centre
    assert probe.junction_index(ids(DOC_PROMPT) + [2], ids(DOC_TARGET) + [2, 1], shift) == 0
    # a path that misses the junction (not a valid target, but the function must not invent an index)
    assert probe.junction_index(ids(MEDIUM_PROMPT), ids("0 7"), shift) == -1


def test_lookup_probe_guess_rates_count_the_graph_and_the_revealed_nodes():
    import torch

    probe = _load_probe()
    # nspecial 4: tokens 0-3 (2 = EOS, 1 = pad) are not nodes; 99 is the mask. Graph 1 has nodes {4, 5, 6, 7}, of
    # which the probe's target reveals 4 and 7; graph 2 has {4, 8, 9}, its target reveals 8; graph 3 is not valid.
    src = torch.tensor([[4, 5, 5, 6, 6, 7, 4, 7, 2], [1, 1, 4, 9, 9, 8, 4, 8, 2], [4, 5, 5, 6, 6, 7, 4, 7, 2]])
    probe_tokens = torch.tensor([[4, 99, 99, 7, 2], [99, 99, 8, 2, 1], [4, 5, 5, 7, 2]])
    naive, informed = probe.guess_rates(src, probe_tokens, torch.tensor([True, True, False]), 4)
    assert naive == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert informed == pytest.approx((1 / 2 + 1 / 2) / 2)


@pytest.mark.slow
def test_inspect_order_network_reads_the_auxiliary_network(star_data, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    script = str(REPO / "examples" / "flexmdm" / "inspect_order_network.py")
    ckpt = _train(star_data, tmp_path / "l", "--arch", "lflexmdm_tiny", "--criterion", "flexmdm_loss", *TINY)
    out = tmp_path / "order_network.json"
    # one sampling step: the last step starts at t = 0, where every token is still absent (survival 1), so the
    # expected number of absent tokens is the mean target length, counted here from the raw text
    res = subprocess.run([sys.executable, script, str(ckpt), "--data", str(star_data), "--steps", "1",
                          "--out", str(out)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    d = json.loads(out.read_text())
    lengths = [len(line.split()) for line in (star_data / "raw" / "test.tgt").read_text().splitlines()]
    assert d["sequences"] == len(lengths) == 12
    assert d["expected_absent_tokens_at_last_step"] == pytest.approx(sum(lengths) / len(lengths), abs=2e-3)
    assert all(p == pytest.approx(1.0, abs=1e-3) for p in d["p_absent_at_last_step_per_position"])
    assert len(d["b_in_mean_per_position"]) == max(lengths) and d["b_in_quantiles_5_25_50_75_95"] == sorted(
        d["b_in_quantiles_5_25_50_75_95"])
    assert 0 <= d["b_in_below_0.1_fraction"] <= 1 and d["provenance"]["command"]
    flex = _train(star_data, tmp_path / "f", "--arch", "flexmdm_tiny", "--criterion", "flexmdm_loss", *TINY)
    res = subprocess.run([sys.executable, script, str(flex), "--data", str(star_data)], capture_output=True, text=True)
    assert res.returncode != 0 and "is not a learned-order (LFlexMDM) model" in res.stderr
