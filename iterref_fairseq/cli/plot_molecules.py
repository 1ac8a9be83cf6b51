"""``iterref-plot-molecules``: plots for the masked graph model (thesis Figs. 5.3, 5.8, 5.12), from files written by
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

from ..plotting import pyplot
from .common import CLIError, console_main, new_parser, provenance

PROG = "iterref-plot-molecules"


def fail(msg: str) -> None:
    """Bad input: one line on stderr and exit status 2 (raises :class:`~iterref_fairseq.cli.common.CLIError`)."""
    raise CLIError(msg)


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
    plt = pyplot()
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
        json.dump({"trajectory": args.trajectory, "per_step": per_step, "provenance": provenance(args)}, f, indent=1)
    print(json.dumps({"plot": args.out, "metrics": js, "steps": len(per_step)}))


def cmd_tradeoff(args) -> None:
    """One labelled point per evaluated run (iterref-evaluate-molecules JSON) and one line per step file, whose
    points are the generation steps (step 0 = the initialization)."""
    runs, curves = [], []  # runs: (label, novelty, frechet); curves: (label, [(step, novelty, frechet)])
    for path in args.metrics:
        if not os.path.isfile(path):
            fail(f"metrics file not found: {path}")
        with open(path) as f:
            data = json.load(f)
        if "results" in data:  # iterref-evaluate-molecules --out
            for name, r in data["results"].items():
                if "frechet" not in r:
                    fail(f"{path}: no Fréchet score for {name}; evaluate without --no-fcd")
                runs.append((os.path.splitext(os.path.basename(name))[0], r["novelty"], r["frechet"]))
        elif "per_step" in data:  # iterref-plot-molecules steps
            pts = [(m["step"], m["novelty"], m["frechet"]) for m in data["per_step"] if "frechet" in m]
            if not pts:
                fail(f"{path}: no Fréchet scores per step; run 'steps' without --no-fcd")
            curves.append((os.path.basename(data.get("trajectory", path)).split(".smi")[0] + " (per step)", pts))
        else:
            fail(f"{path} is neither an iterref-evaluate-molecules nor a 'steps' JSON file")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for label, pts in curves:
        ax.plot([p[1] for p in pts], [p[2] for p in pts], "-o", ms=3, alpha=0.6, label=label)
        ax.annotate(f"step {pts[0][0]}", (pts[0][1], pts[0][2]), fontsize=7)
        ax.annotate(f"step {pts[-1][0]}", (pts[-1][1], pts[-1][2]), fontsize=7)
    for label, x, y in runs:
        ax.scatter([x], [y], marker="s", s=30, zorder=3)
        ax.annotate(label, (x, y), fontsize=7, xytext=(-4, 4), textcoords="offset points", ha="right")
    ax.set_xlabel("novelty")
    ax.set_ylabel("Fréchet ChemNet Distance score")
    if curves:
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(json.dumps({"plot": args.out, "points": len(runs) + sum(len(c[1]) for c in curves)}))


def cmd_trajectory(args) -> None:
    """Draw one sample at every recorded step. Intermediate graphs that RDKit cannot sanitise (recorded as
    ``INVALID`` by the generator) get a labelled empty cell, so the grid keeps one cell per step and the reader
    sees where the chain passed through invalid states."""
    from rdkit import Chem
    from rdkit.Chem import Draw

    from iterref_fairseq.data.molecules import INVALID_SMILES

    rows = read_trajectory(args.trajectory)
    if not 0 <= args.index < len(rows[0]["smiles"]):
        fail(f"--index {args.index} is out of range: the trajectory has {len(rows[0]['smiles'])} samples")
    frames = rows[:: max(1, args.every)]
    if frames[-1] is not rows[-1]:
        frames.append(rows[-1])  # always show the final sample
    plt = pyplot()
    cols = min(args.per_row, len(frames))
    n_rows = (len(frames) + cols - 1) // cols
    fig, axes = plt.subplots(n_rows, cols, figsize=(2.4 * cols, 2.3 * n_rows), squeeze=False)
    invalid = 0
    for ax, r in zip(axes.flat, frames):
        s = r["smiles"][args.index]
        mol = Chem.MolFromSmiles(s) if s and s != INVALID_SMILES else None
        ax.set_axis_off()
        if mol is None:
            invalid += 1
            ax.text(0.5, 0.5, "invalid\n(RDKit cannot\nsanitise)", ha="center", va="center", color="firebrick",
                    fontsize=9, transform=ax.transAxes)
            ax.set_title(f"step {r['step']}", fontsize=9)
        else:
            ax.imshow(Draw.MolToImage(mol, size=(240, 200)))
            ax.set_title(f"step {r['step']}\n{s}", fontsize=7)
    for ax in list(axes.flat)[len(frames):]:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(json.dumps({"plot": args.out, "frames": len(frames), "invalid_frames": invalid}))


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    sub = p.add_subparsers(dest="cmd", required=True, metavar="{steps,tradeoff,trajectory}",
                           help="the figure to draw (iterref-plot-molecules SUBCOMMAND --help lists its flags)")
    s = sub.add_parser("steps", help="metrics vs generation step (Fig. 5.8)",
                       description="GuacaMol metrics of every recorded step of a trajectory (Fig. 5.8)")
    s.add_argument("--trajectory", required=True, help="OUT.trajectory.jsonl of iterref-generate-molecules")
    s.add_argument("--reference", required=True, help="training SMILES (novelty, KL and FCD reference)")
    s.add_argument("--max-reference", type=int, default=10000, help="reference subset size for KL and FCD")
    s.add_argument("--no-fcd", action="store_true", help="skip the Fréchet ChemNet Distance (slow on a CPU)")
    s.add_argument("--out", required=True, help="PNG path; the per-step metrics go to the same name .json")
    t = sub.add_parser("tradeoff", help="Fréchet score vs novelty (Fig. 5.3)",
                       description="Fréchet ChemNet Distance score vs novelty, one point per run (Fig. 5.3)")
    t.add_argument("metrics", nargs="+", help="JSON files of iterref-evaluate-molecules --out or of 'steps'")
    t.add_argument("--out", required=True, help="PNG path")
    d = sub.add_parser("trajectory", help="draw one sample along its trajectory (Fig. 5.12)",
                       description="one sample drawn at every recorded step of its trajectory (Fig. 5.12)")
    d.add_argument("--trajectory", required=True, help="OUT.trajectory.jsonl of iterref-generate-molecules")
    d.add_argument("--index", type=int, default=0, help="which sample")
    d.add_argument("--every", type=int, default=1, help="draw every n-th recorded step")
    d.add_argument("--per-row", type=int, default=6, help="molecules per row of the grid")
    d.add_argument("--out", required=True, help="PNG path")
    return p


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        fail(f"output directory does not exist: {out_dir} (create it or change --out)")
    {"steps": cmd_steps, "tradeoff": cmd_tradeoff, "trajectory": cmd_trajectory}[args.cmd](args)
    return 0


def main(argv=None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
