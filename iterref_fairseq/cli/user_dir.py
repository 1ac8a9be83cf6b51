"""``iterref-user-dir``: prints the absolute path of the installed ``iterref_fairseq`` package directory, the value
fairseq's ``--user-dir`` needs, so that the plugin loads from any working directory::

    fairseq-train DATA --user-dir "$(iterref-user-dir)" --task translation_refine ...

(``--user-dir iterref_fairseq`` is a path relative to the working directory: it only works from the repository
root.)
"""
import importlib.util
import os
import sys
from typing import List, Optional

from .common import CLIError, console_main, new_parser

PROG = "iterref-user-dir"


def package_dir() -> str:
    """The directory fairseq imports as the plugin; the same entry as ``iterref_fairseq.__path__``, which fairseq
    compares with --user-dir when the package is already imported."""
    spec = importlib.util.find_spec("iterref_fairseq")
    return os.path.abspath(list(spec.submodule_search_locations)[0])


def build_parser():
    return new_parser(PROG, __doc__)


def _main(argv: Optional[List[str]]) -> int:
    build_parser().parse_args(argv)
    path = package_dir()
    if not os.path.isfile(os.path.join(path, "__init__.py")):
        raise CLIError(f"the iterref_fairseq package directory {path} has no __init__.py; reinstall the package "
                       "(pip install -e .)")
    print(path)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
