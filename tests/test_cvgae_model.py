"""CVGAE pieces (thesis ch. 6): Kabsch alignment, Gaussian KLs, the edge-network MPNN, the model and its loss."""
import argparse
import math

import numpy as np
import pytest
import torch

from iterref_fairseq.modules.edge_network_mpnn import EdgeNetworkMPNN
from iterref_fairseq.modules.gaussian import kl_diagonal_gaussians, kl_standard_normal
from iterref_fairseq.modules.kabsch import aligned_rmsd, aligned_squared_deviation


def random_rotation(gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if torch.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


# a chiral, non-planar 5-point shape (its mirror image cannot be rotated onto it)
CHIRAL = torch.tensor([[0.0, 0.0, 0.0], [1.5, 0.0, 0.0], [0.0, 1.2, 0.0], [0.0, 0.0, 0.9], [0.7, 0.4, 1.3]],
                      dtype=torch.float64)


def test_kabsch_recovers_a_rigid_motion_and_refuses_a_reflection():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, 3, generator=gen, dtype=torch.float64)
    moved = x @ random_rotation(gen) + torch.tensor([3.0, -2.0, 5.0], dtype=torch.float64)
    mask = torch.ones(7, dtype=torch.bool)
    assert aligned_rmsd(moved, x, mask).item() < 1e-5
    assert aligned_rmsd(x, moved, mask).item() < 1e-5
    mirror = CHIRAL * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert aligned_rmsd(mirror, CHIRAL, torch.ones(5, dtype=torch.bool)).item() > 0.1


def test_mirror_alignment_is_the_better_of_the_reference_and_its_mirror_image():
    """--alignment mirror: the deviation equals min(proper deviation to ref, proper deviation to mirror(ref)),
    computed here by two proper alignments (independent of the reflection branch)."""
    gen = torch.Generator().manual_seed(3)
    flip = torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    mask = torch.ones(6, dtype=torch.bool)
    for _ in range(20):
        pred, ref = (torch.randn(6, 3, generator=gen, dtype=torch.float64) for _ in range(2))
        both = min(aligned_squared_deviation(pred, ref, mask)[0].item(),
                   aligned_squared_deviation(pred, ref * flip, mask)[0].item())
        assert aligned_squared_deviation(pred, ref, mask, reflection=True)[0].item() == pytest.approx(both, abs=1e-9)
    five = torch.ones(5, dtype=torch.bool)
    mirror = CHIRAL * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert aligned_rmsd(mirror, CHIRAL, five, reflection=True).item() < 1e-6
    assert aligned_rmsd(mirror, CHIRAL, five).item() > 0.1


def test_kabsch_rmsd_equals_rdkit_alignmol_and_ignores_padding():
    Chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import rdMolAlign
    from rdkit.Geometry import Point3D

    gen = torch.Generator().manual_seed(1)
    mol = Chem.MolFromSmiles("CCCCCC")
    for _ in range(5):
        a, b = (torch.randn(6, 3, generator=gen, dtype=torch.float64) for _ in range(2))
        mols = []
        for x in (a, b):
            m = Chem.Mol(mol)
            conf = Chem.Conformer(6)
            for i, (px, py, pz) in enumerate(x.tolist()):
                conf.SetAtomPosition(i, Point3D(px, py, pz))
            m.AddConformer(conf)
            mols.append(m)
        expected = rdMolAlign.AlignMol(mols[0], mols[1])
        ours = aligned_rmsd(a, b, torch.ones(6, dtype=torch.bool)).item()
        assert ours == pytest.approx(expected, abs=1e-6)
        # padding rows (any values) change nothing
        pad_a = torch.cat([a, torch.full((3, 3), 7.0, dtype=torch.float64)])
        pad_b = torch.cat([b, torch.full((3, 3), -4.0, dtype=torch.float64)])
        mask = torch.tensor([True] * 6 + [False] * 3)
        assert aligned_rmsd(pad_a, pad_b, mask).item() == pytest.approx(expected, abs=1e-6)


