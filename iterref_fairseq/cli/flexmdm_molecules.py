"""Deprecated module name, kept for one release: use :mod:`iterref_fairseq.cli.generate_molecule_strings`
(``iterref-generate-molecule-strings``); ``python -m`` on this name warns and runs it."""
import sys

from .generate_molecule_strings import *  # noqa: F401,F403

if __name__ == "__main__":
    from .aliases import run_alias

    sys.exit(run_alias("iterref-flexmdm-molecules"))
