"""Joint BPE with subword-nmt, shared by the data preparation scripts."""
import io
from collections import Counter
from typing import Iterable, Tuple


def learn_joint_bpe(token_lines: Iterable[str], num_ops: int, codes_path: str) -> Tuple[int, int]:
    """Learn ``num_ops`` joint BPE merges from tokenized lines (both languages).

    Returns (number of word types seen, number of merges written). subword-nmt reads a "word count" dictionary;
    sorting it makes the codes independent of the order of the input lines.
    """
    from subword_nmt.learn_bpe import learn_bpe

    vocab = Counter()
    for line in token_lines:
        vocab.update(line.split())
    vocab_file = io.StringIO("".join(f"{w} {c}\n" for w, c in sorted(vocab.items(), key=lambda x: (-x[1], x[0]))))
    with open(codes_path, "w", encoding="utf-8") as out:
        learn_bpe(vocab_file, out, num_ops, is_dict=True)
    with open(codes_path, encoding="utf-8") as f:
        return len(vocab), sum(1 for line in f if not line.startswith("#version"))


def load_bpe(codes_path: str):
    from subword_nmt.apply_bpe import BPE

    with open(codes_path, encoding="utf-8") as codes:
        return BPE(codes)
