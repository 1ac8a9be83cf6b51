"""iterref_fairseq.provenance.run_metadata, and the provenance object every results JSON carries.

The expected values are computed here independently (git run by the test, /proc/cpuinfo parsed by the test, the
imported modules' own ``__version__``), not through the functions under test.
"""
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fairseq
import iterref_fairseq
from iterref_fairseq import provenance

REPO = Path(__file__).resolve().parents[1]
REQUIRED = ("command", "commit", "seed", "hardware", "versions")
RESULTS = sorted((REPO / "results").glob("**/*.json"))


def git(*args, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=str(cwd), capture_output=True, text=True)


def git_checkout_reason():
    """None when REPO is a full git checkout that tracks the package, else why the git checks are skipped."""
    if shutil.which("git") is None:
        return "git is not installed"
    if git("rev-parse", "--is-inside-work-tree").stdout.strip() != "true":
        return "the tests do not run inside a git checkout"
    if not git("ls-files", "--", "iterref_fairseq/__init__.py").stdout.strip():
        return "the package is not tracked by the enclosing repository"
    if git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        return "shallow clone: older commits are absent"
    return None


NO_GIT = git_checkout_reason()


# ---------------------------------------------------------------------------------------------- run_metadata
def test_command_round_trips_through_shlex():
    argv = ["iterref-benchmark-decode", "--out", "results/a b.json", "--note", "it's $HOME", "", "--x=1;2"]
    meta = provenance.run_metadata(argv, seed=3)
    assert shlex.split(meta["command"]) == argv
    assert meta["command"].split()[0] == "iterref-benchmark-decode"  # the program name comes first


