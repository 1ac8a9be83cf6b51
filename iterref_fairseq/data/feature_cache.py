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
import logging
import os
import tempfile
import zipfile
from typing import Callable, Dict, Optional

import numpy as np

logger = logging.getLogger(__name__)


def file_digest(path: str) -> str:
    """First 16 hex digits of the SHA-1 of the file's bytes: the content, not the modification time, decides
    whether a cache is stale (a copied or touched file keeps its cache, an edited one does not)."""
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def default_cache_path(source: str, suffix: str, cache_dir: Optional[str] = None) -> str:
    """``<cache_dir or <source's folder>/cache>/<source's name without extension>.<suffix>``: beside the data, so
    that a data folder moved or shared with another machine carries its features along."""
    cache_dir = cache_dir or os.path.join(os.path.dirname(os.path.abspath(source)), "cache")
    return os.path.join(cache_dir, f"{os.path.splitext(os.path.basename(source))[0]}.{suffix}")


def _read(cache: str, key: str) -> Optional[Dict[str, np.ndarray]]:
    """The arrays of ``cache`` when it exists and holds ``key``; None otherwise. An unreadable file (not written by
    this module, or damaged on disk) is reported and treated as missing, so it is rebuilt."""
    if not os.path.exists(cache):
        return None
    try:
        with np.load(cache, allow_pickle=False) as z:
            if "key" not in z.files or str(z["key"]) != key:
                return None
            return {name: z[name] for name in z.files if name != "key"}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        logger.warning("cannot read the feature cache %s (%s); featurizing again and replacing it", cache, err)
        return None


def cached_arrays(cache: str, key: str, build: Callable[[], Dict[str, np.ndarray]]) -> Dict[str, np.ndarray]:
    """The arrays stored in ``cache`` when its key is ``key``; otherwise ``build()``'s arrays, stored there first.

    Strings are stored as numpy unicode arrays (no pickling, so reading a cache file cannot run code). The arrays
    go to a temporary file of a unique name in the same folder, renamed into place when complete: a killed run
    never leaves a half-written cache, and two processes featurizing the same split do not write into one file
    (the last rename wins; both wrote the same arrays). A cache with another key (older format, edited source,
    other settings) is replaced.
    """
    arrays = _read(cache, key)
    if arrays is not None:
        return arrays
    arrays = build()
    if "key" in arrays:
        raise ValueError(f"the featurizer for {cache} returned an array named 'key', which holds the cache key; "
                         "rename that array")
    folder = os.path.dirname(cache) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=os.path.basename(cache) + ".", suffix=".tmp.npz")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, key=np.array(key), **arrays)
        os.replace(tmp, cache)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return arrays


def cached_features(source: str, suffix: str, settings: str, version: int, build: Callable[[], Dict[str, np.ndarray]],
                    cache_dir: Optional[str] = None) -> Dict[str, np.ndarray]:
    """``cached_arrays`` for the features of the file ``source``: the cache sits at ``default_cache_path(source,
    suffix, cache_dir)`` and its key is ``v<version>-<file_digest(source)>-<settings>`` (``settings``: whatever else
    the features depend on), the one key layout both molecule tasks use."""
    key = f"v{version}-{file_digest(source)}-{settings}"
    return cached_arrays(default_cache_path(source, suffix, cache_dir), key, build)
