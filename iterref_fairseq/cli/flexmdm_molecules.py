"""``iterref-flexmdm-molecules``: sample molecules from an insertion model and score them.

    iterref-flexmdm-molecules DATA --path CKPT --num-samples 1000 [--sampling-steps 1024 --confidence none
        --sampling-topk 0 --sampling-topp 1.0 --temperature 1.0 --seed 1 --out-json r.json --out-strings s.txt]

DATA is the directory written by scripts/prepare_molecule_strings.py (its dictionary and ``format.txt``).
Prints validity, uniqueness, diversity and quality (QED >= 0.6 and SA <= 4), in percent, and one JSON line.
"""
import argparse
import json
import logging
import platform
import sys
from pathlib import Path
from typing import List, Optional

import torch


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", type=Path)
    p.add_argument("--path", required=True, type=Path, help="flexmdm / lflexmdm checkpoint")
    p.add_argument("--num-samples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--sampling-steps", type=int, default=1024)
    p.add_argument("--confidence", default="none", choices=["none", "top_prob", "prob_diff", "entropy"])
    p.add_argument("--sampling-topk", type=int, default=0)
    p.add_argument("--sampling-topp", type=float, default=1.0)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--format", choices=["smiles", "safe"], help="default: DATA/format.txt, else smiles")
    p.add_argument("--out-json", type=Path)
    p.add_argument("--out-strings", type=Path, help="write the generated strings, one per line")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    if args.num_samples < 1 or args.batch_size < 1:
        p.error("--num-samples and --batch-size must be >= 1")
    if not (args.data / "dict.src.txt").exists():
        p.error(f"{args.data} has no dict.src.txt: pass the directory written by scripts/prepare_molecule_strings.py")
    if not args.path.is_file():
        p.error(f"checkpoint not found: {args.path}")

    import iterref_fairseq  # noqa: F401
    from fairseq import checkpoint_utils

    from ..data.molecule_strings import PROMPT
    from ..generators.tau_leaping import TauLeapingSampler
    from ..metrics.molecule_strings import string_metrics

    fmt = args.format or ((args.data / "format.txt").read_text().strip() if (args.data / "format.txt").exists()
                          else "smiles")
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task([str(args.path)],
                                                                      arg_overrides={"data": str(args.data)})
    model = models[0].eval()
    if not hasattr(model, "rates"):
        p.error(f"{args.path} is not an insertion model (no 'rates' hook)")
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    prompt = src_dict.encode_line(PROMPT, add_if_not_exist=False, append_eos=True).long()
    sampler = TauLeapingSampler(tgt_dict, sampling_steps=args.sampling_steps, top_k=args.sampling_topk,
                                top_p=args.sampling_topp, temperature=args.temperature,
                                confidence=args.confidence, seed=args.seed)
    strings = []
    from tqdm import tqdm

    for start in tqdm(range(0, args.num_samples, args.batch_size), desc="sample"):
        bsz = min(args.batch_size, args.num_samples - start)
        sampler.seed = args.seed + start  # a different stream per batch, reproducible
        out = sampler.sample(model, prompt.unsqueeze(0).expand(bsz, -1).contiguous())
        for row in out["tokens"]:
            keep = row.ne(tgt_dict.pad()) & row.ne(tgt_dict.eos())
            strings.append("".join(tgt_dict[int(i)] for i in row[keep]))
    metrics = string_metrics(strings, fmt, seed=args.seed)
    pct = {k: (100.0 * v if k != "n" and v is not None else v) for k, v in metrics.items()}
    diversity = "-" if pct["diversity"] is None else f"{pct['diversity']:.1f}"
    print(f"{len(strings)} {fmt} samples, {args.sampling_steps} steps: validity {pct['validity']:.1f}  "
          f"uniqueness {pct['uniqueness']:.1f}  diversity {diversity}  quality {pct['quality']:.1f}")
    summary = {"checkpoint": str(args.path), "format": fmt, "sampling_steps": args.sampling_steps,
               "confidence": args.confidence, "seed": args.seed, "torch": torch.__version__,
               "hardware": platform.processor() or platform.machine(), **pct}
    if args.out_strings:
        args.out_strings.write_text("".join(s + "\n" for s in strings))
    if args.out_json:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(summary, indent=1))
    print("JSON " + json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
