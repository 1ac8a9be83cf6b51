"""``iterref-benchmark-masked``: decoding strategies x budgets x beams for a masked translation model (Tables 4.1–4.3).

Each *system* is written ``STRATEGY/BUDGET/TOKENS/bK/LENGTHS[/ar]``:

* STRATEGY: a registered strategy (uniform, left2right, least2most, easy-first, hard-first, loglinear, learned);
* BUDGET: ``L`` or ``2L`` (linear time) or a number of steps T (constant time);
* TOKENS: o_t = ``one``, ``ceil`` (⌈L/T⌉) or ``anneal`` (L -> 1);
* ``bK``: beam K = K″ (K′ = 1 as in the thesis; ``bK.P`` sets K′ = P);
* LENGTHS: ``lenN`` = N length candidates from the training-set statistics (``lenNm``: from the model's length
  head), or ``gold`` (reference length);
* ``/ar``: choose among the length candidates with the autoregressive model ``--ar-path`` instead of the pseudo
  log-likelihood (the "*" rows of Table 4.2); ``/mlp``: by the mean write-time log-probability
  (``--length-selection mean-logp``, no extra passes).

``ar/bK`` is the autoregressive baseline with beam K. All systems decode the first ``--max-examples`` sentences of
the split ``--gen-subset`` in one run on one machine (CUDA when available unless ``--cpu``); BLEU is sacreBLEU against
the detokenized reference files (``--refs``, several for multi-reference BLEU). Output: ``--out`` (JSON, with seed,
versions and hardware) and a markdown table beside it (``.md``).

Example (after examples/masked_translation/train-bible-tiny.sh)::

    iterref-benchmark-masked work/mt/bible/bin --path work/mt/mt/checkpoint_last.pt \\
        --ar-path work/mt/ar/checkpoint_last.pt --refs work/mt/bible/test.ref.en.k work/mt/bible/test.ref.en.4 \\
        --systems "ar/b1,ar/b4,left2right/L/one/b1/len4,easy-first/L/one/b4/len4/ar" --out results/masked.json
"""
import argparse
import json
import logging
import os
import platform
import sys
import time
from typing import Dict, List, Optional

import torch

from .common import (CLIError, add_argument, add_data_argument, add_device_arguments, add_gen_subset_argument,
                     add_max_examples_argument, check_file, check_out_dir, check_positive, console_main, new_parser,
                     provenance, resolve_data, resolve_device)
from .plot_orders import iterate_batches

PROG = "iterref-benchmark-masked"

logger = logging.getLogger("iterref.benchmark_masked")

DEFAULT_SYSTEMS = ",".join(
    ["ar/b1", "ar/b4"]
    # Table 4.2: linear time, beam 1 and 4, four length candidates
    + [f"{s}/L/one/b{b}/len4" for s in ("uniform", "left2right", "least2most", "easy-first", "hard-first")
       for b in (1, 4)]
    + [f"{s}/2L/one/b1/len4" for s in ("left2right", "least2most", "easy-first")]
    # Table 4.2 "*" rows: AR rescoring of the length candidates
    + ["left2right/L/one/b4/len4/ar", "easy-first/L/one/b4/len4/ar"]
    # Table 4.3: constant time
    + [f"{s}/{t}/{o}/b1/len4" for s in ("left2right", "least2most", "easy-first") for t in (10, 20)
       for o in ("ceil", "anneal")]
    + ["least2most/10/anneal/b1/len4/ar"]
    # Table 4.1: number of length candidates vs gold length
    + [f"easy-first/L/one/b1/len{n}" for n in (1, 2, 3)] + ["easy-first/L/one/b1/gold", "easy-first/L/one/b1/len4m"]
)
# appended to the default grid when --policy-path is given (the PPO-learned coordinate selection, thesis §4.3.3)
DEFAULT_LEARNED_SYSTEMS = "learned/L/one/b1/len4,learned/L/one/b4/len4"


