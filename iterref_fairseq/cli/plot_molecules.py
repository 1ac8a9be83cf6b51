"""Plots for the masked graph model (thesis Figs. 5.3, 5.8, 5.12), from files written by
``iterref-generate-molecules --trajectory-every K`` and ``iterref-evaluate-molecules --out``.

Sub-commands::

    # Fig. 5.8: GuacaMol metrics vs generation step (also writes the per-step metrics as JSON next to --out)
    iterref-plot-molecules steps --trajectory samples.smi.trajectory.jsonl --reference DATA/train.smi \\
        --out results/fig58.png [--no-fcd]
    # Fig. 5.3: Fréchet ChemNet Distance score vs novelty, one point per evaluated run (or per step)
    iterref-plot-molecules tradeoff results/t53_*.json results/fig58.json --out results/fig53.png
    # Fig. 5.12: one molecule along its generation trajectory, drawn with RDKit
    iterref-plot-molecules trajectory --trajectory samples.smi.trajectory.jsonl --index 0 --out results/fig512.png
"""
import argparse
import json
import os
import sys
from typing import Dict, List


def fail(msg: str) -> None:
    print(f"iterref-plot-molecules: error: {msg}", file=sys.stderr)
    sys.exit(2)


def read_trajectory(path: str) -> List[Dict]:
    if not os.path.isfile(path):
        fail(f"trajectory file not found: {path} (write one with iterref-generate-molecules --trajectory-every K)")
    with open(path) as f:
        try:
            rows = [json.loads(line) for line in f if line.strip()]
        except json.JSONDecodeError:
            fail(f"{path} is not a trajectory file (JSON lines with 'step' and 'smiles')")
    if not rows or not all("step" in r and "smiles" in r for r in rows):
        fail(f"{path} is not a trajectory file (JSON lines with 'step' and 'smiles')")
    return rows


def _pyplot():
    import logging

    import matplotlib

    for noisy in ("matplotlib", "PIL"):  # font-manager and PNG-chunk DEBUG lines are noise here
        logging.getLogger(noisy).setLevel(logging.WARNING)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cmd_steps(args) -> None:
    from iterref_fairseq.metrics.molecules import ReferenceStatistics, distribution_metrics

    rows = read_trajectory(args.trajectory)
    if not os.path.isfile(args.reference):
        fail(f"reference file not found: {args.reference}")
    with open(args.reference) as f:
        reference = [line.split()[0] for line in f if line.strip()]
    from tqdm import tqdm

    stats = ReferenceStatistics(reference, args.max_reference)  # shared by every step
    per_step = []
    for r in tqdm(rows, desc="scoring steps", disable=None):
        m = distribution_metrics(r["smiles"], stats, with_fcd=not args.no_fcd)
        m.pop("kl_per_descriptor", None)
        per_step.append({"step": r["step"], **m})
    keys = ["validity", "uniqueness", "novelty", "kl_div"] + ([] if args.no_fcd else ["frechet"])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for k in keys:
        ax.plot([m["step"] for m in per_step], [m[k] for m in per_step], marker=".", label=k)
    ax.set_xlabel("generation step")
    ax.set_ylabel("score")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title(os.path.basename(args.trajectory))
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    js = os.path.splitext(args.out)[0] + ".json"
    with open(js, "w") as f:
        json.dump({"trajectory": args.trajectory, "per_step": per_step}, f, indent=1)
    print(json.dumps({"plot": args.out, "metrics": js, "steps": len(per_step)}))


def cmd_tradeoff(args) -> None:
    points = []  # (label, novelty, frechet)
    for path in args.metrics:
        if not os.path.isfile(path):
            fail(f"metrics file not found: {path}")
        with open(path) as f:
            data = json.load(f)
        if "results" in data:  # iterref-evaluate-molecules --out
            for name, r in data["results"].items():
                if "frechet" not in r:
                    fail(f"{path}: no Fréchet score for {name}; evaluate without --no-fcd")
                points.append((os.path.basename(name), r["novelty"], r["frechet"]))
        elif "per_step" in data:  # iterref-plot-molecules steps
            xs = [(m["novelty"], m["frechet"]) for m in data["per_step"] if "frechet" in m]
            points.extend((f"{os.path.basename(path)}@{m['step']}", n, fr)
                          for m, (n, fr) in zip(data["per_step"], xs))
        else:
            fail(f"{path} is neither an iterref-evaluate-molecules nor a 'steps' JSON file")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter([p[1] for p in points], [p[2] for p in points])
    for label, x, y in points if len(points) <= 12 else []:
        ax.annotate(label, (x, y), fontsize=7)
    ax.set_xlabel("novelty")
    ax.set_ylabel("Fréchet ChemNet Distance score")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps({"plot": args.out, "points": len(points)}))


def cmd_trajectory(args) -> None:
    from rdkit import Chem
    from rdkit.Chem import Draw

    rows = read_trajectory(args.trajectory)
    if not 0 <= args.index < len(rows[0]["smiles"]):
        fail(f"--index {args.index} is out of range: the trajectory has {len(rows[0]['smiles'])} samples")
    mols, legends = [], []
    for r in rows[:: max(1, args.every)]:
        s = r["smiles"][args.index]
        mol = Chem.MolFromSmiles(s)
        mols.append(mol if mol is not None else Chem.Mol())
        legends.append(f"step {r['step']}" + ("" if mol is not None else " (invalid)"))
    img = Draw.MolsToGridImage(mols, molsPerRow=min(args.per_row, len(mols)), subImgSize=(220, 180), legends=legends)
    img.save(args.out)
    print(json.dumps({"plot": args.out, "frames": len(mols)}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("steps", help="metrics vs generation step (Fig. 5.8)")
    s.add_argument("--trajectory", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--max-reference", type=int, default=10000)
    s.add_argument("--no-fcd", action="store_true")
    s.add_argument("--out", required=True, help="PNG path; the per-step metrics go to the same name .json")
    t = sub.add_parser("tradeoff", help="Fréchet score vs novelty (Fig. 5.3)")
    t.add_argument("metrics", nargs="+", help="JSON files of iterref-evaluate-molecules --out or of 'steps'")
    t.add_argument("--out", required=True)
    d = sub.add_parser("trajectory", help="draw one sample along its trajectory (Fig. 5.12)")
    d.add_argument("--trajectory", required=True)
    d.add_argument("--index", type=int, default=0, help="which sample")
    d.add_argument("--every", type=int, default=1, help="draw every n-th recorded step")
    d.add_argument("--per-row", type=int, default=6)
    d.add_argument("--out", required=True)
    args = p.parse_args(argv)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        fail(f"output directory does not exist: {out_dir}")
    {"steps": cmd_steps, "tradeoff": cmd_tradeoff, "trajectory": cmd_trajectory}[args.cmd](args)


if __name__ == "__main__":
    main()
