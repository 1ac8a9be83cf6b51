"""Corruption process C(Y | Y*) of Hill et al. (2016), used for the DAE term of Eq. (3.4).

Each reference token y*_t is visited in order t = 1 .. T. With probability ``beta`` it is corrupted by one of
three operations chosen uniformly:

1. ``repeat``: y_{t+1} <- y_t (the next token is overwritten by a copy of this one),
2. ``replace``: y_t <- a token drawn uniformly from the vocabulary of real (non-special) symbols,
3. ``swap``: y_t <-> y_{t+1}.

Operations apply to the sequence as already modified by earlier positions (the scan is sequential, as in the
thesis). At the last real token there is no y_{t+1}; ``repeat`` and ``swap`` then fall back to ``replace`` so
that the probability of corrupting a position stays exactly ``beta``.

Worked example (beta = 1, ops forced to repeat, swap, replace): ``a b c`` -> t=1 repeat -> ``a a c`` -> t=2 swap
-> ``a c a`` -> t=3 (last) replace -> ``a c z``.

The scan is vectorized over the batch and loops over time (T is at most a few hundred), so it costs far less
than one decoder pass.
"""
from typing import Optional

import torch

REPEAT, REPLACE, SWAP = 0, 1, 2


def corrupt_tokens(
    tokens: torch.Tensor,
    pad: int,
    beta: float,
    vocab_low: int,
    vocab_high: int,
    generator: Optional[torch.Generator] = None,
    return_events: bool = False,
):
    """Apply the corruption process C to a right-padded batch.

    Args:
        tokens: (B, T) int tensor of reference tokens, right-padded with ``pad``. Not modified.
        pad: padding index; padded positions are never touched.
        beta: per-token corruption probability in [0, 1].
        vocab_low, vocab_high: replacement tokens are drawn uniformly from [vocab_low, vocab_high).
        generator: optional torch RNG for reproducibility.
        return_events: also return a (B, T) bool tensor marking positions where a corruption event fired.

    Returns:
        (B, T) corrupted copy of ``tokens`` (and the event mask if requested).
    """
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"corruption probability beta must be in [0, 1], got {beta}")
    if vocab_high <= vocab_low:
        raise ValueError(f"empty replacement vocabulary [{vocab_low}, {vocab_high})")
    bsz, seq_len = tokens.shape
    valid = tokens.ne(pad)
    device = tokens.device
    fire = (torch.rand(bsz, seq_len, generator=generator, device=device) < beta) & valid
    ops = torch.randint(0, 3, (bsz, seq_len), generator=generator, device=device)
    random_tokens = torch.randint(vocab_low, vocab_high, (bsz, seq_len), generator=generator, device=device)
    out = apply_corruption(tokens, pad, fire, ops, random_tokens)
    if return_events:
        return out, fire
    return out


def apply_corruption(
    tokens: torch.Tensor, pad: int, fire: torch.Tensor, ops: torch.Tensor, random_tokens: torch.Tensor
) -> torch.Tensor:
    """The deterministic part of C: apply the drawn events in order t = 1..T.

    All arguments are (B, T): ``fire`` marks corrupted positions, ``ops`` holds REPEAT/REPLACE/SWAP codes,
    ``random_tokens`` the replacement token for each position. Returns a new tensor.
    """
    out = tokens.clone()
    bsz, seq_len = out.shape
    lengths = out.ne(pad).sum(1)
    fire = fire & out.ne(pad)
    # At the last real token there is no successor: repeat/swap become replace.
    is_last = torch.arange(seq_len, device=out.device).unsqueeze(0).eq((lengths - 1).unsqueeze(1))
    ops = torch.where(is_last, torch.full_like(ops, REPLACE), ops)
    for t in range(seq_len):
        f = fire[:, t]
        if not bool(f.any()):
            continue
        op = ops[:, t]
        cur = out[:, t].clone()
        out[:, t] = torch.where(f & op.eq(REPLACE), random_tokens[:, t], out[:, t])
        if t + 1 < seq_len:
            nxt = out[:, t + 1].clone()
            moves = f & (op.eq(REPEAT) | op.eq(SWAP))
            out[:, t + 1] = torch.where(moves, cur, nxt)
            out[:, t] = torch.where(f & op.eq(SWAP), nxt, out[:, t])
    return out