def parse_system(spec: str) -> Dict:
    """'easy-first/L/one/b4/len4/ar' -> dict of generator settings; raises ValueError with the expected form."""
    from ..generators.generalized import TOKENS_PER_STEP, parse_budget
    from ..generators.strategies import STRATEGY_REGISTRY

    parts = spec.strip().split("/")
    form = "STRATEGY/BUDGET/TOKENS/bK/LENGTHS[/ar|/mlp] or ar/bK"
    if parts[0] == "ar":
        if len(parts) != 2 or not parts[1].startswith("b") or not parts[1][1:].isdigit():
            raise ValueError(f"bad system {spec!r}; expected {form}")
        return {"kind": "ar", "beam": int(parts[1][1:]), "label": f"AR b={parts[1][1:]}"}
    if len(parts) not in (5, 6) or (len(parts) == 6 and parts[5] not in ("ar", "mlp")):
        raise ValueError(f"bad system {spec!r}; expected {form}")
    strategy, budget, tokens, beam, lengths = parts[:5]
    if strategy not in STRATEGY_REGISTRY:
        raise ValueError(f"bad system {spec!r}: unknown strategy {strategy!r}")
    parse_budget(budget)
    if tokens not in TOKENS_PER_STEP:
        raise ValueError(f"bad system {spec!r}: tokens per step must be one of {TOKENS_PER_STEP}")
    try:
        k, _, kp = beam[1:].partition(".")
        k, kp = int(k), int(kp or 1)
    except ValueError:
        raise ValueError(f"bad system {spec!r}: beam must look like b4 or b4.2") from None
    oracle = lengths == "gold"
    from_model = lengths.endswith("m")
    n_len = 1 if oracle else int(lengths[3:].rstrip("m") or 0) if lengths.startswith("len") else 0
    if n_len < 1:
        raise ValueError(f"bad system {spec!r}: lengths must be lenN, lenNm or gold")
    return {"kind": "masked", "strategy": strategy, "budget": budget, "tokens_per_step": tokens, "beam": k,
            "position_beam": kp, "length_candidates": n_len, "oracle_length": oracle,
            "length_from": "model" if from_model else "train-stats", "rescore": parts[5:] == ["ar"],
            "length_selection": "mean-logp" if parts[5:] == ["mlp"] else "pll", "label": spec}


