"""Deprecated console-script names, kept for one release: each prints one line on stderr,
``iterref-OLD is deprecated, use iterref-NEW``, and then runs the new script with the same arguments."""
import importlib
import sys
from typing import List, Optional

# old name -> (new name, module whose main() runs)
ALIASES = {
    "iterref-benchmark-decode": ("iterref-benchmark-nat", "iterref_fairseq.cli.benchmark_nat"),
    "iterref-nat-step-nll": ("iterref-analyze-nat-steps", "iterref_fairseq.cli.analyze_nat_steps"),
    "iterref-flexmdm-order": ("iterref-analyze-star-order", "iterref_fairseq.cli.analyze_star_order"),
    "iterref-flexmdm-molecules": ("iterref-generate-molecule-strings",
                                  "iterref_fairseq.cli.generate_molecule_strings"),
}


def run_alias(old: str, argv: Optional[List[str]] = None) -> int:
    new, module = ALIASES[old]
    print(f"{old} is deprecated, use {new}", file=sys.stderr, flush=True)
    return importlib.import_module(module).main(argv)


def benchmark_decode(argv: Optional[List[str]] = None) -> int:
    return run_alias("iterref-benchmark-decode", argv)


def nat_step_nll(argv: Optional[List[str]] = None) -> int:
    return run_alias("iterref-nat-step-nll", argv)


def flexmdm_order(argv: Optional[List[str]] = None) -> int:
    return run_alias("iterref-flexmdm-order", argv)


def flexmdm_molecules(argv: Optional[List[str]] = None) -> int:
    return run_alias("iterref-flexmdm-molecules", argv)
