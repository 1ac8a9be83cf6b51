"""Provenance of a result: what produced it, from which code, with which seed, on which machine and software.

Benchmark scripts put the output of :func:`run_metadata` under a ``"provenance"`` key of their results JSON::

    from iterref_fairseq.provenance import run_metadata

    result["provenance"] = run_metadata(sys.argv, seed=args.seed)

Every field is computed when the function is called (nothing is cached at module level). Missing information
is ``None`` (JSON ``null``) rather than an error: outside a git checkout (an installed wheel) ``commit`` and
``dirty`` are ``None``; without torch, ``torch_threads`` and the torch version are ``None``.
"""
from __future__ import annotations

import datetime
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

PACKAGE_DIR = Path(__file__).resolve().parent


def run_metadata(argv: Optional[Sequence[str]] = None, seed: Optional[int] = None) -> Dict[str, Any]:
    """The provenance record of a run, as a JSON-serializable dict.

    Args:
        argv: the command line, program name first (default ``sys.argv``).
        seed: the run's random seed, recorded as given.

    Returns:
        ``{"command", "commit", "dirty", "seed", "date", "hardware", "versions"}``:

        * ``command``: ``argv`` as one shell-quoted string (``shlex.split`` gives ``argv`` back);
        * ``commit``: ``git rev-parse HEAD`` of the checkout this package is imported from, ``None`` when the
          package is not a tracked file of a git checkout (e.g. an installed wheel) or git is unavailable;
        * ``dirty``: whether tracked files differ from ``commit`` (``git status --porcelain
          --untracked-files=no`` is not empty); ``None`` when ``commit`` is;
        * ``seed``; ``date``: the current UTC time, ISO 8601 (seconds);
        * ``hardware``: :func:`hardware_info`; ``versions``: :func:`versions_info`.
    """
    argv = list(sys.argv if argv is None else argv)
    commit, dirty = git_state(PACKAGE_DIR)
    return {
        "command": shlex.join(str(a) for a in argv),
        "commit": commit,
        "dirty": dirty,
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "hardware": hardware_info(),
        "versions": versions_info(),
    }


def write_results(result: Dict[str, Any], out: Path, markdown: Optional[str] = None,
                  argv: Optional[Sequence[str]] = None, seed: Optional[int] = None,
                  note: Optional[str] = None) -> None:
    """Attach :func:`run_metadata` (and ``note``, e.g. why ``seed`` is null) under ``result["provenance"]``, write
    ``result`` as JSON to ``out`` (folders created) and, when given, ``markdown`` to ``out`` with ``.md``.

    ``argv`` is the script's own arguments (``main(argv)``; default ``sys.argv[1:]``); the program name is added."""
    import json

    result["provenance"] = run_metadata([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seed=seed)
    if note:
        result["provenance"]["note"] = note
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    if markdown is not None:
        out.with_suffix(".md").write_text(markdown)


def _git(directory: Path, *args: str) -> Optional[str]:
    """stdout of ``git -C directory args`` (stripped), or None when git fails or is not installed."""
    try:
        proc = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_state(package_dir: Path) -> Tuple[Optional[str], Optional[bool]]:
    """``(HEAD commit, dirty)`` of the git checkout that tracks ``package_dir``, else ``(None, None)``.

    A package directory that merely lies inside some repository without being tracked by it (a wheel installed
    into a virtual environment kept inside a checkout, a copied tree) has no commit: the repository's HEAD would
    not describe the code that runs.
    """
    package_dir = Path(package_dir).resolve()
    if not package_dir.is_dir():
        return None, None
    tracked = _git(package_dir, "ls-files", "--", ".")
    if not tracked:  # not a work tree, git missing, or nothing in package_dir is tracked
        return None, None
    commit = _git(package_dir, "rev-parse", "--verify", "HEAD")
    if not commit:  # a repository without commits
        return None, None
    status = _git(package_dir, "status", "--porcelain", "--untracked-files=no")
    return commit, (None if status is None else bool(status))


def cpu_model() -> Optional[str]:
    """The CPU model: the first ``model name`` of /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def hardware_info() -> Dict[str, Any]:
    """Machine, CPU model, core counts, torch threads and CUDA GPUs (names of all visible devices)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    info: Dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable,
        "torch_threads": None,
        "cuda": False,
        "gpus": [],
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch_threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        info["cuda"] = True
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def _module_version(name: str) -> Optional[str]:
    """``__version__`` of an importable module, else None (also when importing it fails for another reason)."""
    try:
        module = __import__(name)
    except Exception:  # noqa: BLE001  (a broken install must not stop a run from recording the rest)
        return None
    version = getattr(module, "__version__", None)
    return None if version is None else str(version)


def versions_info() -> Dict[str, Optional[str]]:
    """Versions of python, torch, fairseq, this plugin and rdkit (None for a module that does not import)."""
    from . import __version__

    versions: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for name in ("torch", "fairseq"):
        versions[name] = _module_version(name)
    versions["iterref_fairseq"] = __version__
    versions["rdkit"] = _module_version("rdkit")
    return versions


__all__: List[str] = ["run_metadata", "git_state", "hardware_info", "versions_info", "cpu_model"]
