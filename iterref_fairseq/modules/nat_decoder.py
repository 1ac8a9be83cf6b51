"""Non-autoregressive Transformer decoder stack with positional attention and highway connections.

One layer = four sublayers, each ``x <- Highway(x, Dropout(Sublayer(LayerNorm(x))))``:
self-attention (no causal mask: every target position sees every other), positional attention
(Q = K = position encodings, V = states), encoder-decoder attention, position-wise feed-forward.
This is the decoder of Gu et al. (2017) with the additions of thesis §3.5. Deviation, deliberate: layer
normalization is applied before each sublayer (pre-norm) and once after the stack; the thesis uses the post-norm
Transformer. Pre-norm trains reliably without a long warm-up, which matters for the CPU-sized models.
"""
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from .highway import HighwayConnection
from .positional_attention import PositionalAttention


class NATDecoderLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        heads: int,
        dropout: float,
        attention_dropout: float = 0.0,
        positional_attention: bool = True,
        residual: bool = False,
        gate_bias: float = 0.0,
    ):
        super().__init__()
        self.dropout = dropout
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.pos_attn = PositionalAttention(dim, heads, attention_dropout) if positional_attention else None
        self.cross_attn = nn.MultiheadAttention(dim, heads, dropout=attention_dropout, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        n_sub = 4 if positional_attention else 3
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_sub)])
        self.connections = nn.ModuleList([HighwayConnection(dim, residual, gate_bias) for _ in range(n_sub)])

    def _sub(self, i: int, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.connections[i](x, F.dropout(f, self.dropout, self.training))

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor,
        positions: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_padding_mask: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """x (B, T, C); padding_mask (B, T) True at pads; positions (T, C); encoder_out (B, S, C)."""
        i = 0
        h = self.norms[i](x)
        x = self._sub(i, x, self.self_attn(h, h, h, key_padding_mask=padding_mask, need_weights=False)[0])
        if self.pos_attn is not None:
            i += 1
            x = self._sub(i, x, self.pos_attn(positions, self.norms[i](x), key_padding_mask=padding_mask))
        i += 1
        h = self.norms[i](x)
        attn = self.cross_attn(h, encoder_out, encoder_out, key_padding_mask=encoder_padding_mask, need_weights=False)
        x = self._sub(i, x, attn[0])
        i += 1
        x = self._sub(i, x, self.ffn(self.norms[i](x)))
        return x


class NATDecoderStack(nn.Module):
    """A stack of :class:`NATDecoderLayer` followed by a final LayerNorm.

    Input embeddings are built by the model (they differ between decoder 1 and decoder 2); this class only
    transforms them. Shapes: x (B, T, C) -> (B, T, C).
    """

    def __init__(
        self,
        layers: int,
        dim: int,
        ffn_dim: int,
        heads: int,
        dropout: float,
        attention_dropout: float = 0.0,
        positional_attention: bool = True,
        residual: bool = False,
        gate_bias: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                NATDecoderLayer(
                    dim, ffn_dim, heads, dropout, attention_dropout, positional_attention, residual, gate_bias
                )
                for _ in range(layers)
            ]
        )
        self.final_norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: torch.Tensor,
        padding_mask: torch.Tensor,
        positions: torch.Tensor,
        encoder_out: torch.Tensor,
        encoder_padding_mask: Optional[torch.Tensor],
    ) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, padding_mask, positions, encoder_out, encoder_padding_mask)
        return self.final_norm(x)