def test_aligned_loss_is_invariant_to_moving_the_reference_and_its_gradient_matches_finite_differences():
    gen = torch.Generator().manual_seed(2)
    pred = torch.randn(2, 6, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    ref = torch.randn(2, 6, 3, generator=gen, dtype=torch.float64)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    moved = ref @ random_rotation(gen) + 2.5
    base = aligned_squared_deviation(pred, ref, mask)[0]
    assert torch.allclose(base, aligned_squared_deviation(pred, moved, mask)[0], atol=1e-9)
    rmsd = aligned_rmsd(pred, ref, mask).sum()
    (grad,) = torch.autograd.grad(rmsd, pred)
    # central differences of the full minimum over rotations (the rotation recomputed at every point)
    num = torch.zeros_like(pred)
    h = 1e-6
    for idx in np.ndindex(*pred.shape):
        e = torch.zeros_like(pred)
        e[idx] = h
        with torch.no_grad():
            num[idx] = (aligned_rmsd(pred + e, ref, mask).sum() - aligned_rmsd(pred - e, ref, mask).sum()) / (2 * h)
    assert torch.allclose(grad, num, atol=1e-6)
    assert torch.all(grad[1, 4:] == 0)  # padding gets no gradient


def test_gaussian_kls_match_monte_carlo():
    gen = torch.Generator().manual_seed(3)
    mu_q, mu_p = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.0, 0.5, 1.0])
    lv_q, lv_p = torch.tensor([-0.5, 0.2, 0.0]), torch.tensor([0.3, -0.4, 1.0])
    z = mu_q + torch.exp(0.5 * lv_q) * torch.randn(400000, 3, generator=gen)

    def log_normal(x, mu, lv):
        return (-0.5 * (math.log(2 * math.pi) + lv + (x - mu) ** 2 / torch.exp(lv))).sum(-1)

    mc = (log_normal(z, mu_q, lv_q) - log_normal(z, mu_p, lv_p)).mean().item()
    assert kl_diagonal_gaussians(mu_q, lv_q, mu_p, lv_p).item() == pytest.approx(mc, abs=0.01)
    mc0 = (log_normal(z, mu_q, lv_q) - log_normal(z, torch.zeros(3), torch.zeros(3))).mean().item()
    assert kl_standard_normal(mu_q, lv_q).item() == pytest.approx(mc0, abs=0.01)
    assert kl_diagonal_gaussians(mu_p, lv_p, mu_p, lv_p).item() == pytest.approx(0.0, abs=1e-7)


def test_mpnn_message_is_the_scaled_sum_over_all_atoms_including_self():
    torch.manual_seed(4)
    mp = EdgeNetworkMPNN(d_edge=3, d_h=4, steps=1, message_norm="n_max2", n_max=9)
    edges = torch.randn(1, 3, 3, 3)
    h0 = torch.randn(1, 1, 3, 4)
    mask = torch.ones(1, 3, dtype=torch.bool)
    a = mp.edge_net(edges)[0]
    msgs = torch.stack([sum(a[i, j] @ h0[0, 0, i] for i in range(3)) / 81.0 for j in range(3)])
    expected = mp.gru(msgs, h0[0, 0])
    assert torch.allclose(mp(h0, edges, mask)[0, 0], expected, atol=1e-6)
    mp.message_norm = "n_atoms"
    expected = mp.gru(msgs * 81.0 / 3.0, h0[0, 0])
    assert torch.allclose(mp(h0, edges, mask)[0, 0], expected, atol=1e-6)


def test_mpnn_message_kernels_agree_for_one_and_several_samples():
    """Training (one sample: elementwise products) and generation (S samples: batched matmul) compute the same
    messages: S samples together equal each sample alone, and forcing the matmul for one sample changes nothing
    (values and gradients)."""
    torch.manual_seed(6)
    mp = EdgeNetworkMPNN(d_edge=3, d_h=4, steps=2, message_norm="n_atoms")
    raw = torch.randn(2, 5, 5, 3)
    edges = raw + raw.transpose(1, 2)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    h0 = torch.randn(2, 3, 5, 4)
    together = mp(h0, edges, mask)
    for k in range(3):
        assert torch.allclose(together[:, k], mp(h0[:, k:k + 1], edges, mask)[:, 0], atol=1e-5)
    h1 = h0[:, :1].clone().requires_grad_(True)
    out_auto = mp(h1, edges, mask)
    g_auto = torch.autograd.grad(out_auto.square().sum(), [h1, *mp.parameters()])
    mp.message_kernel = "bmm"
    out_bmm = mp(h1, edges, mask)
    g_bmm = torch.autograd.grad(out_bmm.square().sum(), [h1, *mp.parameters()])
    assert torch.allclose(out_auto, out_bmm, atol=1e-6)
    for a, b in zip(g_auto, g_bmm):
        assert torch.allclose(a, b, atol=1e-5)


