"""``iterref-plot-orders``: which orders do the decoding strategies generate in? (thesis Fig. 4.1–4.3)

For each strategy it decodes a split with a masked translation model and records, per sentence, the order in
which positions were written and the energy of every intermediate sequence.

* Generation orders (Fig. 4.1): each sentence's order becomes a 10-dimensional vector: at 10 evenly spaced
  normalized steps, the normalized position (i / (L − 1)) written at that step (the mean if several). The vectors
  are clustered by k-means (``--clusters``); the figure draws, per strategy, every cluster's members (thin) and
  centroid (thick) as position-vs-step curves, with cluster sizes in the legend. Left-to-right decoding is the
  diagonal.
* Energy (Fig. 4.2/4.3): the energy of the intermediate sequence after step t,
  E(Y^t) = −(1/L) Σ_{i filled} log p(y_i | context when written) (the symbol part of Eq. 4.5), averaged over
  sentences at 20 normalized steps, one curve per strategy.

Outputs in the directory ``--out``: ``orders.png``, ``energy.png`` and ``orders.json`` (centroids, cluster sizes, mean
energy curves, seed, versions).

Example::

    iterref-plot-orders work/mt/bible/bin --path work/mt/mt/checkpoint_last.pt --gen-subset test \\
        --strategies uniform,left2right,least2most,easy-first,hard-first --max-examples 200 --out work/mt/plots
"""
import argparse
import json
import logging
import os
import platform
import sys
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch

from .common import (CLIError, add_argument, add_data_argument, add_device_arguments, add_gen_subset_argument,
                     add_max_examples_argument, check_positive, console_main, load_checkpoint, new_parser, provenance,
                     resolve_data)

PROG = "iterref-plot-orders"
logger = logging.getLogger("iterref.plot_orders")


def load_masked_model(data: str, path: str, source_lang: Optional[str] = None, target_lang: Optional[str] = None,
                      cpu: bool = True, task_overrides: Optional[Dict] = None):
    """(model, task) from a masked_translation checkpoint, reading dictionaries from ``data``; bad input is a
    :class:`~iterref_fairseq.cli.common.CLIError`."""
    if not os.path.isdir(data):
        raise CLIError(f"data directory not found: {data} (pass the fairseq-preprocess output directory as DATA)")
    overrides = dict(task_overrides or {})
    if source_lang:
        overrides.update(source_lang=source_lang, target_lang=target_lang)
    models, _, task = load_checkpoint(path, data, "pass --path CHECKPOINT of a masked_translation model",
                                      overrides=overrides)
    model = models[0].eval()
    if getattr(model, "iterref_generator", None) != "generalized":
        raise CLIError(f"{path} is not a masked_translation checkpoint (--path needs a model trained with "
                       "--arch masked_translation*)")
    if torch.cuda.is_available() and not cpu:
        model.cuda()
    return model, task


def iterate_batches(task, subset: str, batch_size: int, max_examples: int = 0) -> Iterator[Dict]:
    """fairseq batches (collated by the dataset) of the first ``max_examples`` sentences of ``subset`` (all if 0),
    in the dataset's length order so that batches are full and similar in length. Nothing is skipped."""
    try:
        task.load_dataset(subset)
    except FileNotFoundError as err:
        raise CLIError(f"--gen-subset {subset}: {err} (choose a split of DATA: train, valid or test)") from None
    ds = task.datasets[subset]
    limit = max_examples if max_examples and max_examples > 0 else len(ds)
    order = [int(i) for i in ds.ordered_indices() if i < limit]
    for start in range(0, len(order), batch_size):
        yield ds.collater([ds[i] for i in order[start: start + batch_size]])
    logger.info("decoded %d sentences of %s", len(order), subset)


def order_vector(order: List[List[int]], length: int, dims: int = 10) -> np.ndarray:
    """Normalized position written at ``dims`` evenly spaced normalized steps. Example: L = 3, order
    [[0], [1], [2]] -> positions 0, .5, 1 sampled at 10 steps -> [0, 0, 0, .5, .5, .5, .5, 1, 1, 1]."""
    steps = [float(np.mean(o)) / max(length - 1, 1) if o else np.nan for o in order]
    steps = [s for s in steps if not np.isnan(s)] or [0.0]
    idx = np.round(np.linspace(0, len(steps) - 1, dims)).astype(int)
    return np.asarray(steps)[idx]


def resample(curve: List[float], points: int = 20) -> np.ndarray:
    x = np.linspace(0, 1, len(curve)) if len(curve) > 1 else np.zeros(1)
    return np.interp(np.linspace(0, 1, points), x, np.asarray(curve)) if len(curve) > 1 else np.full(points,
                                                                                                    curve[0])


