#!/usr/bin/env python
"""Sequence-level knowledge distillation (Kim & Rush 2016) for fairseq translation data.

The teacher (an autoregressive fairseq ``transformer`` trained with ``--task translation``) translates the
training subset with beam search; its 1-best outputs replace the training targets. Non-autoregressive models
are then trained on ``OUT/bin``.

Steps
  1. ``fairseq-generate DATA --path TEACHER --gen-subset train --beam 4 --nbest 1`` (no ``--remove-bpe``: the
     outputs stay in the BPE form of the data), written to ``OUT/generate/generate-train.txt``;
  2. the ``H-<id>`` lines are collected by id (ids are dataset indices, so id order is the original line
     order); every index must have exactly one hypothesis, else the run fails naming the missing count;
     an empty hypothesis keeps the original target (counted);
  3. ``OUT/text/train.SRC`` (original source, from ``--orig-text`` or fairseq's ``S-`` lines) and
     ``OUT/text/train.TGT`` (distilled targets) are written and binarized with
     ``fairseq-preprocess --srcdict/--tgtdict`` = the ORIGINAL dictionaries into ``OUT/bin``; the other splits'
     binarized files (valid, test, ...) are copied unchanged;
  4. ``OUT/distill.json``: counts, teacher, beam, batch, timings and the commands that were run.

fairseq-generate runs with ``--user-dir`` = this repository's ``iterref_fairseq`` plugin by default (it makes
fairseq checkpoints loadable with torch >= 2.6); pass ``--user-dir`` for teachers of other tasks, and extra
generation flags with ``--generate-args``.

Example::

    python scripts/distill.py --data work/bible/bin --path checkpoints/teacher/checkpoint_best.pt \\
        --out work/bible_distill --beam 4 --max-tokens 8000
"""
import argparse
import filecmp
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import time
from collections import OrderedDict
from pathlib import Path

PROG = "distill.py"
REPO = Path(__file__).resolve().parent.parent
PLUGIN_DIR = REPO / "iterref_fairseq"
SPLIT_FLAGS = {"train": "--trainpref", "valid": "--validpref", "test": "--testpref"}
_LINE = re.compile(r"^([STH])-(\d+)\t(.*)$")


def die(message):
    raise SystemExit(f"{PROG}: error: {message}")


def log(message, start):
    print(f"[distill] [{time.time() - start:7.1f}s] {message}", file=sys.stderr, flush=True)


def detect_pair(data, subset, src, tgt):
    """(src, tgt, pair) for ``data``: from the options, else from ``{subset}.X-Y.X.idx`` file names."""
    found = set()
    for name in os.listdir(data):
        m = re.match(rf"^{re.escape(subset)}\.([^.]+)-([^.]+)\.([^.]+)\.idx$", name)
        if m:
            found.add((m.group(1), m.group(2)))
    if not found:
        die(f"--data {data}: no binarized '{subset}' split ({subset}.SRC-TGT.SRC.idx); point --data at "
            "fairseq-preprocess's --destdir")
    if src and tgt:
        for a, b in found:
            if {a, b} == {src, tgt}:
                return src, tgt, f"{a}-{b}"
        die(f"--data {data}: no '{subset}' split for the pair {src}-{tgt} (found {sorted(found)}); fix --source-lang/"
            "--target-lang")
    if len(found) > 1:
        die(f"--data {data}: several language pairs {sorted(found)}; choose one with --source-lang/--target-lang")
    a, b = found.pop()
    return a, b, f"{a}-{b}"


_MMAP_MAGIC = b"MMIDIDX\x00\x00"


def dataset_size(prefix):
    """Number of sentences of a binarized split (reads the mmap index header; other formats through fairseq)."""
    idx = f"{prefix}.idx"
    if not os.path.isfile(idx) or not os.path.isfile(f"{prefix}.bin"):
        die(f"{prefix}.idx/.bin not found; re-run fairseq-preprocess")
    with open(idx, "rb") as f:
        header = f.read(len(_MMAP_MAGIC) + 8 + 1 + 8)
    if header.startswith(_MMAP_MAGIC):
        return struct.unpack("<Q", header[-8:])[0]
    from fairseq.data import indexed_dataset  # legacy (lazy/cached/raw) formats

    ds = indexed_dataset.make_dataset(prefix, impl=indexed_dataset.infer_dataset_impl(prefix))
    if ds is None:
        die(f"cannot read the binarized dataset {prefix}.idx/.bin; re-run fairseq-preprocess")
    return len(ds)