def test_edge_network_on_symmetric_pairs_equals_the_full_evaluation_with_its_gradients():
    """A_ij from the i <= j half, copied to j > i, must equal the network applied to every pair (values and
    parameter gradients); an asymmetric input is evaluated in full."""
    from iterref_fairseq.modules.edge_network_mpnn import EdgeNetwork

    torch.manual_seed(5)
    net = EdgeNetwork(d_edge=4, d_h=3)
    raw = torch.randn(2, 5, 5, 4)
    edges = raw + raw.transpose(1, 2)
    full = net.net(edges).view(2, 5, 5, 3, 3)  # the network on all 25 pairs, independently
    half = net(edges)
    assert torch.allclose(half, full, atol=1e-6)
    weights = torch.randn_like(full)
    grads = [torch.autograd.grad((out * weights).sum(), list(net.parameters())) for out in (half, full)]
    for g_half, g_full in zip(*grads):
        assert torch.allclose(g_half, g_full, atol=1e-5)
    assert torch.allclose(net(raw), net.net(raw).view(2, 5, 5, 3, 3))  # asymmetric: no halving
    assert not torch.allclose(net(raw), net(raw).transpose(1, 2))


def tiny_model(**overrides):
    from iterref_fairseq.models.cvgae import CVGAEModel, cvgae_tiny

    args = argparse.Namespace(**overrides)
    cvgae_tiny(args)
    return CVGAEModel(args, node_dim=22, pair_dim=10)


def random_graph(n: int, gen: torch.Generator, N: int = None):
    N = N or n
    nodes = torch.zeros(1, N, 22)
    nodes[0, :n] = torch.randint(0, 3, (n, 22), generator=gen).float()
    pairs = torch.zeros(1, N, N, 10)
    p = torch.randint(0, 2, (n, n, 10), generator=gen).float()
    p = 0.5 * (p + p.transpose(0, 1))
    p[torch.arange(n), torch.arange(n)] = 0
    pairs[0, :n, :n] = p
    coords = torch.zeros(1, N, 3)
    coords[0, :n] = torch.randn(n, 3, generator=gen)
    mask = torch.zeros(1, N, dtype=torch.bool)
    mask[0, :n] = True
    return nodes, pairs, coords, mask


def test_model_is_permutation_equivariant_and_padding_invariant():
    torch.manual_seed(5)
    model = tiny_model().eval()
    gen = torch.Generator().manual_seed(5)
    nodes, pairs, coords, mask = random_graph(6, gen)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    e = model.embed(nodes, mask)
    edges = model.edge_inputs(pairs, mask)
    mu, lv = model.prior(e, edges, mask)
    pn, pp, pm = nodes[:, perm], pairs[:, perm][:, :, perm], mask[:, perm]
    pe = model.embed(pn, pm)
    pedges = model.edge_inputs(pp, pm)
    mu2, lv2 = model.prior(pe, pedges, pm)
    assert torch.allclose(mu[:, perm], mu2, atol=1e-6) and torch.allclose(lv[:, perm], lv2, atol=1e-6)
    z = torch.randn(1, 2, 6, model.args.node_hidden_dim, generator=gen)
    x = model.likelihood_mean(e, z, edges, mask)
    x2 = model.likelihood_mean(pe, z[:, :, perm], pedges, pm)
    assert torch.allclose(x[:, :, perm], x2, atol=1e-6)
    # padding the molecule to N = 9 changes nothing for the real atoms (message scale 1 / n_max^2 is fixed)
    nodes9, pairs9, mask9 = (torch.zeros(1, 9, 22), torch.zeros(1, 9, 9, 10),
                             torch.zeros(1, 9, dtype=torch.bool))
    nodes9[:, :6], pairs9[:, :6, :6], mask9[:, :6] = nodes, pairs, True
    e9 = model.embed(nodes9, mask9)
    edges9 = model.edge_inputs(pairs9, mask9)
    z9 = torch.zeros(1, 2, 9, model.args.node_hidden_dim)
    z9[:, :, :6] = z
    x9 = model.likelihood_mean(e9, z9, edges9, mask9)
    assert torch.allclose(x9[:, :, :6], x, atol=1e-6) and torch.all(x9[:, :, 6:] == 0)


def test_edge_inputs_add_the_atom_count_and_the_reference_distances():
    from iterref_fairseq.models.cvgae import CVGAEModel, reference_distances

    gen = torch.Generator().manual_seed(6)
    nodes, pairs, coords, mask = random_graph(4, gen, N=5)
    d = reference_distances(coords, mask)
    assert d[0, 1, 2].item() == pytest.approx(torch.dist(coords[0, 1], coords[0, 2]).item(), abs=1e-6)
    assert torch.all(d[0, 4] == 0) and torch.all(torch.diagonal(d[0]) == 0)
    e = CVGAEModel.edge_inputs(pairs, mask, d)
    assert e.shape == (1, 5, 5, 12) and torch.all(e[..., 10] == 4) and torch.equal(e[..., 11], d)


