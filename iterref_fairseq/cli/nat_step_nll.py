"""Deprecated module name, kept for one release: use :mod:`iterref_fairseq.cli.analyze_nat_steps`
(``iterref-analyze-nat-steps``); ``python -m`` on this name warns and runs it."""
import sys

from .analyze_nat_steps import *  # noqa: F401,F403

if __name__ == "__main__":
    from .aliases import run_alias

    sys.exit(run_alias("iterref-nat-step-nll"))
