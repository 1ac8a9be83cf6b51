"""``iterref-make-star-graphs``: generate and binarize star-graph traversal data (``data/star_graphs.py``).

    iterref-make-star-graphs --difficulty easy --seed 0 --out data-bin/star-easy [--train 50000 --valid 100 --test 5000]

Writes ``OUT/raw/{train,valid,test}.{src,tgt}`` (prompt / target path), a fixed dictionary covering every node
id, and the fairseq-binarized data in ``OUT`` (read with ``--task star_graph``). Ends with a JSON summary.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

from ..data.star_graphs import DIFFICULTIES, generate_splits, iter_lines, vocabulary
from .common import CLIError, check_positive, console_main, new_parser

PROG = "iterref-make-star-graphs"


def binarize(raw: Path, out: Path, dict_path: Path, splits) -> None:
    from fairseq import options
    from fairseq_cli import preprocess

    parser = options.get_preprocessing_parser()
    argv = ["--source-lang", "src", "--target-lang", "tgt", "--destdir", str(out), "--joined-dictionary",
            "--srcdict", str(dict_path), "--workers", "1"]
    for split in splits:
        argv += [f"--{'train' if split == 'train' else 'valid' if split == 'valid' else 'test'}pref", str(raw / split)]
    preprocess.main(parser.parse_args(argv))


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    p.add_argument("--difficulty", required=True, choices=list(DIFFICULTIES),
                   help="graph family (degree, arm length, number of nodes)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the graphs")
    p.add_argument("--out", required=True, type=Path, help="output directory (binarized data; raw text in OUT/raw)")
    p.add_argument("--train", type=int, default=50000, help="training examples")
    p.add_argument("--valid", type=int, default=100, help="validation examples")
    p.add_argument("--test", type=int, default=5000, help="test examples")
    p.add_argument("--no-binarize", action="store_true", help="write the raw text only")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    check_positive(train=args.train, valid=args.valid, test=args.test)
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out} is a file; --out is the output directory (choose a directory)")
    sizes = {"train": args.train, "valid": args.valid, "test": args.test}
    try:
        splits = generate_splits(args.difficulty, args.seed, sizes)
    except (ValueError, RuntimeError) as e:
        raise CLIError(str(e)) from None
    raw = args.out / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, examples in splits.items():
        with open(raw / f"{split}.src", "w") as fs, open(raw / f"{split}.tgt", "w") as ft:
            for prompt, target in iter_lines(examples):
                fs.write(prompt + "\n")
                ft.write(target + "\n")
    dict_path = raw / "dict.txt"
    dict_path.write_text("".join(f"{sym} 1\n" for sym in vocabulary(args.difficulty)))
    if not args.no_binarize:
        binarize(raw, args.out, dict_path, splits)
    print("JSON " + json.dumps({"difficulty": args.difficulty, "seed": args.seed, "out": str(args.out),
                                **{k: len(v) for k, v in splits.items()}}))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
