#!/usr/bin/env python
"""Has a star-graph insertion model learned to look up an edge? Two fill-in probes on the test graphs.

The target is the path's edges as node pairs, so an interior node v_k of the path (k = 1 .. n-2 of its n nodes)
appears twice, at positions 2k - 1 and 2k (0-based, end of edge k-1 and start of edge k). Example with the path
20 -> 4 -> 19 -> 8 -> 9: target ``20 4 4 19 19 8 8 9``; node k = 2 (19) sits at positions 3 and 4.

* ``single``: one random content token masked, everything else revealed. The masked token has a revealed twin (or
  is the source / goal, which the prompt ends with), so this measures copying, not graph reasoning.
* ``node``: both copies of node k masked, both neighbours revealed (``20 4 4 <m> <m> 8 8 9``). The answer is the
  one node x with edges v_{k-1} -> x and x -> v_{k+1} in the prompt; on an arm v_{k-1} has a single outgoing edge,
  so one edge lookup suffices. A model that reads edges gets this right; guessing a node gets about 1 / (number of
  nodes).

``node`` is also reported per role of the masked node on the path (``per_role``): before the junction, the
junction itself, or after it. The junction is the one node with more than two incident edges, so a model can find
it by counting, without following an edge; the other roles need the lookup.

The model sees the probe at time ``--time`` (default 0.99: late, almost everything revealed) and is scored by the
argmax of its unmasking distribution at the masked positions (both copies must be right for ``node``). Two guessing
baselines for ``node``, averaged over the probes like the accuracy: ``chance`` = a uniform guess among the graph's
nodes (1 / nodes), ``chance_informed`` = a uniform guess among the nodes not already revealed elsewhere in the
target (what a model that copies perfectly but cannot read edges would get).

    python examples/flexmdm/probe_star_lookup.py DATA --path CKPT [--max-examples 300] --out probe.json
    python examples/flexmdm/probe_star_lookup.py DATA --path RUN/checkpoint_*_*.pt --out curve.json   # a curve

With several checkpoints the JSON holds one entry per checkpoint under ``points`` (with ``num_updates``, read from
the checkpoint), sorted by updates.
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List, Tuple

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from iterref_fairseq.cli.common import checkpoint_updates, load_checkpoint, load_checkpoint_state  # noqa: E402
from iterref_fairseq.data.star_graphs import junction_of  # noqa: E402


def node_copies_masked(x1: torch.Tensor, content_len: torch.Tensor, k: int,
                       mask_index: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """x1 (B, L) targets, content_len (B,) content tokens per row -> (tokens with both copies of interior node k
    masked, valid (B,) bool: rows whose path has a node k with a successor, i.e. 2k + 1 < content_len)."""
    valid = content_len > 2 * k + 1
    tokens = x1.clone()
    rows = valid.nonzero().squeeze(1)
    tokens[rows, 2 * k - 1] = mask_index
    tokens[rows, 2 * k] = mask_index
    return tokens, valid


def one_token_masked(x1: torch.Tensor, content_len: torch.Tensor, mask_index: int,
                     gen: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
    """One uniformly drawn content position per row masked -> (tokens, positions (B,))."""
    pos = (torch.rand(len(x1), generator=gen) * content_len).long()
    tokens = x1.clone()
    tokens[torch.arange(len(x1)), pos] = mask_index
    return tokens, pos


ROLES = ("before_junction", "junction", "after_junction")


def junction_index(src_row: List[int], target_row: List[int], special: int) -> int:
    """Index along the path (0 = source) of the junction, the node with more than two incident edges; -1 when the
    path does not pass it. Rows are token indices; those below ``special`` (pad, BOS, EOS) are skipped.

    Example (ids as tokens): prompt ``8 5 3 8 4 8 2 6 9 3 8 0 5 1 8 2 0 7 4 6`` (source 4, goal 6), target
    ``4 8 8 2 2 6``: node 8 has 5 incident edges, the path is 4 -> 8 -> 2 -> 6, so the junction index is 1."""
    body = [t for t in src_row if t >= special][:-2]  # drop source and goal
    hub = junction_of(list(zip(body[0::2], body[1::2])))
    content = [t for t in target_row if t >= special]
    path = content[0::2] + content[-1:]
    return path.index(hub) if hub is not None and hub in path else -1


def argmax_at(model, src, tokens, t: float) -> torch.Tensor:
    with torch.no_grad():
        logits, *_ = model.generator_outputs(src, tokens, tokens.eq(model.pad), torch.full((len(tokens),), t))
    return logits.argmax(-1)


def probe(model, src: torch.Tensor, x1: torch.Tensor, t: float, repeats: int, seed: int, special: int) -> dict:
    """Both probes on one collated batch (src (B, S) prompts, x1 (B, L) targets) -> the result fields; tokens below
    ``special`` are not graph nodes."""
    content_len = (x1.ne(model.pad) & x1.ne(model.eos) & x1.ne(model.bos)).sum(1)
    gen = torch.Generator().manual_seed(seed)
    right = total = 0
    for _ in range(repeats):
        tokens, pos = one_token_masked(x1, content_len, model.mask_index, gen)
        rows = torch.arange(len(x1))
        right += int(argmax_at(model, src, tokens, t)[rows, pos].eq(x1[rows, pos]).sum())
        total += len(x1)
    junction = torch.tensor([junction_index(s, x, special) for s, x in zip(src.tolist(), x1.tolist())])
    per_node = {}
    per_role = {r: {"examples": 0, "right": 0, "informed_sum": 0.0} for r in ROLES}
    for k in range(1, int(content_len.max()) // 2):
        tokens, valid = node_copies_masked(x1, content_len, k, model.mask_index)
        if not valid.any():
            continue
        pred = argmax_at(model, src, tokens, t)
        ok = pred[:, [2 * k - 1, 2 * k]].eq(x1[:, [2 * k - 1, 2 * k]]).all(1)
        naive, informed = guess_rates(src, tokens, valid, special)
        per_node[k] = {"examples": int(valid.sum()), "accuracy": float(ok[valid].float().mean()),
                       "chance": naive, "chance_informed": informed}
        for role, rows in zip(ROLES, (junction > k, junction == k, (junction >= 0) & (junction < k))):
            rows = rows & valid
            if rows.any():
                agg = per_role[role]
                agg["examples"] += int(rows.sum())
                agg["right"] += int(ok[rows].sum())
                agg["informed_sum"] += guess_rates(src, tokens, rows, special)[1] * int(rows.sum())
    n_node = sum(v["examples"] for v in per_node.values())

    def pooled(key):
        return sum(v[key] * v["examples"] for v in per_node.values()) / max(n_node, 1)

    return {"single_token_accuracy": right / total, "node_lookup_accuracy": pooled("accuracy"),
            "chance": pooled("chance"), "chance_informed": pooled("chance_informed"),
            "node_lookup_probes": n_node, "per_node": per_node,
            "per_role": {r: {"examples": a["examples"], "accuracy": a["right"] / max(a["examples"], 1),
                             "chance_informed": a["informed_sum"] / max(a["examples"], 1)}
                         for r, a in per_role.items()}}


def guess_rates(src: torch.Tensor, probe_tokens: torch.Tensor, valid: torch.Tensor,
                special: int) -> Tuple[float, float]:
    """Mean over the valid rows of 1 / (graph nodes) and of 1 / (graph nodes not revealed in ``probe_tokens``).

    src (B, S) prompts, probe_tokens (B, L) the probe's target with the node masked, valid (B,) bool; tokens below
    ``special`` (pad, EOS, ...) and the mask (not a prompt token) are not nodes."""
    naive, informed = [], []
    for row, target, ok in zip(src.tolist(), probe_tokens.tolist(), valid.tolist()):
        if not ok:
            continue
        nodes = {t for t in row if t >= special}
        unrevealed = nodes - set(target)
        naive.append(1.0 / max(len(nodes), 1))
        informed.append(1.0 / max(len(unrevealed), 1))
    return sum(naive) / max(len(naive), 1), sum(informed) / max(len(informed), 1)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data")
    p.add_argument("--path", required=True, nargs="+",
                   help="flexmdm / lflexmdm checkpoint(s) trained with --task star_graph (several: a curve)")
    p.add_argument("--gen-subset", default="test")
    p.add_argument("--max-examples", type=int, default=300)
    p.add_argument("--time", type=float, default=0.99)
    p.add_argument("--repeats", type=int, default=3, help="draws of the single masked token per example")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    points, batch = [], None
    for path in args.path:
        fix = "pass a star_graph FlexMDM checkpoint"
        state = load_checkpoint_state(path, args.data, fix)  # one read: the model and its update count
        models, _cfg, task = load_checkpoint(path, args.data, fix, state=state)
        model = models[0].eval()
        if not hasattr(model, "generator_outputs"):
            p.error(f"{path} is not a FlexMDM / LFlexMDM checkpoint (the AR baseline has no fill-in head)")
        if batch is None:
            task.load_dataset(args.gen_subset)
            ds = task.datasets[args.gen_subset]
            batch = ds.collater([ds[i] for i in range(min(args.max_examples, len(ds)))])
        src, x1 = batch["net_input"]["src_tokens"], batch["target"]
        point = {"checkpoint": path, "num_updates": checkpoint_updates(state), "split": args.gen_subset,
                 "examples": len(x1), "time": args.time,
                 **probe(model, src, x1, args.time, args.repeats, args.seed, task.source_dictionary.nspecial)}
        points.append(point)
        print(json.dumps({k: point[k] for k in ("num_updates", "single_token_accuracy", "node_lookup_accuracy",
                                                 "chance", "chance_informed")}))
    points.sort(key=lambda q: q["num_updates"] or 0)
    result = dict(points[0]) if len(points) == 1 else {"points": points}
    from iterref_fairseq.provenance import write_results

    write_results(result, args.out, argv=argv, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
