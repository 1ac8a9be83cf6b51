"""Every console script of setup.py, run as a user runs it: the script in the venv's bin directory, in a
subprocess, from a directory other than the repository.

The list comes from setup.py's entry points (and must match the installed metadata), so a newly added script is
covered automatically: ``--help`` (exit 0, every flag mentioned), one bad input (exit 2, one message naming it, no
traceback; a new script must add a case to ``bad_inputs``), deprecated names (one warning line, then the new
script), and a success run (status 0) in an end-to-end test named in ``SUCCESS_TESTS``. The convention itself
(names, modules, flags) is checked in-process, without a subprocess.
"""
import argparse
import ast
import contextlib
import importlib
import io
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import pytest

from conftest import BIN, REPO

from iterref_fairseq.cli import common
from iterref_fairseq.cli.aliases import ALIASES


def setup_py_scripts():
    """{name: "module:function"} of setup.py's console_scripts, read without running setup.py."""
    tree = ast.parse((REPO / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "entry_points":
            entries = ast.literal_eval(node.value)["console_scripts"]
            return dict(tuple(part.strip() for part in e.split("=", 1)) for e in entries)
    raise AssertionError("setup.py has no entry_points")


ENTRY_POINTS = setup_py_scripts()
ALIAS_NAMES = sorted(n for n, target in ENTRY_POINTS.items() if target.startswith("iterref_fairseq.cli.aliases:"))
SCRIPTS = sorted(n for n in ENTRY_POINTS if n not in ALIAS_NAMES)

MASKED_E2E = "test_policy_training_learned_decoding_plots_and_benchmark"
# where each script runs successfully (status 0) as a subprocess, on a model trained by that end-to-end test
SUCCESS_TESTS = {
    "iterref-prepare-bible": "test_data_pipeline.py::test_prepare_bible_console_script",
    "iterref-make-star-graphs": "test_flexmdm_star_graph.py::star_data",
    "iterref-benchmark-nat": "test_benchmark.py::test_benchmark_table",
    "iterref-analyze-nat-steps": "test_benchmark.py::test_analyze_nat_steps_reports_every_step",
    "iterref-benchmark-masked": f"test_masked_translation_cli.py::{MASKED_E2E}",
    "iterref-train-policy": f"test_masked_translation_cli.py::{MASKED_E2E}",
    "iterref-plot-orders": f"test_masked_translation_cli.py::{MASKED_E2E}",
    "iterref-analyze-star-order": "test_flexmdm_star_graph.py::test_train_and_generate_insertion_models",
    "iterref-generate-molecule-strings": "test_flexmdm_analysis.py::test_molecule_task_prepare_train_sample",
    "iterref-generate-molecules": "test_mgm_cli.py::test_generate_evaluate_plot",
    "iterref-evaluate-molecules": "test_mgm_cli.py::test_generate_evaluate_plot",
    "iterref-plot-molecules": "test_mgm_cli.py::test_generate_evaluate_plot",
    "iterref-user-dir": "test_console_scripts.py::test_user_dir_works_from_any_directory",
    "iterref-generate-conformers": "test_cvgae_cli.py::test_train_generate_baselines_evaluate",
    "iterref-baseline-conformers": "test_cvgae_cli.py::test_train_generate_baselines_evaluate",
    "iterref-evaluate-conformers": "test_cvgae_cli.py::test_train_generate_baselines_evaluate",
}


def bad_inputs(tmp: Path):
    """{script: (argv, substrings the error must contain)}; ``tmp`` exists and is empty."""
    missing_ckpt = tmp / "missing.pt"
    no_data = tmp / "no-data-dir"
    return {
        "iterref-prepare-bible": (["--out", tmp / "bible", "--db", tmp / "missing.db"],
                                  ["--db", str(tmp / "missing.db"), "file not found"]),
        "iterref-make-star-graphs": (["--difficulty", "easy", "--out", tmp / "star", "--train", "0"],
                                     ["--train must be >= 1, got 0"]),
        "iterref-benchmark-nat": ([tmp, "--path", missing_ckpt, "--ar-path", missing_ckpt, "--out", tmp / "r.json"],
                                  ["checkpoint not found", str(missing_ckpt), "--path"]),
        # the old "first N sentences" flag, which in fairseq is the batch size
        "iterref-benchmark-masked": ([tmp, "--path", missing_ckpt, "--out", tmp / "r.json", "--max-sentences", "10"],
                                     ["--max-sentences is fairseq's batch size", "--max-examples", "--batch-size"]),
        "iterref-analyze-star-order": ([no_data, "--path", missing_ckpt],
                                       ["data directory not found", str(no_data), "iterref-make-star-graphs"]),
        "iterref-analyze-nat-steps": ([tmp, "--path", missing_ckpt], ["checkpoint not found", str(missing_ckpt)]),
        "iterref-train-policy": ([tmp, "--path", missing_ckpt, "--out", tmp / "p.pt"],
                                 ["checkpoint not found", str(missing_ckpt), "masked_translation"]),
        "iterref-plot-orders": ([no_data, "--path", missing_ckpt, "--out", tmp / "plots"],
                                ["data directory not found", str(no_data), "DATA"]),
        "iterref-generate-molecules": ([tmp, "--path", missing_ckpt, "--out", tmp / "s.smi"],
                                       ["checkpoint not found", str(missing_ckpt), "--path"]),
        "iterref-evaluate-molecules": ([tmp / "s.smi", "--reference", tmp / "train.smi"],
                                       ["reference file not found", str(tmp / "train.smi")]),
        "iterref-plot-molecules": (["trajectory", "--trajectory", tmp / "t.jsonl", "--out", tmp / "t.png"],
                                   ["trajectory file not found", str(tmp / "t.jsonl"), "--trajectory-every"]),
        "iterref-generate-molecule-strings": ([no_data, "--path", missing_ckpt],
                                              ["data directory not found", str(no_data),
                                               "prepare_molecule_strings.py"]),
        "iterref-user-dir": (["--bogus"], ["unrecognized arguments: --bogus"]),
        "iterref-generate-conformers": ([tmp, "--path", missing_ckpt, "--out", tmp / "g.sdf"],
                                        ["checkpoint not found", str(missing_ckpt), "--task conformer"]),
        "iterref-baseline-conformers": ([tmp, "--method", "etkdg", "--out", tmp / "b.sdf"],
                                        ["split 'test' not found", str(tmp / "test.sdf"), "prepare_conformers.py"]),
        "iterref-evaluate-conformers": (["--reference", tmp / "ref.sdf", tmp / "g.sdf"],
                                        ["--reference not found", str(tmp / "ref.sdf")]),
    }


def module_of(name: str):
    return importlib.import_module(ENTRY_POINTS[name].split(":")[0])


def all_parsers(parser):
    """The parser and its sub-command parsers."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from all_parsers(sub)


def parse(name, argv):
    """Parses ``argv`` with the script's parser; returns (namespace or SystemExit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            result = module_of(name).build_parser().parse_args([str(a) for a in argv])
        except SystemExit as exc:
            result = exc.code
    return result, err.getvalue()


# ====================================================================== the convention (in-process)
def test_installed_scripts_match_setup_py():
    installed = {e.name: e.value for e in metadata.distribution("iterref-fairseq").entry_points
                 if e.group == "console_scripts"}
    assert installed == ENTRY_POINTS, "the installed scripts are stale: run pip install --no-deps -e . (make install)"
    for name in ENTRY_POINTS:
        assert (BIN / name).is_file(), f"{name} is not in {BIN}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_name_module_and_entry_follow_one_pattern(name):
    assert re.fullmatch(r"iterref-[a-z]+(-[a-z]+)+", name)
    assert ENTRY_POINTS[name] == f"iterref_fairseq.cli.{name[len('iterref-'):].replace('-', '_')}:main"
    assert module_of(name).build_parser().prog == name  # also through a deprecated alias


def test_aliases_are_registered_and_point_at_registered_scripts():
    assert ALIAS_NAMES == sorted(ALIASES)
    for old, (new, module) in ALIASES.items():
        assert new in SCRIPTS and ENTRY_POINTS[new] == f"{module}:main"
        assert ENTRY_POINTS[old] == f"iterref_fairseq.cli.aliases:{old[len('iterref-'):].replace('-', '_')}"


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_flag_has_help_and_the_convention(name):
    parser = module_of(name).build_parser()
    for p in all_parsers(parser):
        options = {s for a in p._actions for s in a.option_strings}
        for action in p._actions:
            if action.help == argparse.SUPPRESS:
                assert action.option_strings == ["--max-sentences"], f"{p.prog}: hidden flag {action.option_strings}"
                continue
            assert action.help and action.help.strip(), f"{p.prog}: {action.option_strings or action.dest} has no help"
        # fairseq's names: no old spelling survives except as a deprecated alias of the new flag
        for old, new in (("--split", "--gen-subset"), ("--nat", "--path"), ("--ar", "--ar-path"),
                         ("--out-dir", "--out"), ("--max-pairs", "--max-examples")):
            if old in options:
                assert new in options and "deprecated" in action_of(p, old).help
        if "--data" in options:
            assert "data" in [a.dest for a in p._actions if not a.option_strings], "DATA must be positional"
            assert "deprecated" in action_of(p, "--data").help
        if "--max-examples" in options:
            assert action_of(p, "--max-sentences").help == argparse.SUPPRESS
        if "--cuda" in options:
            assert "--cpu" in options


def action_of(parser, option):
    return next(a for a in parser._actions if option in a.option_strings)


# every old flag still parses to what the new one gives, with one warning per old flag
OLD_FLAGS = [
    ("iterref-benchmark-nat", "--data D --nat n.pt --ar a.pt --split valid --cuda --out o.json",
     "D --path n.pt --ar-path a.pt --gen-subset valid --out o.json", ["--data", "--nat", "--ar", "--split", "--cuda"]),
    ("iterref-benchmark-masked", "--data D --path m.pt --ar a.pt --subset valid --out o.json",
     "D --path m.pt --ar-path a.pt --gen-subset valid --out o.json", ["--data", "--ar", "--subset"]),
    ("iterref-plot-orders", "--data D --path m.pt --out-dir P --subset test",
     "D --path m.pt --out P --gen-subset test", ["--data", "--out-dir", "--subset"]),
    ("iterref-train-policy", "--data D --path m.pt --out p.pt --subset valid --max-pairs 7",
     "D --path m.pt --out p.pt --train-subset valid --max-examples 7", ["--data", "--subset", "--max-pairs"]),
    ("iterref-analyze-nat-steps", "D --path c.pt --split valid", "D --path c.pt --gen-subset valid", ["--split"]),
    ("iterref-analyze-star-order", "--data D --path c.pt --subset valid --out-json o.json",
     "D --path c.pt --gen-subset valid --out o.json", ["--data", "--subset", "--out-json"]),
    ("iterref-generate-molecule-strings", "--data D --path c.pt --out-strings s.txt", "D --path c.pt --out s.txt",
     ["--data", "--out-strings"]),
    ("iterref-generate-molecules", "--data D --path c.pt --out s.smi", "D --path c.pt --out s.smi", ["--data"]),
    ("iterref-prepare-bible", "--out-dir O", "--out O", ["--out-dir"]),
]


@pytest.mark.parametrize("name,old,new,flags", OLD_FLAGS, ids=[c[0] for c in OLD_FLAGS])
def test_old_flags_warn_and_mean_the_new_ones(name, old, new, flags):
    old_args, old_err = parse(name, old.split())
    new_args, new_err = parse(name, new.split())
    assert new_err == ""
    warnings = old_err.strip().splitlines()
    assert len(warnings) == len(flags)
    for flag, line in zip(flags, warnings):
        assert line.startswith(f"{name}: warning: {flag} is deprecated")
    for args in (old_args, new_args):
        if hasattr(args, "data_flag"):
            common.resolve_data(args, must_exist=False)
    drop = {"data_flag", "cuda", "argv"}  # argv: the command line as given (for provenance)
    assert {k: v for k, v in vars(old_args).items() if k not in drop} == \
        {k: v for k, v in vars(new_args).items() if k not in drop}


def test_out_json_of_the_molecule_strings_still_sets_the_summary_path(tmp_path):
    args, err = parse("iterref-generate-molecule-strings", ["D", "--path", "c.pt", "--out-json", "j.json"])
    assert str(args.out_json) == "j.json" and args.out is None and "--out-json is deprecated" in err


def test_nat_steps_old_positional_checkpoints(tmp_path):
    from iterref_fairseq.cli import analyze_nat_steps

    args, _ = parse("iterref-analyze-nat-steps", ["a.pt", "b.pt", "--data", str(tmp_path)])
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert analyze_nat_steps.resolve_inputs(args) == ["a.pt", "b.pt"]
    assert args.data == str(tmp_path) and "use DATA --path CHECKPOINT" in err.getvalue()
    args, _ = parse("iterref-analyze-nat-steps", [tmp_path, "--path", "a.pt", "b.pt"])
    assert analyze_nat_steps.resolve_inputs(args) == ["a.pt", "b.pt"] and args.data == str(tmp_path)
    args, _ = parse("iterref-analyze-nat-steps", [tmp_path])
    with pytest.raises(common.CLIError, match="pass --path CHECKPOINT"):
        analyze_nat_steps.resolve_inputs(args)


def test_data_is_given_exactly_once(tmp_path):
    args, _ = parse("iterref-benchmark-masked", [tmp_path, "--data", tmp_path, "--path", "m.pt", "--out", "o"])
    with pytest.raises(common.CLIError, match="given twice"):
        common.resolve_data(args)
    args, _ = parse("iterref-benchmark-masked", ["--path", "m.pt", "--out", "o"])
    with pytest.raises(common.CLIError, match="positional argument DATA"):
        common.resolve_data(args)
    args, _ = parse("iterref-benchmark-masked", [tmp_path / "x", "--path", "m.pt", "--out", "o"])
    with pytest.raises(common.CLIError, match=f"data directory not found: {tmp_path / 'x'}"):
        common.resolve_data(args)


MAX_EXAMPLE_SCRIPTS = [n for n in SCRIPTS if "--max-examples" in {
    s for a in module_of(n).build_parser()._actions for s in a.option_strings}]


def test_max_examples_scripts():
    assert set(MAX_EXAMPLE_SCRIPTS) >= {"iterref-benchmark-masked", "iterref-plot-orders",
                                        "iterref-analyze-nat-steps", "iterref-train-policy",
                                        "iterref-analyze-star-order"}


@pytest.mark.parametrize("name", MAX_EXAMPLE_SCRIPTS)
@pytest.mark.parametrize("argv", [["--max-sentences", "5"], ["--max-sentences=5"], ["--max-sentences"]])
def test_max_sentences_is_refused(name, argv):
    code, err = parse(name, ["D", "--path", "c.pt", "--out", "o", *argv])
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{name}: error: --max-sentences is fairseq's batch size")
    batch = "--generation-batch" if name == "iterref-train-policy" else "--batch-size"
    assert "--max-examples" in last and batch in last


def test_load_checkpoint_errors_are_one_message(tmp_path, monkeypatch):
    with pytest.raises(common.CLIError, match=f"checkpoint not found: {tmp_path / 'x.pt'} \\(pass --path X\\)"):
        common.load_checkpoint(tmp_path / "x.pt", str(tmp_path), "pass --path X")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(common.CLIError, match=f"cannot read checkpoint {text}"):
        common.load_checkpoint(text, str(tmp_path), "pass --path X")
    from fairseq import checkpoint_utils

    def mismatch(*args, **kwargs):
        raise ValueError("dictionary mismatch: the checkpoint's embed_tokens.weight has 9 symbols")

    monkeypatch.setattr(checkpoint_utils, "load_model_ensemble_and_task", mismatch)
    (tmp_path / "model.pt").write_bytes(b"")
    with pytest.raises(common.CLIError, match="dictionary mismatch"):
        common.load_checkpoint(tmp_path / "model.pt", str(tmp_path), "pass --path X")


def test_device_rule(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert common.resolve_device(argparse.Namespace(cpu=False)).type == "cuda"
    assert common.resolve_device(argparse.Namespace(cpu=True)).type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert common.resolve_device(argparse.Namespace(cpu=False)).type == "cpu"


@pytest.mark.parametrize("name", [n for n in SCRIPTS if n != "iterref-user-dir"])
def test_main_returns_an_int_status(name, tmp_path, capsys):
    """In-process: main() returns 2 (not a dict, not None) on the bad input of ``bad_inputs`` (argparse's own
    errors exit with 2)."""
    argv, expected = bad_inputs(tmp_path)[name]
    try:
        status = module_of(name).main([str(a) for a in argv])
    except SystemExit as exc:
        assert "--max-sentences" in argv
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert all(e in err for e in expected), err


def test_every_script_has_a_bad_input_and_a_success_test():
    assert set(bad_inputs(Path("/tmp"))) == set(SCRIPTS), "add a case to bad_inputs() for the new script"
    assert set(SUCCESS_TESTS) == set(SCRIPTS), "name the end-to-end test that runs the new script in SUCCESS_TESTS"
    for name, where in SUCCESS_TESTS.items():
        path, func = where.split("::")
        source = (REPO / "tests" / path).read_text()
        node = next((n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == func),
                    None)
        assert node is not None, f"{where} does not exist"
        body = ast.get_source_segment(source, node)
        assert re.search(rf"(?<![\w-]){name}(?![\w-])", body), f"{where} does not run {name}"


# ====================================================================== as a user runs them (subprocesses)
def run_script(name, *args, cwd):
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(BIN / name), *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every subprocess of this module, two at a time (each spends most of its time importing fairseq)."""
    cwd = tmp_path_factory.mktemp("elsewhere")
    tmp = tmp_path_factory.mktemp("bad_inputs")
    jobs = {("help", n): [n, "--help"] for n in SCRIPTS + ALIAS_NAMES}
    jobs.update({("bad", n): [n, *argv] for n, (argv, _) in bad_inputs(tmp).items()})
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {key: pool.submit(run_script, *argv, cwd=cwd) for key, argv in jobs.items()}
        results = {key: f.result() for key, f in futures.items()}
    return results, tmp


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_help_exits_0_and_mentions_every_flag(runs, name):
    proc = runs[0]["help", name]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith(f"usage: {name} ") and "Traceback" not in proc.stderr
    for p in all_parsers(module_of(name).build_parser()):
        for action in p._actions:
            if action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, argparse._SubParsersAction):
                assert all(sub in proc.stdout for sub in action.choices)
            elif p.prog == name:  # sub-command flags are listed by "NAME SUB --help" (checked in-process)
                for option in action.option_strings or [action.metavar or action.dest]:
                    assert option in proc.stdout, f"{name} --help does not mention {option}"


@pytest.mark.slow
@pytest.mark.parametrize("old", ALIAS_NAMES)
def test_alias_warns_once_and_runs_the_new_script(runs, old):
    new = ALIASES[old][0]
    proc = runs[0]["help", old]
    assert proc.returncode == 0
    # fairseq's import may log an INFO line first; the alias adds exactly one line
    assert [line for line in proc.stderr.splitlines() if "deprecated" in line] == [f"{old} is deprecated, use {new}"]
    assert proc.stdout == runs[0]["help", new].stdout  # the same parser: usage names the new script


@pytest.mark.slow
@pytest.mark.parametrize("name", SCRIPTS)
def test_bad_input_is_one_message_and_status_2(runs, name):
    proc = runs[0]["bad", name]
    _, expected = bad_inputs(runs[1])[name]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{name}: error: ")
    for text in expected:
        assert text in last, f"{name}: {text!r} not in {last!r}"


@pytest.mark.slow
def test_user_dir_works_from_any_directory(tiny_data, tiny_checkpoint, tmp_path):
    import iterref_fairseq

    assert not (tmp_path / "iterref_fairseq").exists() and tmp_path.resolve() != REPO
    # exactly as documented, from that directory: fairseq-generate DATA --user-dir "$(iterref-user-dir)" ...
    # (tee keeps what iterref-user-dir printed)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        ["bash", "-c", 'set -o pipefail; fairseq-generate "$1" --user-dir "$(iterref-user-dir | tee printed.txt)" '
                       '--task translation_refine --path "$2" --cpu --batch-size 8 --iter-decode-max-iter 2',
         "bash", str(tiny_data), str(tiny_checkpoint)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(re.findall(r"^H-\d+\t", proc.stdout, re.M)) == 24
    printed = (tmp_path / "printed.txt").read_text()
    assert printed.endswith("\n") and printed.count("\n") == 1, "one line: the path"
    path = Path(printed.strip())
    assert path.is_absolute() and path == Path(iterref_fairseq.__file__).parent and (path / "__init__.py").is_file()
