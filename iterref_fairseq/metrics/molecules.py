"""GuacaMol distribution-learning metrics (Brown et al. 2019), re-implemented (the ``guacamol`` package does not
work with current SciPy/fcd).

For a list of generated SMILES S (invalid ones included) and the reference (training) SMILES R:

* validity   = |valid(S)| / |S|                     (valid: RDKit parses it and it has >= 1 atom)
* uniqueness = |unique canonical valid(S)| / |valid(S)|
* novelty    = |unique canonical valid(S) \\ canonical(R)| / |unique canonical valid(S)|
  (both with canonical SMILES without stereo, GuacaMol's ``include_stereocenters=False``: two stereoisomers are
  one molecule here)
* KL score   = mean_k exp(-D_KL(P_k || Q_k)) over the GuacaMol descriptors: BertzCT, MolLogP, MolWt, TPSA
  (continuous: Gaussian KDEs evaluated on 1,000 points spanning both samples), NumHAcceptors, NumHDonors,
  NumRotatableBonds, NumAliphaticRings, NumAromaticRings (discrete: 10-bin histograms of the reference, the
  same bins for the samples), and the nearest-neighbour internal Tanimoto similarity (ECFP4, 4,096 bits;
  continuous). P is the reference (a ``max_reference`` subset), Q the unique valid samples; canonical SMILES
  without stereo, as GuacaMol does.
* FCD score  = exp(-0.2 FCD), FCD = Fréchet distance between Gaussians fitted to ChemNet activations of the
  valid samples and of the reference subset (``fcd`` package, weights bundled with it).

GuacaMol draws a fixed number of samples per metric from a generator; here the sample set is fixed, so every
metric uses the subset defined above. An empty subset gives 0 for that score.
"""
import math
import random
from functools import cached_property
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

CONTINUOUS_DESCRIPTORS = ("BertzCT", "MolLogP", "MolWt", "TPSA")
DISCRETE_DESCRIPTORS = ("NumHAcceptors", "NumHDonors", "NumRotatableBonds", "NumAliphaticRings",
                        "NumAromaticRings")


def _mol(smiles: str):
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    if not smiles:
        return None
    mol = Chem.MolFromSmiles(smiles)
    return mol if mol is not None and mol.GetNumAtoms() > 0 else None


def canonical(smiles: str, isomeric: bool = True) -> Optional[str]:
    from rdkit import Chem

    mol = _mol(smiles)
    return None if mol is None else Chem.MolToSmiles(mol, isomericSmiles=isomeric)


def validity(samples: Sequence[str]) -> float:
    return sum(_mol(s) is not None for s in samples) / len(samples) if samples else 0.0


def unique_valid(samples: Sequence[str], isomeric: bool = True) -> List[str]:
    """Canonical SMILES of the valid samples, duplicates removed, first occurrence order."""
    seen, out = set(), []
    for s in samples:
        c = canonical(s, isomeric)
        if c is not None and c not in seen:
            seen.add(c)
            out.append(c)
    return out


def uniqueness(samples: Sequence[str]) -> float:
    n_valid = sum(canonical(s) is not None for s in samples)
    return len(unique_valid(samples, isomeric=False)) / n_valid if n_valid else 0.0


