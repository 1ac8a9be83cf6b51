"""``iterref-evaluate-conformers``: Tables 6.1 / 6.2 of the thesis (and COV / MAT with one reference) for generated
conformers against the reference split (``metrics/conformers.py`` defines every number).

    iterref-evaluate-conformers --reference work/conformers/qm9_cpu/test.sdf \\
        base_uff.sdf base_mmff.sdf cvgae.sdf cvgae_mmff.sdf --out results/cvgae/qm9.json

Each generated SDF (``iterref-generate-conformers`` / ``iterref-baseline-conformers``) holds one record per
conformer with ``mol_index`` and ``method``; its ``.json`` summary gives the requested number per molecule and the
seconds per conformer (``--num-confs`` is used when there is no summary). Every record must have the reference
molecule's atoms in the same order; a mismatch stops with a count of the bad records.

Writes ``--out`` (JSON: per method the aggregates, per molecule scores, timing, provenance), ``OUT.md`` (tables),
``OUT.png`` (distributions of per-molecule mean and best RMSD per method) and ``OUT.molecules.png`` (a few test
molecules: the reference and one generated conformer per method, aligned onto it).
"""
import argparse
import json
import os
import sys
from collections import defaultdict
from typing import Dict, List

import numpy as np

from .common import (CLIError, add_max_examples_argument, check_file, check_out_dir, console_main, new_parser,
                     provenance)

PROG = "iterref-evaluate-conformers"
TABLE_61 = (("success_per_test_set", "success per test set", "%"), ("success_per_molecule", "success per molecule", "%"),
            ("median_mean_rmsd", "mean RMSD", "A"), ("median_std_rmsd", "std RMSD", "A"),
            ("median_best_rmsd", "best RMSD", "A"), ("median_mean_rmsd_symmetric", "mean RMSD (symmetry-aware)", "A"),
            ("median_best_rmsd_symmetric", "best RMSD (symmetry-aware)", "A"))
TABLE_62 = (("diversity_mean", "diversity mean", "A"), ("diversity_std", "diversity std", "A"))
TABLE_COV = (("cov_r", "COV-R (0.5 A)", "%"), ("mat_r", "MAT-R", "A"), ("cov_p", "COV-P (0.5 A)", "%"),
             ("mat_p", "MAT-P", "A"), ("seconds_per_conformer", "seconds per conformer", "s"))


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    p.add_argument("--reference", required=True, help="the reference split (e.g. DATA/test.sdf)")
    p.add_argument("generated", nargs="+", help="generated SDF files (one method each)")
    p.add_argument("--labels", nargs="+", default=None, help="method names (default: the files' method property)")
    p.add_argument("--num-confs", type=int, default=None,
                   help="requested conformers per molecule when a file has no .json summary")
    p.add_argument("--delta", type=float, default=0.5, help="COV threshold in Angstrom (GEOM: 0.5)")
    p.add_argument("--no-symmetric", action="store_true",
                   help="skip the symmetry-aware RMSD (RDKit GetBestRMS) and COV / MAT")
    add_max_examples_argument(p, 0, "score the first N molecules of the reference only (files generated with "
                                    "--max-examples N; 0: all)")
    p.add_argument("--pictures", type=int, default=3, help="molecules drawn in OUT.molecules.png (0: none)")
    p.add_argument("--out", default=None, help="results JSON (default: print only)")
    return p


def read_generated(path: str, ref_mols: List, num_confs) -> Dict:
    """{"method", "requested", "confs": {mol_index: [(n, 3) arrays]}, "seconds_per_conformer"} of one file."""
    from rdkit import Chem

    check_file(path, "generated SDF", "write it with iterref-generate-conformers or iterref-baseline-conformers")
    summary = {}
    if os.path.isfile(path + ".json"):
        with open(path + ".json") as f:
            summary = json.load(f)
    requested = summary.get("num_confs", num_confs)
    if not requested:
        raise CLIError(f"{path}: no {path}.json summary to read the requested number of conformers from; pass "
                       "--num-confs K")
    confs, bad, methods = defaultdict(list), [], set()
    for k, m in enumerate(Chem.SDMolSupplier(path, removeHs=False, sanitize=False)):
        if m is None or not m.HasProp("mol_index"):
            bad.append(f"record {k}: unreadable or without mol_index")
            continue
        i = m.GetIntProp("mol_index")
        if not 0 <= i < len(ref_mols):
            bad.append(f"record {k}: mol_index {i} is not in the reference ({len(ref_mols)} molecules)")
            continue
        ref_atoms = [a.GetAtomicNum() for a in ref_mols[i].GetAtoms()]
        if [a.GetAtomicNum() for a in m.GetAtoms()] != ref_atoms:
            bad.append(f"record {k}: its {m.GetNumAtoms()} atoms are not molecule {i}'s {len(ref_atoms)} atoms")
            continue
        methods.add(m.GetProp("method") if m.HasProp("method") else os.path.basename(path))
        confs[i].append(m.GetConformer().GetPositions())
    if bad:
        raise CLIError(f"{path}: {len(bad)} records do not match the reference ({bad[0]}; ...); was it generated "
                       "from this reference split?")
    over = [i for i, c in confs.items() if len(c) > requested]
    if over:
        raise CLIError(f"{path}: {len(over)} molecules have more than the {requested} requested conformers")
    return {"method": ",".join(sorted(methods)) or summary.get("method", os.path.basename(path)),
            "requested": requested, "confs": confs, "seconds_per_conformer": summary.get("seconds_per_conformer")}


