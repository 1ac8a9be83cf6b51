"""``iterref-generate-molecule-strings``: sample molecules (SMILES / SAFE strings) from an insertion model and score
them.

    iterref-generate-molecule-strings DATA --path CKPT --num-samples 1000 --out samples.txt [--sampling-steps 1024
        --confidence none --sampling-topk 0 --sampling-topp 1.0 --temperature 1.0 --seed 1]

DATA is the directory written by scripts/prepare_molecule_strings.py (its dictionary and ``format.txt``).
Prints validity, uniqueness, diversity and quality (QED >= 0.6 and SA <= 4), in percent, and one JSON line.
``--out`` writes the generated strings, one per line, and the summary beside them (``OUT.json``). CUDA is used
when available unless ``--cpu``.
"""
import argparse
import json
import logging
import platform
import sys
from pathlib import Path
from typing import List, Optional

import torch

from .common import (CLIError, add_argument, add_data_argument, add_deprecated_flag, add_device_arguments, check_file,
                     check_out_dir, check_positive, console_main, load_insertion_model, new_parser, provenance,
                     resolve_data)

PROG = "iterref-generate-molecule-strings"


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "directory written by scripts/prepare_molecule_strings.py")
    p.add_argument("--path", required=True, type=Path, metavar="CHECKPOINT", help="flexmdm / lflexmdm checkpoint")
    p.add_argument("--num-samples", type=int, default=1000, help="molecules to generate")
    p.add_argument("--batch-size", type=int, default=100, help="molecules sampled in parallel")
    p.add_argument("--sampling-steps", type=int, default=1024, help="tau-leaping steps")
    p.add_argument("--confidence", default="none", choices=["none", "top_prob", "prob_diff", "entropy"],
                   help="which masked tokens are unmasked first (none = as sampled)")
    p.add_argument("--sampling-topk", type=int, default=0, help="sample among the k most likely tokens (0 = all)")
    p.add_argument("--sampling-topp", type=float, default=1.0, help="nucleus sampling mass (1.0 = off)")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the token distributions")
    p.add_argument("--seed", type=int, default=1, help="sampler seed (batch k uses seed + k * batch size)")
    p.add_argument("--format", choices=["smiles", "safe"], help="string format (default: DATA/format.txt, else smiles)")
    add_device_arguments(p)
    add_argument(p, "--out", type=Path, deprecated=("--out-strings",),
                 help="write the generated strings here, one per line, and the summary beside them (OUT.json)")
    add_deprecated_flag(p, "--out-json", "--out (the summary is written beside it, OUT.json)", type=Path,
                        metavar="PATH", help="write the JSON summary to PATH (instead of OUT.json)")
    return p


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    data = Path(resolve_data(args, fix="pass the directory written by scripts/prepare_molecule_strings.py as DATA"))
    check_positive(num_samples=args.num_samples, batch_size=args.batch_size, sampling_steps=args.sampling_steps)
    if not (data / "dict.src.txt").exists():
        raise CLIError(f"{data} has no dict.src.txt: pass the directory written by "
                       "scripts/prepare_molecule_strings.py as DATA")
    check_file(args.path, "checkpoint", "pass --path CHECKPOINT of a flexmdm / lflexmdm model")
    for out in (args.out, args.out_json):
        if out:
            check_out_dir(out)

    from ..data.molecule_strings import PROMPT
    from ..generators.tau_leaping import TauLeapingSampler
    from ..metrics.molecule_strings import string_metrics

    fmt = args.format or ((data / "format.txt").read_text().strip() if (data / "format.txt").exists()
                          else "smiles")
    model, task, device = load_insertion_model(args, str(data), "pass --path CHECKPOINT of a flexmdm / lflexmdm "
                                               "model")
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    prompt = src_dict.encode_line(PROMPT, add_if_not_exist=False, append_eos=True).long().to(device)
    sampler = TauLeapingSampler(tgt_dict, sampling_steps=args.sampling_steps, top_k=args.sampling_topk,
                                top_p=args.sampling_topp, temperature=args.temperature,
                                confidence=args.confidence, seed=args.seed)
    strings = []
    from tqdm import tqdm

    for start in tqdm(range(0, args.num_samples, args.batch_size), desc="sample"):
        bsz = min(args.batch_size, args.num_samples - start)
        sampler.seed = args.seed + start  # a different stream per batch, reproducible
        out = sampler.sample(model, prompt.unsqueeze(0).expand(bsz, -1).contiguous())
        for row in out["tokens"].cpu():
            keep = row.ne(tgt_dict.pad()) & row.ne(tgt_dict.eos())
            strings.append("".join(tgt_dict[int(i)] for i in row[keep]))
    metrics = string_metrics(strings, fmt, seed=args.seed)
    pct = {k: (100.0 * v if k != "n" and v is not None else v) for k, v in metrics.items()}
    diversity = "-" if pct["diversity"] is None else f"{pct['diversity']:.1f}"
    print(f"{len(strings)} {fmt} samples, {args.sampling_steps} steps: validity {pct['validity']:.1f}  "
          f"uniqueness {pct['uniqueness']:.1f}  diversity {diversity}  quality {pct['quality']:.1f}")
    summary = {"checkpoint": str(args.path), "format": fmt, "sampling_steps": args.sampling_steps,
               "confidence": args.confidence, "seed": args.seed, "torch": torch.__version__,
               "hardware": platform.processor() or platform.machine(), "device": str(device), **pct,
               "provenance": provenance(args)}
    if args.out:
        args.out.write_text("".join(s + "\n" for s in strings))
    summary_path = args.out_json or (Path(str(args.out) + ".json") if args.out else None)
    if summary_path:
        summary_path.write_text(json.dumps(summary, indent=1))
    print("JSON " + json.dumps(summary))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
