"""Multi-head attention for the refinement decoders, split so that what does not change between passes is computed once.

A refinement decoder runs the same layers on the same source many times (itrain passes in training, up to idec
passes at decoding). Two things in each layer do not depend on the pass:

* the keys and values of encoder-decoder attention (projections of the encoder output), and
* the attention weights of positional attention, whose queries and keys are position encodings (only the row's
  padding mask enters, and a row's length is fixed for the whole decoding).

:class:`SplitMultiheadAttention` exposes the projections separately (``project_kv`` / ``attend``), and
:class:`PositionalAttention` computes its weights with ``weights`` and applies them with ``attend``. Parameter names
and initialization are those of :class:`torch.nn.MultiheadAttention` (``in_proj_weight`` (3C, C) packed as
[W_q; W_k; W_v], ``in_proj_bias``, ``out_proj``), so checkpoints written with it load unchanged.

Shapes: B batch, T target length, S source length, C model width, H heads, D = C / H.
Masks follow the SDPA convention inside this module: ``keep`` is (B, 1, 1, S) bool, True where a key may be
attended, or None when nothing is padded; :func:`key_keep_mask` builds it from fairseq's padding masks (True = pad).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


def key_keep_mask(padding_mask: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """(B, S) True-at-pad mask -> (B, 1, 1, S) True-where-attended mask, or None when nothing is padded."""
    if padding_mask is None or not bool(padding_mask.any()):
        return None
    return (~padding_mask).unsqueeze(1).unsqueeze(2)


class SplitMultiheadAttention(nn.Module):
    """Scaled dot-product multi-head attention with separately callable query and key/value projections."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by the number of heads {heads}")
        self.dim, self.heads, self.head_dim = dim, heads, dim // heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        # the initialization of torch.nn.MultiheadAttention
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, H, T, D)."""
        return x.view(x.size(0), x.size(1), self.heads, self.head_dim).transpose(1, 2)

    def project_q(self, x: torch.Tensor) -> torch.Tensor:
        d = self.dim
        return self._heads(F.linear(x, self.in_proj_weight[:d], self.in_proj_bias[:d]))

    def project_kv(self, memory: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, H, S, D) of ``memory`` (B, S, C); computed once per batch for cross-attention."""
        d = self.dim
        kv = F.linear(memory, self.in_proj_weight[d:], self.in_proj_bias[d:])
        k, v = kv.chunk(2, dim=-1)
        return self._heads(k), self._heads(v)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
        """softmax(q k^T / sqrt(D)) v over heads, then the output projection. Returns (B, T, C)."""
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=p)
        return self.out_proj(out.transpose(1, 2).reshape(q.size(0), q.size(2), self.dim))

    def self_attention(self, x: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
        """Unmasked (bidirectional) self-attention of x (B, T, C) over its non-pad positions."""
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        return self.attend(self._heads(q), self._heads(k), self._heads(v), keep)


class PositionalAttention(nn.Module):
    """Attention whose queries and keys are position encodings and whose values are the decoder states
    (Gu et al., 2017; thesis §3.5). The weights depend only on the positions and the key padding mask.

    ``weights(positions, keep)`` -> (B or 1, H, T, T) probabilities; ``attend(weights, values)`` -> (B, T, C).
    ``forward(positions, values, key_padding_mask)`` does both (uncached use).
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.attn = SplitMultiheadAttention(dim, heads, dropout)

    def weights(self, positions: torch.Tensor, keep: Optional[torch.Tensor]) -> torch.Tensor:
        """positions (T, C); keep (B, 1, 1, T) or None. Returns (B, H, T, T), or (1, H, T, T) without padding."""
        a = self.attn
        d = a.dim
        qk = F.linear(positions, a.in_proj_weight[: 2 * d], a.in_proj_bias[: 2 * d])  # (T, 2C)
        q, k = (t.view(-1, a.heads, a.head_dim).transpose(0, 1) for t in qk.chunk(2, dim=-1))  # (H, T, D)
        scores = torch.matmul(q, k.transpose(1, 2)).unsqueeze(0) / math.sqrt(a.head_dim)  # (1, H, T, T)
        if keep is not None:
            scores = scores.masked_fill(~keep, float("-inf"))
        return torch.softmax(scores, dim=-1)

    def attend(self, weights: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        a = self.attn
        d = a.dim
        v = a._heads(F.linear(values, a.in_proj_weight[2 * d:], a.in_proj_bias[2 * d:]))  # (B, H, T, D)
        w = F.dropout(weights, a.dropout, self.training)
        out = torch.matmul(w, v)
        return a.out_proj(out.transpose(1, 2).reshape(values.size(0), values.size(1), d))

    def forward(self, positions: torch.Tensor, values: torch.Tensor,
                key_padding_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.attend(self.weights(positions, key_keep_mask(key_padding_mask)), values)
