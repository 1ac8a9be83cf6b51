#!/usr/bin/env python
"""Reference conformers for the ``conformer`` task (thesis ch. 6): OUT/{train,valid,test}.sdf + OUT/prepare.json.

One conformer per molecule, heavy atoms only (``iterref_fairseq/data/conformers.py`` says how QM9 geometries
become RDKit molecules). Every rejected molecule is counted by reason in the printed and written summary.

    python scripts/prepare_conformers.py --qm9 --out work/conformers/qm9                   # thesis: 5,000 / 5,000
    python scripts/prepare_conformers.py --qm9 --out work/conformers/qm9_cpu --max-molecules 20000 \\
        --valid-size 500 --test-size 500
    python scripts/prepare_conformers.py --sdf "$(python -c 'import rdkit, os; print(os.path.join(
        os.path.dirname(rdkit.__file__), "Contrib/PBF/testData/egfr.sdf"))')" --out work/conformers/egfr --test-only

``--test-only`` writes every kept molecule to test.sdf (an evaluation set such as egfr.sdf, larger molecules
than QM9, for a model trained on QM9).
"""
import argparse
import json
import os
import platform
import random
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prepare_conformers.py", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--qm9", action="store_true", help="QM9 with its DFT geometries (pip install qm9pack==1.0.3)")
    src.add_argument("--sdf", help="an SDF file with 3-D coordinates")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--valid-size", type=int, default=5000, help="validation molecules (thesis: 5,000)")
    p.add_argument("--test-size", type=int, default=5000, help="test molecules (thesis: 5,000)")
    p.add_argument("--test-only", action="store_true", help="write every kept molecule to test.sdf")
    p.add_argument("--max-molecules", type=int, default=None,
                   help="keep this many molecules in total, drawn in the seeded order (CPU sizes)")
    p.add_argument("--max-atoms", type=int, default=50, help="largest molecule kept, in heavy atoms")
    p.add_argument("--seed", type=int, default=1, help="seed of the molecule order and the splits")
    return p


def main(argv=None) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from iterref_fairseq.data.conformers import (Rejections, qm9_molecules, sdf_molecules, split_molecules,
                                                 write_sdf)

    p = build_parser()
    args = p.parse_args(argv)
    for name in ("valid_size", "test_size", "max_atoms"):
        if getattr(args, name) < (1 if name == "max_atoms" else 0):
            p.error(f"--{name.replace('_', '-')} must be >= {1 if name == 'max_atoms' else 0}")
    if args.max_molecules is not None and args.max_molecules < 1:
        p.error("--max-molecules must be >= 1")
    rejections = Rejections()
    try:
        if args.qm9:
            mols = qm9_molecules(args.max_atoms, rejections, limit=args.max_molecules, seed=args.seed)
            source = "qm9pack==1.0.3 (DFT geometries)"
        else:
            mols = sdf_molecules(args.sdf, args.max_atoms, rejections)
            random.Random(args.seed).shuffle(mols)
            mols = mols[:args.max_molecules] if args.max_molecules else mols
            source = os.path.abspath(args.sdf)
    except (RuntimeError, FileNotFoundError) as err:
        p.error(str(err))
    if not mols:
        p.error(f"no molecule was kept ({rejections.total} rejected: {dict(rejections.counts)}); see the reasons "
                "in the message above and check the input")
    if args.test_only:
        splits = {"test": mols}
    else:
        try:
            splits = split_molecules(mols, args.valid_size, args.test_size)
        except ValueError as err:
            p.error(f"{err}; lower them or raise --max-molecules")
    os.makedirs(args.out, exist_ok=True)
    written = {name: write_sdf(os.path.join(args.out, f"{name}.sdf"), part) for name, part in splits.items()}
    import rdkit

    summary = {"source": source, "seed": args.seed, "max_atoms": args.max_atoms, "max_molecules": args.max_molecules,
               "kept": len(mols), "rejected": rejections.total, "rejected_by_reason": rejections.to_json(),
               "splits": written, "heavy_atoms_only": True, "rdkit": rdkit.__version__,
               "python": platform.python_version()}
    with open(os.path.join(args.out, "prepare.json"), "w") as f:
        json.dump(summary, f, indent=1)
    for reason, info in summary["rejected_by_reason"].items():
        print(f"rejected {info['count']}: {info['meaning']} (e.g. {', '.join(info['examples'][:3])})")
    print(f"kept {len(mols)}, rejected {rejections.total}; wrote " +
          ", ".join(f"{k}.sdf {v}" for k, v in written.items()) + f" to {args.out}")
    print("JSON " + json.dumps({k: v for k, v in summary.items() if k != "rejected_by_reason"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
