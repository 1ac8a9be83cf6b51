#!/usr/bin/env python
"""Cost of one training update: the refinement NAT against fairseq's ``cmlm_transformer`` on the same batches.

Each system is a list of fairseq-train flags. It runs in its own process (so that its peak memory is its own), builds
the task, model and criterion exactly as fairseq-train would, takes the first ``--batches`` training batches of
``--max-tokens`` and times ``--updates`` full updates (task.train_step = forward + backward, then an Adam step) after
``--warmup`` untimed ones, cycling over the batches. It reports the median update time and the growth of the
process's peak resident memory during the updates (the model, data and allocator baseline are subtracted).
``--rounds`` repeats every system in alternation (A B A B ...) and keeps, per system, the median over rounds.

    python examples/refinement_nat/benchmark_update.py DATA_BIN --threads 1 --dim 256 --layers 3 \\
        --max-tokens 4096 --out results/refinement_nat/update_cost.json

Systems (``--systems``, comma-separated): ``cmlm`` (fairseq ``cmlm_transformer``, ``--noise random_mask``, label
smoothing 0.1, the fairseq defaults), ``nat`` (``refinement_nat`` with this release's defaults, itrain
``--train-steps``), ``nat-ckpt`` (the same with fairseq's ``--checkpoint-activations``: each decoder pass is
recomputed in the backward pass instead of keeping its activations), ``nat-itrain1`` (decoder 1 alone: the first
phase of ``--refine-from-update``), ``nat-0.2`` (the 0.2 decoder: highway on every sublayer). Extra flags for every NAT system: ``--nat-flags "..."``.
Writes JSON (``--out``) with provenance, and a markdown table beside it.
"""
import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

SYSTEMS = {
    "cmlm": ["--task", "translation_lev", "--arch", "cmlm_transformer", "--criterion", "nat_loss",
             "--noise", "random_mask", "--label-smoothing", "0.1", "--length-loss-factor", "0.1",
             "--share-all-embeddings"],
    "nat": ["--task", "translation_refine", "--arch", "refinement_nat", "--criterion", "refinement_nat_loss"],
    "nat-itrain1": ["--task", "translation_refine", "--arch", "refinement_nat", "--criterion",
                    "refinement_nat_loss", "--train-steps", "1"],  # overrides --train-steps (the last one wins)
    "nat-before": ["--task", "translation_refine", "--arch", "refinement_nat", "--criterion",
                   "refinement_nat_loss"],  # the same flags on the code in --before DIR
    "nat-ckpt": ["--task", "translation_refine", "--arch", "refinement_nat", "--criterion", "refinement_nat_loss",
                 "--checkpoint-activations"],  # one checkpoint per decoder pass: memory for recomputation
    "nat-0.2": ["--task", "translation_refine", "--arch", "refinement_nat", "--criterion", "refinement_nat_loss",
                "--decoder-connections", "highway"],
}


def size_flags(args) -> list:
    d, f, h, n = str(args.dim), str(args.ffn or 4 * args.dim), str(args.heads), str(args.layers)
    return ["--encoder-embed-dim", d, "--decoder-embed-dim", d, "--encoder-ffn-embed-dim", f,
            "--decoder-ffn-embed-dim", f, "--encoder-attention-heads", h, "--decoder-attention-heads", h,
            "--encoder-layers", n, "--decoder-layers", n, "--dropout", "0.0"]


