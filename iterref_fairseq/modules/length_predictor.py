"""Target-length prediction as classification of (target length - source length) (thesis §3.6).

Input: the hidden states of all encoder layers summed, mean-pooled over real source positions, with the gradient
stopped so that length prediction never changes the encoder ("We however do not tune the encoder's parameters
for target length prediction").
"""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class LengthOffsetPredictor(nn.Module):
    """Softmax over offsets in [-max_offset, max_offset].

    Shapes: layer_states: list of (T_src, B, C); src_padding_mask (B, T_src) True at pads -> logits (B, 2M+1).
    """

    def __init__(self, dim: int, max_offset: int):
        super().__init__()
        self.max_offset = max_offset
        self.proj = nn.Linear(dim, 2 * max_offset + 1)

    def forward(self, layer_states: List[torch.Tensor], src_padding_mask: torch.Tensor) -> torch.Tensor:
        summed = torch.stack(layer_states, 0).sum(0).detach().transpose(0, 1)  # (B, T, C)
        keep = (~src_padding_mask).unsqueeze(-1).type_as(summed)
        pooled = (summed * keep).sum(1) / keep.sum(1).clamp(min=1.0)
        return self.proj(pooled)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Offset logits (B, 2M+1) from an already pooled (B, C) summary (models that pool their own input)."""
        return self.proj(pooled)

    def offset_targets(self, tgt_lengths: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
        """Class index of (tgt - src), clamped into the representable range. Shapes: (B,) -> (B,)."""
        offset = (tgt_lengths - src_lengths).clamp(-self.max_offset, self.max_offset)
        return offset + self.max_offset

    def loss(self, logits: torch.Tensor, tgt_lengths: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the true (clamped) offset."""
        return F.cross_entropy(logits.float(), self.offset_targets(tgt_lengths, src_lengths))

    def topk_lengths(
        self, logits: torch.Tensor, src_lengths: torch.Tensor, k: int, max_length: int
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The k most likely target lengths, clamped to [1, max_length]. Returns lengths (B, k), log-probs (B, k)."""
        logp = F.log_softmax(logits.float(), dim=-1)
        k = min(k, logp.size(-1))
        scores, idx = logp.topk(k, dim=-1)
        lengths = (src_lengths.unsqueeze(1) + idx - self.max_offset).clamp(1, max_length)
        return lengths, scores
