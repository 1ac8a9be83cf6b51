#!/usr/bin/env python
"""Drug-like SMILES (MOSES) for the masked graph model from the installed ``molsets`` package (offline).

MOSES stands in for the thesis's ChEMBL set (GuacaMol's ChEMBL files cannot be installed offline). Reads
``moses/dataset/data/train.csv.gz`` and ``test.csv.gz`` without importing ``moses`` (its metrics need packages
we do not install; ``pip install --no-deps molsets==0.3.1``). The validation split is a seeded sample of the
MOSES training set; ``--max-train`` / ``--max-test`` subsample for CPU runs. Writes OUT/{train,valid,test}.smi
and OUT/prepare.json; SMILES RDKit rejects are skipped and counted.

Example::

    python scripts/prepare_moses.py --out work/moses --valid-size 10000 --seed 1
    python scripts/prepare_moses.py --out work/moses_small --max-train 20000 --valid-size 1000 --max-test 1000
"""
import importlib.util
import os
import sys


def moses_data_dir() -> str:
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("molsets is not installed: pip install --no-deps molsets==0.3.1 (or run scripts/install.sh)")
    return os.path.join(list(spec.submodule_search_locations)[0], "dataset", "data")


def read_csv(path: str) -> list:
    import pandas as pd

    if not os.path.exists(path):
        sys.exit(f"{path} is missing; reinstall molsets: pip install --no-deps --force-reinstall molsets==0.3.1")
    df = pd.read_csv(path)
    col = "SMILES" if "SMILES" in df.columns else df.columns[0]
    return df[col].astype(str).tolist()


def main(argv=None):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from iterref_fairseq.data.smiles_splits import prepare_parser, shuffled, write_data_dir

    p = prepare_parser(__doc__)
    p.add_argument("--max-train", type=int, default=None, help="keep this many training molecules (CPU runs)")
    p.add_argument("--max-test", type=int, default=None, help="keep this many test molecules")
    args = p.parse_args(argv)
    d = moses_data_dir()
    train = shuffled(read_csv(os.path.join(d, "train.csv.gz")), args.seed)
    if args.valid_size >= len(train):
        sys.exit(f"--valid-size {args.valid_size} must be smaller than the {len(train)} training molecules")
    valid, train = train[:args.valid_size], train[args.valid_size:]
    if args.max_train:
        train = train[:args.max_train]
    test = shuffled(read_csv(os.path.join(d, "test.csv.gz")), args.seed, args.max_test)
    write_data_dir(args.out, {"train": train, "valid": valid, "test": test}, args.seed, "molsets==0.3.1",
                   {"max_train": args.max_train, "max_test": args.max_test})


if __name__ == "__main__":
    main()
