"""Molecule strings (SMILES or SAFE) as fairseq text for insertion models (the LFlexMDM paper, §5.2).

Every example is one molecule: the source is the constant prompt ``MOL`` (unconditional generation, the prompt
only gives the model a fixed prefix) and the target is the atom-level tokenized string
(``metrics/molecule_strings.tokenize``). SMILES come from a directory written by ``scripts/prepare_moses.py``
(``train.smi`` / ``valid.smi`` / ``test.smi``) or straight from the installed ``molsets`` package; SAFE strings
are encoded with ``safe-mol`` (optional: ``pip install safe-mol``).
"""
import importlib.util
import os
import random
from typing import Dict, List, Optional, Tuple

from ..metrics.molecule_strings import tokenize

PROMPT = "MOL"


def molsets_smiles(split: str) -> List[str]:
    """SMILES of MOSES 'train' or 'test' from the molsets wheel, read without importing moses."""
    spec = importlib.util.find_spec("moses")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("molsets is not installed: pip install --no-deps molsets==0.3.1 "
                                "(or pass --smi-dir from scripts/prepare_moses.py)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "dataset", "data", f"{split}.csv.gz")
    import pandas as pd

    df = pd.read_csv(path)
    return df[df.columns[0]].astype(str).tolist()


def load_splits(smi_dir: Optional[str], max_train: int, valid_size: int, max_test: int,
                seed: int) -> Dict[str, List[str]]:
    """{train, valid, test} SMILES lists, subsampled with ``seed`` (0 = no limit)."""
    rng = random.Random(seed)
    if smi_dir:
        out = {}
        for split in ("train", "valid", "test"):
            path = os.path.join(smi_dir, f"{split}.smi")
            if not os.path.exists(path):
                raise FileNotFoundError(f"{path} not found: --smi-dir must hold train.smi/valid.smi/test.smi "
                                        "(scripts/prepare_moses.py --out DIR)")
            with open(path) as f:
                out[split] = [line.split()[0] for line in f if line.strip()]
    else:
        train = molsets_smiles("train")
        rng.shuffle(train)
        out = {"valid": train[:valid_size], "train": train[valid_size:], "test": molsets_smiles("test")}
    for split, limit in (("train", max_train), ("valid", valid_size), ("test", max_test)):
        if limit and len(out[split]) > limit:
            out[split] = rng.sample(out[split], limit)
    return out


def encode_strings(smiles: List[str], fmt: str) -> Tuple[List[str], int]:
    """Tokenized lines in format fmt ('smiles' or 'safe') and the number of molecules skipped."""
    lines, skipped = [], 0
    encoder = None
    if fmt == "safe":
        try:
            import safe
        except ImportError:
            raise ImportError("--format safe needs the safe-mol package: pip install safe-mol")
        encoder = safe.encode
    elif fmt != "smiles":
        raise ValueError(f"unknown format {fmt!r}; use 'smiles' or 'safe'")
    for s in smiles:
        try:
            string = encoder(s) if encoder else s
            lines.append(" ".join(tokenize(string)))
        except Exception:  # noqa: BLE001 - SAFE fragmentation or tokenization failure: skip and count
            skipped += 1
    return lines, skipped
