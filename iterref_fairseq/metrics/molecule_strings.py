"""String-level metrics of generated molecules (SMILES or SAFE strings) for insertion models (the LFlexMDM paper, §5.2).

* validity   = fraction of generated strings that decode to an RDKit molecule (SAFE -> SMILES first);
* uniqueness = distinct canonical SMILES / valid;
* diversity  = mean pairwise Tanimoto distance (Morgan radius 2, 2048 bits) among the unique valid molecules
               (a seeded subsample of at most ``max_pairs_mols`` molecules keeps it quadratic-but-small);
* quality    = fraction of *all* generated strings that are valid with QED >= 0.6 and SA <= 4 (SA: Ertl &
               Schuffenhauer's score from RDKit's Contrib ``SA_Score/sascorer.py``).

Also the atom-level SMILES tokenizer used to build the fairseq data (one token per atom / bond / ring digit).
"""
import importlib
import os
import random
import re
import sys
from typing import Dict, List, Optional, Sequence

# bracket atoms, two-letter organic atoms, ring closures %nn, then single characters
_TOKEN = re.compile(r"(\[[^\]]+\]|Br|Cl|%\d{2}|[BCNOPSFIbcnops]|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\*|\$|\d)")


def tokenize(smiles: str) -> List[str]:
    """Atom-level tokens; raises ValueError naming the string if characters are left over."""
    tokens = _TOKEN.findall(smiles)
    if "".join(tokens) != smiles:
        raise ValueError(f"cannot tokenize molecule string {smiles!r}: unexpected characters "
                         f"{set(smiles) - set(''.join(tokens))}")
    return tokens


def detokenize(tokens: Sequence[str]) -> str:
    return "".join(tokens)


def _rdkit():
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")
    return Chem


def to_mol(string: str, fmt: str = "smiles"):
    """RDKit molecule or None. fmt: 'smiles' or 'safe' (needs ``pip install safe-mol``)."""
    Chem = _rdkit()
    if not string:
        return None
    if fmt == "safe":
        try:
            import safe
        except ImportError:
            raise ImportError("SAFE strings need the safe-mol package: pip install safe-mol")
        try:
            string = safe.decode(string, canonical=True, ignore_errors=True)
        except Exception:  # noqa: BLE001 - any decoding failure makes the string invalid
            return None
        if not string:
            return None
    elif fmt != "smiles":
        raise ValueError(f"unknown molecule string format {fmt!r}; use 'smiles' or 'safe'")
    try:
        return Chem.MolFromSmiles(string)
    except Exception:  # noqa: BLE001
        return None


_SASCORER = None


def sa_score(mol) -> float:
    """Synthetic accessibility (1 easy .. 10 hard) from RDKit Contrib's sascorer."""
    global _SASCORER
    if _SASCORER is None:
        from rdkit.Chem import RDConfig

        path = os.path.join(RDConfig.RDContribDir, "SA_Score")
        if not os.path.exists(os.path.join(path, "sascorer.py")):
            raise ImportError(f"RDKit Contrib sascorer not found under {path}; install an rdkit wheel with Contrib")
        sys.path.insert(0, path)
        _SASCORER = importlib.import_module("sascorer")
    return float(_SASCORER.calculateScore(mol))


def string_metrics(strings: Sequence[str], fmt: str = "smiles", seed: int = 0,
                   max_pairs_mols: int = 1000) -> Dict[str, float]:
    """validity / uniqueness / diversity / quality (see the module docstring), all in [0, 1]."""
    Chem = _rdkit()
    from rdkit import DataStructs
    from rdkit.Chem import QED, rdFingerprintGenerator

    n = len(strings)
    if n == 0:
        raise ValueError("no generated molecules to score")
    mols = [to_mol(s, fmt) for s in strings]
    valid = [m for m in mols if m is not None]
    canon = {}
    for m in valid:
        canon.setdefault(Chem.MolToSmiles(m), m)
    good = 0
    for m in valid:
        try:
            if QED.qed(m) >= 0.6 and sa_score(m) <= 4.0:
                good += 1
        except Exception:  # noqa: BLE001 - descriptor failures count as low quality
            pass
    uniq = list(canon.values())
    if len(uniq) > max_pairs_mols:
        uniq = random.Random(seed).sample(uniq, max_pairs_mols)
    diversity = None  # undefined with fewer than two unique valid molecules (JSON null, not NaN)
    if len(uniq) >= 2:
        gen = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
        fps = [gen.GetFingerprint(m) for m in uniq]
        total, pairs = 0.0, 0
        for i in range(1, len(fps)):
            sims = DataStructs.BulkTanimotoSimilarity(fps[i], fps[:i])
            total += sum(1.0 - s for s in sims)
            pairs += len(sims)
        diversity = total / pairs
    return {"n": n, "validity": len(valid) / n, "uniqueness": len(canon) / max(len(valid), 1),
            "diversity": diversity, "quality": good / n}


def read_lines(path: str, limit: Optional[int] = None) -> List[str]:
    with open(path) as f:
        out = [line.strip() for line in f if line.strip()]
    return out[:limit] if limit else out
