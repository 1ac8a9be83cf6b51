"""Deprecated module name, kept for one release: use :mod:`iterref_fairseq.cli.analyze_star_order`
(``iterref-analyze-star-order``); ``python -m`` on this name warns and runs it."""
import sys

from .analyze_star_order import *  # noqa: F401,F403

if __name__ == "__main__":
    from .aliases import run_alias

    sys.exit(run_alias("iterref-flexmdm-order"))
