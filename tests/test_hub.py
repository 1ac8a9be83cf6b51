"""The Python API (``iterref_fairseq.hub``): ``from_pretrained(...).translate`` against fairseq-interactive and
fairseq-generate on the same checkpoints, generation options, BPE/tokenizer defaults and error messages.

fairseq-preprocess / -interactive / -generate run in this process (their ``cli_main`` with ``sys.argv`` set):
the same code as the console scripts without an interpreter start-up each (fairseq-train runs as a subprocess).

The data imitate ``iterref-prepare-bible``: raw "German" text with punctuation, Moses-tokenized and joint-BPE
segmented with the project's own preparation functions, binarized -s de -t en, ``bpe.codes`` copied into the
binarized directory (as ``examples/refinement_nat/prepare-bible-de-en.sh`` does).
"""
import importlib
import json
import random
import re
import shutil
import sys
from pathlib import Path
from unittest import mock

import pytest

from conftest import TINY_MODEL_FLAGS, USER_DIR, cli, tagged_lines

SYLLABLES = ["an", "fang", "wort", "licht", "gott", "er", "de", "him", "mel", "was", "ser", "tag"]
MASKED_FLAGS = ["--arch", "masked_translation_tiny", "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
                "--encoder-layers", "1", "--encoder-attention-heads", "2", "--max-segment-positions", "40"]


def fairseq_main(module: str, *args) -> None:
    """``fairseq-<module> ARGS`` in this process (``fairseq_cli.<module>.cli_main``)."""
    with mock.patch.object(sys, "argv", [f"fairseq-{module}", *map(str, args)]):
        importlib.import_module(f"fairseq_cli.{module}").cli_main()


def raw_pair(rng: random.Random):
    """A raw source sentence (capitalized, a comma, a full stop) and its target (the words reversed)."""
    words = ["".join(rng.sample(SYLLABLES, 2)) for _ in range(rng.randint(3, 6))]
    src = " ".join(words[:2]) + ", " + " ".join(words[2:]) + "."
    return src[0].upper() + src[1:], " ".join(reversed(words)) + "."


@pytest.fixture(scope="module")
def bible_like(tmp_path_factory) -> Path:
    """OUT/ with {train,valid,test}.{de,en} (tokenized + BPE), test.raw.de, bpe.codes, prepare.json; OUT/bin."""
    from iterref_fairseq.cli.prepare_bible import MosesPipeline
    from iterref_fairseq.data.bpe import learn_joint_bpe, load_bpe

    out = tmp_path_factory.mktemp("bible_like")
    rng = random.Random(3)
    splits = {name: [raw_pair(rng) for _ in range(n)] for name, n in (("train", 300), ("valid", 12), ("test", 12))}
    tok = {"de": MosesPipeline("de"), "en": MosesPipeline("en")}
    tokenized = {s: ([tok["de"](a) for a, _ in p], [tok["en"](b) for _, b in p]) for s, p in splits.items()}
    learn_joint_bpe(tokenized["train"][0] + tokenized["train"][1], 40, str(out / "bpe.codes"))
    bpe = load_bpe(str(out / "bpe.codes"))
    for split, (de, en) in tokenized.items():
        (out / f"{split}.de").write_text("".join(bpe.process_line(x) + "\n" for x in de))
        (out / f"{split}.en").write_text("".join(bpe.process_line(x) + "\n" for x in en))
    (out / "test.raw.de").write_text("".join(a + "\n" for a, _ in splits["test"]))
    (out / "prepare.json").write_text(json.dumps({"tokenizer": {"name": "moses", "escape": False,
                                                                "aggressive_dash_splits": True}}))
    fairseq_main("preprocess", "--source-lang", "de", "--target-lang", "en", "--joined-dictionary",
                 "--trainpref", out / "train", "--validpref", out / "valid", "--testpref", out / "test",
                 "--destdir", out / "bin", "--workers", "1")
    shutil.copyfile(out / "bpe.codes", out / "bin" / "bpe.codes")
    assert "@@" in (out / "test.de").read_text(), "the BPE must split words, else the test shows nothing"
    return out


def train(data: Path, save_dir: Path, criterion: str, flags) -> Path:
    cli("fairseq-train", data, "--user-dir", USER_DIR, "--task", "translation_refine", "--criterion", criterion,
        *flags, "--optimizer", "adam", "--lr", "1e-3", "--max-tokens", "1000", "--max-update", "12", "--cpu",
        "--save-dir", save_dir, "--no-epoch-checkpoints", "--log-format", "simple", "--seed", "1",
        "--disable-validation")
    return save_dir


@pytest.fixture(scope="module")
def nat_dir(bible_like, tmp_path_factory) -> Path:
    return train(bible_like / "bin", tmp_path_factory.mktemp("hub_nat"), "refinement_nat_loss", TINY_MODEL_FLAGS)


@pytest.fixture(scope="module")
def masked_dir(bible_like, tmp_path_factory) -> Path:
    return train(bible_like / "bin", tmp_path_factory.mktemp("hub_mt"), "masked_translation_loss", MASKED_FLAGS)


