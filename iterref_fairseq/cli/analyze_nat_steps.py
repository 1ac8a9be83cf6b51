"""``iterref-analyze-nat-steps``: per-step token NLL and accuracy of a refinement NAT's LVM chain: does decoder 2
improve on decoder 1?

For each checkpoint, runs the training-time chain of Eq. (3.4) with pDAE = 0 and argmax inputs (exactly what
decoding does, but with the *reference* length, so every step is scored against the same target) on the first
``--max-examples`` pairs of the split ``--gen-subset``, and reports for step l = 0 (decoder 1), 1, 2, ... (decoder 2):

* ``nll``: mean negative log-likelihood of the reference tokens (nats per token),
* ``accuracy``: fraction of reference tokens equal to the step's argmax.

Refinement helps exactly when these improve with l; BLEU can only rise with idec if they do. Prints a markdown
table; ``--out`` writes the results as JSON and the table beside it (``.md``). CUDA is used when available unless
``--cpu``.

    iterref-analyze-nat-steps work/demo/distill-beam4/bin --path work/demo/nat/checkpoint_*.pt --gen-subset train \\
        --out steps.json

(The old form ``CHECKPOINT... --data DATA`` still works for one release, with a warning.)
"""
import json
import re
import sys
from pathlib import Path
from typing import Dict, List

import torch

from .common import (CLIError, add_deprecated_flag, add_device_arguments, add_gen_subset_argument,
                     add_max_examples_argument, check_file, check_out_dir, check_positive, checkpoint_updates,
                     console_main, load_checkpoint, load_checkpoint_state, new_parser, provenance, resolve_data,
                     resolve_device, warn)

PROG = "iterref-analyze-nat-steps"


def step_statistics(model, dataset, max_examples: int, steps: int, batch_size: int = 50,
                    device=None) -> Dict[str, List[float]]:
    """Mean token NLL and accuracy of each step of the LVM chain over the first ``max_examples`` pairs (all if
    ``max_examples`` <= 0), the model and batches on ``device`` (default: the model's)."""
    n = len(dataset) if max_examples <= 0 else min(len(dataset), max_examples)
    device = device or next(model.parameters()).device
    nll = torch.zeros(steps, dtype=torch.float64)
    correct = torch.zeros(steps, dtype=torch.float64)
    tokens = 0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = dataset.collater([dataset[i] for i in range(start, min(n, start + batch_size))])
            net_input = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch["net_input"].items()}
            target = batch["target"].to(device)
            out = model(**net_input, tgt_tokens=target, train_steps=steps, dae_prob=0.0, predict_last=True)
            for i, step in enumerate(out["steps"]):
                mask = step["mask"]
                nll[i] += step["nll"].double().sum().cpu()
                correct[i] += (step["tokens"][mask] == target[mask]).double().sum().cpu()
            tokens += int(out["steps"][0]["mask"].sum())
    if tokens == 0:
        raise CLIError("no target tokens in the selected sentences (raise --max-examples or choose another "
                       "--gen-subset)")
    return {"nll": (nll / tokens).tolist(), "accuracy": (correct / tokens).tolist(), "tokens": tokens,
            "sentences": n}


def build_parser():
    p = new_parser(PROG, __doc__)
    p.add_argument("data", nargs="*", metavar="DATA",
                   help="binarized data directory the models were trained with (fairseq-preprocess output)")
    add_deprecated_flag(p, "--data", "the positional argument DATA", dest="data_flag", metavar="DIR",
                        help="the data directory; pass it as the positional DATA instead")
    p.add_argument("--path", nargs="+", metavar="CHECKPOINT",
                   help="refinement_nat checkpoints (.pt), one or more, each scored on its own")
    add_gen_subset_argument(p, "train", "split of DATA to score (default train: can the model fit its data?)",
                            deprecated=("--split",))
    add_max_examples_argument(p, 300, "score the first N pairs of the split (0 = all; default 300)")
    p.add_argument("--batch-size", type=int, default=50, help="pairs per batch (default 50)")
    p.add_argument("--steps", type=int, default=6, help="chain length: 1 pass of decoder 1 + steps-1 of decoder 2")
    add_device_arguments(p)
    p.add_argument("--out", type=Path, help="write the results here as JSON, and the table beside it (.md)")
    return p


def resolve_inputs(args) -> List[str]:
    """Sets ``args.data``; returns the checkpoints. Accepts the old form ``CHECKPOINT... --data DATA``."""
    positionals = list(args.data)
    if args.path is None and positionals and args.data_flag is not None:
        warn(PROG, "checkpoints as positional arguments are deprecated, use DATA --path CHECKPOINT...")
        args.path, positionals = positionals, []
    if args.path is None:
        raise CLIError("no checkpoint given: pass --path CHECKPOINT... (refinement_nat checkpoints)")
    if len(positionals) > 1:
        raise CLIError(f"one DATA directory expected, got {len(positionals)}: {' '.join(positionals)} (checkpoints "
                       "go after --path)")
    args.data = positionals[0] if positionals else None
    resolve_data(args, fix="pass the fairseq-preprocess output directory as DATA")
    return args.path


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    checkpoints = resolve_inputs(args)
    check_positive(steps=args.steps, batch_size=args.batch_size)
    for path in checkpoints:
        check_file(path, "checkpoint", "pass --path CHECKPOINT... of refinement_nat models")
    if args.out:
        check_out_dir(args.out)

    device = resolve_device(args)
    rows = []
    fix = "pass --path CHECKPOINT... of refinement_nat models"
    for path in checkpoints:
        state = load_checkpoint_state(path, args.data, fix)  # one read serves the model and its update count
        models, cfg, task = load_checkpoint(path, args.data, fix, state=state)
        model = models[0].eval().to(device)
        if not hasattr(model, "refine_hidden"):
            raise CLIError(f"{path} is not a refinement_nat checkpoint (--path needs models trained with "
                           "--arch refinement_nat*)")
        try:
            task.load_dataset(args.gen_subset)
        except FileNotFoundError as err:
            raise CLIError(f"--gen-subset {args.gen_subset}: {err} (choose a split of DATA)") from None
        stats = step_statistics(model, task.dataset(args.gen_subset), args.max_examples, args.steps,
                                args.batch_size, device)
        rows.append({"checkpoint": str(path), "num_updates": checkpoint_updates(state), **stats})

    result = {"data": args.data, "split": args.gen_subset, "steps": args.steps, "rows": rows,
              "provenance": provenance(args)}
    header = "| checkpoint | updates | " + " | ".join(f"step {i} NLL / acc" for i in range(args.steps)) + " |"
    table = [header, re.sub(r"[^|]+", "---", header)]
    for r in rows:
        cells = " | ".join(f"{n:.3f} / {a:.3f}" for n, a in zip(r["nll"], r["accuracy"]))
        table.append(f"| {Path(r['checkpoint']).name} | {r['num_updates']} | {cells} |")
    print("\n".join(table))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text("\n".join(table) + "\n")
    return 0


def main(argv=None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
