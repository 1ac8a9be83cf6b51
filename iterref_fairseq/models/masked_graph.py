"""Masked graph model (MGM) for molecules, thesis chapter 5 (Mahmood, Cho et al. 2021).

p(eta | G \\ eta) = prod_v p(v | G \\ eta) prod_e p(e | G \\ eta)   (Eq. 5.1): every masked component is predicted
independently from one pass of a graph network over the partially masked graph.

* Embeddings (§5.4.2): each of the six node properties has its own embedding table with a MASK row; a node's
  embedding is the sum of its six property embeddings. Edges embed the bond type (none/single/double/triple/
  aromatic/MASK).
* MPNN (§5.3.1, ``modules/mpnn.py``): ``--mpnn-layers`` applications of one tied layer. Neighbours are pairs whose
  bond is MASK or not "no bond" (§5.4.3).
* Heads: one 2-layer MLP (ReLU) per node property on the final node states, and one on the final edge states for
  the bond type. Logits have no MASK entry, so the predicted distributions are over real categories only.

Hooks used by ``generators/graph_gibbs.py`` (the sampler never looks at the class): ``node_mask_values``,
``edge_mask_value``, ``log_conditionals``.
"""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from fairseq.models import BaseFairseqModel, register_model, register_model_architecture

from ..data.molecules import BOND_MASK, BOND_TYPES, NO_BOND, NODE_PROPERTIES, pair_mask
from ..hub import HubLoadable
from ..modules.mpnn import MLP2, TiedMPNN


@register_model("masked_graph_model")
class MaskedGraphModel(HubLoadable, BaseFairseqModel):  # HubLoadable: fairseq-style from_pretrained
    def __init__(self, args, node_vocab_sizes: List[int]):
        super().__init__()
        self.args = args
        d = args.graph_embed_dim
        hidden = args.graph_hidden_dim
        self.node_vocab_sizes = list(node_vocab_sizes)
        # +1 row per table: the MASK symbol (index = number of real categories)
        self.node_embeddings = nn.ModuleList([nn.Embedding(v + 1, d) for v in self.node_vocab_sizes])
        self.edge_embedding = nn.Embedding(len(BOND_TYPES) + 1, d)
        self.mpnn = TiedMPNN(d, args.mpnn_layers, hidden)
        self.node_heads = nn.ModuleList([MLP2(d, hidden, v) for v in self.node_vocab_sizes])
        self.edge_head = MLP2(d, hidden, len(BOND_TYPES))
        self.register_buffer("_node_mask_values", torch.tensor(self.node_vocab_sizes, dtype=torch.long),
                             persistent=False)

    @staticmethod
    def add_args(parser):
        parser.add_argument("--graph-embed-dim", type=int, metavar="D", help="d0: node/edge state size")
        parser.add_argument("--graph-hidden-dim", type=int, metavar="H",
                            help="hidden size of J_e and of the prediction heads (default: d0)")
        parser.add_argument("--mpnn-layers", type=int, metavar="L", help="message-passing steps (tied weights)")

    @classmethod
    def build_model(cls, args, task):
        masked_graph_model_base(args)
        return cls(args, task.vocab.sizes)

    def load_state_dict(self, state_dict, strict=True, model_cfg=None, args=None):
        for k, v in enumerate(self.node_vocab_sizes):
            name = f"node_embeddings.{k}.weight"
            if name in state_dict and state_dict[name].size(0) != v + 1:
                raise ValueError(
                    f"vocabulary mismatch for node property '{NODE_PROPERTIES[k]}': the checkpoint has "
                    f"{state_dict[name].size(0) - 1} categories, the data directory's vocab.json has {v}. Pass the "
                    "data directory the model was trained with (DATA)."
                )
        return super().load_state_dict(state_dict, strict=strict, model_cfg=model_cfg, args=args)

    def max_positions(self):
        return None

    # ------------------------------------------------------------------ generator hooks
    def node_mask_values(self) -> torch.Tensor:
        """(6,) long: the MASK index of each node property."""
        return self._node_mask_values

    @staticmethod
    def edge_mask_value() -> int:
        return BOND_MASK

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, node_mask: torch.Tensor, **unused) -> Dict:
        """nodes (B, N, 6) long (MASK allowed), edges (B, N, N) long, node_mask (B, N) bool.

        Returns {"node_logits": [ (B, N, V_k) for k in 6 properties ], "edge_logits": (B, N, N, 5)}."""
        h_v = sum(emb(nodes[..., k]) for k, emb in enumerate(self.node_embeddings))
        h_e = self.edge_embedding(edges)
        valid_pairs = pair_mask(node_mask)
        # neighbours (§5.4.3): an edge that is masked or whose bond type is not "no bond"
        adj = valid_pairs & (edges.eq(BOND_MASK) | edges.ne(NO_BOND))
        h_v = h_v * node_mask.unsqueeze(-1).to(h_v.dtype)
        h_v, h_e = self.mpnn(h_v, h_e, adj, node_mask)
        edge_logits = self.edge_head(h_e)
        # p(e_ij) = p(e_ji): the states are symmetric up to float error; averaging makes it exact
        edge_logits = 0.5 * (edge_logits + edge_logits.transpose(1, 2))
        return {"node_logits": [head(h_v) for head in self.node_heads], "edge_logits": edge_logits}

    def log_conditionals(self, nodes: torch.Tensor, edges: torch.Tensor,
                         node_mask: torch.Tensor) -> Tuple[List[torch.Tensor], torch.Tensor]:
        """log p(component | G \\ eta) for every node property and edge: ([(B, N, V_k)], (B, N, N, 5))."""
        out = self.forward(nodes, edges, node_mask)
        return ([F.log_softmax(x.float(), dim=-1) for x in out["node_logits"]],
                F.log_softmax(out["edge_logits"].float(), dim=-1))


# ---------------------------------------------------------------------- architectures
@register_model_architecture("masked_graph_model", "masked_graph_model")
def masked_graph_model_base(args):
    args.graph_embed_dim = getattr(args, "graph_embed_dim", None) or 2048
    args.graph_hidden_dim = getattr(args, "graph_hidden_dim", None) or args.graph_embed_dim
    args.mpnn_layers = getattr(args, "mpnn_layers", None) or 4


@register_model_architecture("masked_graph_model", "masked_graph_model_tiny")
def masked_graph_model_tiny(args):
    """CPU-sized: d0 = 128, 3 tied layers; trains on a QM9 subset in minutes on 2 cores."""
    args.graph_embed_dim = getattr(args, "graph_embed_dim", None) or 128
    args.mpnn_layers = getattr(args, "mpnn_layers", None) or 3
    masked_graph_model_base(args)


@register_model_architecture("masked_graph_model", "masked_graph_model_qm9")
def masked_graph_model_qm9(args):
    """Thesis §5.4.3, QM9: one 4-layer tied MPNN, d0 = 2048."""
    args.mpnn_layers = getattr(args, "mpnn_layers", None) or 4
    masked_graph_model_base(args)


@register_model_architecture("masked_graph_model", "masked_graph_model_chembl")
def masked_graph_model_chembl(args):
    """Thesis §5.4.3, ChEMBL (here also MOSES): one 6-layer tied MPNN, d0 = 2048."""
    args.mpnn_layers = getattr(args, "mpnn_layers", None) or 6
    masked_graph_model_base(args)
