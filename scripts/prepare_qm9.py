#!/usr/bin/env python
"""QM9 SMILES for the masked graph model (thesis ch. 5) from the installed ``qm9pack`` package (offline).

Reads ``qm9pack/data/qm9_part{1,2,3}.csv`` (130,831 molecules, column ``SMILES``), shuffles with ``--seed``,
optionally keeps ``--max-molecules``, and writes OUT/{train,valid,test}.smi (canonical SMILES, one per line) and
OUT/prepare.json. SMILES RDKit rejects are skipped and counted.

Example::

    python scripts/prepare_qm9.py --out work/qm9 --valid-size 10000 --test-size 10000 --seed 1
    python scripts/prepare_qm9.py --out work/qm9_small --max-molecules 20000 --valid-size 1000 --test-size 1000
"""
import os
import sys


def read_qm9() -> list:
    import pandas as pd

    from iterref_fairseq.data.conformers import qm9_csv_files

    try:
        files = qm9_csv_files()
    except RuntimeError as err:
        sys.exit(str(err))
    return [s for f in files for s in pd.read_csv(f, usecols=["SMILES"])["SMILES"].astype(str).tolist()]


def main(argv=None):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from iterref_fairseq.data.smiles_splits import prepare_parser, shuffled, write_data_dir

    p = prepare_parser(__doc__)
    p.add_argument("--test-size", type=int, default=10000)
    p.add_argument("--max-molecules", type=int, default=None, help="keep this many molecules in total (CPU runs)")
    p.add_argument("--write-all", action="store_true",
                   help="also write all.smi: every QM9 molecule, the thesis's novelty reference (iterref-evaluate-"
                        "molecules --novelty-reference OUT/all.smi), also when --max-molecules keeps a subset")
    args = p.parse_args(argv)
    everything = read_qm9()
    smiles = shuffled(everything, args.seed, args.max_molecules)
    nv, nt = args.valid_size, args.test_size
    if nv + nt >= len(smiles):
        sys.exit(f"--valid-size + --test-size ({nv + nt}) must be smaller than the {len(smiles)} molecules kept")
    splits = {"valid": smiles[:nv], "test": smiles[nv:nv + nt], "train": smiles[nv + nt:]}
    if args.write_all:
        splits["all"] = everything
    write_data_dir(args.out, splits, args.seed, "qm9pack==1.0.3", {"max_molecules": args.max_molecules})


if __name__ == "__main__":
    main()
