#!/usr/bin/env python
"""Exact match on the synthetic reversal task (tests/test_learning.py's data and recipe) for variants of the
refinement NAT, each given as extra fairseq-train flags.

    python examples/refinement_nat/reversal_ablation.py WORKDIR "defaults=" \\
        "highway=--decoder-connections highway" "no-scale=--no-scale-embedding" --out results.json

Each variant trains refinement_nat_tiny (d 64, 2 encoder layers, 1 layer per decoder) for --max-update updates on
3,000 reversal pairs and decodes the 200 test pairs with idec 1 and 10 (repeats kept). Writes JSON with provenance.
"""
import argparse
import json
import shlex
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from conftest import USER_DIR, binarize, cli, write_reversal_corpus  # noqa: E402
from test_learning import exact_match  # noqa: E402

RECIPE = ["--task", "translation_refine", "--criterion", "refinement_nat_loss", "--arch", "refinement_nat_tiny",
          "--encoder-embed-dim", "64", "--decoder-embed-dim", "64", "--encoder-ffn-embed-dim", "128",
          "--decoder-ffn-embed-dim", "128", "--encoder-layers", "2", "--decoder-layers", "1",
          "--encoder-attention-heads", "4", "--decoder-attention-heads", "4", "--dropout", "0", "--optimizer", "adam",
          "--adam-betas", "(0.9,0.98)", "--lr", "3e-3", "--lr-scheduler", "inverse_sqrt", "--warmup-updates", "50",
          "--max-tokens", "2000", "--cpu", "--no-epoch-checkpoints", "--disable-validation", "--seed", "1",
          "--log-format", "simple"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("workdir", type=Path)
    p.add_argument("variants", nargs="+", metavar="NAME=FLAGS")
    p.add_argument("--max-update", type=int, default=450)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    data = args.workdir / "bin"
    if not data.exists():
        write_reversal_corpus(args.workdir / "raw", 3000, 200, seed=0)
        binarize(args.workdir / "raw", data)
    rows = []
    for spec in args.variants:
        name, _, flags = spec.partition("=")
        save = args.workdir / name
        cli("fairseq-train", data, "--user-dir", USER_DIR, *RECIPE, "--max-update", str(args.max_update),
            "--save-dir", save, *shlex.split(flags))
        scores = {}
        for idec in (1, 10):
            out = cli("fairseq-generate", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--path",
                      save / "checkpoint_last.pt", "--cpu", "--batch-size", "100", "--keep-repeats",
                      "--iter-decode-max-iter", idec).stdout
            scores[f"idec{idec}"] = exact_match(out)
        words = shlex.split(flags)
        updates = int(words[words.index("--max-update") + 1]) if "--max-update" in words else args.max_update
        rows.append({"variant": name, "flags": flags, "max_update": updates, "exact_match": scores})
        print(name, flags, scores, file=sys.stderr, flush=True)
    sys.path.insert(0, str(REPO))
    from iterref_fairseq.provenance import run_metadata

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "provenance": run_metadata([sys.argv[0], *(argv or sys.argv[1:])],
                                                                             seed=1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
