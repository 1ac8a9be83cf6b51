"""Sinusoidal position encodings (Vaswani et al., 2017): the queries and keys of positional attention
(``modules/nat_attention.py``) and the position signal added to the NAT decoders' inputs."""
import math
import torch
import torch.nn as nn


def sinusoidal_table(num_positions: int, dim: int) -> torch.Tensor:
    """(num_positions, dim) table of Vaswani et al. encodings (sin on the first half, cos on the second)."""
    half = dim // 2
    scale = math.log(10000.0) / max(half - 1, 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float) * -scale)
    angles = torch.arange(num_positions, dtype=torch.float).unsqueeze(1) * freqs.unsqueeze(0)
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(num_positions, 1)], dim=1)
    return table


class SinusoidalPositions(nn.Module):
    """Returns position encodings for positions 0..T-1, growing its buffer when a longer input arrives."""

    def __init__(self, dim: int, init_size: int = 1024):
        super().__init__()
        self.dim = dim
        self.register_buffer("table", sinusoidal_table(init_size, dim), persistent=False)

    def forward(self, seq_len: int, dtype: torch.dtype = torch.float) -> torch.Tensor:
        """Returns (seq_len, dim)."""
        if seq_len > self.table.size(0):
            self.table = sinusoidal_table(seq_len, self.dim).to(self.table.device)
        return self.table[:seq_len].to(dtype)
