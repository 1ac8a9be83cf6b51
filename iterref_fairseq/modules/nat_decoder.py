"""Non-autoregressive Transformer decoder stack with positional attention and highway connections.

One layer = four sublayers: self-attention (no causal mask: every target position sees every other), positional
attention (Q = K = position encodings, V = states), encoder-decoder attention and the position-wise feed-forward
network. Each sublayer reads ``LayerNorm(x)`` and is joined to ``x`` by a connection (``connections``):

* ``highway-ffn`` (default; the reference code's ``--ffw_block highway``, used by every command of its README):
  residual ``x + f`` around the three attention sublayers, highway ``g f + (1 - g) x`` around the feed-forward one.
  "Highway layers instead of residual connections" in the thesis means this sublayer.
* ``highway``: every sublayer highway (this project's 0.2 models; an ablation). With gate bias 0 each sublayer
  passes half of its input, so an L-layer stack starts by carrying ~2^(-4L) of it: decoder 2 then begins as a
  second translator that nearly ignores the previous output instead of a near-identity refiner.
* ``residual``: every sublayer residual (an ablation).

Caching (``context``): the keys/values of encoder-decoder attention and the weights of positional attention do not
change from one pass to the next over the same batch. :meth:`NATDecoderStack.context` computes them once; every
pass (three training steps of decoder 2, up to idec decoding passes) reuses them (``modules/nat_attention.py``).

Deviation, deliberate: layer normalization is applied before each sublayer (pre-norm) and once after the stack;
the thesis uses the post-norm Transformer. Pre-norm trains reliably without a long warm-up, which matters for the
CPU-sized models.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .highway import HighwayConnection
from .nat_attention import PositionalAttention, SplitMultiheadAttention, key_keep_mask

CONNECTIONS = ("highway-ffn", "highway", "residual")


class DecoderContext(NamedTuple):
    """What every pass of one decoder stack over one batch shares. Built by :meth:`NATDecoderStack.context`.

    self_keep: (B, 1, 1, T) True at real target positions, or None (no padding).
    cross_keep: (B, 1, 1, S) True at real source positions, or None.
    pos_weights: per layer, positional-attention weights (B or 1, H, T, T), or None without positional attention.
    cross_kv: per layer, keys and values (B, H, S, D) of encoder-decoder attention.
    """

    self_keep: Optional[torch.Tensor]
    cross_keep: Optional[torch.Tensor]
    pos_weights: Tuple[Optional[torch.Tensor], ...]
    cross_kv: Tuple[Tuple[torch.Tensor, torch.Tensor], ...]

    def select(self, index: torch.Tensor) -> "DecoderContext":
        """The context of rows ``index`` (B',) of the batch."""

        def rows(t):
            return None if t is None else t.index_select(0, index)

        def rows_keep_shared(t):  # (1, H, T, T) weights (no padding) are shared by every row
            return t if t is None or t.size(0) == 1 else t.index_select(0, index)

        return DecoderContext(
            rows(self.self_keep), rows(self.cross_keep),
            tuple(rows_keep_shared(w) for w in self.pos_weights),
            tuple((k.index_select(0, index), v.index_select(0, index)) for k, v in self.cross_kv),
        )


class NATDecoderLayer(nn.Module):
    def __init__(
        self,
        dim: int,
        ffn_dim: int,
        heads: int,
        dropout: float,
        attention_dropout: float = 0.0,
        positional_attention: bool = True,
        connections: str = "highway-ffn",
        gate_bias: float = 0.0,
    ):
        super().__init__()
        if connections not in CONNECTIONS:
            raise ValueError(f"unknown decoder connections {connections!r}; choose one of {', '.join(CONNECTIONS)}")
        self.dropout = dropout
        self.self_attn = SplitMultiheadAttention(dim, heads, attention_dropout)
        self.pos_attn = PositionalAttention(dim, heads, attention_dropout) if positional_attention else None
        self.cross_attn = SplitMultiheadAttention(dim, heads, attention_dropout)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn_dim, dim))
        n_sub = 4 if positional_attention else 3
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(n_sub)])
        highway = [connections == "highway"] * (n_sub - 1) + [connections != "residual"]  # the last one is the FFN
        self.connections = nn.ModuleList([HighwayConnection(dim, not h, gate_bias) for h in highway])

    def _sub(self, i: int, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return self.connections[i](x, F.dropout(f, self.dropout, self.training))

    def forward(self, x: torch.Tensor, context: DecoderContext, layer: int) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C); ``context`` of this batch, ``layer`` this layer's index in it."""
        i = 0
        x = self._sub(i, x, self.self_attn.self_attention(self.norms[i](x), context.self_keep))
        if self.pos_attn is not None:
            i += 1
            x = self._sub(i, x, self.pos_attn.attend(context.pos_weights[layer], self.norms[i](x)))
        i += 1
        k, v = context.cross_kv[layer]
        x = self._sub(i, x, self.cross_attn.attend(self.cross_attn.project_q(self.norms[i](x)), k, v,
                                                   context.cross_keep))
        i += 1
        return self._sub(i, x, self.ffn(self.norms[i](x)))


class NATDecoderStack(nn.Module):
    """A stack of :class:`NATDecoderLayer` followed by a final LayerNorm.

    Input embeddings are built by the model (they differ between decoder 1 and decoder 2); this class only
    transforms them: ``stack(x, stack.context(...))`` maps x (B, T, C) to (B, T, C).
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
        connections: str = "highway-ffn",
        gate_bias: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [
                NATDecoderLayer(
                    dim, ffn_dim, heads, dropout, attention_dropout, positional_attention, connections, gate_bias
                )
                for _ in range(layers)
            ]
        )
        self.final_norm = nn.LayerNorm(dim)

    def context(
        self,
        positions: torch.Tensor,
        padding_mask: torch.Tensor,
        memories: Sequence[torch.Tensor],
        memory_padding_mask: Optional[torch.Tensor],
    ) -> DecoderContext:
        """What all passes over this batch share.

        positions (T, C) position encodings; padding_mask (B, T) True at target pads; memories: one (B, S, C)
        encoder output per layer (the same tensor repeated when every layer attends to the last encoder layer);
        memory_padding_mask (B, S) True at source pads, or None.
        """
        if len(memories) != len(self.layers):
            raise ValueError(f"{len(memories)} encoder memories for {len(self.layers)} decoder layers")
        self_keep = key_keep_mask(padding_mask)
        pos_weights: List[Optional[torch.Tensor]] = [
            None if layer.pos_attn is None else layer.pos_attn.weights(positions, self_keep) for layer in self.layers
        ]
        cross_kv = tuple(layer.cross_attn.project_kv(m) for layer, m in zip(self.layers, memories))
        return DecoderContext(self_keep, key_keep_mask(memory_padding_mask), tuple(pos_weights), cross_kv)

    def forward(self, x: torch.Tensor, context: DecoderContext) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x, context, i)
        return self.final_norm(x)