def test_loss_terms_follow_their_definitions():
    from iterref_fairseq.criterions.cvgae_loss import CVGAELoss

    torch.manual_seed(7)
    model = tiny_model()
    gen = torch.Generator().manual_seed(7)
    nodes, pairs, coords, mask = random_graph(5, gen)
    sample = {"net_input": {"nodes": nodes, "pairs": pairs, "node_mask": mask, "coords": coords}, "ntokens": 5}
    crit = CVGAELoss(None, "rmsd", 1e-5, 0)
    torch.manual_seed(8)
    loss, size, log = crit(model.train(), sample)
    torch.manual_seed(8)
    out = model(**sample["net_input"])
    rmsd = aligned_rmsd(out["coords"][0], coords[0], mask[0]).item()
    var_q, var_p = out["posterior_logvar"].exp(), out["prior_logvar"].exp()
    kl = 0.5 * (var_q / var_p + (out["prior_mu"] - out["posterior_mu"]) ** 2 / var_p - 1
                + torch.log(var_p / var_q)).sum().item()
    kl0 = 0.5 * (var_p + out["prior_mu"] ** 2 - 1 - out["prior_logvar"]).sum().item()
    assert size == 1 and log["rmsd"] == pytest.approx(rmsd, rel=1e-5)
    assert loss.item() == pytest.approx(rmsd + kl + 1e-5 * kl0, rel=1e-5)
    torch.manual_seed(8)
    nll, _, _ = CVGAELoss(None, "gaussian_nll", 0.0, 0)(model, sample)
    assert nll.item() == pytest.approx(0.5 * 5 * rmsd ** 2 + 7.5 * math.log(2 * math.pi) + kl, rel=1e-5)
    with pytest.raises(ValueError, match="--reconstruction"):
        CVGAELoss(None, "l1", 1e-5, 0)
    # --alignment mirror: the loss is the same for the reference and its mirror image (proper: it is not)
    mirrored = dict(sample, net_input=dict(sample["net_input"], coords=coords * torch.tensor([-1.0, 1.0, 1.0])))
    losses = {}
    for alignment in ("proper", "mirror"):
        for name, smp in (("ref", sample), ("mirror", mirrored)):
            torch.manual_seed(8)
            losses[alignment, name] = CVGAELoss(None, "rmsd", 1e-5, 0, alignment)(model, smp)[0].item()
    assert losses["mirror", "ref"] == pytest.approx(losses["mirror", "mirror"], rel=1e-6)
    assert losses["mirror", "ref"] <= losses["proper", "ref"] + 1e-9
    assert abs(losses["proper", "ref"] - losses["proper", "mirror"]) > 1e-4
    with pytest.raises(ValueError, match="--alignment"):
        CVGAELoss(None, "rmsd", 1e-5, 0, "improper")


def test_cvgae_overfits_one_molecule_from_prior_samples():
    """Trained on one molecule, prior samples decode to its reference geometry (< 0.1 A). The molecule has no graph
    automorphism: atoms that the graph cannot tell apart (the two CH2 of a cyclopropyl) get the same prior, so no
    identity-mapped RMSD can go to 0 for them (measured: 0.40 A plateau for CC(=O)NC1CC1)."""
    Chem = pytest.importorskip("rdkit.Chem")
    from rdkit.Chem import AllChem

    from iterref_fairseq.criterions.cvgae_loss import CVGAELoss
    from iterref_fairseq.data.conformers import collate_conformers, featurize_conformers

    mol = Chem.AddHs(Chem.MolFromSmiles("CC(O)C(=O)N"))
    AllChem.EmbedMolecule(mol, randomSeed=3)
    mol = Chem.RemoveHs(mol)
    cs = featurize_conformers([mol], "qm9")
    net = collate_conformers([cs.graph(0)])
    torch.manual_seed(9)
    model = tiny_model(readout_dropout=0.0)
    crit = CVGAELoss(None, "rmsd", 1e-5, 0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    assert len(mol.GetSubstructMatches(mol, uniquify=False)) == 1
    sample = {"net_input": net, "ntokens": 6}
    for _ in range(700):
        opt.zero_grad()
        loss, _, _ = crit(model.train(), sample)
        loss.backward()
        opt.step()
    with torch.no_grad():
        x = model.eval().sample_conformers(net["nodes"], net["pairs"], net["node_mask"], 10,
                                           generator=torch.Generator().manual_seed(0))
        rmsd = aligned_rmsd(x[0], net["coords"][0].expand(10, -1, -1), net["node_mask"][0].expand(10, -1))
    assert rmsd.max().item() < 0.1, rmsd
