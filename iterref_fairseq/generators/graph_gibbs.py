"""Gibbs-like sampler for masked graph models (thesis §5.3.3).

Starting from an initial batch of graphs, each of T steps

1. chooses components to resample: exactly a fraction alpha (the mask rate) of the graph's components (node
   properties of every atom, unordered atom pairs), uniformly without replacement, as §5.3.3 describes
   (``selection="fraction"``); ``selection="bernoulli"`` instead picks each component independently with
   probability alpha, the way training masks (§5.4.3; the number masked then varies from step to step),
2. replaces them by MASK and computes p(eta | G \\ eta) with one model pass (Eq. 5.1),
3. samples new values for the chosen components (or takes the argmax from step ``argmax_after`` on), and
4. writes them back into the graph.

Two initializations: ``training`` (graphs drawn from the training set) and ``marginal`` (a size drawn from the
training size distribution, then every node property and every pair's bond type drawn independently from its
training-set frequency).

The sampler only uses the model hooks ``node_mask_values()``, ``edge_mask_value()`` and
``log_conditionals(nodes, edges, node_mask)``; it does not know the model class.
"""
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..data.molecules import (NODE_PROPERTIES, apply_masks, collate_graphs, pair_mask, sample_component_fraction,
                              sample_component_masks)


def sample_categorical(logp: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One draw per row of (..., V) log-probabilities by inverting the CDF (seeded through ``generator``)."""
    probs = logp.exp()
    cdf = probs.cumsum(-1)
    u = torch.rand(probs.shape[:-1] + (1,), generator=generator, device=probs.device) * cdf[..., -1:]
    return (cdf < u).sum(-1).clamp(max=probs.size(-1) - 1)


def marginal_init(marginals: Dict, batch_size: int, generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """Graphs drawn from the per-component training marginals (``MolGraphTask.graph_marginals``).

    Returns the padded batch of :func:`collate_graphs` (nodes (B, N, 6), edges (B, N, N), node_mask (B, N))."""
    size_p = torch.as_tensor(marginals["num_atoms"], dtype=torch.float)
    sizes = torch.multinomial(size_p, batch_size, replacement=True, generator=generator).clamp(min=1)
    B, N = batch_size, int(sizes.max())
    node_mask = torch.arange(N).unsqueeze(0) < sizes.unsqueeze(1)
    cols = []
    for p in marginals["nodes"]:
        p = torch.as_tensor(p, dtype=torch.float)
        cols.append(torch.multinomial(p, B * N, replacement=True, generator=generator).view(B, N))
    nodes = torch.stack(cols, -1) * node_mask.unsqueeze(-1)
    edge_p = torch.as_tensor(marginals["edges"], dtype=torch.float)
    e = torch.multinomial(edge_p, B * N * N, replacement=True, generator=generator).view(B, N, N)
    e = torch.triu(e, diagonal=1)
    edges = (e + e.transpose(1, 2)) * pair_mask(node_mask)
    return {"nodes": nodes, "edges": edges, "node_mask": node_mask}


def training_init(graphs: Sequence[Tuple[np.ndarray, np.ndarray]]) -> Dict[str, torch.Tensor]:
    """Batch of training graphs (the caller picks them with its seeded RNG)."""
    b = collate_graphs(graphs)
    return {"nodes": b["nodes"], "edges": b["edges"], "node_mask": b["node_mask"]}


SELECTION = ("fraction", "bernoulli")


class GraphGibbsSampler:
    def __init__(self, model, mask_rate: float, steps: int, argmax_after: Optional[int] = None,
                 generator: Optional[torch.Generator] = None, selection: str = "fraction"):
        if not 0.0 < mask_rate <= 1.0:
            raise ValueError(f"mask rate must be in (0, 1], got {mask_rate}")
        if selection not in SELECTION:
            raise ValueError(f"mask selection must be one of {', '.join(SELECTION)}, got {selection!r}")
        self.selection = selection
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self.model = model
        self.mask_rate = mask_rate
        self.steps = steps
        self.argmax_after = argmax_after
        self.generator = generator

    @torch.no_grad()
    def step(self, nodes: torch.Tensor, edges: torch.Tensor, node_mask: torch.Tensor,
             greedy: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
        """One mask-predict-sample-replace step; returns new (nodes (B, N, 6), edges (B, N, N))."""
        B = nodes.size(0)
        if self.selection == "fraction":
            node_sel, edge_sel = sample_component_fraction(node_mask, self.mask_rate, self.generator)
        else:
            alpha = torch.full((B,), self.mask_rate, device=nodes.device)
            node_sel, edge_sel = sample_component_masks(node_mask, alpha, self.generator)
        masked_nodes, masked_edges = apply_masks(nodes, edges, node_sel, edge_sel,
                                                 self.model.node_mask_values().to(nodes.device))
        node_logp, edge_logp = self.model.log_conditionals(masked_nodes, masked_edges, node_mask)
        new_nodes = nodes.clone()
        for k in range(len(NODE_PROPERTIES)):
            draw = node_logp[k].argmax(-1) if greedy else sample_categorical(node_logp[k], self.generator)
            new_nodes[..., k] = torch.where(node_sel[..., k], draw, nodes[..., k])
        draw = edge_logp.argmax(-1) if greedy else sample_categorical(edge_logp, self.generator)
        draw = torch.triu(draw, diagonal=1)
        draw = draw + draw.transpose(1, 2)  # one value per unordered pair (edge_sel is symmetric)
        new_edges = torch.where(edge_sel, draw, edges)
        return new_nodes, new_edges

    @torch.no_grad()
    def run(self, batch: Dict[str, torch.Tensor],
            on_step: Optional[Callable[[int, torch.Tensor, torch.Tensor], None]] = None,
            progress: Optional[Callable[[], None]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """Runs ``steps`` steps from ``batch``; ``on_step(t, nodes, edges)`` is called for t = 0 (the initial
        graphs) and after every step t = 1..T. Returns the final (nodes, edges)."""
        nodes, edges, node_mask = batch["nodes"], batch["edges"], batch["node_mask"]
        if on_step is not None:
            on_step(0, nodes, edges)
        for t in range(1, self.steps + 1):
            greedy = self.argmax_after is not None and t > self.argmax_after
            nodes, edges = self.step(nodes, edges, node_mask, greedy=greedy)
            if on_step is not None:
                on_step(t, nodes, edges)
            if progress is not None:
                progress()
        return nodes, edges


def graphs_to_smiles(nodes: torch.Tensor, edges: torch.Tensor, node_mask: torch.Tensor,
                     vocab) -> List[Tuple[str, bool]]:
    """Batch -> [(SMILES, valid)] (see :func:`iterref_fairseq.data.molecules.graph_to_smiles`)."""
    from ..data.molecules import graph_to_smiles

    nodes, edges, sizes = nodes.cpu().numpy(), edges.cpu().numpy(), node_mask.sum(1).cpu().tolist()
    return [graph_to_smiles(nodes[b, :n], edges[b, :n, :n], vocab) for b, n in enumerate(sizes)]


def sample_molecules(model, vocab, train_graphs: Sequence, marginals: Optional[Dict], num_samples: int,
                     init: str = "train", mask_rate: float = 0.1, steps: int = 400,
                     argmax_after_step: Optional[int] = None, batch_size: int = 500, seed: int = 1,
                     device: Optional[torch.device] = None, trajectory_every: int = 0,
                     progress: Optional[Callable[[], None]] = None, selection: str = "fraction"
                     ) -> Tuple[List[Tuple[str, bool]], Dict[int, List[str]]]:
    """``num_samples`` molecules from a masked graph model, ``batch_size`` chains in parallel (thesis §5.3.3).

    train_graphs: indexable training set of {"nodes", "bonds"} items (the start graphs of ``init="train"``, drawn
    with replacement only if ``num_samples`` exceeds it); marginals: ``MolGraphTask.graph_marginals`` (only for
    ``init="marginal"``). Everything random is drawn from generators seeded with ``seed``, so the same arguments
    give the same molecules. ``progress`` is called after every sampling step of every batch; ``selection``: see
    :class:`GraphGibbsSampler` ("fraction", the thesis, or "bernoulli").

    Returns ``[(SMILES, valid)]`` (invalid graphs as ``INVALID_SMILES``) and, with ``trajectory_every`` = K > 0,
    the SMILES of every chain at steps 0, K, 2K, ... and T: ``{step: [SMILES, ...]}`` (empty otherwise).
    """
    if init not in ("train", "marginal"):
        raise ValueError(f"init must be 'train' or 'marginal', got {init!r}")
    if init == "marginal" and marginals is None:
        raise ValueError("init='marginal' needs the training marginals (MolGraphTask.graph_marginals)")
    device = device or next(model.parameters()).device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    cpu_gen = torch.Generator()
    cpu_gen.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sampler = GraphGibbsSampler(model, mask_rate, steps, argmax_after_step, gen, selection)
    starts = rng.choice(len(train_graphs), size=num_samples, replace=num_samples > len(train_graphs)) \
        if init == "train" else None
    record = (set(range(0, steps + 1, trajectory_every)) | {steps}) if trajectory_every else set()
    trajectory: Dict[int, List[str]] = {t: [] for t in sorted(record)}
    results: List[Tuple[str, bool]] = []
    for lo in range(0, num_samples, batch_size):
        hi = min(num_samples, lo + batch_size)
        if init == "train":
            batch = training_init([(train_graphs[int(i)]["nodes"], train_graphs[int(i)]["bonds"])
                                   for i in starts[lo:hi]])
        else:
            batch = marginal_init(marginals, hi - lo, cpu_gen)
        batch = {k: v.to(device) for k, v in batch.items()}

        def on_step(t, nodes, edges, node_mask=batch["node_mask"]):
            if t in record:
                trajectory[t].extend(s for s, _ in graphs_to_smiles(nodes, edges, node_mask, vocab))

        nodes, edges = sampler.run(batch, on_step=on_step if record else None, progress=progress)
        results.extend(graphs_to_smiles(nodes, edges, batch["node_mask"], vocab))
    return results, trajectory
