"""``iterref-analyze-star-order``: generation order of an insertion model on star graphs (paper Fig. 5).

    iterref-analyze-star-order DATA --path CKPT [--gen-subset test --sampling-steps 64 --confidence none
                                                 --plot order.png --out order.json]

Decodes the split ``--gen-subset`` with the tau-leaping sampler, keeps the exactly-correct paths and relates, for
every token of such a path, its reveal time (step at which it was unmasked / (steps + 1)) to its distance from the
junction (hops along the path / path length; both tokens of a node in the edge-pair target share it). The locally
optimal order of the paper generates from the arm ends towards the junction, i.e. far tokens first: a Pearson
correlation of -1, and on the goal side the arm choice (the node after the junction) last: ``choice_revealed_last``
is the fraction of correct paths where it is revealed no earlier than every later token (ideal 1.0). Prints a human summary and one JSON line;
``--out`` writes the summary with the pairs (JSON) and a markdown table beside it (``.md``); ``--plot`` writes a
scatter of the pairs with the per-distance mean. CUDA is used when available unless ``--cpu``.
"""
import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from ..data.star_graphs import token_node_index
from .common import (CLIError, add_argument, add_data_argument, add_device_arguments, add_gen_subset_argument,
                     add_max_examples_argument, check_out_dir, check_positive, console_main, load_insertion_model,
                     new_parser, provenance, resolve_data)

PROG = "iterref-analyze-star-order"
logger = logging.getLogger("iterref.analyze_star_order")


def order_pairs(path: Sequence[int], junction: int, reveal_steps: Sequence[int], total_steps: int):
    """[(normalised distance to the junction, normalised reveal time)] for the target tokens of one path.

    ``reveal_steps`` has one entry per target token (the path's edges as node pairs, 2 (len(path) - 1) tokens);
    token k is node (k + 1) // 2 of the path (``data.star_graphs.token_node_index``), so both tokens of an interior
    node share its distance |i - j| / (len(path) - 1), j = the junction's index.
    """
    if junction not in path:
        raise ValueError(f"junction {junction} is not on the path {list(path)}")
    if len(reveal_steps) != 2 * (len(path) - 1):
        raise ValueError(f"{len(reveal_steps)} reveal steps for a path of {len(path)} nodes: expected one per target "
                         f"token, 2 x {len(path) - 1} (the path's edges as node pairs)")
    j = list(path).index(junction)
    span = max(len(path) - 1, 1)
    return [(abs(i - j) / span, r / total_steps) for i, r in zip(token_node_index(len(reveal_steps)), reveal_steps)]


def choice_last(path: Sequence[int], junction: int, reveal_steps: Sequence[int]) -> Optional[bool]:
    """The paper's locally optimal order on the goal side: the arm choice (token 2j + 1, the node that follows the
    junction) is revealed no earlier than every later node's tokens, i.e. the goal arm is generated from the goal
    back to the junction. None when nothing follows the choice node."""
    j = list(path).index(junction)
    later = [r for i, r in zip(token_node_index(len(reveal_steps)), reveal_steps) if i > j + 1]
    return reveal_steps[2 * j + 1] >= max(later) if later else None


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else float("nan")


def summarize(records: List[Dict]) -> Dict:
    """records: {path, junction, reveal_steps, total_steps, correct[, insert_steps]}; statistics over the correct
    ones. ``pearson`` uses reveal (unmasking) steps; ``pearson_insert`` insertion steps when recorded (with
    b_um fixed to 1, LFlexMDM learns the order through insertion times)."""
    correct = [r for r in records if r["correct"]]

    def corr(key):
        pairs = [p for r in correct for p in order_pairs(r["path"], r["junction"], r[key], r["total_steps"])]
        per_example = [pearson(*zip(*order_pairs(r["path"], r["junction"], r[key], r["total_steps"])))
                       for r in correct]
        per_example = [c for c in per_example if not math.isnan(c)]
        mean = sum(per_example) / len(per_example) if per_example else float("nan")
        return pairs, (pearson(*zip(*pairs)) if pairs else float("nan")), mean

    pairs, pooled, mean = corr("reveal_steps")
    last = [c for c in (choice_last(r["path"], r["junction"], r["reveal_steps"]) for r in correct) if c is not None]
    out = {"examples": len(records), "exact_match": 100.0 * len(correct) / max(len(records), 1),
           "choice_revealed_last": sum(last) / len(last) if last else float("nan"),
           "tokens": len(pairs), "pearson": pooled, "mean_per_example_pearson": mean, "pairs": pairs}
    if correct and all("insert_steps" in r for r in correct):
        _, out["pearson_insert"], out["mean_per_example_pearson_insert"] = corr("insert_steps")
    return out


