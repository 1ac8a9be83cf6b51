"""Thesis Table 3.3 in small: one table from two ``iterref-benchmark-nat`` runs over the same checkpoints, one that
removes consecutive repeated tokens from the outputs (the default) and one with ``--keep-repeats``.

Each ``--row NAME=DATA,PDAE`` names a system of both runs (``NAME:1``, ``NAME:10``, ``NAME:adaptive`` in their
``--systems``) and the recipe it was trained with: DATA names the training targets (``raw``, ``distilled``, or
e.g. ``distilled-beam4``), PDAE the probability of the DAE term. The table has one line per system and repeat
setting, with BLEU at idec 1 and 10 and adaptive (mean decoder passes in brackets), and the thesis's three contrasts
underneath as BLEU differences at idec 10: distillation (each other DATA against ``raw``, same pDAE as the first
row), pDAE (the first row against the first row with its DATA and another pDAE) and repeat removal (the first row,
removed against kept).

    python examples/refinement_nat/table33.py --removed removed.json --kept kept.json \
        --row nat-s1=distilled,0.5 --row nat-raw-s1=raw,0.5 --row nat-pdae0-s1=distilled,0 \
        --out results/refinement_nat/bible_table33_<date>.json
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from iterref_fairseq.provenance import write_results  # noqa: E402

SETTINGS = ("1", "10", "adaptive")


def parse_row(text: str) -> Dict:
    """``NAME=DATA,PDAE`` -> {"name", "data", "pdae"}; a clear error otherwise."""
    try:
        name, recipe = text.split("=", 1)
        data, pdae = recipe.split(",")
        pdae_value = float(pdae)
    except ValueError:
        raise SystemExit(f"--row {text!r}: expected NAME=DATA,PDAE, e.g. nat-s1=distilled,0.5")
    if not data or not name:
        raise SystemExit(f"--row {text!r}: NAME and DATA must not be empty (DATA: 'raw', 'distilled', ...)")
    return {"name": name, "data": data, "pdae": pdae_value}


def scores_of(benchmark: Dict, name: str, source: str) -> Dict[str, Dict]:
    """{setting: {"bleu", "mean_steps"}} of system ``name`` in one benchmark JSON (every setting must be there)."""
    found = {r["setting"]: {"bleu": r["bleu"], "mean_steps": r.get("mean_steps")}
             for r in benchmark["rows"] if r.get("kind") == name}
    missing = [s for s in SETTINGS if s not in found]
    if missing:
        raise SystemExit(f"{source}: system {name} has no rows for idec {', '.join(missing)} (decode it with "
                         f"--systems {','.join(f'{name}:{s}' for s in SETTINGS)})")
    return found


def build(removed: Dict, kept: Dict, rows: Sequence[Dict], removed_path: str = "removed",
          kept_path: str = "kept") -> Dict:
    lines: List[Dict] = []
    for row in rows:
        for repeats, bench, path in (("removed", removed, removed_path), ("kept", kept, kept_path)):
            lines.append({**row, "repeats": repeats, "scores": scores_of(bench, row["name"], path)})
    base = lines[0]

    def at10(line: Dict) -> float:
        return line["scores"]["10"]["bleu"]

    def find(**want) -> Optional[Dict]:
        return next((x for x in lines if all(x[k] == v for k, v in want.items())), None)

    contrasts = {}
    raw = find(data="raw", pdae=base["pdae"], repeats="removed")
    if raw is not None:
        for line in lines:
            if line["repeats"] == "removed" and line["pdae"] == base["pdae"] and line["data"] != "raw":
                contrasts[f"distillation ({line['data']} - raw)"] = at10(line) - at10(raw)
    other_pdae = next((x for x in lines if x["data"] == base["data"] and x["pdae"] != base["pdae"]
                       and x["repeats"] == "removed"), None)
    if other_pdae is not None:
        contrasts[f"pDAE {base['pdae']:g} - pDAE {other_pdae['pdae']:g}"] = at10(base) - at10(other_pdae)
    contrasts["repeat removal (removed - kept)"] = at10(base) - at10(find(name=base["name"], repeats="kept"))
    return {"lines": lines, "contrasts_bleu_idec10": contrasts}


def markdown(table: Dict) -> str:
    out = ["| system | data | pDAE | repeats | idec 1 | idec 10 | adaptive (passes) |",
           "|---|---|---:|---|---:|---:|---:|"]
    for x in table["lines"]:
        s = x["scores"]
        out.append(f"| {x['name']} | {x['data']} | {x['pdae']:g} | {x['repeats']} | {s['1']['bleu']:.2f} | "
                   f"{s['10']['bleu']:.2f} | {s['adaptive']['bleu']:.2f} ({s['adaptive']['mean_steps']:.1f}) |")
    out += ["", "BLEU differences at idec 10 against the first row:", ""]
    out += [f"- {k}: {v:+.2f}" for k, v in table["contrasts_bleu_idec10"].items()]
    return "\n".join(out) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--removed", required=True, help="benchmark JSON decoded with repeat removal (default)")
    parser.add_argument("--kept", required=True, help="benchmark JSON of the same systems with --keep-repeats")
    parser.add_argument("--row", action="append", required=True, metavar="NAME=DATA,PDAE",
                        help="a system and its recipe; the first row is the baseline of the contrasts")
    parser.add_argument("--out", required=True, help="output JSON (the markdown table goes beside it)")
    args = parser.parse_args(argv)
    removed, kept = (json.loads(Path(p).read_text()) for p in (args.removed, args.kept))
    if removed.get("remove_repeats") is False or kept.get("remove_repeats") is True:
        raise SystemExit(f"{args.removed} must be decoded with repeat removal and {args.kept} with --keep-repeats "
                         f"(their 'remove_repeats' fields say otherwise)")
    table = build(removed, kept, [parse_row(r) for r in args.row], args.removed, args.kept)
    table.update({"removed": args.removed, "kept": args.kept, "refs": removed.get("refs"),
                  "split": removed.get("split")})
    write_results(table, Path(args.out), markdown(table), argv, seed=removed.get("seed"))
    print(markdown(table))


if __name__ == "__main__":
    main()
