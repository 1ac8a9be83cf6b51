"""2-rank fairseq training on CPU with gloo (docs/refinement_nat.md, distributed training): both ranks finish and
hold identical parameters."""

import pytest

from conftest import TINY_MODEL_FLAGS, USER_DIR, train_two_ranks

pytestmark = pytest.mark.slow


def test_two_rank_gloo_training_keeps_ranks_identical(tiny_data, tmp_path):
    save_dir = tmp_path / "ckpt"
    train_two_ranks([
        tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine", "--criterion", "refinement_nat_loss",
        *TINY_MODEL_FLAGS, "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "500", "--max-update", "6",
        "--cpu", "--save-dir", save_dir, "--no-epoch-checkpoints", "--seed", "3", "--log-format", "simple",
    ], save_dir, 6)