def test_default_argv_is_sys_argv(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/opt/bin/prog", "--seed", "7"])
    assert shlex.split(provenance.run_metadata()["command"]) == ["/opt/bin/prog", "--seed", "7"]


def test_keys_seed_date_and_json():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    meta = provenance.run_metadata(["prog"], seed=11)
    after = datetime.datetime.now(datetime.timezone.utc)
    assert set(meta) == {"command", "commit", "dirty", "seed", "date", "hardware", "versions"}
    assert meta["seed"] == 11 and provenance.run_metadata(["prog"])["seed"] is None
    date = datetime.datetime.fromisoformat(meta["date"])
    assert date.utcoffset() == datetime.timedelta(0)
    assert before <= date <= after
    assert json.loads(json.dumps(meta)) == meta


@pytest.mark.skipif(NO_GIT is not None, reason=str(NO_GIT))
def test_commit_is_head_of_this_checkout():
    meta = provenance.run_metadata(["prog"])
    assert meta["commit"] == git("rev-parse", "HEAD").stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", meta["commit"])
    assert meta["dirty"] is bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_state_of_untracked_tracked_and_modified_packages(tmp_path):
    outside = tmp_path / "wheel" / "iterref_fairseq"  # not in any repository (an installed wheel)
    outside.mkdir(parents=True)
    (outside / "__init__.py").write_text("")
    assert provenance.git_state(outside) == (None, None)
    assert provenance.git_state(tmp_path / "missing") == (None, None)

    repo = tmp_path / "repo"
    pkg = repo / "iterref_fairseq"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("x = 1\n")
    assert git("init", "-q", cwd=repo).returncode == 0
    assert provenance.git_state(pkg) == (None, None)  # inside a repository, but neither tracked nor committed
    ident = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    assert git("add", ".", cwd=repo).returncode == 0
    assert git(*ident, "commit", "-q", "-m", "m", cwd=repo).returncode == 0
    head = git("rev-parse", "HEAD", cwd=repo).stdout.strip()
    assert provenance.git_state(pkg) == (head, False)
    (repo / "untracked.txt").write_text("untracked files do not make the code dirty")
    assert provenance.git_state(pkg) == (head, False)
    (pkg / "__init__.py").write_text("x = 2\n")
    assert provenance.git_state(pkg) == (head, True)


def test_no_git_executable_gives_null_commit(monkeypatch):
    def missing(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", missing)
    meta = provenance.run_metadata(["prog"])
    assert meta["commit"] is None and meta["dirty"] is None


def _cpu_model_from_proc():
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return platform.processor() or None
    names = re.findall(r"^model name\s*:\s*(.+?)\s*$", text, re.M)
    return names[0] if names else (platform.processor() or None)


def test_hardware_matches_the_machine():
    hw = provenance.run_metadata(["prog"])["hardware"]
    assert hw["cpu_model"] == _cpu_model_from_proc()
    assert hw["cpu_count"] == os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert hw["usable_cpus"] == len(os.sched_getaffinity(0))
    assert hw["machine"] == platform.machine() and hw["platform"] == platform.platform()
    assert hw["torch_threads"] == torch.get_num_threads()
    assert hw["cuda"] is torch.cuda.is_available()
    expected_gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
                     if torch.cuda.is_available() else [])
    assert hw["gpus"] == expected_gpus


def test_values_are_read_at_each_call():
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert provenance.run_metadata(["prog"])["hardware"]["torch_threads"] == 1
    finally:
        torch.set_num_threads(threads)
    assert provenance.run_metadata(["prog"])["hardware"]["torch_threads"] == threads


def test_versions_are_the_imported_modules():
    versions = provenance.run_metadata(["prog"])["versions"]
    assert versions["python"] == platform.python_version() == "%d.%d.%d" % sys.version_info[:3]
    assert versions["torch"] == torch.__version__
    assert versions["fairseq"] == fairseq.__version__
    assert versions["iterref_fairseq"] == iterref_fairseq.__version__
    try:
        import rdkit
    except ImportError:
        assert versions["rdkit"] is None
    else:
        assert versions["rdkit"] == rdkit.__version__


# ---------------------------------------------------------------------------------------------- results/**/*.json
def test_there_are_results():
    assert RESULTS, "no results/**/*.json found"


def _load_provenance(path: Path) -> dict:
    data = json.loads(path.read_text())
    assert "provenance" in data, f"{path.relative_to(REPO)} has no top-level 'provenance'"
    return data["provenance"]


@pytest.mark.parametrize("path", RESULTS, ids=[str(p.relative_to(REPO)) for p in RESULTS])
def test_results_json_has_provenance(path):
    prov = _load_provenance(path)
    missing = [k for k in REQUIRED if k not in prov]
    assert not missing, f"provenance lacks {missing}"
    nulls = [k for k in REQUIRED if prov[k] is None]
    if nulls:
        note = prov.get("note")
        assert isinstance(note, str) and note.strip(), f"{nulls} are null without a 'note' saying why"
    if prov["commit"] is not None:
        assert isinstance(prov["commit"], str) and re.fullmatch(r"[0-9a-f]{40}", prov["commit"])
    assert prov["command"] is None or (isinstance(prov["command"], str) and prov["command"].strip())
    assert prov["seed"] is None or isinstance(prov["seed"], int)
    assert prov["hardware"] is None or isinstance(prov["hardware"], dict)
    if prov["versions"] is not None:
        assert {"python", "torch", "fairseq"} <= set(prov["versions"])


@pytest.mark.skipif(NO_GIT is not None, reason=str(NO_GIT))
@pytest.mark.parametrize("path", RESULTS, ids=[str(p.relative_to(REPO)) for p in RESULTS])
def test_results_commit_is_in_the_history(path):
    commit = _load_provenance(path).get("commit")
    if commit is None:
        pytest.skip("commit is null (explained by the note)")
    # An ancestor of HEAD, not merely an object in this clone: a commit later amended or rebased away still exists
    # in the clone that made it, but not in a fresh clone of main.
    assert git("merge-base", "--is-ancestor", commit, "HEAD").returncode == 0, (
        f"{commit} is not in the history of HEAD (amended or rebased away?)"
    )


def test_write_results_attaches_provenance_and_writes_json_and_markdown(tmp_path):
    from iterref_fairseq.provenance import write_results

    out = tmp_path / "sub" / "r.json"
    write_results({"value": 3}, out, "| a |\n", argv=["--x", "1"], seed=7, note="why")
    data = json.loads(out.read_text())
    assert data["value"] == 3 and data["provenance"]["seed"] == 7 and data["provenance"]["note"] == "why"
    assert shlex.split(data["provenance"]["command"])[1:] == ["--x", "1"]
    assert (tmp_path / "sub" / "r.md").read_text() == "| a |\n"
    write_results({"value": 4}, tmp_path / "s.json", argv=[])
    assert not (tmp_path / "s.md").exists() and "note" not in json.loads((tmp_path / "s.json").read_text())[
        "provenance"]