def dict_symbols(path):
    """Symbols of a fairseq dictionary file, in order (the special symbols are not stored in the file)."""
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rsplit(" ", 1)[0] for line in f if line.strip()]


def read_lines(path):
    with open(path, encoding="utf-8", newline="\n") as f:
        return [line.rstrip("\n") for line in f]


def parse_generate_output(path, expected):
    """``{kind: {id: text}}`` for S/T lines and ``{id: (score, text)}`` for H lines."""
    src, tgt, hyp = {}, {}, {}
    duplicates = 0
    with open(path, encoding="utf-8", newline="\n") as f:
        for line in f:
            m = _LINE.match(line.rstrip("\n"))
            if not m:
                continue
            kind, idx, rest = m.group(1), int(m.group(2)), m.group(3)
            if kind == "H":
                score, _, text = rest.partition("\t")
                if idx in hyp:
                    duplicates += 1
                hyp[idx] = (float(score), text.strip())
            elif kind == "S":
                src[idx] = rest
            else:
                tgt[idx] = rest
    bad = [i for i in hyp if not 0 <= i < expected]
    if bad:
        die(f"{path}: hypothesis ids {bad[:5]} are outside the dataset (size {expected}); "
            "was fairseq-generate run on another --data?")
    if duplicates:
        die(f"{path}: {duplicates} ids have more than one hypothesis; do not pass --nbest > 1 in --generate-args")
    return src, tgt, hyp


def collect_targets(hyps, references, n, subset="train"):
    """Distilled targets in dataset order: the teacher's hypothesis, or the reference when it is empty.

    ``hyps``: ``{id: (score, text)}`` covering ``range(n)``; ``references``: list of reference strings (or None).
    Returns ``(targets, n_empty_replaced, n_identical_to_reference)``.
    """
    targets, empty, identical = [], 0, 0
    for i in range(n):
        text = hyps[i][1]
        if not text:
            empty += 1
            if references[i] is None:
                die(f"{subset} line {i}: empty hypothesis and no reference to fall back to; give --orig-text")
            text = references[i]
        if references[i] is not None and text == references[i]:
            identical += 1
        targets.append(text)
    return targets, empty, identical


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="Sequence-level knowledge distillation with fairseq-generate.")
    p.add_argument("--data", required=True, help="binarized dataset directory (fairseq-preprocess --destdir)")
    p.add_argument("--path", required=True, help="teacher checkpoint (fairseq transformer, --task translation)")
    p.add_argument("--out", required=True, help="output directory (text/, generate/, bin/, distill.json)")
    p.add_argument("--subset", default="train", help="split(s) to distill, comma-separated (default train)")
    p.add_argument("--source-lang", default=None, help="default: from the file names in --data")
    p.add_argument("--target-lang", default=None, help="default: from the file names in --data")
    p.add_argument("--beam", type=int, default=4, help="teacher beam size (default 4)")
    p.add_argument("--batch-size", type=int, default=None, help="sentences per batch")
    p.add_argument("--max-tokens", type=int, default=None, help="tokens per batch (default 8000 if no --batch-size)")
    p.add_argument("--max-len-a", type=float, default=None, help="fairseq-generate --max-len-a")
    p.add_argument("--max-len-b", type=int, default=None, help="fairseq-generate --max-len-b")
    p.add_argument("--task", default="translation", help="task of the teacher (default translation)")
    p.add_argument("--user-dir", default=None,
                   help=f"fairseq --user-dir (default: {PLUGIN_DIR}, which makes checkpoints loadable on torch>=2.6)")
    p.add_argument("--no-user-dir", action="store_true", help="run fairseq-generate without --user-dir")
    p.add_argument("--orig-text", default=None,
                   help="prefix of the original (BPE) text, PREFIX.SRC/PREFIX.TGT; default: the S-/T- lines "
                        "printed by fairseq-generate (exactly the binarized tokens)")
    p.add_argument("--cpu", action="store_true", help="generate on CPU")
    p.add_argument("--fp16", action="store_true", help="generate in fp16 (GPU)")
    p.add_argument("--workers", type=int, default=2, help="fairseq-preprocess --workers (default 2)")
    p.add_argument("--generate-args", default="", help="extra fairseq-generate arguments, one shell-quoted string")
    p.add_argument("--python", default=sys.executable, help="interpreter that has fairseq (default: this one)")
    return p