class ReferenceStatistics:
    """What the scores need from the reference set, each computed once, on first use.

    Scoring many sample sets against one reference (the Table 5.3 grid, or every recorded step of a trajectory
    for Fig. 5.8) then canonicalizes the reference, computes its descriptors and nearest-neighbour similarities
    (quadratic in its size) and its ChemNet activations once, not once per sample set.

    ``canonical``: canonical SMILES of the whole reference (novelty). ``subset``: the seeded ``max_reference``
    subset that KL and FCD compare with (GuacaMol compares 10,000 samples with 10,000 training molecules).
    """

    def __init__(self, reference: Sequence[str], max_reference: Optional[int] = None, seed: int = 42,
                 device: Optional[str] = None):
        self.reference = list(reference)
        self.subset_index = range(len(self.reference))
        if max_reference is not None and len(self.reference) > max_reference:
            self.subset_index = random.Random(seed).sample(self.subset_index, max_reference)
        self.subset = [self.reference[i] for i in self.subset_index]
        self.device = device

    @cached_property
    def canonical_per_line(self) -> List[Optional[str]]:
        """Canonical SMILES of every reference line (None where RDKit rejects it)."""
        return [canonical(s) for s in self.reference]

    @cached_property
    def canonical(self) -> set:
        return {c for c in self.canonical_per_line if c is not None}

    @cached_property
    def canonical_without_stereo(self) -> set:
        """The reference as novelty compares it (GuacaMol: canonical SMILES without stereo)."""
        return {c for c in (canonical(s, isomeric=False) for s in self.reference) if c is not None}

    @cached_property
    def kl_molecules(self) -> List[str]:
        """Unique valid subset molecules without stereo (GuacaMol's KL benchmark)."""
        return unique_valid(self.subset, isomeric=False)

    @cached_property
    def descriptors(self) -> np.ndarray:
        return descriptors(self.kl_molecules)

    @cached_property
    def nearest_neighbour_similarity(self) -> np.ndarray:
        return nearest_neighbour_similarity(self.kl_molecules)

    @cached_property
    def fcd_molecules(self) -> List[str]:
        per_line = self.canonical_per_line  # canonicalized once, shared with novelty
        return [per_line[i] for i in self.subset_index if per_line[i] is not None]

    @cached_property
    def chemnet_activations(self) -> np.ndarray:
        return chemnet_activations(self.fcd_molecules, self.device)


ReferenceLike = Union[Sequence[str], ReferenceStatistics]


def _statistics(reference: ReferenceLike) -> ReferenceStatistics:
    return reference if isinstance(reference, ReferenceStatistics) else ReferenceStatistics(reference)


def novelty(samples: Sequence[str], reference: ReferenceLike) -> float:
    uniq = unique_valid(samples, isomeric=False)
    if not uniq:
        return 0.0
    ref = _statistics(reference).canonical_without_stereo
    return sum(c not in ref for c in uniq) / len(uniq)


def descriptors(smiles: Sequence[str]) -> np.ndarray:
    """(n, 9) GuacaMol physico-chemical descriptors, columns CONTINUOUS_DESCRIPTORS + DISCRETE_DESCRIPTORS."""
    from rdkit.Chem import Descriptors

    fns = [getattr(Descriptors, name) for name in CONTINUOUS_DESCRIPTORS + DISCRETE_DESCRIPTORS]
    rows = [[f(m) for f in fns] for m in (_mol(s) for s in smiles) if m is not None]
    return np.array(rows, dtype=np.float64).reshape(-1, len(fns))


def nearest_neighbour_similarity(smiles: Sequence[str]) -> np.ndarray:
    """(n,) max Tanimoto similarity (ECFP4, 4,096 bits) of each molecule to any other of the set."""
    from rdkit import DataStructs
    from rdkit.Chem import rdFingerprintGenerator

    gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=4096)
    fps = [gen.GetFingerprint(m) for m in (_mol(s) for s in smiles) if m is not None]
    n = len(fps)
    best = np.zeros(n)
    for i in range(1, n):
        sims = np.array(DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i]))
        best[i] = max(best[i], sims.max())
        best[:i] = np.maximum(best[:i], sims)
    return best


def continuous_kl(p_samples: np.ndarray, q_samples: np.ndarray) -> float:
    """D_KL(P || Q) of Gaussian KDEs on 1,000 points spanning both sets (GuacaMol's continuous_kldiv)."""
    from scipy.stats import entropy, gaussian_kde

    both = np.hstack([p_samples, q_samples])
    if np.ptp(p_samples) == 0 or np.ptp(q_samples) == 0:
        # a KDE needs spread; a constant sample compares by histogram instead of failing
        return discrete_kl(p_samples, q_samples)
    x = np.linspace(both.min(), both.max(), num=1000)
    p = gaussian_kde(p_samples)(x) + 1e-10
    q = gaussian_kde(q_samples)(x) + 1e-10
    return float(entropy(p, q))


