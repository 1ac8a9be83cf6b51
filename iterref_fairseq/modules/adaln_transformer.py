"""Bidirectional Transformer blocks with adaptive LayerNorm time conditioning (DiT's adaLN-Zero).

Used by the FlexMDM generator: every block's LayerNorms are modulated by a shift / scale computed from a time
embedding c, and each residual branch is multiplied by a gate that starts at zero, so an untrained block is the
identity (Peebles & Xie 2023). Without a time embedding (the LFlexMDM auxiliary network reads only the clean
sequence) build the blocks with ``conditioned=False``: the modulations are then learned constants (a zero-initialised
parameter in place of the linear map of c) and ``c`` is None. (A constant c = 0 instead would leave the linear map's
weights, and c itself if learned, without gradient forever: silu(0) = 0 and the weights start at zero.)
"""
import math
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class TimeEmbedding(nn.Module):
    """t in [0, 1] (B,) -> (B, C): sinusoidal features of 1000 t followed by an MLP."""

    def __init__(self, dim: int, freq_dim: int = 128):
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        args = 1000.0 * t.float().unsqueeze(1) * freqs.unsqueeze(0)
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=1))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def init_modulation(module: nn.Module, dim: int, n: int, conditioned: bool) -> None:
    """Gives ``module`` its adaLN-Zero parameters for ``n`` vectors of size C: ``ada``, a zero-initialised linear
    map of c (conditioned), or ``ada_const``, ``n`` zero-initialised learned vectors (unconditioned; ``ada`` is
    None). Zero init: every gate starts at 0, so an untrained block is the identity."""
    if conditioned:
        module.ada = nn.Linear(dim, n * dim)
        nn.init.zeros_(module.ada.weight)
        nn.init.zeros_(module.ada.bias)
    else:
        module.ada = None
        module.ada_const = nn.Parameter(torch.zeros(n * dim))


def modulation(module: nn.Module, c: Optional[torch.Tensor], batch: int, n: int):
    """The ``n`` modulation vectors (each (B, C)) of a module set up by :func:`init_modulation`."""
    if module.ada is None:
        return module.ada_const.unsqueeze(0).expand(batch, -1).chunk(n, dim=1)
    if c is None:
        raise ValueError("this adaLN block is time-conditioned: pass c")
    return module.ada(F.silu(c)).chunk(n, dim=1)


class AdaLNBlock(nn.Module):
    """x (B, S, C), c (B, C) or None (unconditioned), key_padding_mask (B, S) True at pads -> (B, S, C)."""

    def __init__(self, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0, conditioned: bool = True):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"embedding dim {dim} must be divisible by the number of attention heads {heads}")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(ffn_dim, dim))
        init_modulation(self, dim, 6, conditioned)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor],
                key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        b, s, d = x.shape
        sh1, sc1, g1, sh2, sc2, g2 = modulation(self, c, b, 6)
        h = modulate(self.norm1(x), sh1, sc1)
        q, k, v = self.qkv(h).view(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        mask = None if key_padding_mask is None else (~key_padding_mask)[:, None, None, :]
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        att = self.proj(att.transpose(1, 2).reshape(b, s, d))
        x = x + g1.unsqueeze(1) * F.dropout(att, self.dropout, self.training)
        h = self.ffn(modulate(self.norm2(x), sh2, sc2))
        return x + g2.unsqueeze(1) * F.dropout(h, self.dropout, self.training)


class AdaLNStack(nn.Module):
    """N blocks + a final modulated LayerNorm."""

    def __init__(self, layers: int, dim: int, heads: int, ffn_dim: int, dropout: float = 0.0,
                 conditioned: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(AdaLNBlock(dim, heads, ffn_dim, dropout, conditioned) for _ in range(layers))
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        init_modulation(self, dim, 2, conditioned)

    def forward(self, x: torch.Tensor, c: Optional[torch.Tensor],
                key_padding_mask: Optional[torch.Tensor]) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, c, key_padding_mask)
        shift, scale = modulation(self, c, x.size(0), 2)
        return modulate(self.norm(x), shift, scale)
