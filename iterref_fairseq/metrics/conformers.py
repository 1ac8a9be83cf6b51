"""Conformer metrics of thesis §6.4.3 / §6.5 (Tables 6.1, 6.2) and the GEOM-style coverage / matching scores with
one reference conformer per molecule.

Per molecule with reference X* and generated conformers X_1..X_K (K <= requested; missing ones are failures):

* RMSD_k = heavy-atom RMSD of X_k to X* after optimal rigid alignment with the identity atom map (the thesis's
  metric; equals RDKit ``AlignMol``), computed with ``modules/kabsch.py`` in float64; and, beside it, the
  symmetry-aware RMSD (RDKit ``GetBestRMS``: the best over the molecule's graph automorphisms, the GEOM convention);
* mean, std (population std, ``np.std``, as the reference code) and best (min) of RMSD_k;
* diversity: the mean and std of the pairwise RMSDs among X_1..X_K over pairs i < k (the reference script's loop
  also counts the K zero self-pairs, which biases the mean down by K / (K + 2); not done here);
* with one reference, COV-R (recall coverage) = 1 if min_k RMSD_k < delta else 0, MAT-R = min_k RMSD_k,
  COV-P (precision coverage) = the fraction of X_k with RMSD_k < delta, MAT-P = mean_k RMSD_k, on the symmetry-aware
  RMSD at delta = 0.5 A (GEOM-QM9's threshold).

Over a test set (:func:`aggregate`): success per test set = fraction of molecules with >= 1 conformer; success per
molecule = mean fraction of the requested conformers obtained; Table 6.1's rows are medians over molecules of the
per-molecule mean / std / best, computed on the molecules for which every compared method produced at least one
conformer (``common``); COV / MAT are means over those molecules.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from ..modules.kabsch import aligned_rmsd


def rmsd_to_reference(confs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """confs (K, n, 3), ref (n, 3) -> (K,) aligned heavy-atom RMSDs (identity atom map)."""
    c = torch.as_tensor(np.asarray(confs, dtype=np.float64))
    r = torch.as_tensor(np.asarray(ref, dtype=np.float64)).unsqueeze(0).expand_as(c)
    mask = torch.ones(c.shape[:2], dtype=torch.bool)
    return aligned_rmsd(c, r, mask).numpy()


def pairwise_rmsd(confs: np.ndarray) -> np.ndarray:
    """confs (K, n, 3) -> RMSDs of the K (K - 1) / 2 pairs i < k (no self-pairs)."""
    K = len(confs)
    i, k = np.triu_indices(K, 1)
    if len(i) == 0:
        return np.zeros(0)
    c = torch.as_tensor(np.asarray(confs, dtype=np.float64))
    mask = torch.ones(len(i), c.shape[1], dtype=torch.bool)
    return aligned_rmsd(c[i], c[k], mask).numpy()


def symmetric_rmsd(mol, confs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(K,) RDKit ``GetBestRMS`` of each conformer to the reference (heavy atoms, best over automorphisms)."""
    from rdkit.Chem import rdMolAlign

    from ..data.conformers import mol_with_coordinates

    ref_mol = mol_with_coordinates(mol, ref)
    return np.array([rdMolAlign.GetBestRMS(mol_with_coordinates(mol, x), ref_mol) for x in confs])


@dataclass
class MoleculeScores:
    """Scores of one molecule and one method; RMSD fields are None when no conformer was obtained."""
    obtained: int
    requested: int
    mean: Optional[float] = None
    std: Optional[float] = None
    best: Optional[float] = None
    sym_mean: Optional[float] = None
    sym_best: Optional[float] = None
    diversity_mean: Optional[float] = None
    diversity_std: Optional[float] = None
    cov_r: Optional[float] = None
    mat_r: Optional[float] = None
    cov_p: Optional[float] = None
    mat_p: Optional[float] = None


def score_molecule(confs: np.ndarray, ref: np.ndarray, requested: int, mol=None, delta: float = 0.5,
                   symmetric: bool = True) -> MoleculeScores:
    """Scores of K generated conformers (K, n, 3) against the reference (n, 3); ``mol`` (RDKit) is needed for the
    symmetry-aware RMSD and the COV / MAT scores."""
    K = len(confs)
    if K == 0:
        return MoleculeScores(0, requested)
    r = rmsd_to_reference(confs, ref)
    pw = pairwise_rmsd(confs)
    s = MoleculeScores(K, requested, float(r.mean()), float(r.std()), float(r.min()),
                       diversity_mean=float(pw.mean()) if len(pw) else None,
                       diversity_std=float(pw.std()) if len(pw) else None)
    if symmetric and mol is not None:
        sym = symmetric_rmsd(mol, confs, ref)
        s.sym_mean, s.sym_best = float(sym.mean()), float(sym.min())
        s.cov_r, s.mat_r = float(sym.min() < delta), float(sym.min())
        s.cov_p, s.mat_p = float((sym < delta).mean()), float(sym.mean())
    return s


def _median(values: Sequence[Optional[float]]) -> Optional[float]:
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None


def aggregate(scores: Dict[str, List[MoleculeScores]]) -> Dict[str, Dict[str, Optional[float]]]:
    """Per method: success rates over all molecules, then Table 6.1 / 6.2 statistics over the common-success
    molecules (every method obtained >= 1 conformer). ``scores[method][m]`` is molecule m's scores."""
    methods = list(scores)
    n = len(next(iter(scores.values()))) if scores else 0
    if any(len(v) != n for v in scores.values()):
        raise ValueError("every method needs scores for the same molecules")
    common = [m for m in range(n) if all(scores[k][m].obtained > 0 for k in methods)]
    out = {}
    for k in methods:
        rows = scores[k]
        sel = [rows[m] for m in common]
        out[k] = {
            "molecules": n, "common_molecules": len(common),
            "success_per_test_set": sum(r.obtained > 0 for r in rows) / n if n else None,
            "success_per_molecule": float(np.mean([r.obtained / r.requested for r in rows])) if n else None,
            "median_mean_rmsd": _median([r.mean for r in sel]), "median_std_rmsd": _median([r.std for r in sel]),
            "median_best_rmsd": _median([r.best for r in sel]),
            "median_mean_rmsd_symmetric": _median([r.sym_mean for r in sel]),
            "median_best_rmsd_symmetric": _median([r.sym_best for r in sel]),
            "diversity_mean": _mean([r.diversity_mean for r in sel]),
            "diversity_std": _mean([r.diversity_std for r in sel]),
            "diversity_mean_median": _median([r.diversity_mean for r in sel]),
            "cov_r": _mean([r.cov_r for r in sel]), "mat_r": _mean([r.mat_r for r in sel]),
            "cov_p": _mean([r.cov_p for r in sel]), "mat_p": _mean([r.mat_p for r in sel]),
        }
    return out
