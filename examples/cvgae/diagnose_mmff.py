#!/usr/bin/env python
"""Why MMFF relaxation raises CVGAE's mean RMSD where the thesis's Table 6.1 has it lower (0.390 -> 0.367).

On the first ``--max-molecules`` test molecules of a ``qm9_cpu_table.sh`` run it measures, with the same MMFF protocol
as ``iterref-generate-conformers --mmff`` (hydrogens placed by RDKit, ``MMFFOptimizeMolecule``, ``--max-iters``):

0. **Shape.** The standard deviations of each conformer's heavy atoms along its three principal axes, averaged
   over conformers and molecules, for the references and every method: a flattened generator shows as a third axis
   far below the references'.
1. **Stereocentres.** For every tetrahedral stereocentre of the reference (RDKit, from its 3-D structure) the sign
   of the volume spanned by its first three heavy neighbours, in the reference and in each conformer of every
   method: the fraction of conformers whose centres all have the reference's handedness, and their mean RMSD
   against the others'. MMFF keeps the handedness it starts from; ETKDG embeds with the reference's chiral tags.
2. **Pre- vs post-MMFF, paired.** ``cvgae.sdf`` and ``cvgae+mmff.sdf`` of the table are sampled with the same seed
   and batches, so conformer k of a molecule is the MMFF start of conformer k (checked: the pairs must be much
   closer than conformers k and k+1). Per bin of the start's RMSD to the reference: conformers, mean RMSD after
   MMFF, the fraction that MMFF brought closer, how many MMFF flipped a centre; the same with ``--long-iters``
   (does 200 iterations stop early?).
3. **MMFF from the reference plus noise.** The reference geometry with isotropic Gaussian noise scaled to an RMSD
   of r (``--noise``), ``--noise-copies`` copies per molecule, relaxed the same way: the RMSD after MMFF as a
   function of the start's distance, on starts that have the right handedness by construction only when r is
   small (the inverted fraction is reported too).

    python examples/cvgae/diagnose_mmff.py --data work/cvgae_table/qm9 \\
        --generated work/cvgae_table/generated_qm9 --max-molecules 100 --out diag.json

Writes OUT (JSON with provenance) and OUT with ``.md``.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from iterref_fairseq.cli.evaluate_conformers import read_generated  # noqa: E402
from iterref_fairseq.cli.generate_conformers import mmff_relax_status  # noqa: E402
from iterref_fairseq.data.conformers import read_sdf  # noqa: E402
from iterref_fairseq.metrics.conformers import rmsd_to_reference  # noqa: E402

BINS = (0.0, 0.3, 0.5, 0.7, 1.0, float("inf"))


def principal_stds(xyz: np.ndarray) -> np.ndarray:
    """xyz (..., n, 3) -> (..., 3): standard deviations of the atoms along the principal axes, largest first."""
    x = np.asarray(xyz, dtype=np.float64)
    x = x - x.mean(-2, keepdims=True)
    return np.linalg.svd(x, compute_uv=False) / np.sqrt(x.shape[-2])


def shape_section(ref_mols, files: Dict[str, Dict], indices: Sequence[int]) -> Dict:
    """Mean principal-axis standard deviations (A) of the references and of each method's conformers."""
    out = {"reference": np.mean([principal_stds(ref_mols[i].GetConformer().GetPositions()) for i in indices],
                                0).tolist()}
    for method, gen in files.items():
        per_mol = [principal_stds(np.asarray(gen["confs"][i])).mean(0) for i in indices if gen["confs"].get(i)]
        out[method] = np.mean(per_mol, 0).tolist() if per_mol else None
    return out


def stereocentres(mol) -> List[Tuple[int, Tuple[int, int, int]]]:
    """[(centre, (three heavy neighbours in index order))] for the tetrahedral stereocentres RDKit finds in
    ``mol``'s 3-D structure (assigned or not); centres with fewer than three heavy neighbours are skipped."""
    from rdkit import Chem

    m = Chem.Mol(mol)
    Chem.AssignStereochemistryFrom3D(m)
    out = []
    for idx, _label in Chem.FindMolChiralCenters(m, includeUnassigned=True, useLegacyImplementation=False):
        nb = sorted(n.GetIdx() for n in m.GetAtomWithIdx(idx).GetNeighbors())
        if len(nb) >= 3:
            out.append((idx, tuple(nb[:3])))
    return out


