"""``iterref-evaluate-molecules``: scores generated molecules with the GuacaMol distribution-learning metrics (see
metrics/molecules.py).

Example::

    iterref-evaluate-molecules --reference work/qm9/train.smi samples.smi [more.smi ...] --out results/mgm.json

Each samples file holds one SMILES per line (lines RDKit rejects count as invalid molecules). The reference file
must be clean (every line a valid SMILES). Prints a table (validity, uniqueness, novelty, KL-divergence score,
Fréchet ChemNet Distance score) and a JSON summary; with ``--out``, writes the summary there (JSON) and the table
beside it (``.md``).
"""
import argparse
import json
import os
import platform
import sys
from typing import Dict, List

from .common import CLIError, check_out_dir, console_main, new_parser, provenance

PROG = "iterref-evaluate-molecules"


def fail(msg: str) -> None:
    """Bad input: one line on stderr and exit status 2 (raises :class:`~iterref_fairseq.cli.common.CLIError`)."""
    raise CLIError(msg)


def read_lines(path: str, what: str) -> List[str]:
    if not os.path.isfile(path):
        fail(f"{what} file not found: {path} (check the path)")
    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.strip().split()[0] if line.strip() else "" for line in f]
    except UnicodeDecodeError:
        fail(f"{what} file {path} is not a text file of SMILES (one per line)")
    if lines and lines[0].lower() == "smiles":
        lines = lines[1:]
    if not lines:
        fail(f"{what} file {path} is empty; it must hold one SMILES per line")
    return lines


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    p.add_argument("samples", nargs="+", help="generated SMILES files (iterref-generate-molecules --out)")
    p.add_argument("--reference", required=True, help="training SMILES (novelty, KL and FCD reference)")
    p.add_argument("--novelty-reference", default=None,
                   help="a second novelty reference, reported beside the training-set novelty as "
                        "novelty_full_reference: the thesis scores novelty against the whole dataset (QM9: the "
                        "all.smi of scripts/prepare_qm9.py --write-all)")
    p.add_argument("--max-reference", type=int, default=10000, help="reference subset size for KL and FCD")
    p.add_argument("--no-fcd", action="store_true", help="skip the Fréchet ChemNet Distance (slow on a CPU)")
    p.add_argument("--seed", type=int, default=42, help="seed of the reference subset")
    p.add_argument("--out", default=None, help="write the JSON summary here and the table beside it (.md)")
    return p


def markdown(results: Dict[str, Dict], cols: List[str]) -> str:
    lines = ["| samples | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 1)]
    for path, r in results.items():
        lines.append(f"| {os.path.basename(path)} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    return "\n".join(lines)


def run(args) -> dict:
    """Scores every samples file; prints the table, writes ``--out`` (and ``.md``); returns the summary."""
    from iterref_fairseq.metrics.molecules import ReferenceStatistics, distribution_metrics, novelty

    if args.max_reference < 1:
        fail(f"--max-reference must be >= 1, got {args.max_reference}")
    if args.out:
        check_out_dir(args.out)
    reference = read_lines(args.reference, "reference")
    samples_lines = {path: read_lines(path, "samples") for path in args.samples}  # every file checked first
    stats = ReferenceStatistics(reference, args.max_reference, args.seed)
    bad = [(i + 1, s) for i, (s, c) in enumerate(zip(reference, stats.canonical_per_line)) if c is None]
    if bad:
        fail(f"reference file {args.reference} has {len(bad)} invalid SMILES (first: line {bad[0][0]} "
             f"{bad[0][1]!r}); use the train.smi written by scripts/prepare_qm9.py / prepare_moses.py, which "
             "drops them")
    full = None
    if args.novelty_reference:
        full = ReferenceStatistics(read_lines(args.novelty_reference, "novelty reference"))
    results = {}
    for path, samples in samples_lines.items():
        results[path] = distribution_metrics(samples, stats, with_fcd=not args.no_fcd)
        if full is not None:
            results[path]["novelty_full_reference"] = novelty(samples, full)
    cols = ["validity", "uniqueness", "novelty"] + (["novelty_full_reference"] if full is not None else []) \
        + ["kl_div"] + ([] if args.no_fcd else ["frechet"])
    width = max(len(os.path.basename(k)) for k in results) + 2
    print("samples".ljust(width) + " ".join(c[:10].rjust(10) for c in cols))
    for path, r in results.items():
        print(os.path.basename(path).ljust(width) + " ".join(f"{r[c]:10.3f}" for c in cols))
    summary = {"reference": os.path.abspath(args.reference), "num_reference": len(reference),
               "novelty_reference": args.novelty_reference and os.path.abspath(args.novelty_reference),
               "max_reference": args.max_reference, "seed": args.seed, "python": platform.python_version(),
               "results": results, "provenance": provenance(args)}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(markdown(results, cols) + "\n")
    print(json.dumps(summary))
    return summary


def _main(argv=None) -> int:
    run(build_parser().parse_args(argv))
    return 0


def main(argv=None) -> int:
    """Console entry point: 0 on success, 2 with one message on stderr on bad input (use :func:`run` for the
    summary)."""
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