def hypotheses(out: str):
    """Best detokenized hypothesis (D lines of fairseq-generate/-interactive) of each sentence, in order."""
    found = tagged_lines(out, "D")
    return [found[i][0].split("\t")[1] for i in sorted(found)]


# ------------------------------------------------------------------ raw text, BPE found in the data directory
@pytest.mark.slow
def test_translate_raw_text_like_fairseq_interactive(bible_like, nat_dir, capsys):
    from iterref_fairseq import from_pretrained

    hub = from_pretrained(nat_dir, "checkpoint_last.pt", bible_like / "bin")
    assert type(hub.bpe).__name__ == "SubwordNMTBPE" and type(hub.tokenizer).__name__ == "MosesTokenizer"
    raw = (bible_like / "test.raw.de").read_text().splitlines()

    # encoding is the preparation pipeline itself (computed here with the preparation functions)
    from iterref_fairseq.cli.prepare_bible import MosesPipeline
    from iterref_fairseq.data.bpe import load_bpe

    bpe, tok = load_bpe(str(bible_like / "bpe.codes")), MosesPipeline("de")
    for sentence, prepared in zip(raw, (bible_like / "test.de").read_text().splitlines()):
        assert bpe.process_line(tok(sentence)) == prepared
        assert hub.encode(sentence).tolist() == hub.src_dict.encode_line(prepared, add_if_not_exist=False).tolist()

    ours = hub.translate(raw, iter_decode_max_iter=3)
    capsys.readouterr()
    fairseq_main("interactive", bible_like / "bin", "--user-dir", USER_DIR, "--task", "translation_refine",
                 "--path", nat_dir / "checkpoint_last.pt", "--cpu", "-s", "de", "-t", "en", "--tokenizer", "moses",
                 "--moses-no-escape", "--bpe", "subword_nmt", "--bpe-codes", bible_like / "bin" / "bpe.codes",
                 "--iter-decode-max-iter", "3", "--batch-size", "5", "--buffer-size", "5",
                 "--input", bible_like / "test.raw.de")
    theirs = hypotheses(capsys.readouterr().out)
    assert len(theirs) == len(raw) and ours == theirs
    assert not any("@@" in h for h in ours) and any(h.endswith(".") and not h.endswith(" .") for h in ours)
    assert hub.translate(raw[4], iter_decode_max_iter=3) == theirs[4], "a string in, a string out"


# ------------------------------------------------------------------ prepared text, BPE switched off
@pytest.mark.slow
def test_translate_prepared_text_like_fairseq_generate_with_task_options(bible_like, masked_dir, capsys):
    from iterref_fairseq.models.masked_translation import MaskedTranslationModel

    hub = MaskedTranslationModel.from_pretrained(masked_dir, "checkpoint_last.pt", bible_like / "bin", bpe=None,
                                                 tokenizer=None)
    assert hub.bpe is None and hub.tokenizer is None
    prepared = (bible_like / "test.de").read_text().splitlines()
    options = dict(beam=2, decoding_strategy="easy-first", decoding_budget="4", tokens_per_step="ceil")
    ours = hub.translate(prepared, **options)
    capsys.readouterr()
    fairseq_main("generate", bible_like / "bin", "--user-dir", USER_DIR, "--task", "translation_refine",
                 "--path", masked_dir / "checkpoint_last.pt", "--cpu", "--batch-size", "5", "--beam", "2",
                 "--decoding-strategy", "easy-first", "--decoding-budget", "4", "--tokens-per-step", "ceil")
    assert ours == hypotheses(capsys.readouterr().out) and any("@@" in h for h in ours)

    # the task options reached the generator (4 passes instead of one per target token) and held for one call
    tokens = [hub.encode(s) for s in prepared]
    assert {h[0]["steps"] for h in hub.generate(tokens, **options)} == {4}
    plain = hub.generate(tokens, beam=1)
    assert all(h[0]["steps"] == len(h[0]["tokens"]) - 1 for h in plain)  # budget L: one pass per token (+ EOS)
    assert hub.task.cfg.decoding_strategy == "left2right" and hub.task.cfg.decoding_budget == "L"


