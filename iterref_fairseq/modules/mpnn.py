"""Message passing over dense molecular graphs with node and edge states (thesis §5.3.1).

One layer (parameters tied over the L layers of :class:`TiedMPNN`), for node i with neighbours N(i):

    u_i   = sum_{j in N(i)} h_{e_ij} * h_{v_j}  +  sum_{j in N(i)} h_{v_j}        (J_v + spatial residual R)
    h_i'  = LayerNorm(GRU(h_i, u_i))
    h_eij'= J_e(h_i + h_j)                                                          (2-layer MLP, ReLU)

Both updates read the layer-(l-1) states. The graph is dense: states are (B, N, d) and (B, N, N, d), and the
neighbourhood is an adjacency mask (B, N, N). Because h_i + h_j is symmetric and the initial edge embeddings are
symmetric, edge states stay symmetric. The layer is permutation equivariant: permuting atoms permutes outputs.
"""
from typing import Tuple

import torch
import torch.nn as nn


class MLP2(nn.Module):
    """Linear -> ReLU -> Linear (J_e and the property heads)."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.fc1 = nn.Linear(d_in, d_hidden)
        self.fc2 = nn.Linear(d_hidden, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class MPNNLayer(nn.Module):
    def __init__(self, dim: int, edge_hidden: int):
        super().__init__()
        self.gru = nn.GRUCell(dim, dim)
        self.norm = nn.LayerNorm(dim)
        self.edge_mlp = MLP2(dim, edge_hidden, dim)

    def forward(self, h_v: torch.Tensor, h_e: torch.Tensor, adj: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """h_v: (B, N, d); h_e: (B, N, N, d); adj: (B, N, N) bool neighbourhood. Returns the new (h_v, h_e)."""
        a = adj.to(h_v.dtype)
        # u_i = sum_j a_ij (h_eij * h_vj) + sum_j a_ij h_vj
        u = torch.einsum("bij,bijd,bjd->bid", a, h_e, h_v) + torch.einsum("bij,bjd->bid", a, h_v)
        B, N, d = h_v.shape
        new_v = self.norm(self.gru(u.reshape(B * N, d), h_v.reshape(B * N, d))).view(B, N, d)
        new_e = self.edge_mlp(h_v.unsqueeze(2) + h_v.unsqueeze(1))
        return new_v, new_e


class TiedMPNN(nn.Module):
    """``num_layers`` applications of one :class:`MPNNLayer` (shared parameters)."""

    def __init__(self, dim: int, num_layers: int, edge_hidden: int):
        super().__init__()
        self.layer = MPNNLayer(dim, edge_hidden)
        self.num_layers = num_layers

    def forward(self, h_v: torch.Tensor, h_e: torch.Tensor, adj: torch.Tensor,
                node_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """node_mask (B, N) bool: padded nodes are kept at zero so they never leak into real ones."""
        keep_v = node_mask.unsqueeze(-1).to(h_v.dtype)
        for _ in range(self.num_layers):
            h_v, h_e = self.layer(h_v, h_e, adj)
            h_v = h_v * keep_v
        return h_v, h_e
