"""Highway connection (Srivastava et al., 2015) used in place of residual connections in the NAT decoders."""
import torch
import torch.nn as nn


class HighwayConnection(nn.Module):
    """y = g * f + (1 - g) * x with a learned transform gate g = sigmoid(W x + b).

    With ``residual=True`` it degrades to the residual connection y = x + f (thesis §3.5 uses highway; the
    residual form is kept as an option for ablations).

    Shapes: x, f: (..., C) -> (..., C).
    """

    def __init__(self, dim: int, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.gate = None if residual else nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return x + f
        g = torch.sigmoid(self.gate(x))
        return g * f + (1.0 - g) * x
