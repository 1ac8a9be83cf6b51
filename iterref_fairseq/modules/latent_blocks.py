"""Building blocks of LaNMT (Shu, Lee, Nakayama & Cho 2020) and its score / energy network (Lee, Shu & Cho 2020).

* :class:`PreNormStack`: a stack of pre-LayerNorm Transformer layers with a final LayerNorm, as the reference code's
  ``TransformerEncoder`` (self-attention only) and ``TransformerCrossEncoder`` (self-attention, cross-attention to a
  memory, feed-forward). The cross-attention has its own weights: the public code reuses the self-attention weights
  there (its ``--opt_fixbug2``), which we do not copy. ``skip=True`` adds the reference decoder's extra skip
  connection, x <- (x_0 + x) / sqrt(2) after every layer.
* :class:`LengthTransform`: the length transformation that maps one vector per source position to one per target
  position: target slot i takes softmax_j(-(j - i |x| / L_y)^2 / (2 sigma^2)) of the source vectors, sigma learned
  (init 1). The public code's default replaces the square by 2^(j - mu_i) (a bug behind ``--opt_fixbug1``); the
  squared form is computed here.

Padding convention: masks are True at REAL positions and every sequence is right-padded (the model converts
fairseq's left-padded sources before calling these blocks).
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn


class PreNormStack(nn.Module):
    """``layers`` pre-LN Transformer layers (+ final LayerNorm) over x (B, T, C), attending to ``memory`` (B, S, C)
    when built with ``cross=True``.

    Shapes: x (B, T, C), x_mask (B, T) True at real positions, memory (B, S, C), memory_mask (B, S) -> (B, T, C).
    """

    def __init__(self, layers: int, dim: int, ffn_dim: int, heads: int, dropout: float, cross: bool,
                 skip: bool = False):
        super().__init__()
        make = nn.TransformerDecoderLayer if cross else nn.TransformerEncoderLayer
        self.layers = nn.ModuleList(
            make(dim, heads, ffn_dim, dropout, activation="relu", batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.cross = cross
        self.skip = skip

    def forward(self, x: torch.Tensor, x_mask: torch.Tensor, memory: Optional[torch.Tensor] = None,
                memory_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.cross and memory is None:
            raise ValueError("a cross-attention stack needs a memory")
        first = x
        for layer in self.layers:
            if self.cross:
                x = layer(x, memory, tgt_key_padding_mask=~x_mask, memory_key_padding_mask=~memory_mask)
            else:
                x = layer(x, src_key_padding_mask=~x_mask)
            if self.skip:
                x = (first + x) / math.sqrt(2.0)
        return self.norm(x)


class LengthTransform(nn.Module):
    """Maps (B, S, C) source-position vectors to (B, T, C) target-position vectors for target lengths L_y.

    Weight of source slot j for target slot i (0-based), with n = number of real source slots:

        w_ij = softmax_j( -(j - mu_i)^2 / (2 sigma^2) ),   mu_i = i * n / L_y

    Example: n = 4, L_y = 2 -> mu = [0, 2]: target slot 0 is centred on source slot 0, slot 1 on source slot 2; with
    sigma = 1 slot 1 takes 0.43 of slot 2, 0.26 of slots 1 and 3 and 0.06 of slot 0.
    """

    def __init__(self, init_sigma: float = 1.0):
        super().__init__()
        self.sigma = nn.Parameter(torch.tensor(float(init_sigma)))

    def weights(self, src_mask: torch.Tensor, tgt_lengths: torch.Tensor) -> torch.Tensor:
        """src_mask (B, S) True at real slots (right-padded), tgt_lengths (B,) >= 1 -> (B, T, S) rows summing to 1,
        T = max(tgt_lengths); rows of padded target slots are computed like the others (the caller masks them)."""
        n = src_mask.sum(1).to(self.sigma.dtype)  # (B,)
        width = int(tgt_lengths.max())
        i = torch.arange(width, device=src_mask.device, dtype=n.dtype)
        mu = i.unsqueeze(0) * n.unsqueeze(1) / tgt_lengths.to(n.dtype).clamp(min=1).unsqueeze(1)  # (B, T)
        j = torch.arange(src_mask.size(1), device=src_mask.device, dtype=n.dtype)
        logits = -(j.view(1, 1, -1) - mu.unsqueeze(2)).pow(2) / (2.0 * self.sigma.pow(2))
        logits = logits.masked_fill(~src_mask.unsqueeze(1), float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(self, z: torch.Tensor, src_mask: torch.Tensor,
                tgt_lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """z (B, S, C) -> (B, T, C) (zeros at padded target slots) and the (B, T) target mask (True at real)."""
        w = self.weights(src_mask, tgt_lengths).to(z.dtype)
        tgt_mask = torch.arange(w.size(1), device=z.device).unsqueeze(0) < tgt_lengths.unsqueeze(1)
        out = torch.bmm(w, z).masked_fill(~tgt_mask.unsqueeze(2), 0.0)
        return out, tgt_mask
