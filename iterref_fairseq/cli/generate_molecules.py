"""``iterref-generate-molecules``: samples molecules from a masked graph model (thesis §5.3.3) with the Gibbs-like
sampler of ``generators/graph_gibbs.py``.

Example (QM9, Table 5.3 row "10% train")::

    iterref-generate-molecules work/qm9 --path checkpoints/mgm_qm9/checkpoint_best.pt \\
        --num-samples 10000 --init train --mask-rate 0.1 --steps 400 --out samples.smi --trajectory-every 10

Writes ``--out`` (one SMILES per sample, in sample order; an invalid graph is written as the
placeholder INVALID, which RDKit rejects, so validity is measured downstream),
``<out>.json`` (summary: counts, validity, settings, seed, versions, hardware) and, with ``--trajectory-every K``,
``<out>.trajectory.jsonl`` (one JSON line per recorded step t = 0, K, 2K, ..., T: {"step", "smiles"}) for
``iterref-plot-molecules``. CUDA is used when available unless ``--cpu``.
"""
import argparse
import json
import logging
import os
import platform
import sys
import time

import torch

from .common import (CLIError, add_data_argument, add_device_arguments, console_main, load_checkpoint, new_parser,
                     provenance, resolve_data, resolve_device)

PROG = "iterref-generate-molecules"
logger = logging.getLogger("iterref.generate_molecules")


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "data directory the model was trained on (train.smi, vocab.json)")
    p.add_argument("--path", required=True, metavar="CHECKPOINT",
                   help="masked_graph_model checkpoint (fairseq-train output)")
    p.add_argument("--num-samples", type=int, default=10000, help="molecules to generate (GuacaMol uses 10,000)")
    p.add_argument("--init", choices=["train", "marginal"], default="train",
                   help="training initialization or marginal initialization (§5.3.3)")
    p.add_argument("--mask-rate", type=float, default=0.1, help="alpha: fraction of components resampled per step")
    p.add_argument("--mask-selection", choices=["fraction", "bernoulli"], default="fraction",
                   help="which components a step resamples: exactly round(alpha * components), uniformly (the "
                        "thesis, §5.3.3; default), or each independently with probability alpha, as training masks")
    p.add_argument("--steps", type=int, default=400, help="T: sampling steps (thesis: 400 QM9, 300 ChEMBL)")
    p.add_argument("--argmax-after-step", type=int, default=None, metavar="S",
                   help="after step S take the most likely value instead of sampling (default: always sample)")
    p.add_argument("--out", required=True, help="output SMILES file; the JSON summary goes beside it (OUT.json)")
    p.add_argument("--trajectory-every", type=int, default=0, metavar="K",
                   help="also record all samples every K steps (<out>.trajectory.jsonl)")
    p.add_argument("--batch-size", type=int, default=500, help="graphs sampled in parallel")
    p.add_argument("--skip-invalid-smiles", action="store_true",
                   help="skip training SMILES that RDKit rejects (counted) instead of stopping")
    p.add_argument("--seed", type=int, default=1, help="random seed (initial graphs and sampling)")
    add_device_arguments(p)
    return p


def fail(msg: str) -> None:
    """Bad input: one line on stderr and exit status 2 (raises :class:`~iterref_fairseq.cli.common.CLIError`)."""
    raise CLIError(msg)


def load(path: str, data: str, device: torch.device):
    from iterref_fairseq.data.molecules import MoleculeError

    fix = "pass --path CHECKPOINT written by fairseq-train --task mol_graph"
    try:
        models, cfg, task = load_checkpoint(path, data, fix)
    except (MoleculeError, ValueError) as err:
        fail(str(err))
    model = models[0]
    if not hasattr(model, "log_conditionals"):
        fail(f"{path} is not a masked graph model checkpoint (train one with --arch masked_graph_model_*)")
    return model.to(device).eval(), task


def versions() -> dict:
    import rdkit

    import fairseq

    return {"python": platform.python_version(), "torch": torch.__version__, "fairseq": fairseq.__version__,
            "rdkit": rdkit.__version__, "hardware": platform.processor() or platform.machine(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def run(args) -> dict:
    """Generates, writes ``--out``, ``OUT.json`` (and the trajectory); returns the summary written to OUT.json."""
    resolve_data(args, fix="pass the directory with train.smi and vocab.json as DATA")
    if not 0.0 < args.mask_rate <= 1.0:
        fail(f"--mask-rate must be in (0, 1], got {args.mask_rate} (the thesis uses 0.1 or 0.2 on QM9, "
             "0.01 or 0.05 on ChEMBL)")
    if args.steps < 0 or args.num_samples < 1 or args.batch_size < 1 or args.trajectory_every < 0:
        fail("--steps and --trajectory-every must be >= 0; --num-samples and --batch-size >= 1")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        fail(f"output directory does not exist: {out_dir} (create it or change --out)")

    device = resolve_device(args)
    model, task = load(args.path, args.data, device)

    from tqdm import tqdm

    from iterref_fairseq.data.molecules import MoleculeError
    from iterref_fairseq.generators.graph_gibbs import sample_molecules

    torch.manual_seed(args.seed)
    task.cfg.skip_invalid_smiles = args.skip_invalid_smiles
    try:
        task.load_dataset("train")
    except MoleculeError as err:
        fail(str(err))
    marginals = task.graph_marginals("train") if args.init == "marginal" else None
    n_batches = (args.num_samples + args.batch_size - 1) // args.batch_size
    t0 = time.time()
    with tqdm(total=n_batches * args.steps, desc="sampling", unit="step", mininterval=1.0, disable=None) as bar:
        results, trajectory = sample_molecules(
            model, task.vocab, task.datasets["train"], marginals, args.num_samples, init=args.init,
            mask_rate=args.mask_rate, steps=args.steps, argmax_after_step=args.argmax_after_step,
            selection=args.mask_selection,
            batch_size=args.batch_size, seed=args.seed, device=device, trajectory_every=args.trajectory_every,
            progress=lambda: bar.update(1))
    elapsed = time.time() - t0

    with open(args.out, "w") as f:
        f.writelines(s + "\n" for s, _ in results)
    traj_path = None
    if trajectory:
        traj_path = args.out + ".trajectory.jsonl"
        with open(traj_path, "w") as f:
            for t in sorted(trajectory):
                f.write(json.dumps({"step": t, "smiles": trajectory[t]}) + "\n")
    n_valid = sum(v for _, v in results)
    summary = {
        "checkpoint": os.path.abspath(args.path), "data": os.path.abspath(args.data), "out": args.out,
        "trajectory": traj_path, "num_samples": len(results), "num_valid": n_valid,
        "validity": n_valid / len(results), "init": args.init, "mask_rate": args.mask_rate, "steps": args.steps,
        "argmax_after_step": args.argmax_after_step, "mask_selection": args.mask_selection,
        "batch_size": args.batch_size, "seed": args.seed,
        "seconds": round(elapsed, 2), "device": str(device), **versions(), "provenance": provenance(args),
    }
    with open(args.out + ".json", "w") as f:
        json.dump(summary, f, indent=1)
    print(f"generated {len(results)} molecules ({n_valid} valid, {100.0 * n_valid / len(results):.1f}%) in "
          f"{elapsed:.1f}s -> {args.out}")
    print(json.dumps(summary))
    return summary


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    run(args)
    return 0


def main(argv=None) -> int:
    """Console entry point: 0 on success, 2 with one message on stderr on bad input (use :func:`run` for the
    summary)."""
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
