"""Message passing with edge networks and GRU updates on the complete graph of a molecule (thesis §6.3.1), in the
layout of the reference code (nyu-dl/dl4chem-geometry ``PredX_MPNN.py``), which the published numbers come from.

Blocks (all dense layers Glorot-uniform with zero bias, TensorFlow's defaults there):

* :class:`NodeEmbedding`: e_i = tanh(W2 sigmoid(W1 v_i + b1) + b2), width d_h. The thesis (Eq. 6.9) writes a linear
  map; the code has these two layers, and one embedding is shared by the prior, posterior and likelihood.
* :class:`EdgeNetwork`: A_ij = reshape(tanh(W4 sigmoid(W3 e_ij + b3) + b4), d_h x d_h), hidden width 2 d_h.
  Computed once per graph; the L steps reuse it (edges are not updated). The pair features are symmetric
  (e_ij = e_ji: bond type, ring membership, graph distance, atom count, reference distance), so A_ij = A_ji and the
  network runs on the N (N + 1) / 2 pairs i <= j only (45 of 81 on QM9), then the result is copied to both
  halves; asymmetric inputs are checked for and evaluated in full. The edge networks dominate an update (d_h^2
  outputs per pair); ``examples/cvgae/benchmark_update.py`` times the effect. Parameter gradients equal the full
  evaluation's; a gradient with respect to the edge features themselves (none requires one here) would arrive
  summed on the i <= j entries.
* :class:`EdgeNetworkMPNN`: L steps of

      m_j = s * sum_i A_ij h_i          (i runs over all atoms, j itself included)
      h_j <- GRU(input m_j, state h_j)  (then padding rows are zeroed)

  with one edge network and one GRU tied over the steps. The reference's scale is s = 1 / n_max^2 (a mean over the
  n_max padded slots followed by another division by n_max; 81 for QM9's n_max = 9): ``message_norm="n_max2"``.
  ``"n_atoms"`` uses s = 1 / n (the mean over the molecule's atoms) instead.
* :class:`Readout`: out_i = W6 drop(sigmoid(W5 drop([h_i^L ; e_i]) + b5)) + b6, hidden width d_f, dropout 0.2 (the
  reference's rate), padding rows zeroed.

Shapes: a batch has B graphs of (up to) N atoms; node states may carry a sample axis S, (B, S, N, d), so that S
samples of one molecule share one edge-network evaluation (A does not depend on the sample).

The GRU is PyTorch's ``GRUCell`` (the reset gate applies after the hidden-state linear map; TensorFlow's applies
before it) with the update / reset gate biases initialised to 1 as in TensorFlow 1's ``GRUCell``.
"""
from typing import Optional

import torch
import torch.nn as nn

MESSAGE_NORMS = ("n_max2", "n_atoms")


