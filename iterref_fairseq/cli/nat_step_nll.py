"""Per-step token NLL and accuracy of a refinement NAT's LVM chain: does decoder 2 improve on decoder 1?

For each checkpoint, runs the training-time chain of Eq. (3.4) with pDAE = 0 and argmax inputs (exactly what
decoding does, but with the *reference* length, so every step is scored against the same target) on the first
``--max-sentences`` pairs of ``--split``, and reports for step l = 0 (decoder 1), 1, 2, ... (decoder 2):

* ``nll``: mean negative log-likelihood of the reference tokens (nats per token),
* ``accuracy``: fraction of reference tokens equal to the step's argmax.

Refinement helps exactly when these improve with l; BLEU can only rise with idec if they do. Writes one JSON
object (``--out``) and prints a markdown table.

    iterref-nat-step-nll work/demo/nat/checkpoint_*.pt --data work/demo/distill/bin --split train --out steps.json
"""
import argparse
import json
import re
import sys
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F


def step_statistics(model, dataset, max_sentences: int, steps: int, batch_size: int = 50) -> Dict[str, List[float]]:
    """Mean token NLL and accuracy of each step of the LVM chain over the first ``max_sentences`` pairs."""
    n = min(len(dataset), max_sentences)
    nll = torch.zeros(steps, dtype=torch.float64)
    correct = torch.zeros(steps, dtype=torch.float64)
    tokens = 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = dataset.collater([dataset[i] for i in range(start, min(n, start + batch_size))])
            out = model(**batch["net_input"], tgt_tokens=batch["target"], train_steps=steps, dae_prob=0.0)
            for i, step in enumerate(out["steps"]):
                lprobs = F.log_softmax(step["logits"].float(), dim=-1)
                mask, target = step["mask"], step["target"]
                nll[i] += -lprobs.gather(-1, target.unsqueeze(-1)).squeeze(-1)[mask].double().sum()
                correct[i] += (lprobs.argmax(-1)[mask] == target[mask]).double().sum()
            tokens += int(out["steps"][0]["mask"].sum())
    if tokens == 0:
        raise ValueError("no target tokens in the selected sentences")
    return {"nll": (nll / tokens).tolist(), "accuracy": (correct / tokens).tolist(), "tokens": tokens,
            "sentences": n}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="refinement_nat checkpoints (.pt)")
    p.add_argument("--data", required=True, help="binarized data directory the models were trained with")
    p.add_argument("--split", default="train", help="split to score (default train: can the model fit its data?)")
    p.add_argument("--max-sentences", type=int, default=300, help="score the first N pairs of the split")
    p.add_argument("--steps", type=int, default=6, help="chain length: 1 pass of decoder 1 + steps-1 of decoder 2")
    p.add_argument("--out", type=Path, help="write the results here as JSON")
    args = p.parse_args(argv)
    if args.steps < 1:
        p.error(f"--steps must be >= 1, got {args.steps}")

    import iterref_fairseq  # noqa: F401  (registers the model and task)
    from fairseq import checkpoint_utils

    rows = []
    for path in args.checkpoints:
        if not Path(path).is_file():
            sys.exit(f"iterref-nat-step-nll: checkpoint not found: {path}")
        # one read of the file serves both the model and its update count
        state = checkpoint_utils.load_checkpoint_to_cpu(path, arg_overrides={"data": args.data})
        models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
            [path], arg_overrides={"data": args.data}, state=state
        )
        model = models[0].eval()
        if not hasattr(model, "decode_refine"):
            sys.exit(f"iterref-nat-step-nll: {path} is not a refinement_nat checkpoint")
        task.load_dataset(args.split)
        stats = step_statistics(model, task.dataset(args.split), args.max_sentences, args.steps)
        updates = state.get("optimizer_history", [{}])[-1].get("num_updates")
        rows.append({"checkpoint": str(path), "num_updates": updates, **stats})

    result = {"data": args.data, "split": args.split, "steps": args.steps, "rows": rows}
    header = "| checkpoint | updates | " + " | ".join(f"step {i} NLL / acc" for i in range(args.steps)) + " |"
    print(header)
    print(re.sub(r"[^|]+", "---", header))
    for r in rows:
        cells = " | ".join(f"{n:.3f} / {a:.3f}" for n, a in zip(r["nll"], r["accuracy"]))
        print(f"| {Path(r['checkpoint']).name} | {r['num_updates']} | {cells} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
