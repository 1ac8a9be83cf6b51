"""Masked graph model: MPNN equivariance, heads, the loss, and the Gibbs sampler's invariants."""
import argparse

import numpy as np
import pytest
import torch

from iterref_fairseq.data import molecules as M
from iterref_fairseq.generators.graph_gibbs import GraphGibbsSampler, marginal_init, sample_categorical
from iterref_fairseq.models.masked_graph import MaskedGraphModel, masked_graph_model_tiny

SMILES = ["CCO", "c1ccccc1O", "CC(=O)N", "C#CC(F)C", "O=C1CCC1", "CN(C)C=O"]


class FakeTask:
    def __init__(self, vocab):
        self.vocab = vocab


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    vocab = M.MolVocab.from_smiles(SMILES)
    args = argparse.Namespace(graph_embed_dim=32, mpnn_layers=3)
    masked_graph_model_tiny(args)
    model = MaskedGraphModel.build_model(args, FakeTask(vocab)).eval()
    batch = M.collate_graphs([M.smiles_to_graph(s, vocab) for s in SMILES])
    return vocab, model, batch


def test_arch_defaults():
    for name, layers in (("masked_graph_model_qm9", 4), ("masked_graph_model_chembl", 6)):
        from fairseq.models import ARCH_MODEL_REGISTRY, ARCH_CONFIG_REGISTRY

        assert ARCH_MODEL_REGISTRY[name] is MaskedGraphModel
        args = argparse.Namespace()
        ARCH_CONFIG_REGISTRY[name](args)
        assert (args.mpnn_layers, args.graph_embed_dim) == (layers, 2048)


def test_parameters_are_tied_over_layers(setup):
    _, model, _ = setup
    a = sum(p.numel() for p in model.parameters())
    model.mpnn.num_layers += 5
    assert sum(p.numel() for p in model.parameters()) == a
    model.mpnn.num_layers -= 5


def test_permutation_equivariance(setup):
    _, model, batch = setup
    nodes, edges, node_mask = batch["nodes"], batch["edges"], batch["node_mask"]
    # mask some components so MASK embeddings and masked neighbours are exercised too
    torch.manual_seed(1)
    ns, es = M.sample_component_masks(node_mask, torch.full((len(SMILES),), 0.3))
    nodes, edges = M.apply_masks(nodes, edges, ns, es, model.node_mask_values())
    out = model(nodes, edges, node_mask)
    b, n = 1, int(node_mask[1].sum())
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    p_nodes = nodes[b:b + 1, :n][:, perm]
    p_edges = edges[b:b + 1, :n, :n][:, perm][:, :, perm]
    p_out = model(p_nodes, p_edges, node_mask[b:b + 1, :n])
    for k in range(6):
        torch.testing.assert_close(p_out["node_logits"][k][0], out["node_logits"][k][b, :n][perm], atol=1e-5,
                                   rtol=1e-4)
    torch.testing.assert_close(p_out["edge_logits"][0], out["edge_logits"][b, :n, :n][perm][:, perm], atol=1e-5,
                               rtol=1e-4)


def test_padding_does_not_change_predictions(setup):
    _, model, batch = setup
    alone = M.collate_graphs([M.smiles_to_graph(SMILES[0], setup[0])])
    out_alone = model(alone["nodes"], alone["edges"], alone["node_mask"])
    out_batch = model(batch["nodes"], batch["edges"], batch["node_mask"])
    n = int(alone["node_mask"].sum())
    torch.testing.assert_close(out_alone["node_logits"][0][0], out_batch["node_logits"][0][0, :n], atol=1e-5,
                               rtol=1e-4)