def cluster_orders(vectors: np.ndarray, k: int, seed: int = 1):
    """k-means over order vectors (n, 10) -> labels (n,), centroids (k', 10); k' = min(k, n)."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(vectors)))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(vectors)
    return km.labels_, km.cluster_centers_


def collect(model, task, strategies: List[str], args) -> Dict[str, Dict]:
    from ..generators.generalized import GeneralizedDecoder
    from ..generators.strategies import build_strategy

    results = {}
    for name in strategies:
        strategy = build_strategy(name, seed=args.seed, policy_path=args.policy_path)
        gen = GeneralizedDecoder(task.target_dictionary, strategy, budget=args.budget,
                                 tokens_per_step=args.tokens_per_step, beam=args.beam,
                                 oracle_length=args.oracle_length, max_len=model.max_decoder_positions())
        vectors, energies = [], []
        for sample in iterate_batches(task, args.gen_subset, args.batch_size, args.max_examples):
            if next(model.parameters()).is_cuda:
                sample = {"id": sample["id"], "target": sample.get("target"),
                          "net_input": {k: v.cuda() for k, v in sample["net_input"].items()}}
            for hyps in gen.generate([model], sample):
                h = hyps[0]
                if h["length"] >= 2:
                    vectors.append(order_vector(h["order"], h["length"]))
                    energies.append(resample(h["energy"]))
        if not vectors:
            raise CLIError(f"no translation of {args.gen_subset} has 2 or more tokens; nothing to plot (decode more "
                           "examples: raise --max-examples)")
        results[name] = {"vectors": np.stack(vectors), "energy": np.stack(energies)}
        logger.info("%s: %d orders", name, len(vectors))
    return results


def plot(results: Dict[str, Dict], clusters: int, out_dir: str, seed: int) -> Dict:
    from ..plotting import pyplot

    plt = pyplot()

    os.makedirs(out_dir, exist_ok=True)
    summary = {}
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 3.2), squeeze=False)
    steps = np.linspace(0, 1, 10)
    for ax, (name, res) in zip(axes[0], results.items()):
        labels, centroids = cluster_orders(res["vectors"], clusters, seed)
        colors = plt.cm.tab10(np.arange(len(centroids)) % 10)
        sizes = [int((labels == c).sum()) for c in range(len(centroids))]
        for c, centroid in enumerate(centroids):
            for vec in res["vectors"][labels == c][:30]:
                ax.plot(steps, vec, color=colors[c], alpha=0.15, linewidth=0.7)
            ax.plot(steps, centroid, color=colors[c], linewidth=2.5, label=f"n={sizes[c]}")
        ax.set_title(name)
        ax.set_xlabel("generation step (normalized)")
        ax.set_ylabel("position (normalized)")
        ax.set_xlim(0, 1)
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=7)
        summary[name] = {"n": int(len(labels)), "cluster_sizes": sizes, "centroids": centroids.round(4).tolist(),
                         "mean_energy": res["energy"].mean(0).round(4).tolist()}
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "orders.png"), dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    x = np.linspace(0, 1, 20)
    for name, res in results.items():
        ax.plot(x, res["energy"].mean(0), label=name)
    ax.set_xlabel("generation step (normalized)")
    ax.set_ylabel("energy of Y^t")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "energy.png"), dpi=120)
    plt.close(fig)
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "binarized data directory (fairseq-preprocess output) the model was trained on")
    p.add_argument("--path", required=True, metavar="CHECKPOINT", help="masked_translation checkpoint")
    add_argument(p, "--out", required=True, metavar="DIR", deprecated=("--out-dir",),
                 help="output directory for orders.png, energy.png and orders.json (created)")
    p.add_argument("--source-lang", "-s", default=None, help="source language (default: the checkpoint's)")
    p.add_argument("--target-lang", "-t", default=None, help="target language (default: the checkpoint's)")
    add_gen_subset_argument(p, "valid", "split of DATA to decode (default valid)", deprecated=("--subset",))
    p.add_argument("--strategies", default="uniform,left2right,least2most,easy-first,hard-first",
                   help="comma-separated decoding strategies, one panel / curve each")
    p.add_argument("--policy-path", default=None, help="policy for the 'learned' strategy (iterref-train-policy)")
    p.add_argument("--budget", default="L", help="decoding budget: L, 2L or a number of steps T")
    p.add_argument("--tokens-per-step", default="one", choices=["one", "ceil", "anneal"],
                   help="tokens written per step: one, ceil(L/T) or annealed L -> 1")
    p.add_argument("--beam", type=int, default=1, help="beam size K")
    p.add_argument("--oracle-length", action="store_true", help="decode with the reference lengths")
    p.add_argument("--clusters", type=int, default=4, help="k of the k-means clustering of the orders")
    add_max_examples_argument(p, 200, "decode the first N sentences of the split (0 = all; default 200)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32)")
    p.add_argument("--seed", type=int, default=1, help="random seed (torch, k-means, the uniform strategy)")
    add_device_arguments(p)
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        stream=sys.stderr)
    resolve_data(args, fix="pass the fairseq-preprocess output directory as DATA")
    check_positive(batch_size=args.batch_size, beam=args.beam, clusters=args.clusters)
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"--out {args.out} is a file; --out is the output directory (choose a directory)")
    torch.manual_seed(args.seed)
    model, task = load_masked_model(args.data, args.path, args.source_lang, args.target_lang, args.cpu)
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    try:
        results = collect(model, task, strategies, args)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from None
    summary = plot(results, args.clusters, args.out, args.seed)
    out = {"strategies": summary, "budget": args.budget, "subset": args.gen_subset, "seed": args.seed,
           "torch": str(torch.__version__), "python": platform.python_version(), "hardware": platform.machine(),
           "provenance": provenance(args)}
    with open(os.path.join(args.out, "orders.json"), "w") as f:
        json.dump(out, f, indent=2)
    for name, s in summary.items():
        print(f"{name}: {s['n']} orders, cluster sizes {s['cluster_sizes']}")
    print(f"wrote {args.out}/orders.png, energy.png, orders.json")
    print(json.dumps({"summary": {k: {"n": v["n"], "cluster_sizes": v["cluster_sizes"]} for k, v in summary.items()}}))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
