#!/usr/bin/env python
"""Collects the star-graph runs of star_cpu_table.sh into results/flexmdm/flexmdm_star_cpu_<tag>_<date>.{json,md,png}.

Arguments: DIFFICULTY:VARIANT:SEED:RUN_DIR ... Each run dir holds checkpoint_last.pt, generate.txt (the final
fairseq-generate output), curve/generate_<N>.txt (learning-curve points) and, for insertion models, order.json.
``--reuse FILE.json`` (repeatable) adds the rows of an earlier summary of the same setup (updates, batch, steps), so
a table can gather runs made in different sessions; each reused row names its file under ``from``.
"""
import argparse
import datetime
import json
import re
import statistics
from pathlib import Path
from typing import Dict, List

import torch

from iterref_fairseq.data.star_graphs import failure_report
from iterref_fairseq.provenance import run_metadata

NAMES = {"flexmdm": "FlexMDM (uniform order)", "lflexmdm": "LFlexMDM (b_um = 1, count head, reference regularisers)",
         "lflexmdm-nocount": "LFlexMDM without the count head",
         "lflexmdm-v020reg": "LFlexMDM, 0.2.0 regularisers (pooled, linear tail, no KL)",
         "lflexmdm-v020reg-nocount": "LFlexMDM, 0.2.0 regularisers, no count head",
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


def score(path: Path) -> Dict:
    text = path.read_text()
    found = re.search(r"^JSON (.*)$", text, re.M)
    if not found:
        raise SystemExit(f"{path} has no exact-match JSON line: did fairseq-generate fail?")
    return {**json.loads(found.group(1)), "failures": failure_report(generate_triples(text))}


def collect(spec: str) -> Dict:
    difficulty, variant, seed, run_dir = spec.split(":", 3)
    run = Path(run_dir)
    final = score(run / "generate.txt")
    params, updates = checkpoint_size(run / "checkpoint_last.pt")
    curve = []
    for f in sorted((run / "curve").glob("generate_*.txt"), key=lambda p: int(p.stem.split("_")[1])):
        s = score(f)
        curve.append({"updates": int(f.stem.split("_")[1]), "exact_match": s["exact_match"],
                      "right_length": s["failures"]["right_length"], "wrong_arm": s["failures"]["wrong_arm"],
                      "total": s["total"]})
    order = {}
    if (run / "order.json").exists():
        o = json.loads((run / "order.json").read_text())
        order = {"order_corr_reveal": o.get("pearson"), "order_corr_insert": o.get("pearson_insert"),
                 "order_choice_revealed_last": o.get("choice_revealed_last"),
                 "order_exact_match_confidence_none": o.get("exact_match")}
    return {"difficulty": difficulty, "variant": variant, "name": NAMES.get(variant, variant), "seed": int(seed),
            "exact_match": final["exact_match"], "correct": final["correct"], "total": final["total"],
            "parameters": params, "updates": updates, "failures": final["failures"], "curve": curve, **order}


def reuse_rows(path: Path, meta: Dict) -> List[Dict]:
    """Rows of an earlier summary JSON, each marked with the file it came from; the setup must match ``meta``."""
    earlier = json.loads(path.read_text())
    for key in ("max_update", "batch", "sampling_steps"):
        if earlier.get(key) != meta[key]:
            raise SystemExit(f"--reuse {path}: its {key} is {earlier.get(key)}, this table's is {meta[key]}; "
                             "only runs of the same setup go in one table")
    return [{**r, "from": r.get("from", path.name)} for r in earlier["rows"]]


def check_unique(rows: List[Dict]) -> None:
    seen = set()
    for r in rows:
        key = (r["difficulty"], r["variant"], r["seed"])
        if key in seen:
            raise SystemExit(f"two rows for {key[0]} {key[1]} seed {key[2]}: give each run once (a run dir or one "
                             "--reuse file)")
        seen.add(key)


def fmt(x, spec=".2f"):
    return "-" if x is None else format(x, spec)


def markdown(rows: List[Dict], meta: Dict) -> str:
    lines = [f"Star-graph exact match (%) on {rows[0]['total']} test graphs, {meta['max_update']} updates per model, "
             f"batch {meta['batch']} sentences, {meta['sampling_steps']} tau-leaping steps (insertion models, "
             "confidence top_prob), greedy AR.", "",
             "| difficulty | model | seed | exact match | right length | wrong arm | parameters | "
             "corr(insert, dist.) | corr(reveal, dist.) | choice last |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        f = r["failures"]
        lines.append(f"| {r['difficulty']} | {r['name']} | {r['seed']} | {r['exact_match']:.1f} | "
                     f"{f['right_length']} | {f['wrong_arm']} | {r['parameters']:,} | "
                     f"{fmt(r.get('order_corr_insert'))} | {fmt(r.get('order_corr_reveal'))} | "
                     f"{fmt(r.get('order_choice_revealed_last'))} |")
    sizes = sorted({p["total"] for r in rows for p in r["curve"][:-1]})
    points = sorted({p["updates"] for r in rows for p in r["curve"]})  # reused runs may have other curve points
    lines += ["", "Learning curves (exact match % at N updates; intermediate points on "
              f"{' or '.join(map(str, sizes)) or '-'} test graphs (per point in the JSON), the last on all; - = not "
              "measured):", "",
              "| difficulty | model | seed | " + " | ".join(map(str, points)) + " |",
              "|---|---|---:|" + "---:|" * len(points)]
    for r in rows:
        at = {p["updates"]: p["exact_match"] for p in r["curve"]}
        lines.append(f"| {r['difficulty']} | {r['name']} | {r['seed']} | "
                     + " | ".join(fmt(at.get(n), ".1f") for n in points) + " |")
    reused = sorted({r["from"] for r in rows if "from" in r})
    if reused:
        lines += ["", "Rows taken from earlier summaries: " + ", ".join(reused) + " (the `from` field of each row)."]
    lines += ["", "Right length / wrong arm: counts over the test graphs (wrong arm = right up to the junction, then "
              "the wrong outgoing edge: the choice that needs look-ahead). Order columns (insertion models, sampled "
              "without confidence ordering, exactly-correct paths only): Pearson correlation of generation step and "
              "distance to the junction (ideal -1), and the fraction of paths whose arm choice is revealed last on "
              "the goal side (ideal 1)."]
    return "\n".join(lines)


def plot(rows: List[Dict], out: Path) -> None:
    from iterref_fairseq.plotting import pyplot

    plt = pyplot()

    difficulties = sorted({r["difficulty"] for r in rows}, key=["easy", "medium", "hard"].index)
    fig, axes = plt.subplots(1, len(difficulties), figsize=(4.2 * len(difficulties), 3.2), squeeze=False)
    for ax, d in zip(axes[0], difficulties):
        for variant in dict.fromkeys(r["variant"] for r in rows if r["difficulty"] == d):
            runs = [r for r in rows if r["difficulty"] == d and r["variant"] == variant and r["curve"]]
            if not runs:
                continue
            # the mean over seeds at the points every run of this variant measured
            xs = sorted(set.intersection(*({p["updates"] for p in r["curve"]} for r in runs)))
            ys = [statistics.mean(p["exact_match"] for r in runs for p in r["curve"] if p["updates"] == x)
                  for x in xs]
            line, = ax.plot(xs, ys, "-o", ms=3, label=NAMES.get(variant, variant).split(" (")[0])
            for r in runs:
                ax.plot([p["updates"] for p in r["curve"]], [p["exact_match"] for p in r["curve"]], ":",
                        color=line.get_color(), lw=0.8)
        ax.set_title(f"{d} star graphs", fontsize=9)
        ax.set_xlabel("updates")
        ax.set_ylabel("exact match % (mean of seeds; dotted: each seed)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="*", help="DIFFICULTY:VARIANT:SEED:RUN_DIR")
    p.add_argument("--reuse", action="append", default=[], type=Path, metavar="FILE.json",
                   help="add the rows of an earlier summary of the same setup (repeatable)")
    p.add_argument("--max-update", type=int, required=True, help="the update budget of every model")
    p.add_argument("--batch", type=int, required=True, help="sentences per batch")
    p.add_argument("--tag", default="", help="appended to the output file names (flexmdm_star_cpu_<tag>_<date>)")
    p.add_argument("--steps", type=int, required=True, help="tau-leaping steps")
    p.add_argument("--out-dir", default="results/flexmdm")
    args = p.parse_args()
    if not args.runs and not args.reuse:
        p.error("give at least one DIFFICULTY:VARIANT:SEED:RUN_DIR or --reuse FILE.json")
    date = datetime.date.today().isoformat()
    setup = {"max_update": args.max_update, "batch": args.batch, "sampling_steps": args.steps}
    rows = [collect(spec) for spec in args.runs] + [r for f in args.reuse for r in reuse_rows(f, setup)]
    check_unique(rows)
    order = ["easy", "medium", "hard"]
    rows.sort(key=lambda r: (order.index(r["difficulty"]) if r["difficulty"] in order else 9,
                             list(NAMES).index(r["variant"]) if r["variant"] in NAMES else 99, r["seed"]))
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prov = run_metadata()
    prov["note"] = ("seed is null: the table gathers one run per training seed (rows[].seed); each run's command "
                    "is in star_cpu_table.sh")
    meta = {**setup, "date": date, "provenance": prov}
    stem = f"flexmdm_star_cpu_{args.tag + '_' if args.tag else ''}{date}"
    (out / f"{stem}.json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    text = markdown(rows, meta)
    (out / f"{stem}.md").write_text(text + "\n")
    if any(r["curve"] for r in rows):
        plot(rows, out / f"{stem}.png")
    print(text)


if __name__ == "__main__":
    main()
