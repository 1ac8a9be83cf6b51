"""``iterref-benchmark-nat``: BLEU and speed of a refinement NAT and an autoregressive fairseq model.

Thesis Table 3.1 in small: for each system (AR beam b, NAT with idec fixed, NAT adaptive) it decodes the same
test split on the same machine in one run and reports

* sacreBLEU of the detokenized output against one or more reference files (multi-reference when several are
  given), decoded in large batches (``--batch-size``);
* decoding speed sentence by sentence (batch 1, the thesis's setting) on the first ``--speed-sentences``
  sentences, and in large batches, as source tokens/s and sentences/s (only the generator calls are timed:
  data loading and detokenization are excluded); ratios to the AR systems are computed from these numbers. With
  ``--speed-rounds R`` the sentence-by-sentence timing runs R times, all systems in turn each round, and reports
  the median of each system's rounds;
* for the NAT: the mean number of decoder passes used.

Output: ``--out`` (JSON, with seed, versions, hardware) and a markdown table beside it (``.md``). CUDA is used when
available unless ``--cpu``.

Example::

    iterref-benchmark-nat DATA_BIN --path NAT.pt --ar-path AR.pt --refs test.ref.en.k test.ref.en.4 \\
        --systems ar:1,ar:4,nat:1,nat:2,nat:5,nat:10,nat:adaptive --out results/table31.json
"""
import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Tuple

import torch

from .common import (CLIError, add_argument, add_data_argument, add_device_arguments, add_gen_subset_argument,
                     check_file, check_out_dir, check_positive, console_main, load_checkpoint, new_parser, provenance,
                     resolve_data, resolve_device)

PROG = "iterref-benchmark-nat"
logger = logging.getLogger("iterref.benchmark_nat")

ADAPTIVE_CAP = 20  # reference code's fallback cap for adaptive decoding


LATENT_SETTINGS = ("prior", "delta", "energy", "score")


def parse_latent_setting(value: str) -> Tuple[str, bool, bool]:
    """'score+search+ar' -> ("score", search, rescore by the AR teacher); raises CLIError on a bad setting."""
    inference, *extras = value.split("+")
    if inference not in LATENT_SETTINGS or extras not in ([], ["search"], ["search", "ar"]):
        raise CLIError(f"--systems: bad latent setting {value!r}; use prior|delta|energy|score, optionally followed "
                       "by +search or +search+ar (latent search chosen by the model or by the AR teacher)")
    return inference, bool(extras), extras == ["search", "ar"]


def parse_systems(spec: str, extra_kinds=(), latent_kinds=()) -> List[Tuple[str, str]]:
    """'ar:1,ar:4,nat:10,nat:adaptive,lanmt:score+search' -> [("ar", "1"), ...]; validates every entry.

    ``extra_kinds`` are the names given with ``--fairseq-nat`` / ``--refinement-nat NAME=PATH`` (decoded like
    ``nat``), ``latent_kinds`` those of ``--latent NAME=PATH`` (settings: see ``parse_latent_setting``)."""
    systems = []
    for item in spec.split(","):
        kind, _, value = item.strip().partition(":")
        if kind in latent_kinds:
            parse_latent_setting(value)
            systems.append((kind, value))
            continue
        if kind not in ("ar", "nat", *extra_kinds) or not value:
            raise CLIError(f"--systems: bad entry {item!r}; use ar:<beam> or nat:<idec>|nat:adaptive "
                           "(or NAME:<idec>|NAME:adaptive for a --fairseq-nat NAME=PATH)")
        if not (value == "adaptive" and kind != "ar") and not (value.isdigit() and int(value) >= 1):
            raise CLIError(f"--systems: bad value in {item!r}; beams and idec are integers >= 1")
        systems.append((kind, value))
    return systems


def load_model(path: str, data: str, use_cuda: bool, fp16: bool, flag: str = "--path", state=None):
    """(task, model in eval mode) of a checkpoint; ``state``: its already-read state (``load_checkpoint_state``)."""
    models, cfg, task = load_checkpoint(path, data, f"pass {flag} CHECKPOINT written by fairseq-train", state=state)
    model = models[0]
    model.eval()
    if fp16:
        model.half()
    if use_cuda:
        model.cuda()
    return task, model