def run(args) -> Dict:
    import numpy as np
    import sacrebleu

    from ..generators.generalized import ARRescorer, GeneralizedDecoder, LengthStatistics
    from ..generators.strategies import build_strategy
    from .benchmark_nat import detokenize, hardware, read_refs
    from .plot_orders import load_masked_model

    spec = args.systems or DEFAULT_SYSTEMS + (f",{DEFAULT_LEARNED_SYSTEMS}" if args.policy_path else "")
    systems = [parse_system(s) for s in spec.split(",") if s.strip()]
    if any(s.get("strategy") == "learned" for s in systems) and not args.policy_path:
        raise CLIError("systems with the 'learned' strategy need --policy-path (train one with iterref-train-policy)")
    use_cuda = resolve_device(args).type == "cuda"
    model, task = load_masked_model(args.data, args.path, args.source_lang, args.target_lang, cpu=not use_cuda)
    ar_model = rescorer = None
    if any(s["kind"] == "ar" or s.get("rescore") for s in systems):
        if not args.ar_path:
            raise CLIError("systems ar/bK and .../ar need --ar-path (an autoregressive fairseq checkpoint)")
        check_file(args.ar_path, "checkpoint", "pass --ar-path CHECKPOINT of an autoregressive fairseq model")
        # one loaded AR model serves as the ar/bK baseline and as the rescorer of the .../ar systems
        rescorer = ARRescorer.from_checkpoint(args.ar_path, args.data, task.target_dictionary, use_cuda=use_cuda)
        ar_model = rescorer.model
    task.load_dataset("train")
    train = task.datasets["train"]
    stats = LengthStatistics(np.asarray(train.src_sizes) - 1, np.asarray(train.tgt_sizes) - 1)
    n_total = len(task.dataset(args.gen_subset)) if args.gen_subset in task.datasets else None
    rows, all_refs = [], None
    for sys_cfg in systems:
        hyps, seconds, steps, n_src = {}, 0.0, [], 0
        if sys_cfg["kind"] == "ar":
            from fairseq.sequence_generator import SequenceGenerator

            gen = SequenceGenerator([ar_model], rescorer.dictionary, beam_size=sys_cfg["beam"],
                                    max_len_a=1.2, max_len_b=10)
            run_task, run_model = rescorer.task, ar_model
        else:
            strategy = build_strategy(sys_cfg["strategy"], seed=args.seed, policy_path=args.policy_path)
            gen = GeneralizedDecoder(
                task.target_dictionary, strategy, budget=sys_cfg["budget"],
                tokens_per_step=sys_cfg["tokens_per_step"], beam=sys_cfg["beam"],
                position_beam=sys_cfg["position_beam"], length_candidates=sys_cfg["length_candidates"],
                length_stats=None if sys_cfg["length_from"] == "model" else stats,
                oracle_length=sys_cfg["oracle_length"], rescorer=rescorer if sys_cfg["rescore"] else None,
                length_selection=sys_cfg["length_selection"],
                max_len=model.max_decoder_positions())
            run_task, run_model = task, model
        for sample in iterate_batches(run_task, args.gen_subset, args.batch_size, args.max_examples):
            if use_cuda:
                from fairseq import utils

                sample = utils.move_to_cuda(sample)
                torch.cuda.synchronize()
            start = time.perf_counter()
            with torch.no_grad():
                out = gen.generate([run_model], sample)
            if use_cuda:
                torch.cuda.synchronize()
            seconds += time.perf_counter() - start
            src = sample["net_input"]["src_tokens"]
            n_src += int((src.ne(task.source_dictionary.pad()) & src.ne(task.source_dictionary.eos())).sum())
            for i, sid in enumerate(sample["id"].tolist()):
                hyps[sid] = out[i][0]["tokens"].cpu()
                if "steps" in out[i][0]:
                    steps.append(out[i][0]["steps"])
        n = len(hyps)
        text = detokenize(task, hyps, args.target_lang or task.cfg.target_lang)
        row = {"system": sys_cfg["label"], **{k: v for k, v in sys_cfg.items() if k != "label"},
               "sentences": n, "seconds": round(seconds, 3), "sentences_per_s": n / max(seconds, 1e-9),
               "src_tokens_per_s": n_src / max(seconds, 1e-9),
               "mean_passes": (sum(steps) / len(steps)) if steps else None}
        if args.refs:
            if all_refs is None:  # every system decodes the same first sentences
                all_refs = read_refs(args.refs, max(hyps) + 1, prefix=True)
            refs = [[r[i] for i in sorted(hyps)] for r in all_refs]
            row["bleu"] = sacrebleu.corpus_bleu(text, refs).score
        if args.save_hypotheses:
            os.makedirs(args.save_hypotheses, exist_ok=True)
            with open(os.path.join(args.save_hypotheses, sys_cfg["label"].replace("/", "_") + ".txt"), "w") as f:
                f.write("\n".join(text) + "\n")
        rows.append(row)
        logger.info("%s: BLEU %s, %.2f sentences/s, mean passes %s", row["system"], row.get("bleu"),
                    row["sentences_per_s"], row["mean_passes"])
    base = next((r for r in rows if r["system"] == "AR b=1"), None)
    for r in rows:
        r["speedup_vs_ar_b1"] = (r["src_tokens_per_s"] / base["src_tokens_per_s"]) if base else None
    import fairseq

    return {"rows": rows, "data": args.data, "subset": args.gen_subset, "max_sentences": args.max_examples,
            "subset_size": n_total, "batch_size": args.batch_size, "path": args.path, "ar": args.ar_path,
            "refs": args.refs, "seed": args.seed, "torch": str(torch.__version__), "fairseq": fairseq.__version__,
            "python": platform.python_version(), "hardware": hardware()}


