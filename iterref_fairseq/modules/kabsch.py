"""Rigid alignment of point sets (Kabsch): the CVGAE's reconstruction term (thesis Eq. 6.17) and the RMSD metric.

For centred coordinates P (reference) and Q (prediction), both (N, 3) with padding rows zero, the proper rotation
minimizing sum_i ||P_i R - Q_i||^2 is, with C = P^T Q = U S V^T (SVD),

    R = U diag(1, 1, d) V^T,   d = sign(det U det V^T)

d = -1 flips the axis of the smallest singular value, so a mirror image is never "aligned" by a reflection. With
``reflection=True`` (the CVGAE's ``--alignment mirror``, a deviation) d is always 1: R = U V^T is the best orthogonal
matrix, rotation or rotation-reflection, i.e. the deviation is the smaller of those to the reference and to its mirror
image. The aligned squared deviation is then sum_i ||P_i R - Q_i||^2, and RMSD = sqrt(that / N) (heavy atoms; this
equals RDKit's ``AlignMol`` with the identity atom map).

Small example: P = [[1, 0, 0], [-1, 0, 0]] and Q = P rotated by 90 degrees about z = [[0, 1, 0], [0, -1, 0]]:
C = P^T Q has a single non-zero entry C[0, 1] = 2, R maps x onto y, and the deviation is 0.

Gradients (the reference code rotates the reference onto the prediction and back-propagates through the SVD): at the
optimal rotation and translation the deviation is stationary in them (envelope theorem), so the gradient with
respect to the prediction is the same with R treated as a constant. R is therefore computed without gradient, in
float64, which avoids the SVD backward pass and its NaNs when singular values coincide (two-atom, linear and planar
molecules). The centring of the prediction stays differentiable.
"""
from typing import Tuple

import torch


def centre(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x (..., N, 3), mask (..., N) bool -> x minus the centroid of its real rows; padding rows are zero."""
    m = mask.unsqueeze(-1).to(x.dtype)
    n = m.sum(-2, keepdim=True).clamp(min=1.0)
    return (x - (x * m).sum(-2, keepdim=True) / n) * m


@torch.no_grad()
def kabsch_rotation(p: torch.Tensor, q: torch.Tensor, reflection: bool = False) -> torch.Tensor:
    """p, q (..., N, 3) centred with zero padding rows -> R (..., 3, 3) (dtype of p): the proper rotation
    minimizing ||p R - q||^2 (with ``reflection``: the orthogonal matrix, which may mirror)."""
    c = p.double().transpose(-1, -2) @ q.double()
    u, _, vh = torch.linalg.svd(c)
    if reflection:
        return (u @ vh).to(p.dtype)
    d = torch.sign(torch.linalg.det(u) * torch.linalg.det(vh))
    d = torch.where(d == 0, torch.ones_like(d), d)  # a degenerate (rank < 2) C: either sign is optimal
    flip = torch.ones(c.shape[:-1], dtype=c.dtype, device=c.device)
    flip[..., -1] = d
    return ((u * flip.unsqueeze(-2)) @ vh).to(p.dtype)


def aligned_squared_deviation(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor,
                              reflection: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sum over real atoms of ||aligned ref_i - pred_i||^2 after removing translation and rotation (and, with
    ``reflection``, handedness).

    pred, ref (..., N, 3); mask (..., N) bool. The reference is rotated onto the (centred) prediction, as in the
    reference code; no gradient flows into ``ref``. Returns (deviation (...,), number of atoms (...,))."""
    q = centre(pred, mask)
    p = centre(ref.detach().to(pred.dtype), mask)
    r = kabsch_rotation(p, q, reflection)
    diff = (p @ r - q) * mask.unsqueeze(-1).to(q.dtype)
    return diff.pow(2).sum((-1, -2)), mask.sum(-1).to(q.dtype)


def aligned_rmsd(pred: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor, reflection: bool = False) -> torch.Tensor:
    """Heavy-atom RMSD after optimal rigid alignment, (...,); differentiable in ``pred`` where it is not 0 (the
    training loss adds its own guard, ``criterions/cvgae_loss.py``)."""
    sq, n = aligned_squared_deviation(pred, ref, mask, reflection)
    return torch.sqrt(sq / n.clamp(min=1.0))
