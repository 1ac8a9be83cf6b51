"""Conditional variational graph autoencoder for molecular conformations (CVGAE), thesis chapter 6 (Mansimov et
al. 2019), in the layout of the reference code (nyu-dl/dl4chem-geometry ``PredX_MPNN.py``).

A molecule is the complete graph over its n heavy atoms: node features v_i and pair features e_ij (bond type, same
ring, graph distance, ...; ``data/conformers.py``), plus the number of atoms as an extra channel on every pair (the
reference's ``edge_2``). With the shared node embedding e_i (``modules/edge_network_mpnn.py``):

* prior P(Z | G) (Eq. 6.9-6.11): MPNN from h^0 = e, readout -> mu^p_i, log sigma^2_p_i (one d_h-vector z_i per
  atom: d_z = d_h because z is added to the embedding);
* posterior Q(Z | G, X*) (Eq. 6.14): the same with its own weights and the reference distances ||x*_i - x*_j|| as
  one more pair channel;
* likelihood P(X | Z, G) (Eq. 6.12-6.13): MPNN from h^0_i = e_i + z_i, readout -> the mean mu_i in R^3 of atom i's
  coordinates (variance fixed to 1, no variance head, as in the code and §6.4.2.2).

Training decodes a posterior sample (criterion ``cvgae_loss``); generation (:meth:`sample_conformers`, the hook of
``iterref-generate-conformers``) decodes prior samples z ~ P(Z | G) and returns the means (no noise is added).
The three MPNNs have separate edge networks and GRUs; the edge networks depend on the graph only, so S samples of
one molecule share one evaluation of each.

Not in the default: the reference's iterative refinement of a prediction through the posterior (``refine_steps``,
0 in every published run) and its virtual node (off by default there) are not implemented.
"""
from typing import Dict, Optional

import torch
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture

from ..modules.edge_network_mpnn import MESSAGE_NORMS, EdgeNetworkMPNN, NodeEmbedding, Readout
from ..modules.gaussian import sample_diagonal_gaussian


def reference_distances(coords: torch.Tensor, node_mask: torch.Tensor) -> torch.Tensor:
    """coords (B, N, 3) -> (B, N, N) Euclidean distances between real atoms, zero on the diagonal and padding."""
    d = torch.linalg.vector_norm(coords.unsqueeze(2) - coords.unsqueeze(1), dim=-1)
    pair = node_mask.unsqueeze(2) & node_mask.unsqueeze(1)
    return d * pair.to(d.dtype)


