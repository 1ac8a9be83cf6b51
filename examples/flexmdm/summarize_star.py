#!/usr/bin/env python
"""Collects the star-graph runs of star_cpu_table.sh into results/flexmdm_star_cpu_<date>.{json,md}.

Arguments: DIFFICULTY:MODEL:CHECKPOINT_DIR ... (each dir holds checkpoint_last.pt and generate.txt).
"""
import argparse
import datetime
import json
import os
import platform
import re
from pathlib import Path

import torch

from iterref_fairseq.data.star_graphs import failure_report

NAMES = {"flexmdm": "FlexMDM (uniform order)", "lflexmdm": "LFlexMDM (learned insertion order, b_um = 1)",
         "ar": "AR transformer (fairseq, greedy)"}


def checkpoint_size(path: Path):
    """(parameter count, number of updates) of a fairseq checkpoint (also used by molecules_cpu_table.sh)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    return (sum(v.numel() for v in state["model"].values()),
            state.get("optimizer_history", [{}])[-1].get("num_updates"))


def generate_triples(text: str):
    """(prompt, target, hypothesis) per test example from fairseq-generate's S-/T-/H- lines."""
    fields = {}
    for line in text.splitlines():
        kind, _, rest = line.partition("-")
        if kind in ("S", "T", "H") and "\t" in rest:
            idx, *cols = rest.split("\t")
            fields.setdefault(idx, {})[kind] = cols[-1]
    missing = [i for i, f in fields.items() if len(f) != 3]
    if missing:
        raise SystemExit(f"generate output lacks S/T/H lines for examples {missing[:5]}: run without --quiet")
    return [(f["S"], f["T"], f["H"]) for f in fields.values()]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("runs", nargs="+")
    p.add_argument("--budget-min", type=float, required=True)
    p.add_argument("--max-update", type=int, default=None,
                   help="the update budget per model, when the runs were limited by updates rather than minutes")
    p.add_argument("--tag", default="", help="appended to the output file names (flexmdm_star_cpu_<tag>_<date>)")
    p.add_argument("--steps", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--out-dir", default="results")
    args = p.parse_args()
    rows = []
    for spec in args.runs:
        difficulty, model, ckdir = spec.split(":", 2)
        text = (Path(ckdir) / "generate.txt").read_text()
        found = re.search(r"^JSON (.*)$", text, re.M)
        if not found:
            raise SystemExit(f"{ckdir}/generate.txt has no exact-match JSON line: did fairseq-generate fail?")
        em = json.loads(found.group(1))
        params, updates = checkpoint_size(Path(ckdir) / "checkpoint_last.pt")
        order = {}
        if (Path(ckdir) / "order.json").exists():  # written for insertion models (iterref-analyze-star-order)
            o = json.loads((Path(ckdir) / "order.json").read_text())
            order = {"order_corr_reveal": o.get("pearson"), "order_corr_insert": o.get("pearson_insert"),
                     "order_exact_match_confidence_none": o.get("exact_match")}
        rows.append({"difficulty": difficulty, "model": model, "name": NAMES.get(model, model),
                     "exact_match": em["exact_match"], "correct": em["correct"], "total": em["total"],
                     "parameters": params, "updates": updates, **order,
                     "failures": failure_report(generate_triples(text))})
    date = datetime.date.today().isoformat()
    out = Path(args.out_dir)
    out.mkdir(exist_ok=True)
    meta = {"budget_minutes_per_model": args.budget_min, "max_update_per_model": args.max_update,
            "sampling_steps": args.steps, "seed": args.seed,
            "torch": torch.__version__, "hardware": f"{platform.machine()} {platform.processor()}".strip(),
            "cpu_count": os.cpu_count(), "omp_threads_per_model": os.environ.get("OMP_NUM_THREADS"),
            "date": date}
    stem = f"flexmdm_star_cpu_{args.tag + '_' if args.tag else ''}{date}"
    (out / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    budget = (f"{args.max_update} updates per model (same batch size; at most {args.budget_min:g} CPU minutes)"
              if args.max_update else f"{args.budget_min:g} CPU minutes per model")
    lines = [f"Star-graph exact match (%), {budget}, {args.steps} tau-leaping steps "
             f"(insertion models, confidence top_prob), greedy AR; seed {args.seed}.", "",
             "| difficulty | model | exact match | correct / total | wrong arm | parameters | updates | "
             "corr(insert time, dist.) | corr(reveal time, dist.) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def corr(x):
        return "-" if x is None else f"{x:.2f}"

    for r in rows:
        lines.append(f"| {r['difficulty']} | {r['name']} | {r['exact_match']:.1f} | {r['correct']} / {r['total']} | "
                     f"{r['failures']['wrong_arm']} | "
                     f"{r['parameters']:,} | {r['updates']} | {corr(r.get('order_corr_insert'))} | "
                     f"{corr(r.get('order_corr_reveal'))} |")
    lines += ["", "Wrong arm: hypotheses right up to the junction whose next node is wrong (the arm choice). "
              "Order columns: Pearson correlation between a token's generation step and its distance to the "
              "junction over the exactly-correct test paths, sampled without confidence ordering (-1: arm ends "
              "first, junction last, the paper's locally optimal order)."]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
