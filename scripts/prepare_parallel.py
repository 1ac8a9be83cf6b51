#!/usr/bin/env python
"""Offline preparation of a parallel corpus for fairseq: Moses tokenization, joint BPE, binarization.

Input: raw aligned text files ``PREFIX.SRC`` / ``PREFIX.TGT`` (one segment per line) for train, valid and test,
as written by the ``download`` stage of ``examples/refinement_nat/prepare-*.sh``. Nothing here touches the
network.

Steps
  1. checks that the two sides of every split have the same number of lines;
  2. normalization (optional Moses punctuation normalization, non-printing characters removed, optional
     Romanian diacritics removal as in the WMT'16 En-Ro setup) and Moses tokenization (sacremoses,
     ``escape=False``, hyphen splitting like ``tokenizer.perl -a``);
  3. training pairs only: drop empty sides, pairs longer than ``--max-len`` tokens or with a length ratio above
     ``--max-len-ratio`` (like Moses ``clean-corpus-n.perl``); every drop is counted, valid/test are never
     filtered;
  4. joint BPE (subword-nmt) learned on both sides of the cleaned training data (``--bpe-ops``, default 40000),
     or read from ``--bpe-codes``; applied to every split;
  5. writes ``OUT/{train,valid,test}.{src,tgt}``, ``OUT/bpe.codes``, the untouched raw valid/test text
     (``OUT/{valid,test}.raw.{src,tgt}``, references for sacrebleu) and ``OUT/prepare.json`` (all counts);
  6. with ``--binarize``: ``fairseq-preprocess --joined-dictionary`` into ``OUT/bin``.

Comma-separated ``--valid-prefix`` / ``--test-prefix`` lists give ``valid, valid1, ...`` like fairseq-preprocess.

Example::

    python scripts/prepare_parallel.py --src en --tgt de --train-prefix raw/train --valid-prefix raw/valid \\
        --test-prefix raw/test --out-dir data/wmt14_en_de --bpe-ops 40000 --workers 8 --binarize
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import unicodedata
from collections import Counter, OrderedDict
from multiprocessing import Pool

from iterref_fairseq.data.bpe import learn_joint_bpe as shared_learn_joint_bpe
from iterref_fairseq.data.bpe import load_bpe

PROG = "prepare_parallel.py"

# Romanian as in the WMT'16 En-Ro setup: cedilla forms -> comma forms, then diacritics removed.
_RO_TABLE = str.maketrans({
    "Ş": "S", "ş": "s", "Ţ": "T", "ţ": "t", "Ș": "S", "ș": "s", "Ț": "T", "ț": "t",
    "Ă": "A", "ă": "a", "Â": "A", "â": "a", "Î": "I", "î": "i",
})


def die(message):
    raise SystemExit(f"{PROG}: error: {message}")


def log(message, start):
    print(f"[prepare-parallel] [{time.time() - start:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# Workers (module-level so multiprocessing can pickle them)

_WORKER = {}


def _init_tokenizer(lang, normalize_punct, ro_strip, dash_splits):
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    _WORKER["tok"] = MosesTokenizer(lang=lang)
    _WORKER["norm"] = MosesPunctNormalizer(lang=lang) if normalize_punct else None
    _WORKER["ro"] = ro_strip and lang == "ro"
    _WORKER["dash"] = dash_splits


def _tokenize(line):
    line = line.rstrip("\n")
    line = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in line)  # non-printing
    if _WORKER["norm"] is not None:
        line = _WORKER["norm"].normalize(line)
    if _WORKER["ro"]:
        line = line.translate(_RO_TABLE)
    line = " ".join(line.split())
    if not line:
        return ""
    return _WORKER["tok"].tokenize(line, aggressive_dash_splits=_WORKER["dash"], return_str=True, escape=False)


def _init_bpe(codes_path):
    _WORKER["bpe"] = load_bpe(codes_path)


def _apply_bpe(line):
    return _WORKER["bpe"].process_line(line.rstrip("\n"))


def _map_file(in_path, out_path, func, initializer, initargs, workers):
    """Apply ``func`` to every line of ``in_path`` (streaming, ``workers`` processes); return the line count."""
    n = 0
    with open(in_path, encoding="utf-8", newline="\n") as fin, open(out_path, "w", encoding="utf-8") as fout:
        if workers > 1:
            with Pool(workers, initializer=initializer, initargs=initargs) as pool:
                for out in pool.imap(func, fin, chunksize=1000):
                    fout.write(out + "\n")
                    n += 1
        else:
            initializer(*initargs)
            for line in fin:
                fout.write(func(line) + "\n")
                n += 1
    return n


# --------------------------------------------------------------------------------------------------------------


def count_lines(path):
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def split_names(kind, prefixes):
    return [kind if i == 0 else f"{kind}{i}" for i in range(len(prefixes))]


def learn_joint_bpe(paths, num_ops, codes_path):
    """Joint BPE over the tokenized training files; returns (word types, merges)."""
    def lines():
        for path in paths:
            with open(path, encoding="utf-8") as f:
                yield from f

    if not any(line.strip() for line in lines()):
        die("the training data is empty after cleaning; check --train-prefix and the filters")
    return shared_learn_joint_bpe(lines(), num_ops, codes_path)


def clean_train(src_in, tgt_in, src_out, tgt_out, max_len, max_ratio):
    counts = Counter()
    with open(src_in, encoding="utf-8") as fs, open(tgt_in, encoding="utf-8") as ft, \
            open(src_out, "w", encoding="utf-8") as os_, open(tgt_out, "w", encoding="utf-8") as ot:
        for s, t in zip(fs, ft):
            counts["input"] += 1
            ns, nt = len(s.split()), len(t.split())
            if ns == 0 or nt == 0:
                counts["dropped_empty"] += 1
                continue
            if max_len and (ns > max_len or nt > max_len):
                counts["dropped_long"] += 1
                continue
            if max_ratio and max(ns / nt, nt / ns) > max_ratio:
                counts["dropped_ratio"] += 1
                continue
            counts["kept"] += 1
            os_.write(s)
            ot.write(t)
    return OrderedDict((k, counts[k]) for k in ("input", "dropped_empty", "dropped_long", "dropped_ratio", "kept"))


def fairseq_preprocess_cmd(option):
    if option:
        return option.split()
    return [sys.executable, "-m", "fairseq_cli.preprocess"]


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--src", required=True, help="source language code (file suffix), e.g. en")
    p.add_argument("--tgt", required=True, help="target language code (file suffix), e.g. de")
    p.add_argument("--train-prefix", required=True, help="raw training text: PREFIX.SRC and PREFIX.TGT")
    p.add_argument("--valid-prefix", required=True, help="raw validation text prefix(es), comma-separated")
    p.add_argument("--test-prefix", required=True, help="raw test text prefix(es), comma-separated")
    p.add_argument("-o", "--out-dir", required=True, help="output directory")
    p.add_argument("--bpe-ops", type=int, default=40000, help="joint BPE merge operations (default 40000)")
    p.add_argument("--bpe-codes", default=None, help="use these BPE codes instead of learning new ones")
    p.add_argument("--max-len", type=int, default=250, help="drop training pairs with a side longer than N "
                                                             "Moses tokens (default 250, 0 = off)")
    p.add_argument("--max-len-ratio", type=float, default=1.5,
                   help="drop training pairs whose token-length ratio exceeds R (default 1.5, 0 = off)")
    p.add_argument("--normalize-punct", action="store_true", help="Moses punctuation normalization before tokenizing")
    p.add_argument("--ro-strip-diacritics", action="store_true",
                   help="Romanian side: normalize cedilla/comma letters and remove diacritics (WMT'16 En-Ro setup)")
    p.add_argument("--no-dash-splits", action="store_true", help="do not split hyphenated words (Moses -a)")
    p.add_argument("--workers", type=int, default=max(1, min(8, os.cpu_count() or 1)),
                   help="processes for tokenization, BPE and fairseq-preprocess")
    p.add_argument("--binarize", action="store_true", help="run fairseq-preprocess --joined-dictionary into OUT/bin")
    p.add_argument("--fairseq-preprocess", default=None,
                   help="command for fairseq-preprocess (default: python -m fairseq_cli.preprocess of this interpreter)")
    p.add_argument("--keep-tokenized", action="store_true", help="keep the tokenized (pre-BPE) text in OUT/tok")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    start = time.time()
    if args.src == args.tgt:
        die(f"--src {args.src} and --tgt {args.tgt} must differ")
    if args.bpe_ops <= 0 and not args.bpe_codes:
        die(f"--bpe-ops {args.bpe_ops}: must be positive")
    if args.bpe_codes and not os.path.isfile(args.bpe_codes):
        die(f"--bpe-codes {args.bpe_codes}: file not found")

    splits = OrderedDict([("train", args.train_prefix)])
    for kind, value in (("valid", args.valid_prefix), ("test", args.test_prefix)):
        prefixes = [x for x in value.split(",") if x]
        if not prefixes:
            die(f"--{kind}-prefix is empty; give the prefix of the raw {kind} files")
        splits.update(zip(split_names(kind, prefixes), prefixes))

    counts = OrderedDict()
    for split, prefix in splits.items():
        n = {}
        for lang in (args.src, args.tgt):
            path = f"{prefix}.{lang}"
            if not os.path.isfile(path):
                die(f"{split} file {path} not found; run the download stage or fix --{split.rstrip('0123456789')}-prefix")
            n[lang] = count_lines(path)
        if n[args.src] != n[args.tgt]:
            die(f"{split}: {prefix}.{args.src} has {n[args.src]} lines but {prefix}.{args.tgt} has {n[args.tgt]}; "
                "the raw files must be line-aligned")
        if n[args.src] == 0:
            die(f"{split}: {prefix}.{args.src} is empty")
        counts[split] = OrderedDict([("raw_lines", n[args.src])])

    out = args.out_dir
    tok_dir = os.path.join(out, "tok")
    try:
        os.makedirs(tok_dir, exist_ok=True)
    except OSError as err:
        die(f"--out-dir {out}: cannot create it ({err.strerror}); choose a writable directory")
    log("splits: " + ", ".join(f"{s}={c['raw_lines']}" for s, c in counts.items()), start)

    # ---- tokenize
    timings = OrderedDict()
    t0 = time.time()
    for split, prefix in splits.items():
        for lang in (args.src, args.tgt):
            _map_file(f"{prefix}.{lang}", os.path.join(tok_dir, f"{split}.{lang}"), _tokenize, _init_tokenizer,
                      (lang, args.normalize_punct, args.ro_strip_diacritics, not args.no_dash_splits), args.workers)
        log(f"tokenized {split}", start)
    timings["tokenize_s"] = round(time.time() - t0, 2)

    # ---- clean training pairs; count empty eval lines
    counts["train"].update(clean_train(
        os.path.join(tok_dir, f"train.{args.src}"), os.path.join(tok_dir, f"train.{args.tgt}"),
        os.path.join(tok_dir, f"train.clean.{args.src}"), os.path.join(tok_dir, f"train.clean.{args.tgt}"),
        args.max_len, args.max_len_ratio))
    if counts["train"]["kept"] == 0:
        die("no training pair survived cleaning; relax --max-len/--max-len-ratio or check the raw files")
    for split in splits:
        if split == "train":
            continue
        for lang in (args.src, args.tgt):
            with open(os.path.join(tok_dir, f"{split}.{lang}"), encoding="utf-8") as f:
                counts[split][f"empty_{lang}"] = sum(1 for line in f if not line.strip())
            if counts[split][f"empty_{lang}"]:
                log(f"warning: {split}.{lang} has {counts[split][f'empty_{lang}']} empty lines (kept for alignment)",
                    start)
    log(f"train cleaning: {dict(counts['train'])}", start)

    # ---- BPE
    t0 = time.time()
    codes = os.path.join(out, "bpe.codes")
    train_tok = {lang: os.path.join(tok_dir, f"train.clean.{lang}") for lang in (args.src, args.tgt)}
    if args.bpe_codes:
        if os.path.abspath(args.bpe_codes) != os.path.abspath(codes):
            shutil.copyfile(args.bpe_codes, codes)
        bpe_info = OrderedDict([("codes_from", os.path.abspath(args.bpe_codes))])
    else:
        n_types, n_merges = learn_joint_bpe(list(train_tok.values()), args.bpe_ops, codes)
        bpe_info = OrderedDict([("ops_requested", args.bpe_ops), ("merges_learned", n_merges),
                                ("train_word_types", n_types)])
        log(f"learned {n_merges} joint BPE merges from {n_types} word types", start)
    timings["learn_bpe_s"] = round(time.time() - t0, 2)
    t0 = time.time()
    for split in splits:
        for lang in (args.src, args.tgt):
            src_path = train_tok[lang] if split == "train" else os.path.join(tok_dir, f"{split}.{lang}")
            n = _map_file(src_path, os.path.join(out, f"{split}.{lang}"), _apply_bpe, _init_bpe, (codes,),
                          args.workers)
            counts[split]["lines"] = n
    timings["apply_bpe_s"] = round(time.time() - t0, 2)
    log("BPE applied", start)
    for split, prefix in splits.items():
        if split != "train":
            for lang in (args.src, args.tgt):
                shutil.copyfile(f"{prefix}.{lang}", os.path.join(out, f"{split}.raw.{lang}"))
    if not args.keep_tokenized:
        shutil.rmtree(tok_dir)

    # ---- binarize
    if args.binarize:
        t0 = time.time()
        bin_dir = os.path.join(out, "bin")
        valid = ",".join(os.path.join(out, s) for s in splits if s.startswith("valid"))
        test = ",".join(os.path.join(out, s) for s in splits if s.startswith("test"))
        cmd = fairseq_preprocess_cmd(args.fairseq_preprocess) + [
            "--source-lang", args.src, "--target-lang", args.tgt, "--joined-dictionary",
            "--trainpref", os.path.join(out, "train"), "--validpref", valid, "--testpref", test,
            "--destdir", bin_dir, "--workers", str(args.workers)]
        log("running " + " ".join(cmd), start)
        result = subprocess.run(cmd, stdout=sys.stderr)
        if result.returncode != 0:
            die(f"fairseq-preprocess failed with exit status {result.returncode} (see its log above); "
                "check that fairseq is installed in this environment")
        shutil.copyfile(codes, os.path.join(bin_dir, "bpe.codes"))
        timings["binarize_s"] = round(time.time() - t0, 2)
    timings["total_s"] = round(time.time() - start, 2)

    summary = OrderedDict([
        ("languages", OrderedDict([("source", args.src), ("target", args.tgt)])),
        ("inputs", OrderedDict((s, os.path.abspath(p)) for s, p in splits.items())),
        ("counts", counts),
        ("bpe", bpe_info),
        ("tokenizer", OrderedDict([("name", "moses"), ("impl", "sacremoses"), ("escape", False),
                                   ("aggressive_dash_splits", not args.no_dash_splits),
                                   ("normalize_punct", args.normalize_punct),
                                   ("ro_strip_diacritics", args.ro_strip_diacritics)])),
        ("options", OrderedDict(sorted(vars(args).items()))),
        ("binarized", os.path.join(out, "bin") if args.binarize else None),
        ("timings", timings),
    ])
    with open(os.path.join(out, "prepare.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    log(f"done: {out} ({timings['total_s']:.1f}s)", start)
    print(json.dumps(OrderedDict([("out_dir", out), ("lines", OrderedDict((s, c["lines"]) for s, c in counts.items())),
                                  ("total_s", timings["total_s"])])))


if __name__ == "__main__":
    main()
