"""How a teacher's distilled training targets differ from the references they replace.

For the reference targets and each distilled version (plain text, one sentence per line, the same sentences in the
same order, e.g. ``OUT/bible/train.en`` and ``OUT/distill/text/train.en``) it reports, over BPE tokens:

* mean length and the ratio of lengths to the references;
* ``consecutive_repeats``: the fraction of tokens equal to the token before them (a greedy teacher's loops);
* ``looping_sentences``: the fraction of sentences in which one 3-gram occurs three times or more;
* ``types``: the number of distinct tokens;
* ``bleu_vs_reference``: corpus BLEU of the distilled targets against the references (sacreBLEU on the BPE text,
  no tokenization: a measure of how far the teacher is from the data, not a translation score).

    python examples/refinement_nat/distilled_stats.py --reference work/demo/bible/train.en \
        --distilled greedy=work/demo/distill/text/train.en --distilled beam4=work/demo/distill-beam4/text/train.en \
        --out results/refinement_nat/bible_distilled_targets_<date>.json
"""
import argparse
import collections
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from iterref_fairseq.provenance import write_results  # noqa: E402


def read(path: str) -> List[List[str]]:
    return [line.split() for line in Path(path).read_text(encoding="utf-8").splitlines()]


def looping(tokens: Sequence[str], n: int = 3, times: int = 3) -> bool:
    """True when one n-gram occurs ``times`` times or more in ``tokens``."""
    grams = collections.Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return bool(grams) and max(grams.values()) >= times


def stats(sentences: List[List[str]], reference: Optional[List[List[str]]] = None) -> Dict:
    tokens = sum(len(s) for s in sentences)
    out = {
        "sentences": len(sentences),
        "mean_length": tokens / max(len(sentences), 1),
        "consecutive_repeats": sum(a == b for s in sentences for a, b in zip(s, s[1:])) / max(tokens, 1),
        "looping_sentences": sum(looping(s) for s in sentences) / max(len(sentences), 1),
        "types": len({t for s in sentences for t in s}),
    }
    if reference is not None:
        import sacrebleu

        ratios = [len(s) / max(len(r), 1) for s, r in zip(sentences, reference)]
        out["length_ratio_mean"] = sum(ratios) / max(len(ratios), 1)
        out["bleu_vs_reference"] = sacrebleu.corpus_bleu(
            [" ".join(s) for s in sentences], [[" ".join(r) for r in reference]], tokenize="none").score
    return out


def markdown(result: Dict) -> str:
    rows = ["| targets | mean length | consecutive repeats | looping sentences | types | BLEU vs references |",
            "|---|---:|---:|---:|---:|---:|"]
    for name, s in result["targets"].items():
        bleu = f"{s['bleu_vs_reference']:.1f}" if "bleu_vs_reference" in s else "–"
        rows.append(f"| {name} | {s['mean_length']:.1f} | {100 * s['consecutive_repeats']:.2f}% | "
                    f"{100 * s['looping_sentences']:.1f}% | {s['types']} | {bleu} |")
    return "\n".join(rows) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", required=True, help="the reference targets (text, one sentence per line)")
    parser.add_argument("--distilled", action="append", required=True, metavar="NAME=PATH",
                        help="distilled targets of the same sentences, in the same order")
    parser.add_argument("--out", required=True, help="output JSON (the markdown table goes beside it)")
    args = parser.parse_args(argv)
    reference = read(args.reference)
    targets = {"references": stats(reference)}
    for item in args.distilled:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--distilled {item!r}: expected NAME=PATH")
        sentences = read(path)
        if len(sentences) != len(reference):
            raise SystemExit(f"{path}: {len(sentences)} sentences, {args.reference}: {len(reference)}; distilled "
                             f"targets must pair with the references line by line")
        targets[name] = stats(sentences, reference)
    result = {"reference": args.reference, "distilled": args.distilled, "targets": targets}
    write_results(result, Path(args.out), markdown(result), argv, note="no randomness: statistics of text files")
    print(markdown(result))


if __name__ == "__main__":
    main()