def build_latent_generator(value: str, task, model, args, ar=None):
    """The latent-inference generator of a --latent system (``parse_latent_setting``); ``ar`` = (task, model) of
    --ar-path, the teacher of +search+ar."""
    from ..generators.generalized import ARRescorer
    from ..generators.latent import LatentInferenceDecoder

    inference, search, rescore = parse_latent_setting(value)
    scorer = None
    if inference in ("score", "energy"):
        path = args.score_path if inference == "score" else args.energy_path
        if not path:
            raise CLIError(f"--systems asks for {inference} inference: pass --{inference}-path CHECKPOINT")
        scorer = task.load_score_network(path, model, args)
    rescorer = None
    if rescore:
        if ar is None:
            raise CLIError("+search+ar rescores with the AR teacher: pass --ar-path CHECKPOINT")
        rescorer = ARRescorer(ar[1], ar[0].target_dictionary, task.target_dictionary, name="--ar-path")
    return LatentInferenceDecoder(
        task.target_dictionary, inference=inference, max_iter=args.latent_max_iter,
        force_max_iter=inference in ("score", "energy"), step_size=args.latent_step_size, scorer=scorer,
        search_samples=args.latent_search_samples if search else 1,
        search_noise=args.latent_search_noise if search else 0.0, rescorer=rescorer,
        remove_repeats=not args.keep_repeats, seed=args.seed)


def build_generator(kind: str, value: str, task, model, args, refinement: Optional[bool] = None):
    """The generator of one --systems entry; ``refinement`` (default: kind == "nat") picks this package's
    iterative-refinement generator for NAT kinds, otherwise fairseq's."""
    if kind == "ar":
        from fairseq.sequence_generator import SequenceGenerator

        return SequenceGenerator([model], task.target_dictionary, beam_size=int(value), max_len_a=args.max_len_a,
                                 max_len_b=args.max_len_b)
    adaptive = value == "adaptive"
    idec = ADAPTIVE_CAP if adaptive else int(value)
    if not (kind == "nat" if refinement is None else refinement):
        # a fairseq built-in NAT (translation_lev task): fairseq's own generator, whose max_iter N runs N + 1
        # decoder passes, so idec passes = max_iter idec - 1; adaptive = stop when the output is unchanged
        from fairseq.iterative_refinement_generator import IterativeRefinementGenerator

        return IterativeRefinementGenerator(task.target_dictionary, max_iter=idec - 1, adaptive=adaptive,
                                            beam_size=args.length_beam)
    from ..generators.refinement import IterativeRefinementDecoder

    return IterativeRefinementDecoder(
        task.target_dictionary,
        max_iter=idec,
        force_max_iter=not adaptive,
        length_beam=args.length_beam,
        stop_criterion=args.stop_criterion,
        remove_repeats=not args.keep_repeats,
        max_len=model.max_decoder_positions(),
    )


def batches(task, split: str, batch_size: int, limit: Optional[int] = None):
    dataset = task.dataset(split)
    itr = task.get_batch_iterator(
        dataset=dataset, max_sentences=batch_size, max_positions=None, ignore_invalid_inputs=False,
        required_batch_size_multiple=1, num_workers=0,
        disable_iterator_cache=True,  # fairseq would otherwise reuse the first batching for every batch size
    ).next_epoch_itr(shuffle=False)
    for sample in itr:
        # with a limit, only batches made entirely of the first `limit` ids (at batch 1: exactly those ids)
        if limit is not None and not bool(sample["id"].lt(limit).all()):
            continue
        yield sample


def content_tokens(src_tokens: torch.Tensor, dictionary) -> int:
    """Number of real source tokens in (B, S) ``src_tokens``: no pad, EOS or BOS (fairseq's ``translation_lev`` task
    puts a BOS before every source, ``translation`` does not; tokens/s of both count the same words)."""
    from ..data.insertion_noise import content_mask

    return int(content_mask(src_tokens, dictionary.pad(), dictionary.eos(), dictionary.bos()).sum())


def decode(task, model, generator, split: str, batch_size: int, use_cuda: bool, limit: Optional[int] = None,
           steps_offset: int = 0):
    """Returns {id: tokens}, seconds spent in generate(), source tokens, sentences, mean decoder passes.

    ``steps_offset`` converts a generator's step count into decoder passes (fairseq's own generator counts
    refinement iterations after the first pass, so its offset is 1)."""
    from fairseq import utils

    hyps, seconds, src_tokens, n, steps = {}, 0.0, 0, 0, []
    for i, sample in enumerate(batches(task, split, batch_size, limit)):
        if i == 0:  # one untimed call first: lazy initialisation is not decoding time
            with torch.no_grad():
                generator.generate([model], utils.move_to_cuda(sample) if use_cuda else sample)
        if use_cuda:
            sample = utils.move_to_cuda(sample)
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = generator.generate([model], sample)
        if use_cuda:
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        src = sample["net_input"]["src_tokens"]
        src_tokens += content_tokens(src, task.source_dictionary)
        for i, sid in enumerate(sample["id"].tolist()):
            best = out[i][0]
            hyps[sid] = best["tokens"].cpu()
            if "steps" in best:
                steps.append(best["steps"] + steps_offset)
        n += src.size(0)
    return hyps, seconds, src_tokens, n, (sum(steps) / len(steps) if steps else None)


