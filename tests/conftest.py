"""Shared fixtures: tiny synthetic parallel data binarized with fairseq-preprocess, and a tiny trained model."""
import os
import random
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
USER_DIR = str(REPO / "iterref_fairseq")

TINY_MODEL_FLAGS = [
    "--arch", "refinement_nat_tiny", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
    "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64", "--encoder-layers", "1",
    "--decoder-layers", "1", "--encoder-attention-heads", "2", "--decoder-attention-heads", "2",
]


def cli(name: str, *args, check: bool = True, input_text: str = None, timeout: int = 1800):
    """Runs a console script of this venv; returns the CompletedProcess (stdout+stderr captured). The timeout only
    guards against a hang (a 300-update training took over 600 s on 2 cores shared with other training jobs)."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [str(BIN / name), *map(str, args)], capture_output=True, text=True, input=input_text, env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return proc


def load_module(path: Path):
    """The Python file ``path`` (a script under scripts/ or examples/, not a package module) imported as a module,
    for tests of its functions."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_reversal_corpus(directory: Path, n_train: int, n_eval: int, seed: int, vocab: int = 20,
                          min_len: int = 3, max_len: int = 8) -> None:
    """Source: random words; target: the same words reversed. Files {train,valid,test}.{src,tgt}."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab)]
    directory.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("valid", n_eval), ("test", n_eval)):
        with open(directory / f"{split}.src", "w") as fs, open(directory / f"{split}.tgt", "w") as ft:
            for _ in range(n):
                sent = [rng.choice(words) for _ in range(rng.randint(min_len, max_len))]
                fs.write(" ".join(sent) + "\n")
                ft.write(" ".join(reversed(sent)) + "\n")


def binarize(raw: Path, dest: Path) -> Path:
    cli("fairseq-preprocess", "--source-lang", "src", "--target-lang", "tgt", "--trainpref", raw / "train",
        "--validpref", raw / "valid", "--testpref", raw / "test", "--destdir", dest, "--joined-dictionary",
        "--workers", "1")
    return dest


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    write_reversal_corpus(root / "raw", 400, 24, seed=0)
    return binarize(root / "raw", root / "bin")


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_data, tmp_path_factory) -> Path:
    save_dir = tmp_path_factory.mktemp("ckpt")
    cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation_refine",
        "--criterion", "refinement_nat_loss", *TINY_MODEL_FLAGS, "--optimizer", "adam", "--lr", "1e-3",
        "--max-tokens", "1000", "--max-update", "12", "--cpu", "--save-dir", save_dir, "--no-epoch-checkpoints",
        "--log-format", "simple", "--seed", "1")
    ckpt = save_dir / "checkpoint_last.pt"
    assert ckpt.exists()
    return ckpt


@pytest.fixture(scope="session")
def ar_checkpoint(tiny_data, tmp_path_factory) -> Path:
    """A tiny fairseq transformer on the tiny data (the AR teacher / rescorer of several tests)."""
    save_dir = tmp_path_factory.mktemp("ar_ckpt")
    cli("fairseq-train", tiny_data, "--user-dir", USER_DIR, "--task", "translation", "--arch", "transformer",
        "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32", "--decoder-embed-dim", "32",
        "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
        "--decoder-attention-heads", "2", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000",
        "--max-update", "8", "--cpu", "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "simple",
        "--seed", "1", "--disable-validation")
    return save_dir / "checkpoint_last.pt"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_two_ranks(train_args, save_dir: Path, updates: int) -> None:
    """fairseq-train on 2 CPU ranks with gloo (one process per rank, tests/ddp_worker.py) with ``train_args``
    (data, task, model, optimizer flags; --save-dir save_dir); asserts that both ranks finish after ``updates``
    updates with identical parameters."""
    import torch

    common = [*map(str, train_args), "--distributed-world-size", "2", "--distributed-init-method",
              f"tcp://127.0.0.1:{free_port()}", "--distributed-no-spawn", "--distributed-backend", "gloo",
              "--ddp-backend", "legacy_ddp"]
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", OMP_NUM_THREADS="1")
    worker = str(Path(__file__).with_name("ddp_worker.py"))
    procs = [subprocess.Popen([sys.executable, worker, *common, "--distributed-rank", str(r)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    assert "distributed init (rank 1)" in outs[1]
    dumps = [torch.load(save_dir / f"params_rank{r}.pt", weights_only=True) for r in range(2)]
    assert dumps[0]["num_updates"] == dumps[1]["num_updates"] == updates
    p0, p1 = dumps[0]["params"], dumps[1]["params"]
    assert p0.keys() == p1.keys()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), f"rank parameters differ at {k}"


def generate_refine(data, ckpt, *flags, check: bool = True):
    """fairseq-generate with this plugin's translation_refine task on the CPU, batches of 5."""
    return cli("fairseq-generate", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--path", ckpt,
               "--cpu", "--batch-size", "5", *flags, check=check)


def tagged_lines(out: str, tag: str):
    """{sentence id: [fields after the tag]} for fairseq-generate lines like 'H-3\\t...'."""
    found = defaultdict(list)
    for line in out.splitlines():
        m = re.match(rf"^{tag}-(\d+)\t(.*)$", line)
        if m:
            found[int(m.group(1))].append(m.group(2))
    return found