def test_heads_give_distributions_over_real_categories(setup):
    vocab, model, batch = setup
    node_lp, edge_lp = model.log_conditionals(batch["nodes"], batch["edges"], batch["node_mask"])
    for k, lp in enumerate(node_lp):
        assert lp.shape == (*batch["nodes"].shape[:2], vocab.sizes[k])  # no MASK category
        torch.testing.assert_close(lp.exp().sum(-1), torch.ones(lp.shape[:2]))
        assert (lp <= 0).all()
    assert edge_lp.shape == (*batch["edges"].shape, len(M.BOND_TYPES))
    torch.testing.assert_close(edge_lp.exp().sum(-1), torch.ones(edge_lp.shape[:3]))
    torch.testing.assert_close(edge_lp, edge_lp.transpose(1, 2))  # p(e_ij) = p(e_ji)


def test_loss_counts_masked_components_and_learns(setup):
    from iterref_fairseq.criterions.masked_graph_loss import MaskedGraphLoss

    vocab, _, batch = setup
    torch.manual_seed(0)
    args = argparse.Namespace(graph_embed_dim=32, mpnn_layers=2)
    masked_graph_model_tiny(args)
    model = MaskedGraphModel.build_model(args, FakeTask(vocab))
    crit = MaskedGraphLoss(FakeTask(vocab), max_mask_rate=0.2, valid_mask_rate=0.1)
    sample = {"net_input": {k: batch[k] for k in ("nodes", "edges", "node_mask")}, "ntokens": 10}
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    torch.manual_seed(5)
    loss0, size0, log0 = crit(model, sample)
    assert size0 == log0["n_node"] + log0["n_edge"] > 0
    model.train()
    for _ in range(60):
        loss, size, _ = crit(model, sample)
        opt.zero_grad()
        (loss / size).backward()
        opt.step()
    model.eval()
    torch.manual_seed(5)
    loss1, size1, _ = crit(model, sample)
    assert size1 == size0  # same validation masks (alpha fixed at 0.1, same seed)
    assert loss1 / size1 < 0.7 * loss0 / size0
    with pytest.raises(ValueError, match="--max-mask-rate"):
        MaskedGraphLoss(FakeTask(vocab), max_mask_rate=0.0, valid_mask_rate=0.1)


def replay_masks(selection, node_mask, alpha, seed):
    """The masks a sampler with this selection rule and seed draws first (it draws them before anything else)."""
    g = torch.Generator().manual_seed(seed)
    if selection == "fraction":
        return M.sample_component_fraction(node_mask, alpha, g)
    return M.sample_component_masks(node_mask, torch.full((node_mask.size(0),), alpha), g)


@pytest.mark.parametrize("selection", ["fraction", "bernoulli"])
def test_sampler_changes_only_masked_components(setup, selection):
    vocab, model, batch = setup
    sampler = GraphGibbsSampler(model, mask_rate=0.3, steps=1, generator=torch.Generator().manual_seed(0),
                                selection=selection)
    nodes, edges, node_mask = batch["nodes"], batch["edges"], batch["node_mask"]
    # the sampler draws its masks from the generator; replay them to know which components were chosen
    ns, es = replay_masks(selection, node_mask, 0.3, 0)
    new_nodes, new_edges = sampler.step(nodes, edges, node_mask)
    assert torch.equal(new_nodes[~ns], nodes[~ns]) and torch.equal(new_edges[~es], edges[~es])
    assert torch.equal(new_edges, new_edges.transpose(1, 2))
    assert (torch.diagonal(new_edges, dim1=1, dim2=2) == 0).all()
    for k, size in enumerate(vocab.sizes):  # never MASK after replacement
        assert (new_nodes[..., k][node_mask] < size).all()
    assert (new_edges < M.BOND_MASK).all()