def detokenize(task, hyps: Dict[int, torch.Tensor], lang: str) -> List[str]:
    from sacremoses import MosesDetokenizer

    md = MosesDetokenizer(lang=lang)
    d = task.target_dictionary
    out = []
    for sid in sorted(hyps):
        text = d.string(hyps[sid], bpe_symbol="subword_nmt", extra_symbols_to_ignore={d.eos(), d.pad(), d.bos()})
        out.append(md.detokenize(text.split()))
    return out


def read_refs(paths: List[str], n: int, prefix: bool = False) -> List[List[str]]:
    """The first ``n`` lines of every reference file; each must have exactly ``n`` lines (at least ``n`` with
    ``prefix``, when only the first sentences of the split are decoded)."""
    refs = []
    for p in paths:
        check_file(p, "reference file", "pass --refs FILE... with the detokenized references of the split")
        with open(p, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
        if len(lines) < n or (len(lines) > n and not prefix):
            raise CLIError(f"reference file {p} has {len(lines)} lines but {n} sentences are decoded; pass the "
                             "references prepared with this data")
        refs.append(lines[:n])
    return refs


def hardware() -> Dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def markdown(rows: List[Dict], note: str, base_name: str = "AR b=4") -> str:
    """The results as a markdown table; speed-ups are ratios to the ``base_name`` row measured in the same run."""
    lines = [
        "| system | BLEU | mean passes | batch-1 src tok/s | batch-1 sent/s | batched src tok/s | "
        f"speed-up vs {base_name}, batch 1 | speed-up vs {base_name}, batched |",
        "|" + "---|" * 8,
    ]
    base = next((r for r in rows if r["system"] == base_name), None)

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    def ratio(row, key):
        if base is None or key not in row or key not in base:
            return "-"
        return f"{row[key]['src_tokens_per_s'] / base[key]['src_tokens_per_s']:.2f}x"

    for r in rows:
        b1 = r.get("batch1", {})
        lines.append(
            f"| {r['system']} | {r['bleu']:.2f} | {fmt(r.get('mean_steps'), '.2f')} | "
            f"{fmt(b1.get('src_tokens_per_s'), '.1f')} | {fmt(b1.get('sentences_per_s'), '.2f')} | "
            f"{r['batched']['src_tokens_per_s']:.1f} | {ratio(r, 'batch1')} | {ratio(r, 'batched')} |"
        )
    return "\n".join(lines + ["", note])


def refinement_pass_ms(rows: List[Dict]) -> Dict[str, float]:
    """Milliseconds of one refinement pass at batch 1, per NAT kind: the extra time per sentence of its idec=10
    row over its idec=1 row, divided by the extra passes (the encoder, the length prediction and the first decoder
    pass cancel out). Kinds without both rows or without batch-1 timing are left out."""
    out = {}
    for kind in {r["kind"] for r in rows if r["kind"] != "ar"}:
        by_setting = {r["setting"]: r for r in rows if r["kind"] == kind and "batch1" in r}
        if "1" not in by_setting or "10" not in by_setting:
            continue
        one, ten = by_setting["1"]["batch1"], by_setting["10"]["batch1"]
        passes = (ten.get("mean_steps") or 10) - (one.get("mean_steps") or 1)
        if passes > 0:
            out[kind] = 1000 * (ten["seconds"] / ten["sentences"] - one["seconds"] / one["sentences"]) / passes
    return out


def time_batch1(timed: List[Tuple[Dict, Any, Any, Any, int]], args, use_cuda: bool) -> None:
    """Sentence-by-sentence timing of every system on the first ``--speed-sentences`` sentences, in
    ``--speed-rounds`` rounds that each time all systems in turn (A B C, A B C, ...): when the machine's speed drifts
    during the run, every system sees the same drift, and each row's ``batch1.seconds`` is the median of its rounds
    (the mean of the middle two for an even R).
    ``timed``: (row, task, model, generator, steps offset) per system; each row gets its ``batch1`` entry."""
    for row, *_ in timed:
        row["batch1"] = {"seconds_per_round": []}
    for r in range(args.speed_rounds):
        for row, task, model, generator, offset in timed:
            logger.info("timing %s sentence by sentence on %d sentences (round %d of %d)", row["system"],
                        args.speed_sentences, r + 1, args.speed_rounds)
            _, secs1, src1, n1, steps1 = decode(task, model, generator, args.gen_subset, 1, use_cuda,
                                                limit=args.speed_sentences, steps_offset=offset)
            if n1 == 0:
                raise RuntimeError(f"{row['system']}: no sentence was decoded in the batch-1 timing run")
            row["batch1"]["seconds_per_round"].append(secs1)
            row["batch1"].update(sentences=n1, src_tokens=src1, mean_steps=steps1)  # the same in every round
    for row, *_ in timed:
        b1 = row["batch1"]
        secs1 = statistics.median(b1["seconds_per_round"])
        b1.update(seconds=secs1, src_tokens_per_s=b1["src_tokens"] / secs1, sentences_per_s=b1["sentences"] / secs1)
        print(f"{row['system']}: batch-1 {b1['src_tokens_per_s']:.1f} src tok/s", file=sys.stderr, flush=True)


def run(args) -> Dict:
    import sacrebleu

    torch.manual_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    use_cuda = resolve_device(args).type == "cuda"
    if args.fp16 and not use_cuda:
        raise CLIError("--fp16 needs a GPU: run on a machine with CUDA and without --cpu, or drop --fp16")
    fairseq_nats = dict(item.split("=", 1) for item in args.fairseq_nat)
    ours = dict(item.split("=", 1) for item in args.refinement_nat)
    latents = dict(item.split("=", 1) for item in args.latent)
    extra = {**fairseq_nats, **ours, **latents}
    systems = parse_systems(args.systems, tuple({**fairseq_nats, **ours}), tuple(latents))
    flags = {"nat": "--path", "ar": "--ar-path"}
    loaded = {}
    for kind in sorted({k for k, _ in systems}):
        path = {"nat": args.path, "ar": args.ar_path}.get(kind) or extra.get(kind)
        if not path:
            raise CLIError(f"--systems asks for {kind} but {flags[kind]} CHECKPOINT is missing")
        flag = flags.get(kind) or (f"--refinement-nat {kind}=" if kind in ours else
                                   f"--latent {kind}=" if kind in latents else f"--fairseq-nat {kind}=")
        task, model = load_model(path, args.data, use_cuda, args.fp16, flag)
        try:
            task.load_dataset(args.gen_subset)
        except FileNotFoundError as err:
            raise CLIError(f"--gen-subset {args.gen_subset}: {err} (choose a split of DATA: train, valid or "
                           "test)") from None
        loaded[kind] = (task, model)
    if latents and "ar" not in loaded and args.ar_path and any(v.endswith("+ar") for _, v in systems):
        loaded["ar"] = load_model(args.ar_path, args.data, use_cuda, args.fp16, "--ar-path")
    n_sent = len(next(iter(loaded.values()))[0].dataset(args.gen_subset))
    refs = read_refs(args.refs, n_sent) if args.refs else None
    rows, timed = [], []
    for kind, value in systems:
        task, model = loaded[kind]
        label = "NAT" if kind == "nat" else kind
        name = f"AR b={value}" if kind == "ar" else (f"{label} adaptive" if value == "adaptive" else f"{label} idec={value}")
        refinement = kind == "nat" or kind in ours
        if kind in latents:
            name = f"{kind} {value}"
            generator = build_latent_generator(value, task, model, args, loaded.get("ar"))
        else:
            generator = build_generator(kind, value, task, model, args, refinement)
        logger.info("decoding %s (batched, %d sentences)", name, n_sent)
        offset = 0 if kind == "ar" or refinement or kind in latents else 1
        hyps, secs, src_tok, n, steps = decode(task, model, generator, args.gen_subset, args.batch_size, use_cuda,
                                               steps_offset=offset)
        row = {"system": name, "kind": kind, "setting": value, "mean_steps": steps,
               "parameters": sum(p.numel() for p in model.parameters()),
               "batched": {"batch_size": args.batch_size, "seconds": secs, "sentences": n,
                           "src_tokens_per_s": src_tok / secs, "sentences_per_s": n / secs}}
        if refs is not None:
            if len(hyps) != n_sent:
                raise RuntimeError(f"{name}: {n_sent - len(hyps)} sentences were not decoded")
            text = detokenize(task, hyps, args.target_lang)
            bleu = sacrebleu.corpus_bleu(text, refs)
            row["bleu"] = bleu.score
            # BLEU = BP x geometric mean of the n-gram precisions: which of the two a system loses on (a NAT's
            # collapsed repeats make short outputs, docs/refinement_nat.md)
            row["bleu_details"] = {"brevity_penalty": bleu.bp, "length_ratio": bleu.sys_len / max(bleu.ref_len, 1),
                                   "precisions": list(bleu.precisions)}
            if args.save_hypotheses:
                os.makedirs(args.save_hypotheses, exist_ok=True)
                fname = name.replace(" ", "_").replace("=", "")
                with open(os.path.join(args.save_hypotheses, f"{fname}.txt"), "w", encoding="utf-8") as f:
                    f.write("\n".join(text) + "\n")
        else:
            row["bleu"] = float("nan")
        logger.info("%s: BLEU %.2f", name, row["bleu"])
        print(f"{name}: BLEU {row['bleu']:.2f}", file=sys.stderr, flush=True)
        rows.append(row)
        timed.append((row, task, model, generator, offset))
    if args.speed_sentences > 0:
        time_batch1(timed, args, use_cuda)
    import fairseq

    return {
        "rows": rows,
        "refinement_pass_ms": refinement_pass_ms(rows),
        "data": args.data, "split": args.gen_subset, "refs": args.refs, "nat": args.path, "ar": args.ar_path,
        "seed": args.seed, "cuda": use_cuda, "fp16": args.fp16, "hardware": hardware(),
        "versions": {"torch": torch.__version__, "fairseq": fairseq.__version__, "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
        "adaptive_cap": ADAPTIVE_CAP, "stop_criterion": args.stop_criterion, "length_beam": args.length_beam,
        "remove_repeats": not args.keep_repeats,
    }


def build_parser() -> argparse.ArgumentParser:
    p = new_parser(PROG, __doc__)
    add_data_argument(p, "binarized data directory (fairseq-preprocess output)")
    add_argument(p, "--path", deprecated=("--nat",), metavar="CHECKPOINT",
                 help="refinement NAT checkpoint (task translation_refine): the nat:* systems")
    add_argument(p, "--ar-path", deprecated=("--ar",), metavar="CHECKPOINT",
                 help="autoregressive fairseq checkpoint (task translation): the ar:* systems")
    p.add_argument("--fairseq-nat", action="append", default=[], metavar="NAME=PATH",
                   help="a fairseq built-in NAT checkpoint (task translation_lev, e.g. cmlm_transformer) decoded "
                        "with fairseq's generator; refer to it in --systems as NAME:<idec>|NAME:adaptive")
    p.add_argument("--refinement-nat", action="append", default=[], metavar="NAME=PATH",
                   help="a further refinement NAT checkpoint (task translation_refine) decoded with this package's "
                        "generator, like --path; refer to it in --systems as NAME:<idec>|NAME:adaptive")
    p.add_argument("--latent", action="append", default=[], metavar="NAME=PATH",
                   help="a LaNMT checkpoint (task translation_refine, --arch lanmt_*) decoded in latent space; refer "
                        "to it in --systems as NAME:prior|delta|energy|score[+search[+ar]]")
    p.add_argument("--score-path", help="score network of the --latent model (its NAME:score systems)")
    p.add_argument("--energy-path", help="energy network of the --latent model (its NAME:energy systems)")
    p.add_argument("--latent-max-iter", type=int, default=2,
                   help="latent systems: refinement steps including the first decoding (2 = one refinement, as "
                        "LaNMT's published rows); delta stops early when the output is unchanged, score / energy "
                        "take every step and decode once")
    p.add_argument("--latent-step-size", type=float, default=0.8, help="alpha of the score / energy update")
    p.add_argument("--latent-search-samples", type=int, default=50, help="candidates per sentence of +search")
    p.add_argument("--latent-search-noise", type=float, default=0.5, help="noise scale (in prior sigmas) of +search")
    p.add_argument("--speed-base", default="AR b=4",
                   help="row the speed-ups are relative to (e.g. 'AR b=3' for the LaNMT talk's table)")
    add_gen_subset_argument(p, "test", "split of DATA to decode (default test)", deprecated=("--split",))
    p.add_argument("--refs", nargs="*", help="detokenized reference files, one or more (multi-reference BLEU)")
    p.add_argument("--target-lang", default="en", help="language for Moses detokenization of hypotheses")
    p.add_argument("--systems", default="ar:1,ar:4,nat:1,nat:2,nat:5,nat:10,nat:adaptive",
                   help="comma list of ar:<beam> and nat:<idec> | nat:adaptive (adaptive = stop when unchanged, "
                        f"cap {ADAPTIVE_CAP})")
    p.add_argument("--batch-size", type=int, default=64, help="sentences per batch for BLEU and batched speed")
    p.add_argument("--speed-sentences", type=int, default=100,
                   help="time sentence-by-sentence decoding on the first N sentences (0 = skip)")
    p.add_argument("--speed-rounds", type=int, default=1,
                   help="time the systems sentence by sentence R times, all in turn each round, and report the "
                        "median of each one's rounds (steadier ratios on a machine whose speed drifts)")
    p.add_argument("--stop-criterion", default="unchanged", choices=["unchanged", "jaccard"],
                   help="NAT adaptive decoding: stop when the output is unchanged, or by Jaccard similarity")
    p.add_argument("--length-beam", type=int, default=1, help="NAT length candidates (--iter-decode-with-beam)")
    p.add_argument("--keep-repeats", action="store_true", help="do not collapse repeated tokens in NAT output")
    p.add_argument("--max-len-a", type=float, default=1.2, help="AR: max length = a * src_len + b")
    p.add_argument("--max-len-b", type=int, default=10, help="AR: b of the max length a * src_len + b")
    add_device_arguments(p, cuda_alias=True)
    p.add_argument("--fp16", action="store_true", help="half precision (GPU only)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    p.add_argument("--seed", type=int, default=1, help="torch random seed")
    p.add_argument("--save-hypotheses", help="directory for the detokenized output of every system")
    p.add_argument("--out", required=True, help="results JSON path; a markdown table is written beside it (.md)")
    return p


get_parser = build_parser


def _main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(levelname)s | %(name)s | %(message)s")
    args = build_parser().parse_args(argv)
    resolve_data(args, fix="pass the fairseq-preprocess output directory as DATA")
    check_positive(batch_size=args.batch_size, speed_rounds=args.speed_rounds, length_beam=args.length_beam,
                   latent_max_iter=args.latent_max_iter, latent_search_samples=args.latent_search_samples)
    for flag in ("--fairseq-nat", "--refinement-nat", "--latent"):
        for item in getattr(args, flag[2:].replace("-", "_")):
            name = item.split("=", 1)[0]
            if "=" not in item or not name or name in ("ar", "nat"):
                raise CLIError(f"{flag} {item!r}: use NAME=PATH with a NAME other than ar and nat")
    for flag, path in [("--path", args.path), ("--ar-path", args.ar_path)] + [
            ("--fairseq-nat", i.split("=", 1)[1]) for i in args.fairseq_nat] + [
            ("--refinement-nat", i.split("=", 1)[1]) for i in args.refinement_nat] + [
            ("--latent", i.split("=", 1)[1]) for i in args.latent] + [
            ("--score-path", args.score_path), ("--energy-path", args.energy_path)]:
        if path:
            check_file(path, "checkpoint", f"pass {flag} CHECKPOINT written by fairseq-train")
    check_out_dir(args.out)
    result = run(args)
    result["provenance"] = provenance(args)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    note = (f"BLEU: sacreBLEU against {len(args.refs or [])} reference(s); speed: {result['hardware']['processor']}, "
            f"{result['hardware']['torch_threads']} torch threads, {'GPU ' + result['hardware'].get('gpu', '') if result['cuda'] else 'CPU'}"
            f"{', fp16' if result['fp16'] else ''}; {result['date']}.")
    if args.speed_rounds > 1 and args.speed_sentences > 0:
        note += f" Batch-1 figures: the median of {args.speed_rounds} rounds, every system timed once per round."
    if result["refinement_pass_ms"]:
        note += " One refinement pass at batch 1 (idec 10 minus idec 1, per extra pass): " + ", ".join(
            f"{kind} {ms:.2f} ms" for kind, ms in sorted(result["refinement_pass_ms"].items())) + "."
    table = markdown(result["rows"], note, args.speed_base)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(table + "\n")
    print(table)
    return 0


def main(argv=None) -> int:
    """Console entry point: 0 on success, 2 with one message on stderr on bad input."""
    return console_main(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