@pytest.mark.slow
def test_generation_options_and_bad_options(bible_like, nat_dir):
    from iterref_fairseq.models.masked_translation import MaskedTranslationModel
    from iterref_fairseq.models.refinement_nat import RefinementNATModel

    hub = RefinementNATModel.from_pretrained(nat_dir, "checkpoint_last.pt", bible_like / "bin")
    tokens = [hub.encode(s) for s in (bible_like / "test.raw.de").read_text().splitlines()]

    def steps(**options):
        return [h[0]["steps"] for h in hub.generate(tokens, **options)]

    assert set(steps(iter_decode_max_iter=1)) == {1}  # idec = 1: the initial decoder only
    assert set(steps(iter_decode_max_iter=4, iter_decode_force_max_iter=True)) == {4}
    assert min(steps()) >= 2 and max(steps()) <= 10  # the checkpoint's defaults again: adaptive, idec <= 10
    assert {len(h) for h in hub.generate(tokens, iter_decode_with_beam=3)} == {3}  # length candidates
    assert {len(h) for h in hub.generate(tokens)} == {1}
    kept = [h[0]["tokens"].tolist() for h in hub.generate(tokens, keep_repeats=True, iter_decode_max_iter=1)]
    collapsed = [h[0]["tokens"].tolist() for h in hub.generate(tokens, iter_decode_max_iter=1)]
    assert collapsed == [[t for i, t in enumerate(k) if i == 0 or t != k[i - 1]] for k in kept] != kept

    with pytest.raises(TypeError, match="unknown generation option.*'iter_decode_max_iters'"):
        hub.translate("Das Wort.", iter_decode_max_iters=3)
    with pytest.raises(ValueError, match="unchanged, jaccard"):
        hub.translate("Das Wort.", stop_criterion="never")
    assert hub.task.cfg.stop_criterion == "unchanged", "a failed call leaves the task's options as they were"
    with pytest.raises(ValueError, match="oracle_length decodes with the reference target length"):
        hub.translate("Das Wort.", oracle_length=True)
    with pytest.raises(ValueError, match="--iter-decode-max-iter must be >= 1"):
        hub.translate("Das Wort.", iter_decode_max_iter=0)

    with pytest.raises(ValueError, match="holds a RefinementNATModel model, not a MaskedTranslationModel"):
        MaskedTranslationModel.from_pretrained(nat_dir, "checkpoint_last.pt", bible_like / "bin")
    with pytest.raises(FileNotFoundError, match=rf"no dictionaries .* in {re.escape(str(nat_dir))} \(pass"):
        RefinementNATModel.from_pretrained(nat_dir, "checkpoint_last.pt")  # data "." = the model directory
    other = nat_dir / "data"
    other.mkdir()
    shutil.copyfile(bible_like / "bin" / "dict.de.txt", other / "dict.de.txt")
    with pytest.raises(FileNotFoundError, match=re.escape(f"{other}/dict.en.txt not found while loading")):
        RefinementNATModel.from_pretrained(nat_dir, "checkpoint_last.pt", "./data", source_lang="de",
                                           target_lang="en")


# ------------------------------------------------------------------ no training needed
def test_bpe_and_tokenizer_defaults(tmp_path):
    from iterref_fairseq.hub import _default_bpe

    assert _default_bpe(str(tmp_path), {"beam": 1}) == {"beam": 1}, "no bpe.codes: text in and out as it is"
    codes = tmp_path / "bin" / "bpe.codes"
    codes.parent.mkdir()
    codes.write_text("#version: 0.2\n")
    data = str(codes.parent)
    assert _default_bpe(data, {}) == {"bpe": "subword_nmt", "bpe_codes": str(codes), "tokenizer": "moses",
                                      "moses_no_escape": True, "moses_no_dash_splits": False}
    assert _default_bpe(data, {"bpe": None}) == {"bpe": None}, "an explicit bpe (even None) wins"
    assert _default_bpe(data, {"tokenizer": None}) == {"bpe": "subword_nmt", "bpe_codes": str(codes),
                                                       "tokenizer": None}
    # prepare.json of the preparation scripts sits in OUT/, the codes in OUT/bin/
    (tmp_path / "prepare.json").write_text(json.dumps({"tokenizer": {"name": "moses", "escape": False,
                                                                     "aggressive_dash_splits": False}}))
    assert _default_bpe(data, {})["moses_no_dash_splits"] is True
    (tmp_path / "prepare.json").write_text(json.dumps({"tokenizer": {"name": "space"}}))
    assert "tokenizer" not in _default_bpe(data, {})


def test_missing_paths_name_the_path_and_the_fix(tmp_path):
    from iterref_fairseq import from_pretrained

    def message(text: str) -> str:
        return re.escape(text.format(d=tmp_path))

    with pytest.raises(FileNotFoundError, match=message("model directory not found: {d}/none (pass the --save-dir")):
        from_pretrained(tmp_path / "none")
    (tmp_path / "checkpoint_last.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=message("checkpoint not found: {d}/checkpoint_best.pt (checkpoints "
                                                        "in {d}: checkpoint_last.pt; pass checkpoint_file=NAME)")):
        from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError, match=message("got the file {d}/checkpoint_last.pt: use from_pretrained(")):
        from_pretrained(tmp_path / "checkpoint_last.pt")
    with pytest.raises(FileNotFoundError, match=message("data directory not found: {d}/bin (pass data_name_or_path=")):
        from_pretrained(tmp_path, "checkpoint_last.pt", "./bin")
    (tmp_path / "bin").mkdir()
    with pytest.raises(RuntimeError, match=message("cannot read checkpoint {d}/checkpoint_last.pt")):
        from_pretrained(tmp_path, "checkpoint_last.pt", "./bin")  # the empty file
