#!/usr/bin/env python
"""Molecule strings for FlexMDM / LFlexMDM (task ``molecule_strings``), binarized for fairseq.

    python scripts/prepare_molecule_strings.py --out data-bin/moses-smiles [--smi-dir work/moses] \\
        [--format smiles|safe] [--max-train 0 --valid-size 10000 --max-test 10000 --seed 1]

Reads ``--smi-dir`` (output of scripts/prepare_moses.py) or MOSES from the installed molsets wheel, writes
OUT/raw/{train,valid,test}.{src,tgt} (prompt ``MOL`` / atom-level tokens) and binarizes them with a joined
dictionary. Skipped molecules (SAFE encoding or tokenization failures) are counted in the JSON summary.
"""
import argparse
import json
import os
import sys
from pathlib import Path


def main(argv=None) -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from iterref_fairseq.data.molecule_strings import PROMPT, encode_strings, load_splits

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--smi-dir", help="directory with train.smi/valid.smi/test.smi (default: read molsets)")
    p.add_argument("--format", default="smiles", choices=["smiles", "safe"])
    p.add_argument("--max-train", type=int, default=0, help="0 = all")
    p.add_argument("--valid-size", type=int, default=10000)
    p.add_argument("--max-test", type=int, default=10000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    try:
        splits = load_splits(args.smi_dir, args.max_train, args.valid_size, args.max_test, args.seed)
        encoded = {k: encode_strings(v, args.format) for k, v in splits.items()}
    except (FileNotFoundError, ImportError, ValueError) as e:
        p.error(str(e))
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, (lines, _skipped) in encoded.items():
        if not lines:
            p.error(f"split {split} is empty after encoding; check --smi-dir / --format")
        (raw / f"{split}.tgt").write_text("".join(line + "\n" for line in lines))
        (raw / f"{split}.src").write_text(f"{PROMPT}\n" * len(lines))
    from fairseq import options
    from fairseq_cli import preprocess

    preprocess.main(options.get_preprocessing_parser().parse_args([
        "--source-lang", "src", "--target-lang", "tgt", "--destdir", str(args.out), "--joined-dictionary",
        "--trainpref", str(raw / "train"), "--validpref", str(raw / "valid"), "--testpref", str(raw / "test"),
        "--workers", "1"]))
    (args.out / "format.txt").write_text(args.format + "\n")
    summary = {"out": str(args.out), "format": args.format, "seed": args.seed,
               **{split: len(lines) for split, (lines, _) in encoded.items()},
               "skipped": {split: s for split, (_, s) in encoded.items()}}
    print("JSON " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
