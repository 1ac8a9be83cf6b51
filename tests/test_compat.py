"""The compatibility shims applied on import (iterref_fairseq/compat.py)."""
import argparse

import numpy as np
import pytest
import torch
from fairseq.data import data_utils

import iterref_fairseq  # noqa: F401
from iterref_fairseq import compat


@pytest.mark.parametrize("max_sentences,max_tokens", [(1, None), (32, None), (100, None), (None, 2000)])
def test_batch_by_size_keeps_the_tail_batch(max_sentences, max_tokens):
    idx = np.arange(100, dtype=np.int64)
    batches = data_utils.batch_by_size(idx, num_tokens_fn=lambda i: 10, num_tokens_vec=np.full(100, 10),
                                       max_tokens=max_tokens, max_sentences=max_sentences,
                                       required_batch_size_multiple=8)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(100)), "every index must be in exactly one batch"
    assert all(len(b) <= (max_sentences or 100) for b in batches)


def test_fairseq_checkpoint_payload_loads_weights_only(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"args": argparse.Namespace(arch="refinement_nat_tiny", lr=[0.1]), "model": {"w": torch.ones(2)},
                "extra_state": {"val_loss": np.float64(1.5)}}, path)
    state = torch.load(path, weights_only=True)
    assert state["args"].arch == "refinement_nat_tiny"
    assert float(state["extra_state"]["val_loss"]) == 1.5


def test_apply_is_idempotent():
    from fairseq import checkpoint_utils

    before = (checkpoint_utils.load_checkpoint_to_cpu, data_utils.batch_by_size)
    compat.apply()
    assert (checkpoint_utils.load_checkpoint_to_cpu, data_utils.batch_by_size) == before
