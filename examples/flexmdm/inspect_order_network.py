#!/usr/bin/env python
"""What order did an LFlexMDM auxiliary network learn, and what does the sampler's last step make of it?

    python examples/flexmdm/inspect_order_network.py CKPT --data DATA [--split test --n 500 --steps 64 --out J]

Prints (and writes as JSON) the mean Kumaraswamy b_in^phi per target position, its quantiles, and, for the
tau-leaping grid of ``--steps`` steps, the probability that a token is still absent at the start of the last step
(the Kumaraswamy survival (1 - t^a)^b at t = 1 - 1/steps), together with the expected
number of such tokens per sequence and the expected sum of their b_in. The generator's insertion multiplier
b_in^theta estimates that sum, which undercounts tokens with b << 1; this is why the sampler's last step reads
LFlexMDM's remaining-count head instead (models/flexmdm.py).
"""
import argparse
import json

import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data", required=True, help="binarized data directory the model was trained with")
    p.add_argument("--split", default="test")
    p.add_argument("--n", type=int, default=500, help="sequences to read")
    p.add_argument("--steps", type=int, default=64, help="tau-leaping steps of the sampler")
    p.add_argument("--out", help="write the numbers here as JSON")
    args = p.parse_args()
    import iterref_fairseq  # noqa: F401  (registers the plugin, applies the checkpoint shims)
    from fairseq import checkpoint_utils
    from iterref_fairseq.modules import kumaraswamy as kuma
    from iterref_fairseq.provenance import run_metadata

    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [args.checkpoint], arg_overrides={"data": args.data})
    model = models[0].eval()
    if not model.learned_order:
        raise SystemExit(f"{args.checkpoint} is not a learned-order (LFlexMDM) model: its b_in^phi are all 1")
    task.load_dataset(args.split)
    ds = task.dataset(args.split)
    batch = ds.collater([ds[i] for i in range(min(args.n, len(ds)))])
    with torch.no_grad():
        b_in, _ = model.aux_multipliers(batch["net_input"]["src_tokens"], batch["target"])
    x1 = batch["target"]
    content = x1.ne(model.pad) & x1.ne(model.eos)
    t_last = torch.full_like(b_in, 1.0 - 1.0 / args.steps)
    surv = kuma.survival(t_last, model.a, b_in) * content  # P(absent at the last step), 0 at pads
    width = int(content.sum(1).max())
    per_pos = [(b_in[:, j][content[:, j]].mean().item(), surv[:, j][content[:, j]].mean().item())
               for j in range(width)]
    out = {
        "checkpoint": args.checkpoint, "split": args.split, "sequences": x1.size(0), "steps": args.steps,
        "b_in_mean_per_position": [round(b, 3) for b, _ in per_pos],
        "b_in_quantiles_5_25_50_75_95": [round(float(v), 3) for v in
                                         torch.quantile(b_in[content], torch.tensor([.05, .25, .5, .75, .95]))],
        "p_absent_at_last_step_per_position": [round(s, 3) for _, s in per_pos],
        "expected_absent_tokens_at_last_step": round(float(surv.sum(1).mean()), 3),
        "expected_sum_b_of_absent_tokens": round(float((surv * b_in).sum(1).mean()), 3),
        "b_in_below_0.1_fraction": round(float((b_in[content] < 0.1).float().mean()), 4),
        "provenance": run_metadata(),
    }
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