def discrete_kl(p_samples: np.ndarray, q_samples: np.ndarray) -> float:
    """D_KL(P || Q) of 10-bin density histograms, bins from the reference (GuacaMol's discrete_kldiv)."""
    from scipy.stats import entropy

    p, bins = np.histogram(p_samples, bins=10, density=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        q, _ = np.histogram(q_samples, bins=bins, density=True)
    q = np.nan_to_num(q)  # every sample outside the reference bins: 0/0 density, i.e. no mass in them
    return float(entropy(p + 1e-10, q + 1e-10))


def kl_divergence_score(samples: Sequence[str], reference: ReferenceLike) -> Dict:
    """GuacaMol KL-divergence benchmark score in [0, 1] (1 = same descriptor distributions)."""
    ref = _statistics(reference)
    sampled = unique_valid(samples, isomeric=False)
    if len(sampled) < 2 or len(ref.kl_molecules) < 2:
        return {"score": 0.0, "kl": {}}
    d_ref, d_gen = ref.descriptors, descriptors(sampled)
    kls = {}
    for k, name in enumerate(CONTINUOUS_DESCRIPTORS + DISCRETE_DESCRIPTORS):
        fn = continuous_kl if name in CONTINUOUS_DESCRIPTORS else discrete_kl
        kls[name] = fn(d_ref[:, k], d_gen[:, k])
    kls["internal_similarity"] = continuous_kl(ref.nearest_neighbour_similarity,
                                               nearest_neighbour_similarity(sampled))
    return {"score": float(np.mean([math.exp(-v) for v in kls.values()])), "kl": kls}


def chemnet_activations(smiles: Sequence[str], device: Optional[str] = None, batch_size: int = 128) -> np.ndarray:
    """(n, 512) ChemNet penultimate activations (the model and the SMILES encoding of the ``fcd`` package)."""
    import torch
    from fcd import load_ref_model
    from fcd.utils import SmilesDataset

    model = load_ref_model()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = model.to(device)
    data = SmilesDataset(list(smiles))
    out = []
    with torch.no_grad():
        for lo in range(0, len(data), batch_size):
            x = torch.stack([torch.as_tensor(data[i]) for i in range(lo, min(lo + batch_size, len(data)))])
            out.append(model(x.transpose(1, 2).float().to(device)).cpu().numpy().astype(np.float32))
    model.to("cpu")
    return np.vstack(out) if out else np.zeros((0, 512), np.float32)


def frechet_distance(act1: np.ndarray, act2: np.ndarray) -> float:
    from fcd import calculate_frechet_distance

    return float(calculate_frechet_distance(mu1=act1.mean(0), sigma1=np.cov(act1.T),
                                            mu2=act2.mean(0), sigma2=np.cov(act2.T)))


def fcd_score(samples: Sequence[str], reference: ReferenceLike, device: Optional[str] = None) -> Dict:
    """{"fcd": Fréchet ChemNet Distance, "score": exp(-0.2 FCD)} of the valid samples vs the reference.

    ``device`` applies to the samples and, when ``reference`` is a list, to the reference too; statistics built
    beforehand keep their own device."""
    ref = reference if isinstance(reference, ReferenceStatistics) else ReferenceStatistics(reference, device=device)
    gen = [c for c in (canonical(s) for s in samples) if c is not None]
    if len(gen) < 2 or len(ref.fcd_molecules) < 2:
        return {"fcd": float("nan"), "score": 0.0}
    fcd = frechet_distance(ref.chemnet_activations, chemnet_activations(gen, device))
    return {"fcd": fcd, "score": math.exp(-0.2 * fcd)}


def distribution_metrics(samples: Sequence[str], reference: ReferenceLike, max_reference: int = 10000,
                         seed: int = 42, with_fcd: bool = True, device: Optional[str] = None) -> Dict:
    """All five GuacaMol scores. Novelty uses the whole reference; KL and FCD a seeded ``max_reference`` subset
    (GuacaMol compares 10,000 samples with 10,000 training molecules). To score several sample sets, pass one
    :class:`ReferenceStatistics` (``max_reference``, ``seed`` and ``device`` are then its own)."""
    if not isinstance(reference, ReferenceStatistics):
        reference = ReferenceStatistics(reference, max_reference, seed, device)
    kl = kl_divergence_score(samples, reference)
    out = {
        "num_samples": len(samples),
        "validity": validity(samples),
        "uniqueness": uniqueness(samples),
        "novelty": novelty(samples, reference),
        "kl_div": kl["score"],
        "kl_per_descriptor": kl["kl"],
    }
    if with_fcd:
        f = fcd_score(samples, reference, device)
        out.update(fcd=f["fcd"], frechet=f["score"])
    return out
