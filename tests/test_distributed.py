"""2-rank fairseq training on CPU with gloo (REFERENCE §8): both ranks finish and hold identical parameters."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import BIN, TINY_MODEL_FLAGS, USER_DIR

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_gloo_training_keeps_ranks_identical(tiny_data, tmp_path):
    port = free_port()
    save_dir = tmp_path / "ckpt"
    common = [
        str(tiny_data), "--user-dir", USER_DIR, "--task", "translation_refine", "--criterion", "refinement_nat_loss",
        *TINY_MODEL_FLAGS, "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "500", "--max-update", "6",
        "--cpu", "--save-dir", str(save_dir), "--no-epoch-checkpoints", "--seed", "3", "--log-format", "simple",
        "--distributed-world-size", "2", "--distributed-init-method", f"tcp://127.0.0.1:{port}",
        "--distributed-no-spawn", "--distributed-backend", "gloo", "--ddp-backend", "legacy_ddp",
    ]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    worker = str(Path(__file__).with_name("ddp_worker.py"))
    procs = [
        subprocess.Popen([sys.executable, worker, *common, "--distributed-rank", str(r)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for r in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    dumps = [torch.load(save_dir / f"params_rank{r}.pt", weights_only=True) for r in range(2)]
    assert dumps[0]["num_updates"] == dumps[1]["num_updates"] == 6
    p0, p1 = dumps[0]["params"], dumps[1]["params"]
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), f"rank parameters differ at {k}"
    assert "distributed init (rank 1)" in outs[1]
