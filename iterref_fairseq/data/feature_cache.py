"""On-disk cache of featurized molecule splits, shared by the ``mol_graph`` and ``conformer`` tasks.

Featurizing with RDKit is the slow part of loading a molecule split (seconds per thousand molecules), so each task
featurizes a split once and stores the arrays in one ``.npz`` file beside it. The file carries a key made of a
format version, the content digest of the source file and whatever else the features depend on (the MGM
vocabulary, the conformer element set): a source file edited in place, or other settings, featurize again.

Example: ``data/train.smi`` featurized for MGM is cached as ``data/cache/train.graphs.npz`` with key
``"v1-<16 hex digits of train.smi's SHA-1>-<vocabulary digest>"``; a second run finds the same key and reads the
arrays back without importing RDKit.
"""
import hashlib
import os
from typing import Callable, Dict, Optional, Tuple

import numpy as np


def file_digest(path: str) -> str:
    """First 16 hex digits of the SHA-1 of the file's bytes (read in 1 MiB chunks)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def default_cache_path(source: str, suffix: str, cache_dir: Optional[str] = None) -> str:
    """``<cache_dir or <source's folder>/cache>/<source's name without extension>.<suffix>``."""
    cache_dir = cache_dir or os.path.join(os.path.dirname(os.path.abspath(source)), "cache")
    return os.path.join(cache_dir, f"{os.path.splitext(os.path.basename(source))[0]}.{suffix}")


def cached_arrays(cache: str, key: str,
                  build: Callable[[], Dict[str, np.ndarray]]) -> Tuple[Dict[str, np.ndarray], bool]:
    """The arrays stored in ``cache`` when its key is ``key``; otherwise ``build()``'s arrays, stored there first.

    Returns (arrays, built). Strings are stored as numpy unicode arrays (no pickling, so a cache file cannot run
    code when it is read). The write goes to a temporary file that is renamed into place, so a killed run never
    leaves a half-written cache behind; a cache with another key (older format, edited source) is overwritten.
    """
    if os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as z:
            if "key" in z.files and str(z["key"]) == key:
                return {name: z[name] for name in z.files if name != "key"}, False
    arrays = build()
    if "key" in arrays:
        raise ValueError("'key' is reserved for the cache key; rename that array")
    os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
    tmp = cache + ".tmp.npz"  # np.savez appends .npz to other names
    np.savez(tmp, key=np.array(key), **arrays)
    os.replace(tmp, cache)
    return arrays, True