def _json_safe(d: Dict) -> Dict:
    """NaN (no correct path) -> null, so the summary is strict JSON."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


def plot(pairs, out: Path, title: str) -> None:
    from ..plotting import pyplot

    plt = pyplot()

    xs, ys = zip(*pairs)
    fig, ax = plt.subplots(figsize=(4, 3.2))
    ax.scatter(xs, ys, s=6, alpha=0.25)
    bins: Dict[float, List[float]] = {}
    for x, y in pairs:
        bins.setdefault(round(x, 3), []).append(y)
    keys = sorted(bins)
    ax.plot(keys, [sum(bins[k]) / len(bins[k]) for k in keys], "r-o", ms=3, label="mean")
    ax.set_xlabel("distance from junction / path length")
    ax.set_ylabel("reveal step / steps")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=150)
    plt.close(fig)


def markdown(meta: Dict, summary: Dict) -> str:
    def fmt(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"

    lines = ["| checkpoint | split | examples | exact match % | tokens | pearson (reveal) | mean per example | "
             "pearson (insert) | choice revealed last |", "|" + "---|" * 9,
             f"| {meta['checkpoint']} | {meta['subset']} | {summary['examples']} | {summary['exact_match']:.2f} | "
             f"{summary['tokens']} | {fmt(summary['pearson'])} | {fmt(summary['mean_per_example_pearson'])} | "
             f"{fmt(summary.get('pearson_insert'))} | {fmt(summary['choice_revealed_last'])} |"]
    return "\n".join(lines + ["", f"{meta['sampling_steps']} sampling steps, confidence {meta['confidence']}, "
                                   f"seed {meta['seed']}; ideal order: pearson -1 (arm ends first, junction last) "
                                   "and the arm choice revealed last on the goal side (1.0)."])


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "binarized star-graph directory (iterref-make-star-graphs --out)")
    p.add_argument("--path", required=True, type=Path, metavar="CHECKPOINT",
                   help="checkpoint of a flexmdm / lflexmdm model")
    add_gen_subset_argument(p, "test", "split of DATA to decode (default test)", deprecated=("--subset",))
    p.add_argument("--sampling-steps", type=int, default=64, help="tau-leaping steps")
    p.add_argument("--confidence", default="none", choices=["none", "top_prob", "prob_diff", "entropy"],
                   help="which masked tokens are unmasked first (none = as sampled)")
    p.add_argument("--batch-size", type=int, default=64, help="examples per batch")
    add_max_examples_argument(p, 0, "decode the first N examples of the split (0 = the whole split)")
    p.add_argument("--seed", type=int, default=1, help="sampler seed")
    add_device_arguments(p)
    p.add_argument("--plot", type=Path, help="write the scatter plot here (png/pdf)")
    add_argument(p, "--out", type=Path, deprecated=("--out-json",),
                 help="write the summary (with the pairs) here as JSON, and a markdown table beside it (.md)")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    resolve_data(args, fix="create it with iterref-make-star-graphs --out")
    check_positive(sampling_steps=args.sampling_steps, batch_size=args.batch_size)
    for out in (args.out, args.plot):
        if out:
            check_out_dir(out)

    from ..data.star_graphs import junction_of, parse_prompt, parse_target
    from ..generators.tau_leaping import TauLeapingSampler

    model, task, device = load_insertion_model(args, args.data, "pass --path CHECKPOINT of a flexmdm / lflexmdm "
                                               "model trained on star graphs")
    try:
        task.load_dataset(args.gen_subset)
    except FileNotFoundError as err:
        raise CLIError(f"--gen-subset {args.gen_subset}: {err} (choose a split of DATA)") from None
    dataset = task.dataset(args.gen_subset)
    n = len(dataset) if args.max_examples <= 0 else min(args.max_examples, len(dataset))
    torch.manual_seed(args.seed)
    sampler = TauLeapingSampler(task.target_dictionary, sampling_steps=args.sampling_steps,
                                confidence=args.confidence, seed=args.seed)
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    records = []
    from tqdm import tqdm

    for start in tqdm(range(0, n, args.batch_size), desc="decode"):
        batch = dataset.collater([dataset[i] for i in range(start, min(start + args.batch_size, n))])
        net_input = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch["net_input"].items()}
        with torch.no_grad():
            hyps = sampler.generate([model], {**batch, "net_input": net_input})
        for row, (hyp,) in enumerate(hyps):
            src, tgt = batch["net_input"]["src_tokens"][row], batch["target"][row]
            prompt = src_dict.string(src[src.ne(src_dict.pad())])  # prompts of varying length are left-padded
            ref = tgt_dict.string(tgt[tgt.ne(tgt_dict.pad())])
            edges, _source, _goal = parse_prompt(prompt)
            pred = tgt_dict.string(hyp["tokens"].cpu())
            path = parse_target(ref)
            records.append({"path": path, "junction": junction_of(edges), "reveal_steps": hyp["reveal_steps"],
                            "insert_steps": hyp["insert_steps"], "total_steps": args.sampling_steps + 1,
                            "correct": pred.split() == ref.split()})
    summary = summarize(records)
    print(f"{args.gen_subset}: {summary['examples']} examples, exact match {summary['exact_match']:.2f}%, "
          f"{summary['tokens']} tokens of correct paths; corr(reveal time, distance to junction) = "
          f"{summary['pearson']:.3f} pooled, {summary['mean_per_example_pearson']:.3f} mean per example "
          f"(-1 = arm ends first, junction last); arm choice revealed last in {summary['choice_revealed_last']:.3f}"
          + (f"; insertion steps: {summary['pearson_insert']:.3f}" if "pearson_insert" in summary else ""))
    meta = {"checkpoint": str(args.path), "subset": args.gen_subset, "sampling_steps": args.sampling_steps,
            "confidence": args.confidence, "seed": args.seed, "torch": torch.__version__,
            "provenance": provenance(args)}
    if args.out:
        args.out.write_text(json.dumps(_json_safe({**meta, **summary}), indent=1))
        args.out.with_suffix(".md").write_text(markdown(meta, summary) + "\n")
    if args.plot and summary["pairs"]:
        plot(summary["pairs"], args.plot, f"{args.path.parent.name}: r = {summary['pearson']:.2f}")
    elif args.plot:
        logger.warning("no exactly-correct path: nothing to plot (%s not written)", args.plot)
    print("JSON " + json.dumps(_json_safe({**meta, **{k: v for k, v in summary.items() if k != "pairs"}})))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