def glorot_linear(d_in: int, d_out: int) -> nn.Linear:
    layer = nn.Linear(d_in, d_out)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class NodeEmbedding(nn.Module):
    def __init__(self, d_in: int, d_h: int):
        super().__init__()
        self.fc1 = glorot_linear(d_in, d_h)
        self.fc2 = glorot_linear(d_h, d_h)

    def forward(self, v: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """v (B, N, d_in), node_mask (B, N) bool -> e (B, N, d_h), zero at padding."""
        e = torch.tanh(self.fc2(torch.sigmoid(self.fc1(v))))
        return e * node_mask.unsqueeze(-1).to(e.dtype)


class EdgeNetwork(nn.Module):
    def __init__(self, d_edge: int, d_h: int):
        super().__init__()
        self.d_h = d_h
        self.fc1 = glorot_linear(d_edge, 2 * d_h)
        self.fc2 = glorot_linear(2 * d_h, d_h * d_h)
        self.use_symmetry = True  # False: always evaluate every pair (examples/cvgae/benchmark_update.py's baseline)

    def net(self, edges: torch.Tensor) -> torch.Tensor:
        """(..., d_edge) -> (..., d_h * d_h)."""
        return torch.tanh(self.fc2(torch.sigmoid(self.fc1(edges))))

    def forward(self, edges: torch.Tensor) -> torch.Tensor:
        """edges (B, N, N, d_edge) -> A (B, N, N, d_h, d_h), A[b, i, j] maps h_i (input) to a message for j."""
        B, N = edges.shape[:2]
        if not self.use_symmetry or N < 2 or not torch.equal(edges, edges.transpose(1, 2)):
            return self.net(edges).view(B, N, N, self.d_h, self.d_h)
        rows, cols = torch.triu_indices(N, N, device=edges.device)  # the P = N (N + 1) / 2 pairs i <= j
        upper = self.net(edges[:, rows, cols])  # (B, P, d_h^2)
        # slot (i, j) of the full matrix reads pair (min(i, j), max(i, j)) of the upper list
        slot = torch.empty(N, N, dtype=torch.long, device=edges.device)
        slot[rows, cols] = torch.arange(rows.numel(), device=edges.device)
        slot[cols, rows] = slot[rows, cols]
        return upper[:, slot.view(-1)].view(B, N, N, self.d_h, self.d_h)


class EdgeNetworkMPNN(nn.Module):
    def __init__(self, d_edge: int, d_h: int, steps: int, message_norm: str = "n_max2", n_max: int = 9):
        super().__init__()
        if message_norm not in MESSAGE_NORMS:
            raise ValueError(f"unknown message norm {message_norm!r}; choose one of {', '.join(MESSAGE_NORMS)}")
        if steps < 1 or n_max < 1:
            raise ValueError(f"message-passing steps and n_max must be >= 1, got {steps} and {n_max}")
        self.edge_net = EdgeNetwork(d_edge, d_h)
        self.gru = nn.GRUCell(d_h, d_h)
        for w in (self.gru.weight_ih, self.gru.weight_hh):
            for chunk in w.data.chunk(3, 0):
                nn.init.xavier_uniform_(chunk)
        nn.init.zeros_(self.gru.bias_hh)
        nn.init.zeros_(self.gru.bias_ih)
        self.gru.bias_ih.data[: 2 * d_h] = 1.0  # reset and update gates start open, as in TensorFlow 1
        self.steps, self.message_norm, self.n_max = steps, message_norm, n_max
        # "auto": elementwise products for one sample per molecule (training), a batched matmul for several
        # (generation); "bmm": always the matmul (examples/cvgae/benchmark_update.py's baseline)
        self.message_kernel = "auto"

    def scale(self, node_mask: torch.Tensor) -> torch.Tensor:
        """(B, 1, 1, 1) factor s of the messages."""
        if self.message_norm == "n_max2":
            s = torch.full((node_mask.size(0),), 1.0 / self.n_max ** 2, device=node_mask.device)
        else:
            s = 1.0 / node_mask.sum(-1).clamp(min=1).float()
        return s.view(-1, 1, 1, 1)

    def forward(self, h: torch.Tensor, edges: torch.Tensor, node_mask: torch.Tensor,
                edge_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """h (B, S, N, d_h) initial states, edges (B, N, N, d_edge), node_mask (B, N) bool -> h^L (B, S, N, d_h).

        ``edge_weights`` (the edge network's A for these edges) may be passed when it is already computed."""
        a = self.edge_net(edges) if edge_weights is None else edge_weights
        s = self.scale(node_mask).to(h.dtype)
        keep = node_mask.unsqueeze(1).unsqueeze(-1).to(h.dtype)
        B, S, N, d = h.shape
        a_rows = a.reshape(B * N, N * d, d)  # row i of the batch: [A_i1; ...; A_iN], a view (no copy)
        elementwise = S == 1 and self.message_kernel == "auto" and h.device.type == "cpu"
        for _ in range(self.steps):
            # m_j = s sum_i A_ij h_i: per (b, i) the products A_ij h_i for all j, then the sum over i. With S = 1
            # (training) each product is a matrix-vector product, for which a batched matmul on CPU is slow, above
            # all in the backward pass (outer products with inner size 1), so broadcasting and a sum is used there
            # (timed by examples/cvgae/benchmark_update.py). With S samples (generation) the matmul has inner size
            # S; on GPUs it is kept (not timed there).
            if elementwise:
                per_i = (a_rows * h.reshape(B * N, 1, d)).sum(-1).view(B, N, N, d, 1)
            else:
                per_i = torch.bmm(a_rows, h.permute(0, 2, 3, 1).reshape(B * N, d, S)).view(B, N, N, d, S)
            m = per_i.sum(1).permute(0, 3, 1, 2) * s
            h = self.gru(m.reshape(-1, d), h.reshape(-1, d)).view(B, S, N, d) * keep
        return h


class Readout(nn.Module):
    def __init__(self, d_in: int, d_f: int, d_out: int, dropout: float = 0.2):
        super().__init__()
        self.fc1 = glorot_linear(d_in, d_f)
        self.fc2 = glorot_linear(d_f, d_out)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, e: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
        """h (B, S, N, d_h) final states, e (B, N, d_h) node embeddings -> (B, S, N, d_out), zero at padding."""
        x = torch.cat([h, e.unsqueeze(1).expand(-1, h.size(1), -1, -1)], dim=-1)
        out = self.fc2(self.dropout(torch.sigmoid(self.fc1(self.dropout(x)))))
        return out * node_mask.unsqueeze(1).unsqueeze(-1).to(out.dtype)
