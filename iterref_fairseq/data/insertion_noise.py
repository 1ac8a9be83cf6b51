"""Training noise of insertion models (FlexMDM / LFlexMDM): per-token times, compaction of x_t, gap bookkeeping.

Every content token i of the clean sequence x1 has an insertion time T_in^i and an unmasking time
T_um^i >= T_in^i (``modules/kumaraswamy.py``). At time t the token is

* dropped  (state 0) if t < T_in^i   -- absent from x_t,
* masked   (state 1) if T_in^i <= t < T_um^i  -- present as ``<mask>``,
* revealed (state 2) if T_um^i <= t  -- present as itself.

x_t is the compaction of the present tokens (order kept) followed by the EOS of x1, which is always present.
``x1_index`` (the paper's s_t) maps each x_t position to its x1 position. Gaps: the gap left of an x_t token is
owned by that token; the trailing EOS owns the last gap, so a row with n present tokens has n + 1 gaps, one per
x_t position (pads excluded). A dropped token belongs to the gap owned by the first present token to its right.

Worked example (one row, ``M`` = ``<mask>``)::

    x1        = [A  B  C  D  <eos>]        x1 positions 0..4
    state     = [0  2  0  1  -    ]        A, C dropped; B revealed; D masked
    present   = [0  1  0  1  1    ]        (EOS always present)
    x_t       = [B  M  <eos>]              x_t position = inclusive cumsum(present) - 1 at present tokens
    x1_index  = [1  3  4]                  (s_t)
    gap_of    = exclusive cumsum(present) = [0 0 1 1 2]  -> A goes to gap 0 (owned by B), C to gap 1 (owned by M)
    gap_count = [1  1  0]                  number of dropped tokens still to insert left of each x_t token

The insertion target of a gap is ``gap_sums(b_in, noisy)`` = sum of the dropped tokens' rate multipliers there
(all ones for FlexMDM, i.e. ``gap_count``).
"""
from typing import NamedTuple, Optional

import torch

DROPPED, MASKED, REVEALED = 0, 1, 2


class NoisySample(NamedTuple):
    """x_t of a batch and its bookkeeping. B rows, L = x1 width, Lt = x_t width.

    tokens: (B, Lt) x_t (content, ``<mask>``, EOS, pads on the right).
    x1_index: (B, Lt) x1 position of every x_t position (0 at pads).
    is_mask: (B, Lt) True at ``<mask>`` positions.
    padding_mask: (B, Lt) True at pads.
    gap_count: (B, Lt) number of dropped tokens in the gap left of each x_t position (0 at pads).
    state: (B, L) DROPPED / MASKED / REVEALED for x1 content tokens, -1 at EOS and pads.
    gap_of: (B, L) owning x_t position of every x1 token (meaningful for dropped tokens).
    t: (B,) time of each row.
    """

    tokens: torch.Tensor
    x1_index: torch.Tensor
    is_mask: torch.Tensor
    padding_mask: torch.Tensor
    gap_count: torch.Tensor
    state: torch.Tensor
    gap_of: torch.Tensor
    t: torch.Tensor


def token_states(t: torch.Tensor, t_in: torch.Tensor, t_um: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """(B, L) states at time t (B,) given times (B, L); -1 where ``content`` is False."""
    tt = t.unsqueeze(1)
    state = torch.full_like(t_in, REVEALED, dtype=torch.long)
    state = state.masked_fill(tt < t_um, MASKED).masked_fill(tt < t_in, DROPPED)
    return state.masked_fill(~content, -1)


def compact(x1: torch.Tensor, state: torch.Tensor, pad: int, eos: int, mask: int, t: torch.Tensor) -> NoisySample:
    """Builds x_t from x1 (B, L) (content + EOS, right-padded) and token states (B, L); see the module docstring."""
    if x1.dim() != 2 or state.shape != x1.shape:
        raise ValueError(f"x1 and state must both be (B, L); got {tuple(x1.shape)} and {tuple(state.shape)}")
    is_eos = x1.eq(eos)
    present = state.ge(MASKED) | is_eos
    incl = present.long().cumsum(1)
    new_pos = incl - 1  # x_t position of present tokens
    lengths = present.sum(1)
    width = max(int(lengths.max()), 1)
    bsz, length = x1.shape
    # absent tokens are scattered to an extra garbage column that is cut off afterwards
    target_col = torch.where(present, new_pos, torch.full_like(new_pos, width))
    values = torch.where(state.eq(MASKED), torch.full_like(x1, mask), x1)
    tokens = x1.new_full((bsz, width + 1), pad).scatter(1, target_col, values)[:, :width]
    positions = torch.arange(length, device=x1.device).unsqueeze(0).expand(bsz, -1)
    x1_index = torch.zeros(bsz, width + 1, dtype=torch.long, device=x1.device)
    x1_index = x1_index.scatter(1, target_col, positions)[:, :width]
    padding_mask = torch.arange(width, device=x1.device).unsqueeze(0) >= lengths.unsqueeze(1)
    x1_index = x1_index.masked_fill(padding_mask, 0)
    gap_of = (incl - present.long()).clamp(max=width - 1)  # exclusive cumsum = owner position
    dropped = state.eq(DROPPED)
    gap_count = torch.zeros(bsz, width, dtype=torch.long, device=x1.device)
    gap_count = gap_count.scatter_add(1, gap_of, dropped.long())
    return NoisySample(tokens, x1_index, tokens.eq(mask), padding_mask, gap_count, state, gap_of, t)


def gap_sums(values: torch.Tensor, noisy: NoisySample) -> torch.Tensor:
    """Per-gap sum of ``values`` (B, L) over the dropped x1 tokens of each gap -> (B, Lt). Differentiable."""
    dropped = noisy.state.eq(DROPPED)
    out = values.new_zeros(noisy.tokens.shape)
    return out.scatter_add(1, noisy.gap_of, values * dropped.to(values.dtype))


def content_mask(x1: torch.Tensor, pad: int, eos: int, bos: Optional[int] = None) -> torch.Tensor:
    """(B, L) True at real tokens of x1 (not pad / EOS / BOS)."""
    m = x1.ne(pad) & x1.ne(eos)
    return m if bos is None else m & x1.ne(bos)