def final_choice(row: Dict) -> str:
    """How a system picked among its length candidates (none to pick from with one candidate)."""
    if row["oracle_length"] or row["length_candidates"] == 1:
        return "-"
    if row["rescore"]:
        return "AR rescoring"
    return "mean write log-p" if row.get("length_selection") == "mean-logp" else "pseudo log-lik."


def markdown(result: Dict) -> str:
    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    lines = ["| system | strategy | T | o_t | K | lengths | final choice | BLEU | passes | sent/s | speed vs AR b=1 |",
             "|" + "---|" * 11]
    for r in result["rows"]:
        if r["kind"] == "ar":
            lines.append(f"| {r['system']} | AR | - | - | {r['beam']} | - | - | {fmt(r.get('bleu'), '.2f')} | - | "
                         f"{r['sentences_per_s']:.2f} | {fmt(r['speedup_vs_ar_b1'], '.2f')} |")
            continue
        lengths = "gold" if r["oracle_length"] else f"{r['length_candidates']} ({r['length_from']})"
        lines.append(
            f"| {r['system']} | {r['strategy']} | {r['budget']} | {r['tokens_per_step']} | {r['beam']} | {lengths} | "
            f"{final_choice(r)} | {fmt(r.get('bleu'), '.2f')} | "
            f"{fmt(r['mean_passes'], '.1f')} | {r['sentences_per_s']:.2f} | {fmt(r['speedup_vs_ar_b1'], '.2f')} |")
    hw = result["hardware"]
    lines += ["", f"{result['subset']}: first {result['max_sentences']} sentences, batch {result['batch_size']}, "
                  f"{hw.get('gpu') or hw.get('processor')}, {hw.get('cpu_count')} CPUs; speed = ratio of source "
                  "tokens/s measured in this run."]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "binarized data directory (fairseq-preprocess output) the models were trained on")
    p.add_argument("--path", required=True, metavar="CHECKPOINT", help="masked_translation checkpoint")
    add_argument(p, "--ar-path", deprecated=("--ar",), metavar="CHECKPOINT",
                 help="autoregressive fairseq checkpoint (ar/bK systems and /ar rescoring)")
    p.add_argument("--policy-path", help="policy for the 'learned' strategy (iterref-train-policy --out)")
    p.add_argument("--refs", nargs="*", help="detokenized reference files (multi-reference BLEU)")
    p.add_argument("--systems", default=None,
                   help="comma-separated systems (see above); default: the grid of Tables 4.1-4.3, plus the learned "
                        "strategy when --policy-path is given")
    add_gen_subset_argument(p, "test", "split of DATA to decode (default test)", deprecated=("--subset",))
    add_max_examples_argument(p, 300, "decode the first N sentences of the split (0 = all; default 300)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (default 32)")
    p.add_argument("--source-lang", "-s", help="source language (default: the checkpoint's)")
    p.add_argument("--target-lang", "-t", help="target language (default: the checkpoint's)")
    p.add_argument("--save-hypotheses", help="directory for the detokenized output of every system")
    p.add_argument("--out", required=True, help="results JSON; the markdown table goes beside it (.md)")
    p.add_argument("--seed", type=int, default=1, help="random seed (torch; the uniform strategy)")
    add_device_arguments(p)
    return p


get_parser = build_parser


def _main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s",
                        stream=sys.stderr)
    resolve_data(args, fix="pass the fairseq-preprocess output directory as DATA")
    check_file(args.path, "checkpoint", "pass --path CHECKPOINT of a masked_translation model")
    check_positive(batch_size=args.batch_size)
    check_out_dir(args.out)
    torch.manual_seed(args.seed)
    try:
        result = run(args)
    except (FileNotFoundError, ValueError) as err:
        raise CLIError(str(err)) from None
    result["provenance"] = provenance(args)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    table = markdown(result)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table + "\n")
    print(table)
    print(json.dumps({"summary": {r["system"]: r.get("bleu") for r in result["rows"]}, "out": args.out}))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