def run_logged(cmd, start, what):
    log(f"running {what}: " + " ".join(shlex.quote(str(c)) for c in cmd), start)
    result = subprocess.run([str(c) for c in cmd], stdout=sys.stderr, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        die(f"{what} failed with exit status {result.returncode} (its log is above); check --path, --data and "
            "--user-dir")


def main(argv=None):
    args = build_parser().parse_args(argv)
    start = time.time()
    subsets = [s for s in args.subset.split(",") if s]
    for s in subsets:
        if s not in SPLIT_FLAGS:
            die(f"--subset {args.subset}: '{s}' is not one of train, valid, test")
    if not os.path.isdir(args.data):
        die(f"--data {args.data}: directory not found; run fairseq-preprocess first")
    if not os.path.isfile(args.path):
        die(f"--path {args.path}: teacher checkpoint not found")
    if args.beam < 1:
        die(f"--beam {args.beam}: must be >= 1")
    src, tgt, pair = detect_pair(args.data, subsets[0], args.source_lang, args.target_lang)
    for lang in (src, tgt):
        if not os.path.isfile(os.path.join(args.data, f"dict.{lang}.txt")):
            die(f"--data {args.data}: dict.{lang}.txt not found; the directory must come from fairseq-preprocess")
    user_dir = None if args.no_user_dir else (args.user_dir or (str(PLUGIN_DIR) if PLUGIN_DIR.is_dir() else None))
    if args.user_dir and not os.path.isdir(args.user_dir):
        die(f"--user-dir {args.user_dir}: directory not found")

    out = Path(args.out)
    text_dir, gen_dir, bin_dir = out / "text", out / "generate", out / "bin"
    try:
        for d in (text_dir, gen_dir):
            d.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        die(f"--out {out}: cannot create it ({err.strerror}); choose a writable directory")
    if bin_dir.exists():
        shutil.rmtree(bin_dir)

    summary = OrderedDict([
        ("data", os.path.abspath(args.data)), ("teacher", os.path.abspath(args.path)), ("task", args.task),
        ("source_lang", src), ("target_lang", tgt), ("beam", args.beam), ("batch_size", args.batch_size),
        ("max_tokens", args.max_tokens), ("user_dir", user_dir), ("subsets", OrderedDict()), ("commands", []),
    ])
    timings = OrderedDict([("generate_s", 0.0)])

    for subset in subsets:
        n = dataset_size(os.path.join(args.data, f"{subset}.{pair}.{src}"))
        log(f"{subset}: {n} sentences to translate with beam {args.beam}", start)
        cmd = [args.python, "-m", "fairseq_cli.generate", args.data, "--path", args.path, "--task", args.task,
               "--gen-subset", subset, "--source-lang", src, "--target-lang", tgt, "--beam", args.beam,
               "--nbest", 1, "--results-path", gen_dir, "--required-batch-size-multiple", 1]
        if args.batch_size:
            cmd += ["--batch-size", args.batch_size]
        if args.max_tokens or not args.batch_size:
            cmd += ["--max-tokens", args.max_tokens or 8000]
        if args.max_len_a is not None:
            cmd += ["--max-len-a", args.max_len_a]
        if args.max_len_b is not None:
            cmd += ["--max-len-b", args.max_len_b]
        if user_dir:
            cmd += ["--user-dir", user_dir]
        if args.cpu:
            cmd.append("--cpu")
        if args.fp16:
            cmd.append("--fp16")
        cmd += shlex.split(args.generate_args)
        t0 = time.time()
        run_logged(cmd, start, "fairseq-generate")
        timings["generate_s"] += round(time.time() - t0, 2)
        summary["commands"].append(" ".join(shlex.quote(str(c)) for c in cmd))

        gen_file = gen_dir / f"generate-{subset}.txt"
        if not gen_file.is_file():
            die(f"fairseq-generate wrote no {gen_file}; check its log above")
        s_lines, t_lines, hyps = parse_generate_output(gen_file, n)
        missing = [i for i in range(n) if i not in hyps]
        if missing:
            die(f"{subset}: the teacher produced hypotheses for {n - len(missing)} of {n} sentences; {len(missing)} "
                f"missing (first ids {missing[:10]}); too-long inputs are skipped or rejected by fairseq-generate "
                "-- filter them out of the data or raise --max-source-positions in --generate-args")

        if args.orig_text:
            sources = read_lines(f"{args.orig_text}.{src}")
            references = read_lines(f"{args.orig_text}.{tgt}")
            if len(sources) != n or len(references) != n:
                die(f"--orig-text {args.orig_text}: {len(sources)}/{len(references)} lines but the binarized "
                    f"'{subset}' split has {n}; pass the text that was binarized")
        else:
            sources = [s_lines.get(i) for i in range(n)]
            references = [t_lines.get(i) for i in range(n)]
            if any(x is None for x in sources):
                die(f"{gen_file}: source lines (S-) are missing; do not pass --quiet in --generate-args, or give "
                    "--orig-text")

        distilled, empty, identical = collect_targets(hyps, references, n, subset)
        for lang, lines in ((src, sources), (tgt, distilled)):
            with open(text_dir / f"{subset}.{lang}", "w", encoding="utf-8") as f:
                for line in lines:
                    f.write(line + "\n")

        def n_tok(lines):
            return sum(len(x.split()) for x in lines if x)

        summary["subsets"][subset] = OrderedDict([
            ("sentences", n), ("hypotheses", len(hyps)), ("empty_hypotheses_kept_reference", empty),
            ("identical_to_reference", identical), ("source_tokens", n_tok(sources)),
            ("reference_tokens", n_tok([r for r in references if r is not None])),
            ("distilled_tokens", n_tok(distilled)),
            ("mean_teacher_score_log2", round(sum(h[0] for h in hyps.values()) / max(1, n), 4)),
        ])
        log(f"{subset}: {n} distilled targets, {empty} empty hypotheses replaced by the reference, {identical} "
            "identical to the reference", start)

    # ---- re-binarize with the ORIGINAL dictionaries; copy every other split unchanged
    t0 = time.time()
    cmd = [args.python, "-m", "fairseq_cli.preprocess", "--source-lang", src, "--target-lang", tgt,
           "--srcdict", os.path.join(args.data, f"dict.{src}.txt"), "--tgtdict", os.path.join(args.data, f"dict.{tgt}.txt"),
           "--destdir", bin_dir, "--workers", args.workers]
    for subset in subsets:
        cmd += [SPLIT_FLAGS[subset], text_dir / subset]
    run_logged(cmd, start, "fairseq-preprocess")
    summary["commands"].append(" ".join(shlex.quote(str(c)) for c in cmd))
    timings["preprocess_s"] = round(time.time() - t0, 2)
    copied = []
    for name in sorted(os.listdir(args.data)):
        split = name.split(".", 1)[0]
        if (name.endswith(".bin") or name.endswith(".idx")) and split not in subsets:
            shutil.copyfile(os.path.join(args.data, name), bin_dir / name)
            copied.append(name)
        elif name == "bpe.codes":
            shutil.copyfile(os.path.join(args.data, name), bin_dir / name)
            copied.append(name)
    summary["copied"] = copied

    # ---- verify the result loads with the same dictionaries and sizes
    for lang in (src, tgt):
        orig_symbols = dict_symbols(os.path.join(args.data, f"dict.{lang}.txt"))
        if dict_symbols(bin_dir / f"dict.{lang}.txt") != orig_symbols:
            die(f"{bin_dir}/dict.{lang}.txt differs from the original dictionary; this is a bug, please report it")
        summary[f"dict_{lang}_size"] = len(orig_symbols) + 4  # + <s>, <pad>, </s>, <unk>
    for subset in subsets:
        for lang in (src, tgt):
            # fairseq-preprocess names the new files by the direction distilled (src-tgt), which differs from the
            # input's pair when the data were binarized the other way round (fairseq reads either name)
            m = dataset_size(str(bin_dir / f"{subset}.{src}-{tgt}.{lang}"))
            if m != summary["subsets"][subset]["sentences"]:
                die(f"{bin_dir}/{subset}.{src}-{tgt}.{lang} has {m} sentences, expected "
                    f"{summary['subsets'][subset]['sentences']}")
    summary["dicts_identical_files"] = all(
        filecmp.cmp(os.path.join(args.data, f"dict.{lang}.txt"), bin_dir / f"dict.{lang}.txt", shallow=False)
        for lang in (src, tgt))
    timings["total_s"] = round(time.time() - start, 2)
    summary["timings"] = timings
    summary["bin"] = str(bin_dir)
    with open(out / "distill.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    log(f"done: {bin_dir} ({timings['total_s']:.1f}s)", start)
    print(json.dumps(OrderedDict([("bin", str(bin_dir)), ("subsets", summary["subsets"]),
                                  ("total_s", timings["total_s"])])))


if __name__ == "__main__":
    main()