@register_model("cvgae")
class CVGAEModel(BaseFairseqModel):
    def __init__(self, args, node_dim: int, pair_dim: int):
        super().__init__()
        self.args = args
        d, f = args.node_hidden_dim, args.readout_hidden_dim
        self.node_dim, self.pair_dim = node_dim, pair_dim
        mpnn = dict(d_h=d, steps=args.mpnn_steps, message_norm=args.message_norm, n_max=args.message_norm_atoms)
        self.embed = NodeEmbedding(node_dim, d)
        self.prior_mpnn = EdgeNetworkMPNN(pair_dim + 1, **mpnn)
        self.posterior_mpnn = EdgeNetworkMPNN(pair_dim + 2, **mpnn)
        self.likelihood_mpnn = EdgeNetworkMPNN(pair_dim + 1, **mpnn)
        self.prior_readout = Readout(2 * d, f, 2 * d, args.readout_dropout)
        self.posterior_readout = Readout(2 * d, f, 2 * d, args.readout_dropout)
        self.likelihood_readout = Readout(2 * d, f, 3, args.readout_dropout)

    @staticmethod
    def add_args(parser):
        parser.add_argument("--node-hidden-dim", type=int, metavar="D",
                            help="d_h: node states, edge-network matrices d_h x d_h, latent z_i (thesis QM9: 50)")
        parser.add_argument("--readout-hidden-dim", type=int, metavar="D",
                            help="d_f: hidden width of the readouts (thesis: 100)")
        parser.add_argument("--mpnn-steps", type=int, metavar="L",
                            help="message-passing steps, weights tied (thesis: 3 on QM9, 5 on COD / CSD)")
        parser.add_argument("--readout-dropout", type=float, metavar="P", help="dropout of the readouts (0.2)")
        parser.add_argument("--message-norm", choices=MESSAGE_NORMS,
                            help="message scale: n_max2 = 1 / n_max^2 (the reference code) or n_atoms = 1 / n")
        parser.add_argument("--message-norm-atoms", type=int, metavar="N",
                            help="n_max of --message-norm n_max2 (the reference: 9 on QM9, 50 on COD / CSD)")

    @classmethod
    def build_model(cls, args, task):
        cvgae_base(args)
        return cls(args, task.node_dim, task.pair_dim)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        w = state_dict.get("embed.fc1.weight")
        if w is not None and w.size(1) != self.node_dim:
            raise ValueError(f"node feature mismatch: the checkpoint reads {w.size(1)} atom features, the task builds "
                             f"{self.node_dim}; pass the --element-set the model was trained with")
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    def max_positions(self):
        return None

    # ------------------------------------------------------------------ pieces
    @staticmethod
    def edge_inputs(pairs: torch.Tensor, node_mask: torch.Tensor,
                    distances: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(B, N, N, pair_dim [+1]) pair features + the molecule's atom count on every entry (+ distances)."""
        n = node_mask.sum(-1).to(pairs.dtype).view(-1, 1, 1, 1).expand(*pairs.shape[:3], 1)
        parts = [pairs, n] + ([distances.unsqueeze(-1).to(pairs.dtype)] if distances is not None else [])
        return torch.cat(parts, dim=-1)

    @staticmethod
    def _gaussian(out: torch.Tensor):
        mu, logvar = out.chunk(2, dim=-1)
        return mu, logvar

    def prior(self, e: torch.Tensor, edges: torch.Tensor, node_mask: torch.Tensor):
        """P(Z | G): (mu, logvar), each (B, N, d_h), zero at padding."""
        h = self.prior_mpnn(e.unsqueeze(1), edges, node_mask)
        return self._gaussian(self.prior_readout(h, e, node_mask).squeeze(1))

    def posterior(self, e: torch.Tensor, edges_with_distances: torch.Tensor, node_mask: torch.Tensor):
        """Q(Z | G, X*): (mu, logvar), each (B, N, d_h), zero at padding."""
        h = self.posterior_mpnn(e.unsqueeze(1), edges_with_distances, node_mask)
        return self._gaussian(self.posterior_readout(h, e, node_mask).squeeze(1))

    def likelihood_mean(self, e: torch.Tensor, z: torch.Tensor, edges: torch.Tensor, node_mask: torch.Tensor,
                        edge_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        """P(X | Z, G): z (B, S, N, d_h) -> coordinate means (B, S, N, 3), zero at padding."""
        h = self.likelihood_mpnn(e.unsqueeze(1) + z, edges, node_mask, edge_weights)
        return self.likelihood_readout(h, e, node_mask)

    # ------------------------------------------------------------------ training and generation
    def forward(self, nodes: torch.Tensor, pairs: torch.Tensor, node_mask: torch.Tensor, coords: torch.Tensor,
                **unused) -> Dict[str, torch.Tensor]:
        """nodes (B, N, node_dim), pairs (B, N, N, pair_dim), node_mask (B, N) bool, coords (B, N, 3) reference.

        Returns prior_mu / prior_logvar / posterior_mu / posterior_logvar (B, N, d_h) and ``coords`` (B, N, 3): the
        likelihood mean for one posterior sample."""
        e = self.embed(nodes, node_mask)
        edges = self.edge_inputs(pairs, node_mask)
        post_edges = self.edge_inputs(pairs, node_mask, reference_distances(coords, node_mask))
        p_mu, p_logvar = self.prior(e, edges, node_mask)
        q_mu, q_logvar = self.posterior(e, post_edges, node_mask)
        keep = node_mask.unsqueeze(-1).to(e.dtype)
        z = sample_diagonal_gaussian(q_mu, q_logvar) * keep
        x = self.likelihood_mean(e, z.unsqueeze(1), edges, node_mask).squeeze(1)
        return {"prior_mu": p_mu, "prior_logvar": p_logvar, "posterior_mu": q_mu, "posterior_logvar": q_logvar,
                "coords": x}

    def sample_conformers(self, nodes: torch.Tensor, pairs: torch.Tensor, node_mask: torch.Tensor,
                          num_samples: int, temperature: float = 1.0,
                          generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Generation: ``num_samples`` draws z ~ P(Z | G) (scaled by ``temperature``, 1 in the thesis) per molecule,
        decoded to the likelihood mean. Returns (B, S, N, 3), zero at padding."""
        e = self.embed(nodes, node_mask)
        edges = self.edge_inputs(pairs, node_mask)
        p_mu, p_logvar = self.prior(e, edges, node_mask)
        S = num_samples
        mu = p_mu.unsqueeze(1).expand(-1, S, -1, -1)
        logvar = p_logvar.unsqueeze(1).expand(-1, S, -1, -1)
        z = sample_diagonal_gaussian(mu, logvar, temperature, generator)
        z = z * node_mask.unsqueeze(1).unsqueeze(-1).to(z.dtype)
        return self.likelihood_mean(e, z, edges, node_mask)


# ---------------------------------------------------------------------- architectures
@register_model_architecture("cvgae", "cvgae")
def cvgae_base(args):
    args.node_hidden_dim = getattr(args, "node_hidden_dim", None) or 50
    args.readout_hidden_dim = getattr(args, "readout_hidden_dim", None) or 100
    args.mpnn_steps = getattr(args, "mpnn_steps", None) or 3
    dropout = getattr(args, "readout_dropout", None)
    args.readout_dropout = 0.2 if dropout is None else dropout
    args.message_norm = getattr(args, "message_norm", None) or "n_max2"
    args.message_norm_atoms = getattr(args, "message_norm_atoms", None) or 9


@register_model_architecture("cvgae", "cvgae_tiny")
def cvgae_tiny(args):
    """CPU-sized: d_h 32, d_f 64, 3 steps; for tests and quick looks."""
    args.node_hidden_dim = getattr(args, "node_hidden_dim", None) or 32
    args.readout_hidden_dim = getattr(args, "readout_hidden_dim", None) or 64
    cvgae_base(args)


@register_model_architecture("cvgae", "cvgae_qm9")
def cvgae_qm9(args):
    """Thesis §6.4.2.2, QM9: d_h 50, d_f 100, 3 message-passing steps, n_max 9."""
    cvgae_base(args)


@register_model_architecture("cvgae", "cvgae_cod")
def cvgae_cod(args):
    """Thesis §6.4.2.2, COD / CSD: d_h 50, d_f 100, 5 message-passing steps, n_max 50."""
    args.mpnn_steps = getattr(args, "mpnn_steps", None) or 5
    args.message_norm_atoms = getattr(args, "message_norm_atoms", None) or 50
    cvgae_base(args)
