"""Deprecated module name, kept for one release: use :mod:`iterref_fairseq.cli.benchmark_nat`
(``iterref-benchmark-nat``); ``python -m`` on this name warns and runs it."""
import sys

from .benchmark_nat import *  # noqa: F401,F403

if __name__ == "__main__":
    from .aliases import run_alias

    sys.exit(run_alias("iterref-benchmark-decode"))
