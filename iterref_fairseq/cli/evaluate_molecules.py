"""Scores generated molecules with the GuacaMol distribution-learning metrics (see metrics/molecules.py).

Example::

    iterref-evaluate-molecules --reference work/qm9/train.smi samples.smi [more.smi ...] --out results/mgm.json

Each samples file holds one SMILES per line (lines RDKit rejects count as invalid molecules). The reference file
must be clean (every line a valid SMILES). Prints a table (validity, uniqueness, novelty, KL-divergence score,
Fréchet ChemNet Distance score) and a JSON summary (also written to ``--out``).
"""
import argparse
import json
import os
import platform
import sys
from typing import List


def fail(msg: str) -> None:
    print(f"iterref-evaluate-molecules: error: {msg}", file=sys.stderr)
    sys.exit(2)


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


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("samples", nargs="+", help="generated SMILES files")
    p.add_argument("--reference", required=True, help="training SMILES (novelty, KL and FCD reference)")
    p.add_argument("--max-reference", type=int, default=10000, help="reference subset size for KL and FCD")
    p.add_argument("--no-fcd", action="store_true", help="skip the Fréchet ChemNet Distance (slow on a CPU)")
    p.add_argument("--seed", type=int, default=42, help="seed of the reference subset")
    p.add_argument("--out", default=None, help="write the JSON summary here")
    args = p.parse_args(argv)

    from iterref_fairseq.metrics.molecules import ReferenceStatistics, distribution_metrics

    reference = read_lines(args.reference, "reference")
    stats = ReferenceStatistics(reference, args.max_reference, args.seed)
    bad = [(i + 1, s) for i, (s, c) in enumerate(zip(reference, stats.canonical_per_line)) if c is None]
    if bad:
        fail(f"reference file {args.reference} has {len(bad)} invalid SMILES (first: line {bad[0][0]} "
             f"{bad[0][1]!r}); use the train.smi written by scripts/prepare_qm9.py / prepare_moses.py, which "
             "drops them")
    results = {}
    for path in args.samples:
        samples = read_lines(path, "samples")
        results[path] = distribution_metrics(samples, stats, with_fcd=not args.no_fcd)
    cols = ["validity", "uniqueness", "novelty", "kl_div"] + ([] if args.no_fcd else ["frechet"])
    width = max(len(os.path.basename(k)) for k in results) + 2
    print("samples".ljust(width) + " ".join(c[:10].rjust(10) for c in cols))
    for path, r in results.items():
        print(os.path.basename(path).ljust(width) + " ".join(f"{r[c]:10.3f}" for c in cols))
    summary = {"reference": os.path.abspath(args.reference), "num_reference": len(reference),
               "max_reference": args.max_reference, "seed": args.seed, "python": platform.python_version(),
               "results": results}
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