def run_one(args) -> dict:
    """Child process: build one system and time its updates. Prints one JSON line."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    from fairseq import optim, options, tasks
    from fairseq.dataclass.utils import convert_namespace_to_omegaconf

    import iterref_fairseq  # noqa: F401  (registers the plugin)

    flags = list(SYSTEMS[args.child])
    refinement = flags[1] == "translation_refine"
    if refinement:
        flags = ["--train-steps", str(args.train_steps)] + shlex.split(args.nat_flags) + flags
    # argparse keeps the last value of a repeated flag
    train_steps = int([flags[i + 1] for i, f in enumerate(flags) if f == "--train-steps"][-1]) if refinement else 1
    argv = [args.data, "--user-dir", str(Path(iterref_fairseq.__file__).parent), "--cpu",
            "--max-tokens", str(args.max_tokens), "--optimizer", "adam", "--lr", "1e-4"] + size_flags(args) + flags
    parser = options.get_training_parser()
    cfg = convert_namespace_to_omegaconf(options.parse_args_and_arch(parser, input_args=argv))
    task = tasks.setup_task(cfg.task)
    model = task.build_model(cfg.model)
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("train")
    itr = task.get_batch_iterator(task.dataset("train"), max_tokens=args.max_tokens, seed=1,
                                  max_positions=(1024, 1024)).next_epoch_itr(shuffle=True)
    batches = [next(itr) for _ in range(args.batches)]
    optimizer = optim.build_optimizer(cfg.optimizer, [q for q in model.parameters() if q.requires_grad])
    model.train()

    def update(i):
        sample = batches[i % len(batches)]
        optimizer.zero_grad()
        task.train_step(sample, model, criterion, optimizer, update_num=10**6)  # past any curriculum
        optimizer.step()

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(args.warmup):
        update(i)
    times = []
    for i in range(args.updates):
        start = time.perf_counter()
        update(i)
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tokens = statistics.mean(int(b["ntokens"]) for b in batches)
    return {"system": args.child, "median_update_s": statistics.median(times), "min_update_s": min(times),
            "peak_rss_growth_mb": (peak - base) / 1024.0, "params": sum(p.numel() for p in model.parameters()),
            "target_tokens_per_batch": tokens, "train_steps": train_steps}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="binarized data (fairseq-preprocess --joined-dictionary)")
    p.add_argument("--systems", default="cmlm,nat,nat-itrain1,nat-0.2")
    p.add_argument("--nat-flags", default="", help="extra fairseq-train flags for every NAT system")
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--ffn", type=int, default=0, help="feed-forward width (default 4 x dim)")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--layers", type=int, default=2, help="encoder layers = layers per decoder")
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--train-steps", type=int, default=4, help="itrain of the 'nat' systems")
    p.add_argument("--batches", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--updates", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--before", type=Path,
                   help="a checkout of an earlier release: adds system nat-before, the 'nat' system on its code")
    p.add_argument("--out", type=Path)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(run_one(args)))
        return 0
    systems = [s.strip() for s in args.systems.split(",")]
    if args.before:
        systems.append("nat-before")
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        p.error(f"--systems: unknown {unknown}; choose from {', '.join(SYSTEMS)}")
    child_argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    runs = {s: [] for s in systems}
    for r in range(args.rounds):
        for s in systems:
            env = dict(os.environ)
            if s == "nat-before":
                env["PYTHONPATH"] = str(args.before.resolve())
            out = subprocess.run([sys.executable, __file__, *child_argv, "--child", s], capture_output=True, text=True,
                                 env=env)
            if out.returncode != 0:
                sys.stderr.write(out.stderr[-3000:])
                p.error(f"system {s} failed (exit {out.returncode})")
            runs[s].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {s}: {runs[s][-1]['median_update_s'] * 1000:.0f} ms/update, "
                  f"peak +{runs[s][-1]['peak_rss_growth_mb']:.0f} MB", file=sys.stderr)
    rows = []
    for s in systems:
        rows.append({**runs[s][0], "median_update_s": statistics.median(x["median_update_s"] for x in runs[s]),
                     "peak_rss_growth_mb": statistics.median(x["peak_rss_growth_mb"] for x in runs[s]),
                     "rounds": [{k: x[k] for k in ("median_update_s", "peak_rss_growth_mb")} for x in runs[s]]})
    ref = next((r for r in rows if r["system"] == "cmlm"), None)
    lines = ["| system | itrain | params | ms / update | x CMLM | peak memory growth (MB) | x CMLM |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        t_ratio = f"{r['median_update_s'] / ref['median_update_s']:.2f}" if ref else "-"
        m_ratio = f"{r['peak_rss_growth_mb'] / max(ref['peak_rss_growth_mb'], 1e-9):.2f}" if ref else "-"
        lines.append(f"| {r['system']} | {r['train_steps']} | {r['params'] / 1e6:.2f}M | "
                     f"{r['median_update_s'] * 1000:.0f} | {t_ratio} | {r['peak_rss_growth_mb']:.0f} | {m_ratio} |")
    table = "\n".join(lines)
    print(table)
    if args.out:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from iterref_fairseq.provenance import run_metadata

        args.out.parent.mkdir(parents=True, exist_ok=True)
        setup = {k: getattr(args, k) for k in ("dim", "ffn", "heads", "layers", "max_tokens", "train_steps",
                                               "batches", "warmup", "updates", "rounds", "threads", "nat_flags")}
        args.out.write_text(json.dumps({"setup": setup, "systems": rows,
                                        "provenance": run_metadata([sys.argv[0], *child_argv], seed=1)}, indent=1))
        args.out.with_suffix(".md").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
