#!/usr/bin/env python
"""Where CVGAE loses to ETKDG+MMFF: the Table 6.1 medians split by how flexible the test molecules are.

Reads one or more ``iterref-evaluate-conformers`` JSON files (their ``per_molecule`` entries, in the order of the
reference SDF) and the reference SDF itself, counts each reference's rotatable bonds (RDKit's
``CalcNumRotatableBonds``, strict definition) and reports, per group of molecules (0, 1, 2, >= 3 rotatable bonds
by default, ``--groups``), the number of molecules and the median over them of each method's per-molecule mean and
best RMSD (plain alignment, as Table 6.1). A rigid molecule has one low-energy conformer, so a generator that is
far from the reference there is inaccurate, not diverse; on flexible molecules one reference conformer is one of
several, and every method's mean RMSD grows.

    python examples/cvgae/rmsd_by_flexibility.py --reference work/cvgae_table/qm9/test.sdf \\
        --eval proper=results/cvgae/cvgae_qm9_cpu_2026-12-05.json \\
        --eval mirror=results/cvgae/cvgae_qm9_cpu_mirror_2026-12-05.json --out by_flexibility.json

A method that appears in several files is reported once per file, named ``LABEL:method`` (the ETKDG baselines are
usually the same rows in every file; ``--dedupe`` keeps the first file's when they are equal). Writes OUT (JSON with provenance) and
OUT with ``.md``.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def parse_groups(text: str) -> List[Tuple[int, Optional[int]]]:
    """"0,1,2,3+" -> [(0, 0), (1, 1), (2, 2), (3, None)]: inclusive ranges of rotatable bonds, None = no bound."""
    groups = []
    for part in text.split(","):
        part = part.strip()
        if part.endswith("+"):
            groups.append((int(part[:-1]), None))
        elif "-" in part:
            lo, hi = part.split("-")
            groups.append((int(lo), int(hi)))
        else:
            groups.append((int(part), int(part)))
    return groups


def group_name(group: Tuple[int, Optional[int]]) -> str:
    lo, hi = group
    return f"{lo}+" if hi is None else (str(lo) if lo == hi else f"{lo}-{hi}")


def median_of(rows: Sequence[Optional[Dict]], key: str, members: np.ndarray) -> Tuple[Optional[float], int]:
    """Median of rows[i][key] over the member molecules that have a value, and how many had one."""
    values = [rows[i][key] for i in np.flatnonzero(members) if rows[i] and rows[i].get(key) is not None]
    return (float(np.median(values)) if values else None), len(values)


def breakdown(rotatable: np.ndarray, methods: Dict[str, Sequence[Optional[Dict]]],
              groups: Sequence[Tuple[int, Optional[int]]]) -> List[Dict]:
    """One row per group: molecules, and per method the median mean / best RMSD and how many molecules had them."""
    rows = []
    for group in groups:
        lo, hi = group
        members = (rotatable >= lo) & ((rotatable <= hi) if hi is not None else True)
        row = {"rotatable_bonds": group_name(group), "molecules": int(members.sum()), "methods": {}}
        for name, per_molecule in methods.items():
            mean, n = median_of(per_molecule, "mean", members)
            best, _ = median_of(per_molecule, "best", members)
            row["methods"][name] = {"median_mean_rmsd": mean, "median_best_rmsd": best, "molecules": n}
        rows.append(row)
    return rows


def markdown(result: Dict) -> str:
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    names = list(result["rows"][0]["methods"]) if result["rows"] else []
    lines = ["Median over molecules of the per-molecule mean / best RMSD (Å, plain alignment), by the reference's "
             "rotatable bonds.", "",
             "| rotatable bonds | molecules | " + " | ".join(f"{n} mean / best" for n in names) + " |",
             "|---|---:|" + "---:|" * len(names)]
    for row in result["rows"]:
        cells = [f"{f(row['methods'][n]['median_mean_rmsd'])} / {f(row['methods'][n]['median_best_rmsd'])}"
                 for n in names]
        lines.append(f"| {row['rotatable_bonds']} | {row['molecules']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", required=True, help="the reference SDF the evaluations were made against")
    p.add_argument("--eval", action="append", required=True, metavar="LABEL=FILE",
                   help="an iterref-evaluate-conformers JSON (repeat for several)")
    p.add_argument("--groups", default="0,1,2,3+", help="rotatable-bond groups, e.g. '0,1,2,3+' or '0,1-2,3+'")
    p.add_argument("--dedupe", action="store_true",
                   help="skip a method of a later file whose per-molecule results equal an earlier file's method of "
                        "the same name (a baseline reused by several tables)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from rdkit import RDLogger
    from rdkit.Chem import rdMolDescriptors

    from iterref_fairseq.data.conformers import read_sdf

    RDLogger.DisableLog("rdApp.*")
    refs = read_sdf(args.reference)
    rotatable = np.array([rdMolDescriptors.CalcNumRotatableBonds(m) for m in refs])
    methods: Dict[str, Sequence[Optional[Dict]]] = {}
    plain_names: Dict[str, str] = {}  # "LABEL:method" -> method
    for spec in args.eval:
        if "=" not in spec:
            p.error(f"--eval {spec!r}: expected LABEL=FILE (e.g. mirror=results/cvgae/....json)")
        label, path = spec.split("=", 1)
        with open(path) as fh:
            evaluation = json.load(fh)
        for name, per_molecule in evaluation["per_molecule"].items():
            if len(per_molecule) != len(refs):
                p.error(f"{path}: {len(per_molecule)} molecules of {name} but {len(refs)} in {args.reference}; "
                        "pass the reference the evaluation was made against")
            if args.dedupe and any(plain_names[key] == name and rows == per_molecule
                                   for key, rows in methods.items()):
                continue
            methods[f"{label}:{name}"] = per_molecule
            plain_names[f"{label}:{name}"] = name
    result = {"reference": args.reference, "evaluations": args.eval,
              "rotatable_bond_counts": {str(k): int(v) for k, v in zip(*np.unique(rotatable, return_counts=True))},
              "rows": breakdown(rotatable, methods, parse_groups(args.groups))}
    from iterref_fairseq.provenance import write_results

    md = markdown(result)
    write_results(result, args.out, md, argv,
                  note="seed is null: a breakdown of existing evaluations, nothing is drawn")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
