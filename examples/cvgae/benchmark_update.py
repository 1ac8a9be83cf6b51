#!/usr/bin/env python
"""Cost of one CVGAE training update: the reference code's layout against this release's two shortcuts.

Builds the task, model and criterion as fairseq-train would (``cvgae_qm9`` by default, ``cvgae_loss``), takes the
first ``--batches`` training batches of ``--batch-size`` molecules, and times full updates (forward, backward, Adam
step) of three copies of the same model (``modules/edge_network_mpnn.py``):

* ``before``: every one of the N^2 pairs through each edge network, messages by batched matmul (the layout of the
  reference code, and of this project before the change);
* ``symmetric``: the edge networks on the N (N + 1) / 2 pairs i <= j only, copied to both halves;
* ``this release``: that, and the messages of one sample per molecule by elementwise products (the default).

``--rounds`` alternates them, the order rotated each round (A B C, B C A, C A B, ...), each round ``--updates``
timed updates after ``--warmup`` untimed ones; the median over all timed updates is reported, with the speed-up per
round. The copies start from the same weights and see the same batches, posterior noise and dropout masks, so their
first losses must agree (checked). CPU only (``--cpu``), ``--threads`` torch threads.

    python examples/cvgae/benchmark_update.py work/cvgae_table/qm9 --threads 1 \\
        --out results/cvgae/cvgae_update_cost.json

Writes JSON (``--out``) with provenance, and a markdown table beside it.
"""
import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def build(args):
    from fairseq import options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    parser = options.get_training_parser()
    flags = [args.data, "--user-dir", str(Path(__file__).resolve().parents[2] / "iterref_fairseq"), "--task",
             "conformer", "--arch", args.arch, "--criterion", "cvgae_loss", "--cpu", "--batch-size",
             str(args.batch_size), *args.extra]
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, flags))
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train")
    ds = task.dataset("train")
    if len(ds) < args.batches * args.batch_size:
        raise SystemExit(f"{args.data}: the training split has {len(ds)} molecules, fewer than --batches "
                         f"{args.batches} x --batch-size {args.batch_size}; lower them")
    batches = [ds.collater([ds[i] for i in range(k * args.batch_size, (k + 1) * args.batch_size)])
               for k in range(args.batches)]
    return task, cfg, batches


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="prepared conformer data (scripts/prepare_conformers.py)")
    p.add_argument("--arch", default="cvgae_qm9")
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument("--batches", type=int, default=10)
    p.add_argument("--updates", type=int, default=20, help="timed updates per round and variant")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[],
                   help="more fairseq-train flags; everything after it is taken, so give it last")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    task, cfg, batches = build(args)  # raises with the numbers when the split is too small
    base = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    models = {"before": base, "symmetric": copy.deepcopy(base), "this release": copy.deepcopy(base)}
    for name in ("before", "symmetric"):
        for m in models[name].modules():
            if hasattr(m, "use_symmetry"):
                m.use_symmetry = name != "before"
            if hasattr(m, "message_kernel"):
                m.message_kernel = "bmm"
    optimizers = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    steps = {k: 0 for k in models}
    first_loss = {}

    def update(name):
        batch = batches[steps[name] % len(batches)]
        torch.manual_seed(steps[name])  # the same posterior noise for both copies
        optimizers[name].zero_grad()
        loss, _, _ = criterion(models[name], batch)
        loss.backward()
        optimizers[name].step()
        first_loss.setdefault(name, loss.item())
        steps[name] += 1

    times = {k: [] for k in models}
    per_round = []
    names = list(models)
    for r in range(args.rounds):
        medians = {}
        for name in names[r % len(names):] + names[: r % len(names)]:
            models[name].train()
            for _ in range(args.warmup):
                update(name)
            ts = []
            for _ in range(args.updates):
                t0 = time.perf_counter()
                update(name)
                ts.append(time.perf_counter() - t0)
            times[name] += ts
            medians[name] = statistics.median(ts)
        per_round.append({f"{k}_ms": 1e3 * v for k, v in medians.items()})
        per_round[-1]["speedup"] = medians["before"] / medians["this release"]
    ref = first_loss["before"]
    if any(abs(v - ref) > 1e-4 * max(1.0, abs(ref)) for v in first_loss.values()):
        raise SystemExit(f"the variants disagree on the first loss ({first_loss}): not the same computation")
    result = {
        "data": args.data, "arch": args.arch, "batch_size": args.batch_size, "batches": args.batches,
        "updates_per_round": args.updates, "rounds": args.rounds, "threads": args.threads,
        "first_loss": first_loss,
        "median_ms": {k: 1e3 * statistics.median(v) for k, v in times.items()},
        "rounds_detail": per_round,
    }
    result["speedup"] = result["median_ms"]["before"] / result["median_ms"]["this release"]
    from iterref_fairseq.provenance import write_results

    md = ["| variant | ms / update (median) | speed-up over before |", "|---|---:|---:|"]
    for k, v in result["median_ms"].items():
        md.append(f"| {k} | {v:.1f} | {result['median_ms']['before'] / v:.2f} |")
    md.append("")
    md.append("Speed-up of this release per round: " + ", ".join(f"{r['speedup']:.2f}" for r in per_round))
    write_results(result, args.out, "\n".join(md) + "\n", argv, seed=1)
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