def handedness(xyz: np.ndarray, centres: Sequence[Tuple[int, Tuple[int, int, int]]]) -> np.ndarray:
    """xyz (K, n, 3) -> (K, C) sign of det[x_a - x_c, x_b - x_c, x_d - x_c] per centre c with neighbours (a, b, d)."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if not centres:
        return np.zeros((len(xyz), 0))
    c = np.array([c for c, _ in centres])
    nb = np.array([n for _, n in centres])  # (C, 3)
    vec = xyz[:, nb, :] - xyz[:, c, None, :]  # (K, C, 3, 3)
    return np.sign(np.linalg.det(vec))


def noisy_copies(ref: np.ndarray, rmsd: float, copies: int, rng: np.random.Generator) -> np.ndarray:
    """(copies, n, 3): ``ref`` plus isotropic Gaussian noise rescaled so that each copy's unaligned RMSD is ``rmsd``
    (after alignment it is slightly smaller; the measured aligned value is reported)."""
    eps = rng.standard_normal((copies,) + ref.shape)
    eps -= eps.mean(axis=1, keepdims=True)
    norm = np.sqrt((eps ** 2).sum(-1).mean(-1))[:, None, None]
    return ref[None] + eps * (rmsd / np.maximum(norm, 1e-12))


def relax_all(mol, confs: np.ndarray, max_iters: int) -> Tuple[List, List[bool]]:
    """MMFF every conformer: (list of (n, 3) arrays or None on failure, converged flags)."""
    out, conv = [], []
    for xyz in confs:
        r, _reason, ok = mmff_relax_status(mol, np.asarray(xyz).tolist(), max_iters)
        out.append(None if r is None else np.asarray(r))
        conv.append(ok)
    return out, conv


def bin_rows(pre: np.ndarray, post: np.ndarray, flipped: np.ndarray) -> List[Dict]:
    """One row per bin of the start RMSD: count, mean start / end RMSD, fraction improved, fraction flipped."""
    rows = []
    for lo, hi in zip(BINS[:-1], BINS[1:]):
        sel = (pre >= lo) & (pre < hi)
        n = int(sel.sum())
        rows.append({"start_rmsd": [lo, None if hi == float("inf") else hi], "conformers": n,
                     "mean_start": float(pre[sel].mean()) if n else None,
                     "mean_after_mmff": float(post[sel].mean()) if n else None,
                     "improved_fraction": float((post[sel] < pre[sel]).mean()) if n else None,
                     "flipped_fraction": float(flipped[sel].mean()) if n else None})
    return rows


def chirality_section(ref_mols, files: Dict[str, Dict], centres_of: Dict[int, list]) -> Dict:
    """Per method: conformers on molecules with >= 1 stereocentre, fraction with every centre as in the
    reference, mean RMSD of those and of the rest. ``centres_of``: :func:`stereocentres` per molecule index."""
    out = {}
    for method, gen in files.items():
        right_rmsd, wrong_rmsd = [], []
        for i, centres in centres_of.items():
            confs = gen["confs"].get(i, [])
            if not centres or not confs:
                continue
            ref = ref_mols[i].GetConformer().GetPositions()
            ok = (handedness(np.asarray(confs), centres) == handedness(ref[None], centres)).all(1)
            r = rmsd_to_reference(np.asarray(confs), ref)
            right_rmsd += r[ok].tolist()
            wrong_rmsd += r[~ok].tolist()
        n = len(right_rmsd) + len(wrong_rmsd)
        out[method] = {"conformers": n, "all_centres_right": len(right_rmsd) / n if n else None,
                       "rmsd_all_right": float(np.mean(right_rmsd)) if right_rmsd else None,
                       "rmsd_some_inverted": float(np.mean(wrong_rmsd)) if wrong_rmsd else None}
    return out


def paired_section(ref_mols, pre_file: Dict, post_file: Dict, centres_of: Dict[int, list], long_iters: int,
                   requested: int) -> Dict:
    """Start (cvgae.sdf) vs end (cvgae+mmff.sdf) of the same conformer, on molecules where MMFF never failed."""
    pre_r, post_r, post_long_r, flips, pair_d, shift_d, conv = [], [], [], [], [], [], []
    for i, centres in centres_of.items():
        pre, post = pre_file["confs"].get(i, []), post_file["confs"].get(i, [])
        if len(pre) != requested or len(post) != requested:
            continue
        pre, post = np.asarray(pre), np.asarray(post)
        ref = ref_mols[i].GetConformer().GetPositions()
        pre_r += rmsd_to_reference(pre, ref).tolist()
        post_r += rmsd_to_reference(post, ref).tolist()
        pair_d += [float(rmsd_to_reference(post[k:k + 1], pre[k])[0]) for k in range(len(pre))]
        shift_d += [float(rmsd_to_reference(post[(k + 1) % len(pre)][None], pre[k])[0]) for k in range(len(pre))]
        flips += (handedness(pre, centres) != handedness(post, centres)).any(1).tolist()
        relaxed, ok = relax_all(ref_mols[i], pre, long_iters)
        post_long_r += [float(rmsd_to_reference(x[None], ref)[0]) if x is not None else float("nan") for x in relaxed]
        conv += ok
    pre_r, post_r, flips = np.array(pre_r), np.array(post_r), np.array(flips, dtype=bool)
    post_long_r = np.array(post_long_r)
    keep = ~np.isnan(post_long_r)
    return {
        "conformers": int(len(pre_r)),
        "pairing_check": {"mean_rmsd_start_to_its_end": float(np.mean(pair_d)) if pair_d else None,
                          "mean_rmsd_start_to_next_end": float(np.mean(shift_d)) if shift_d else None},
        "mean_start": float(pre_r.mean()) if len(pre_r) else None,
        "mean_after_mmff": float(post_r.mean()) if len(pre_r) else None,
        "flipped_fraction": float(flips.mean()) if len(pre_r) else None,
        "bins": bin_rows(pre_r, post_r, flips) if len(pre_r) else [],
        f"mean_after_mmff_{long_iters}_iters": float(post_long_r[keep].mean()) if keep.any() else None,
        f"converged_within_{long_iters}_iters": float(np.mean(conv)) if conv else None,
    }


def noise_section(ref_mols, centres_of: Dict[int, list], levels: Sequence[float], copies: int, max_iters: int,
                  seed: int) -> List[Dict]:
    """MMFF from the reference plus noise of each RMSD level (level 0: the reference itself, one copy)."""
    rng = np.random.default_rng(seed)
    rows = []
    for level in levels:
        pre_r, post_r, inverted, conv = [], [], [], []
        for i, centres in centres_of.items():
            ref = ref_mols[i].GetConformer().GetPositions()
            starts = ref[None] if level == 0 else noisy_copies(ref, level, copies, rng)
            relaxed, ok = relax_all(ref_mols[i], starts, max_iters)
            for x0, x, c in zip(starts, relaxed, ok):
                if x is None:
                    continue
                pre_r.append(float(rmsd_to_reference(x0[None], ref)[0]))
                post_r.append(float(rmsd_to_reference(x[None], ref)[0]))
                inverted.append(bool((handedness(x[None], centres) != handedness(ref[None], centres)).any()))
                conv.append(c)
        rows.append({"noise_rmsd": level, "conformers": len(pre_r), "mean_start": float(np.mean(pre_r)),
                     "mean_after_mmff": float(np.mean(post_r)), "median_after_mmff": float(np.median(post_r)),
                     "improved_fraction": float(np.mean(np.array(post_r) < np.array(pre_r))) if level else None,
                     "inverted_fraction_after_mmff": float(np.mean(inverted)), "converged": float(np.mean(conv))})
    return rows


def markdown(result: Dict) -> str:
    f = lambda v: "–" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["### 0. Shape: standard deviation along the principal axes (A)", "",
             "| conformers | axis 1 | axis 2 | axis 3 |", "|---|---|---|---|"]
    for m, r in result["shape"].items():
        lines.append(f"| {m} | " + " | ".join(f(v) for v in (r or [None] * 3)) + " |")
    lines += ["", "### 1. Stereocentres (conformers on molecules with at least one)", "",
             "| method | conformers | all centres as the reference | mean RMSD, all right | mean RMSD, some inverted |",
             "|---|---|---|---|---|"]
    for m, r in result["stereo"].items():
        lines.append(f"| {m} | {r['conformers']} | {f(r['all_centres_right'])} | {f(r['rmsd_all_right'])} | "
                     f"{f(r['rmsd_some_inverted'])} |")
    p = result["paired"]
    li = result["long_iters"]
    lines += ["", f"### 2. CVGAE start vs after MMFF, paired ({p['conformers']} conformers; start-to-its-end RMSD "
              f"{f(p['pairing_check']['mean_rmsd_start_to_its_end'])}, start-to-next-end "
              f"{f(p['pairing_check']['mean_rmsd_start_to_next_end'])})", "",
              f"Mean start {f(p['mean_start'])} -> after MMFF ({result['max_iters']} iterations) "
              f"{f(p['mean_after_mmff'])}; with {li} iterations {f(p[f'mean_after_mmff_{li}_iters'])} "
              f"(converged: {f(p[f'converged_within_{li}_iters'])}); a centre flipped by MMFF in "
              f"{f(p['flipped_fraction'])}.", "",
              "| start RMSD | conformers | mean start | mean after MMFF | improved | a centre flipped |",
              "|---|---|---|---|---|---|"]
    for b in p["bins"]:
        hi = "∞" if b["start_rmsd"][1] is None else b["start_rmsd"][1]
        lines.append(f"| [{b['start_rmsd'][0]}, {hi}) | {b['conformers']} | {f(b['mean_start'])} | "
                     f"{f(b['mean_after_mmff'])} | {f(b['improved_fraction'])} | {f(b['flipped_fraction'])} |")
    lines += ["", "### 3. MMFF from the reference plus noise", "",
              "| noise RMSD | conformers | mean start (aligned) | mean after MMFF | median after | improved | "
              "inverted after | converged |", "|---|---|---|---|---|---|---|---|"]
    for r in result["noise"]:
        lines.append(f"| {r['noise_rmsd']} | {r['conformers']} | {f(r['mean_start'])} | {f(r['mean_after_mmff'])} | "
                     f"{f(r['median_after_mmff'])} | {f(r['improved_fraction'])} | "
                     f"{f(r['inverted_fraction_after_mmff'])} | {f(r['converged'])} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="prepared conformer data (the reference is DATA/test.sdf)")
    p.add_argument("--generated", required=True, type=Path,
                   help="folder with cvgae.sdf, cvgae+mmff.sdf and etkdg+mmff.sdf (+ .json) of one table run")
    p.add_argument("--baselines", type=Path,
                   help="folder with etkdg+mmff.sdf when it is not --generated (qm9_cpu_table.sh ALIGNMENT=mirror)")
    p.add_argument("--max-molecules", type=int, default=100)
    p.add_argument("--max-iters", type=int, default=200, help="MMFF iterations of the table (the reference: 200)")
    p.add_argument("--long-iters", type=int, default=2000, help="MMFF iterations of the convergence check")
    p.add_argument("--noise", type=float, nargs="+", default=[0.0, 0.1, 0.2, 0.4, 0.7, 1.0])
    p.add_argument("--noise-copies", type=int, default=10)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from rdkit import RDLogger

    RDLogger.DisableLog("rdApp.*")
    ref_mols = read_sdf(str(Path(args.data) / "test.sdf"))
    indices = list(range(min(args.max_molecules, len(ref_mols))))
    files = {}
    for name in ("cvgae", "cvgae+mmff", "etkdg+mmff"):
        folder = args.baselines if name.startswith("etkdg") and args.baselines else args.generated
        path = folder / f"{name}.sdf"
        if not path.is_file():
            p.error(f"{path} is missing: run examples/cvgae/qm9_cpu_table.sh (it writes {name}.sdf) or pass the "
                    "folder it wrote as --generated")
        files[name] = read_generated(str(path), ref_mols, None)
    requested = files["cvgae"]["requested"]
    centres_of = {i: stereocentres(ref_mols[i]) for i in indices}
    result = {
        "data": args.data, "generated": str(args.generated), "baselines": str(args.baselines or args.generated),
        "molecules": len(indices),
        "max_iters": args.max_iters, "long_iters": args.long_iters,
        "shape": shape_section(ref_mols, files, indices),
        "stereo": chirality_section(ref_mols, files, centres_of),
        "paired": paired_section(ref_mols, files["cvgae"], files["cvgae+mmff"], centres_of, args.long_iters,
                                 requested),
        "noise": noise_section(ref_mols, centres_of, args.noise, args.noise_copies, args.max_iters, args.seed),
    }
    from iterref_fairseq.provenance import write_results

    md = markdown(result)
    write_results(result, args.out, md, argv, seed=args.seed)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
