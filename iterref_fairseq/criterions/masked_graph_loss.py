"""Loss of the masked graph model (thesis §5.3.2, §5.4.3).

For each training graph G a masking rate alpha ~ U(0, ``--max-mask-rate``) (0.2 in the thesis) is drawn; every
node property of every atom and every unordered atom pair (bond type, "no bond" included) is replaced by MASK
independently with probability alpha. The loss is the cross-entropy -log p(eta | G \\ eta) summed over the masked
components eta (Eq. 5.1 factorizes it), and ``sample_size`` is the number of masked components, so fairseq
optimizes the mean per masked component. Validation uses alpha = ``--valid-mask-rate`` (0.1) for every graph, so
checkpoints are compared at one fixed corruption level.

Logged (in nats per masked component): ``loss``, ``node_loss`` and ``edge_loss``, plus ``edge_acc`` and
``atom_acc`` (argmax accuracy on masked bonds / masked atom types).
"""
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from ..data.molecules import apply_masks, sample_component_masks


@dataclass
class MaskedGraphLossConfig(FairseqDataclass):
    max_mask_rate: float = field(default=0.2, metadata={"help": "training alpha ~ U(0, this) per graph"})
    valid_mask_rate: float = field(default=0.1, metadata={"help": "alpha used for every validation graph"})


@register_criterion("masked_graph_loss", dataclass=MaskedGraphLossConfig)
class MaskedGraphLoss(FairseqCriterion):
    def __init__(self, task, max_mask_rate, valid_mask_rate):
        super().__init__(task)
        for name, v in (("--max-mask-rate", max_mask_rate), ("--valid-mask-rate", valid_mask_rate)):
            if not 0.0 < v <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {v}")
        self.max_mask_rate = max_mask_rate
        self.valid_mask_rate = valid_mask_rate

    def forward(self, model, sample, reduce=True):
        net = sample["net_input"]
        nodes, edges, node_mask = net["nodes"], net["edges"], net["node_mask"]
        B = nodes.size(0)
        if model.training:
            alpha = torch.rand(B, device=nodes.device) * self.max_mask_rate
        else:
            alpha = torch.full((B,), self.valid_mask_rate, device=nodes.device)
        node_sel, edge_sel = sample_component_masks(node_mask, alpha)
        masked_nodes, masked_edges = apply_masks(nodes, edges, node_sel, edge_sel, model.node_mask_values())
        out = model(masked_nodes, masked_edges, node_mask)

        node_loss = nodes.new_zeros((), dtype=torch.float)
        n_node = 0
        for k, logits in enumerate(out["node_logits"]):
            sel = node_sel[..., k]
            node_loss = node_loss + F.cross_entropy(logits[sel].float(), nodes[..., k][sel], reduction="sum")
            n_node += int(sel.sum())
        atom_sel = node_sel[..., 0]
        atom_correct = int((out["node_logits"][0][atom_sel].argmax(-1) == nodes[..., 0][atom_sel]).sum())
        # each bond is one component: count the upper triangle only
        upper = torch.triu(edge_sel, diagonal=1)
        edge_logits = out["edge_logits"][upper].float()
        edge_loss = F.cross_entropy(edge_logits, edges[upper], reduction="sum")
        n_edge = int(upper.sum())
        edge_correct = int((edge_logits.argmax(-1) == edges[upper]).sum())
        loss = node_loss + edge_loss
        if n_node + n_edge == 0:  # nothing masked (alpha ~ 0 on a tiny batch): keep the graph, zero gradient
            loss = loss + 0.0 * out["edge_logits"].sum()
        sample_size = max(n_node + n_edge, 1)
        logging_output = {
            "loss": loss.detach().item(),
            "node_loss": node_loss.detach().item(),
            "edge_loss": edge_loss.detach().item(),
            "n_node": n_node,
            "n_edge": n_edge,
            "n_atom": int(atom_sel.sum()),
            "atom_correct": atom_correct,
            "edge_correct": edge_correct,
            "ntokens": sample["ntokens"],
            "nsentences": B,
            "sample_size": sample_size,
        }
        return loss, sample_size, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        size = total("sample_size")
        if size == 0:
            return
        metrics.log_scalar("loss", total("loss") / size, size, round=4)
        metrics.log_scalar("node_loss", total("node_loss") / max(total("n_node"), 1), total("n_node"), round=4)
        metrics.log_scalar("edge_loss", total("edge_loss") / max(total("n_edge"), 1), total("n_edge"), round=4)
        metrics.log_scalar("atom_acc", total("atom_correct") / max(total("n_atom"), 1), total("n_atom"), round=4)
        metrics.log_scalar("edge_acc", total("edge_correct") / max(total("n_edge"), 1), total("n_edge"), round=4)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