def markdown(agg: Dict, methods: List[str]) -> str:
    def cell(v, unit):
        if v is None:
            return "-"
        return f"{100 * v:.2f}" if unit == "%" else f"{v:.4f}" if unit == "s" else f"{v:.3f}"

    lines = []
    for title, rows in (("Table 6.1 (medians over the molecules every method succeeded on)", TABLE_61),
                        ("Table 6.2 (pairwise RMSD among a molecule's conformers, i < k)", TABLE_62),
                        ("Coverage / matching with one reference, and time", TABLE_COV)):
        lines += [f"{title}:", "", "| metric | " + " | ".join(methods) + " |", "|---|" + "---:|" * len(methods)]
        for key, name, unit in rows:
            lines.append(f"| {name} ({unit}) | " + " | ".join(cell(agg[m].get(key), unit) for m in methods) + " |")
        lines.append("")
    n = agg[methods[0]]
    lines.append(f"{n['molecules']} test molecules, {n['common_molecules']} with conformers from every method.")
    return "\n".join(lines) + "\n"


def plot(out_png: str, per_mol: Dict, methods: List[str]) -> None:
    from ..plotting import pyplot

    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, title in ((axes[0], "mean", "per-molecule mean RMSD"), (axes[1], "best", "per-molecule best RMSD")):
        data = [[getattr(s, key) for s in per_mol[m] if getattr(s, key) is not None] for m in methods]
        ax.boxplot(data, showfliers=False)
        ax.set_xticks(range(1, len(methods) + 1), methods, rotation=20)
        ax.set_ylabel("RMSD (A)")
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)


def picture(out_png: str, ref_mols: List, files: List[Dict], methods: List[str], count: int) -> None:
    """Reference (black) and the first conformer of each method (colour), aligned onto the reference, projected on
    the reference's two principal axes."""
    from ..plotting import pyplot

    plt = pyplot()
    import torch

    from ..modules.kabsch import centre, kabsch_rotation

    ids = [i for i in range(len(ref_mols)) if all(f["confs"].get(i) for f in files)][:count]
    if not ids:
        return
    fig, axes = plt.subplots(len(ids), len(files), figsize=(3 * len(files), 3 * len(ids)), squeeze=False)
    for r, i in enumerate(ids):
        mol = ref_mols[i]
        ref = torch.as_tensor(mol.GetConformer().GetPositions())
        mask = torch.ones(len(ref), dtype=torch.bool)
        ref_c = centre(ref, mask)
        _, _, vh = torch.linalg.svd(ref_c)
        axes2 = vh[:2].T
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
        for c, (f, name) in enumerate(zip(files, methods)):
            ax = axes[r][c]
            x = centre(torch.as_tensor(f["confs"][i][0]), mask)
            x = x @ kabsch_rotation(x, ref_c)  # the generated conformer rotated onto the reference
            for pts, colour in ((ref_c, "black"), (x, f"C{c}")):
                p = (pts @ axes2).numpy()
                for a, b in bonds:
                    ax.plot(p[[a, b], 0], p[[a, b], 1], color=colour, lw=1.5, alpha=0.8)
                ax.scatter(p[:, 0], p[:, 1], color=colour, s=12)
            ax.set_title(f"{name}\n{mol.GetProp('_Name') if mol.HasProp('_Name') else i}", fontsize=8)
            ax.set_aspect("equal")
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def run(args) -> dict:
    from ..data.conformers import read_sdf
    from ..metrics.conformers import aggregate, score_molecule

    check_file(args.reference, "--reference", "pass the split the conformers were generated for, e.g. DATA/test.sdf")
    if args.labels and len(args.labels) != len(args.generated):
        raise CLIError(f"--labels has {len(args.labels)} names for {len(args.generated)} files")
    if args.out:
        check_out_dir(args.out)
    try:
        ref_mols = read_sdf(args.reference)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if args.max_examples:
        ref_mols = ref_mols[:args.max_examples]
    files = [read_generated(p, ref_mols, args.num_confs) for p in args.generated]
    methods = args.labels or [f["method"] for f in files]
    if len(set(methods)) != len(methods):
        raise CLIError(f"two files have the same method name ({methods}); pass --labels")
    from tqdm import tqdm

    per_mol = {}
    for name, f in zip(methods, files):
        per_mol[name] = [score_molecule(np.array(f["confs"].get(i, np.zeros((0, m.GetNumAtoms(), 3)))),
                                        m.GetConformer().GetPositions(), f["requested"], m, args.delta,
                                        not args.no_symmetric)
                         for i, m in enumerate(tqdm(ref_mols, desc=name, unit="mol", disable=None))]
    agg = aggregate(per_mol)
    for name, f in zip(methods, files):
        agg[name]["seconds_per_conformer"] = f["seconds_per_conformer"]
    result = {"reference": os.path.abspath(args.reference), "molecules": len(ref_mols), "files": [os.path.abspath(p) for p in args.generated],
              "methods": methods, "delta": args.delta, "aggregate": agg,
              "per_molecule": {m: [vars(s) for s in per_mol[m]] for m in methods}, "provenance": provenance(args)}
    table = markdown(agg, methods)
    print(table)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
        base = os.path.splitext(args.out)[0]
        with open(base + ".md", "w") as fh:
            fh.write(table)
        plot(base + ".png", per_mol, methods)
        if args.pictures:
            picture(base + ".molecules.png", ref_mols, files, methods, args.pictures)
    return result


def _main(argv=None) -> int:
    run(build_parser().parse_args(argv))
    return 0


def main(argv=None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
