"""Highway connection (Srivastava et al., 2015) used in place of residual connections in the NAT decoders."""
import torch
import torch.nn as nn


class HighwayConnection(nn.Module):
    """y = g * f + (1 - g) * x with a learned transform gate g = sigmoid(W x + b).

    The gate bias starts at ``gate_bias`` (default 0, g ~ 0.5 as in the reference code). A negative bias (e.g. -2,
    g ~ 0.12) makes each sublayer start by mostly carrying its input, as Srivastava et al. recommend for deep
    highway stacks: with g ~ 0.5 a decoder of L layers x 4 sublayers passes only ~2^(-4L) of its input straight
    through at initialization. (Trained gates of the demo model carry strongly anyway, g ~ 0.01-0.4.)

    With ``residual=True`` it degrades to the residual connection y = x + f (thesis §3.5 uses highway; the
    residual form is kept as an option for ablations).

    Shapes: x, f: (..., C) -> (..., C).
    """

    def __init__(self, dim: int, residual: bool = False, gate_bias: float = 0.0):
        super().__init__()
        self.residual = residual
        self.gate = None if residual else nn.Linear(dim, dim)
        if self.gate is not None:
            nn.init.constant_(self.gate.bias, gate_bias)

    def forward(self, x: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return x + f
        g = torch.sigmoid(self.gate(x))
        return g * f + (1.0 - g) * x
