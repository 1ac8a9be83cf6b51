"""Writes a molecule data directory (train.smi, valid.smi, test.smi, prepare.json) from lists of SMILES.

Used by ``scripts/prepare_qm9.py`` and ``scripts/prepare_moses.py`` (``prepare_parser`` holds their shared
options). Every input SMILES is parsed by RDKit and written in canonical form; the ones RDKit rejects are skipped
and counted (printed and in ``prepare.json``).
Shuffling and subsampling use one seeded ``random.Random``, so the same seed gives the same files.
"""
import argparse
import json
import os
import platform
import random
from typing import Dict, List, Optional, Sequence

from tqdm import tqdm

from .molecules import canonical_smiles


def clean_smiles(smiles: Sequence[str], desc: str) -> Dict:
    """-> {"kept": [canonical SMILES], "rejected": count, "rejected_examples": first 10}."""
    kept, rejected = [], []
    for s in tqdm(smiles, desc=f"checking {desc}", mininterval=2.0, leave=False):
        c = canonical_smiles(str(s).strip())
        if c is None:
            rejected.append(str(s))
        else:
            kept.append(c)
    return {"kept": kept, "rejected": len(rejected), "rejected_examples": rejected[:10]}


def write_data_dir(out_dir: str, splits: Dict[str, Sequence[str]], seed: int, source: str,
                   extra: Optional[Dict] = None) -> Dict:
    """Cleans each split and writes ``<out_dir>/<split>.smi``; returns (and writes) the JSON summary."""
    os.makedirs(out_dir, exist_ok=True)
    summary = {"source": source, "seed": seed, "splits": {}, "python": platform.python_version()}
    try:
        import rdkit

        summary["rdkit"] = rdkit.__version__
    except ImportError:  # pragma: no cover
        pass
    summary.update(extra or {})
    for name, smiles in splits.items():
        res = clean_smiles(smiles, name)
        with open(os.path.join(out_dir, f"{name}.smi"), "w") as f:
            f.writelines(s + "\n" for s in res["kept"])
        summary["splits"][name] = {"read": len(smiles), "written": len(res["kept"]),
                                   "rejected_by_rdkit": res["rejected"],
                                   "rejected_examples": res["rejected_examples"]}
        print(f"{name}: read {len(smiles)}, wrote {len(res['kept'])}, rejected by RDKit {res['rejected']}"
              + (f" (e.g. {res['rejected_examples'][:3]})" if res["rejected"] else ""))
    with open(os.path.join(out_dir, "prepare.json"), "w") as f:
        json.dump(summary, f, indent=1)
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "rejected_examples"}
                      for k, v in summary["splits"].items()}))
    return summary


def shuffled(items: Sequence[str], seed: int, limit: Optional[int] = None) -> List[str]:
    """A seeded shuffle of ``items``, truncated to ``limit`` when given."""
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:limit] if limit else items


def prepare_parser(description: str) -> argparse.ArgumentParser:
    """The options every ``scripts/prepare_<dataset>.py`` takes (--out, --seed, --valid-size); add the rest."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output data directory")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--valid-size", type=int, default=10000)
    return p
