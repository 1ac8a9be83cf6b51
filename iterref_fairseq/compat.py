"""The one place for compatibility shims between fairseq 0.12, torch and numpy.

:func:`apply` is called when the plugin is imported, so every fairseq CLI run with ``--user-dir iterref_fairseq``
gets it. Each shim is idempotent and says why it exists.

1. torch >= 2.6 loads with ``weights_only=True`` by default. fairseq checkpoints pickle an
   ``argparse.Namespace`` (legacy ``args``), its training meters and numpy scalars, so fairseq-generate /
   fairseq-interactive would fail on any checkpoint written by fairseq-train. We allowlist exactly those types
   (``torch.serialization.add_safe_globals``); loading stays in weights-only mode for everything else.
2. A checkpoint that is missing or unreadable should produce one clear message naming the file. fairseq
   raises a bare ``IOError``/unpickling error deep in a traceback; we wrap ``load_checkpoint_to_cpu`` to
   re-raise with the path and the fix.
3. fairseq-fixed 0.12.3.1 changed ``data_utils.batch_by_size`` to drop the last batch when its size is not a
   multiple of ``--required-batch-size-multiple`` (default 8). fairseq-generate then silently skips up to 7
   test sentences (and validation up to 7 examples). We restore fairseq 0.12.2's behaviour: the tail batch is
   kept.
"""
import argparse
import collections
import logging
import os
import pickle

import numpy as np
import torch

logger = logging.getLogger(__name__)

_APPLIED = {"done": False}


def fairseq_checkpoint_globals():
    """Types found in fairseq checkpoints (args Namespace, meters, numpy scalars and dtypes)."""
    from fairseq.logging import meters

    types = [argparse.Namespace, collections.OrderedDict, collections.defaultdict]
    types += [getattr(meters, n) for n in ("AverageMeter", "SumMeter", "ConcatTensorMeter", "TimeMeter",
                                            "StopwatchMeter", "MetersDict") if hasattr(meters, n)]
    types += [np.dtype, np.ndarray]
    try:  # numpy >= 1.25
        from numpy import dtypes as np_dtypes

        types += [getattr(np_dtypes, n) for n in dir(np_dtypes) if n.endswith("DType")]
    except ImportError:  # pragma: no cover - old numpy
        pass
    scalar = getattr(getattr(np, "_core", np.core), "multiarray").scalar
    reconstruct = getattr(getattr(np, "_core", np.core), "multiarray")._reconstruct
    types += [scalar, reconstruct]
    return types


class CheckpointError(RuntimeError):
    """A checkpoint file is missing or cannot be read."""


def _wrap_checkpoint_loading():
    from fairseq import checkpoint_utils

    original = checkpoint_utils.load_checkpoint_to_cpu
    if getattr(original, "_iterref_wrapped", False):
        return

    def load_checkpoint_to_cpu(path, arg_overrides=None, load_on_all_ranks=False):
        if not os.path.exists(path):
            raise CheckpointError(f"checkpoint not found: {path} (check --path / --restore-file)")
        try:
            return original(path, arg_overrides=arg_overrides, load_on_all_ranks=load_on_all_ranks)
        # a text or foreign file: torch's unpickler raises KeyError (legacy format) or UnpicklingError
        except (EOFError, RuntimeError, ValueError, OSError, ImportError, AttributeError, KeyError,
                pickle.UnpicklingError) as err:
            raise CheckpointError(
                f"cannot read checkpoint {path}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                " -- the file is truncated, corrupt or not a fairseq checkpoint; re-copy it or point --path "
                "at another checkpoint"
            ) from err

    load_checkpoint_to_cpu._iterref_wrapped = True
    checkpoint_utils.load_checkpoint_to_cpu = load_checkpoint_to_cpu


def _keep_tail_batches():
    from fairseq.data import data_utils

    original = data_utils.batch_by_size
    if getattr(original, "_iterref_wrapped", False):
        return

    def batch_by_size(indices, num_tokens_fn, num_tokens_vec=None, max_tokens=None, max_sentences=None,
                      required_batch_size_multiple=1, fixed_shapes=None):
        if not isinstance(indices, np.ndarray):
            indices = np.fromiter(indices, dtype=np.int64, count=-1)
        batches = original(indices, num_tokens_fn, num_tokens_vec=num_tokens_vec, max_tokens=max_tokens,
                           max_sentences=max_sentences, required_batch_size_multiple=required_batch_size_multiple,
                           fixed_shapes=fixed_shapes)
        covered = sum(len(b) for b in batches)
        if fixed_shapes is None and covered < len(indices):
            # batches are consecutive slices of ``indices``: what was dropped is exactly the tail
            batches = list(batches) + [indices[covered:]]
        return batches

    batch_by_size._iterref_wrapped = True
    data_utils.batch_by_size = batch_by_size


def apply() -> None:
    if _APPLIED["done"]:
        return
    if hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(fairseq_checkpoint_globals())
    _wrap_checkpoint_loading()
    _keep_tail_batches()
    _APPLIED["done"] = True