def test_sampler_is_seeded_and_switches_to_argmax(setup):
    _, model, batch = setup

    def run(seed, argmax_after=None, steps=4):
        s = GraphGibbsSampler(model, 0.2, steps, argmax_after, torch.Generator().manual_seed(seed))
        return s.run(batch)

    a, b = run(1), run(1)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # after the switch step the chosen components take the most likely value
    nodes, edges, node_mask = batch["nodes"], batch["edges"], batch["node_mask"]
    ns, es = replay_masks("fraction", node_mask, 0.5, 7)
    mn, me = M.apply_masks(nodes, edges, ns, es, model.node_mask_values())
    node_lp, edge_lp = model.log_conditionals(mn, me, node_mask)
    sampler = GraphGibbsSampler(model, 0.5, 1, argmax_after=0, generator=torch.Generator().manual_seed(7))
    new_nodes, new_edges = sampler.run(batch)
    assert torch.equal(new_nodes[..., 0][ns[..., 0]], node_lp[0].argmax(-1)[ns[..., 0]])
    assert torch.equal(new_edges[es], edge_lp.argmax(-1)[es])
    with pytest.raises(ValueError, match="mask rate"):
        GraphGibbsSampler(model, 1.5, 3)
    with pytest.raises(ValueError, match="mask selection must be one of fraction, bernoulli"):
        GraphGibbsSampler(model, 0.1, 3, selection="poisson")


def test_fraction_selection_masks_exactly_round_alpha_components_uniformly():
    """Thesis §5.3.3: a fraction alpha of the components, uniformly at random. A graph of n atoms has
    C = 6 n + n (n - 1) / 2 components (6 properties per atom, one bond state per unordered pair)."""
    sizes = [1, 3, 5, 9]
    node_mask = torch.arange(9).unsqueeze(0) < torch.tensor(sizes).unsqueeze(1)
    for alpha in (0.05, 0.1, 0.2, 1.0):
        g = torch.Generator().manual_seed(0)
        ns, es = M.sample_component_fraction(node_mask, alpha, g)
        for b, n in enumerate(sizes):
            c = 6 * n + n * (n - 1) // 2
            expected = max(1, round(alpha * c))
            got = int(ns[b].sum()) + int(torch.triu(es[b], diagonal=1).sum())
            assert got == expected, (n, alpha)
        assert torch.equal(es, es.transpose(1, 2)) and not bool(torch.diagonal(es, dim1=1, dim2=2).any())
        assert not bool(ns[~node_mask].any()) and not bool(es[~M.pair_mask(node_mask)].any())
    # uniform: over many draws every component of a 5-atom graph (C = 40, k = 4) is chosen with p = 0.1
    mask5 = torch.ones(1, 5, dtype=torch.bool)
    g = torch.Generator().manual_seed(1)
    counts_nodes, counts_pairs, draws = torch.zeros(5, 6), torch.zeros(5, 5), 4000
    for _ in range(draws):
        ns, es = M.sample_component_fraction(mask5, 0.1, g)
        counts_nodes += ns[0].float()
        counts_pairs += torch.triu(es[0], diagonal=1).float()
    freq = torch.cat([counts_nodes.flatten(), counts_pairs[torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)]])
    freq = freq / draws
    assert freq.numel() == 40 and float(freq.sum()) == pytest.approx(4.0)
    assert float((freq - 0.1).abs().max()) < 0.025  # 4 standard errors of a frequency of 0.1 over 4,000 draws


def test_sample_categorical_matches_probabilities():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.1, 0.6, 0.0, 0.3])
    draws = sample_categorical(p.log().expand(20000, 4), g)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    torch.testing.assert_close(freq, p, atol=0.015, rtol=0)


def test_marginal_init_follows_marginals():
    marg = {"nodes": [np.array([0.5, 0.5]), np.array([1.0]), np.array([0.0, 1.0]), np.array([1.0, 0, 0, 0]),
                      np.array([1.0, 0.0]), np.array([1.0, 0.0])],
            "edges": np.array([0.7, 0.3, 0, 0, 0]), "num_atoms": np.array([0, 0, 0.5, 0, 0.5])}
    b = marginal_init(marg, 300, torch.Generator().manual_seed(0))
    assert set(b["node_mask"].sum(1).tolist()) == {2, 4}
    assert (b["nodes"][..., 2][b["node_mask"]] == 1).all()
    e = b["edges"]
    assert torch.equal(e, e.transpose(1, 2)) and (e[~M.pair_mask(b["node_mask"])] == 0).all()
    upper = torch.triu(M.pair_mask(b["node_mask"]), 1)
    assert abs(float((e[upper] == 1).float().mean()) - 0.3) < 0.05
