#!/usr/bin/env python
"""The CVGAE's learning curve from a fairseq-train log: validation prior RMSD (10 prior samples per molecule, the
checkpoint-selection metric), posterior reconstruction RMSD and the KL terms against updates and wall time.
Writes OUT (JSON with provenance) and OUT with .png.

    python examples/cvgae/learning_curve.py work/cvgae_table/cvgae_qm9_s1/train.log --out curve.json
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

FIELDS = ("reconstruction", "kl_posterior_prior", "kl_prior_standard", "rmsd", "prior_rmsd", "num_updates", "wall")


def parse(path: str):
    points = []
    with open(path) as f:
        for line in f:
            if "| valid | " not in line:
                continue
            values = dict(re.findall(r"\| (\w+) ([-\d.e]+)", line))
            points.append({k: float(values[k]) for k in FIELDS if k in values})
    return points


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log", help="fairseq-train log (--log-format simple)")
    p.add_argument("--out", required=True, help="output JSON; the plot goes beside it")
    args = p.parse_args(argv)
    points = parse(args.log)
    if not points:
        p.error(f"{args.log} has no validation line; train with validation (--validate-interval-updates)")
    from iterref_fairseq.provenance import run_metadata

    meta = run_metadata([os.path.basename(__file__)] + (argv if argv is not None else sys.argv[1:]), seed=None)
    meta["note"] = "seed is null: this script only reads a training log"
    with open(args.out, "w") as f:
        json.dump({"log": os.path.abspath(args.log), "points": points, "provenance": meta}, f, indent=1)
    from iterref_fairseq.plotting import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [pt["num_updates"] for pt in points]
    ax.plot(x, [pt["prior_rmsd"] for pt in points], marker="o", label="prior samples (generation)")
    ax.plot(x, [pt["rmsd"] for pt in points], marker="s", label="posterior reconstruction")
    ax.set_xlabel("updates (batch 20 molecules)")
    ax.set_ylabel("validation RMSD (A)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.splitext(args.out)[0] + ".png", dpi=120)
    print(json.dumps(points[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
