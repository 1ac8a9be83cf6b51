"""Output projection, cross-entropy and next-step tokens in one chunked pass, without keeping the logits.

A refinement NAT trained with itrain = 4 computes the vocabulary distribution four times per target token. Kept by
autograd, the four (N, V) log-softmax tensors are most of an update's memory, and building them (mask, index,
log-softmax, their backward copies) much of its time. :func:`projected_cross_entropy` computes, for chunks of rows,

    z = h W^T + b                          (logits; b is -inf for symbols never predicted, learned or 0 elsewhere)
    nll   = logsumexp(z) - z_t
    loss  = (1 - eps) nll + eps (logsumexp(z) - mean_{v allowed} z_v)      (label smoothing over allowed symbols)
    token = argmax z, or a sample from softmax(z)                         (the input of the next refinement step)

and keeps only h, W and the per-row logsumexp for the backward pass, which recomputes z one chunk at a time:
dloss/dz = softmax(z) - (1 - eps) onehot(t) - eps 1_allowed / |allowed| (summed over rows for the bias, which is
0 at the -inf entries). Memory is O(chunk x V) instead of O(N x V), at the price of one extra (N, C) x (C, V)
product in the backward pass.

Shapes: h (N, C), W (V, C), b (V,), target (N,) -> loss (N,), nll (N,), token (N,).
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

CHUNK_ELEMENTS = 1 << 21  # logits per chunk (8 MB in float32)


def _chunks(n: int, vocab: int):
    step = max(1, CHUNK_ELEMENTS // max(vocab, 1))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _logits(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """z = h W^T + b in float32, the bias added inside the matrix product when the inputs are float32."""
    if hidden.dtype == torch.float32 and weight.dtype == torch.float32:
        return torch.addmm(bias, hidden, weight.t())
    return F.linear(hidden, weight).float() + bias


class _ProjectedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, target, eps, token_mode):
        n, vocab = hidden.size(0), weight.size(0)
        lse = hidden.new_empty(n, dtype=torch.float)
        z_t = hidden.new_empty(n, dtype=torch.float)
        tokens = target.new_zeros(n)
        for a, b in _chunks(n, vocab):
            z = _logits(hidden[a:b], weight, bias)
            lse[a:b] = torch.logsumexp(z, dim=-1)
            z_t[a:b] = z.gather(1, target[a:b].unsqueeze(1)).squeeze(1)
            if token_mode == "argmax":
                tokens[a:b] = z.argmax(-1)
            elif token_mode == "sample":
                tokens[a:b] = torch.multinomial(torch.softmax(z, dim=-1), 1).squeeze(1)
        nll = lse - z_t
        if eps == 0:
            loss = nll.clone()
        else:  # mean_{v allowed} z_v = h . mean_w + mean_b
            allowed = torch.isfinite(bias)
            mean_w, mean_b = weight[allowed].float().mean(0), bias[allowed].mean()
            loss = (1 - eps) * nll + eps * (lse - hidden.float() @ mean_w - mean_b)
        ctx.save_for_backward(hidden, weight, bias, target, lse)
        ctx.eps = eps
        ctx.mark_non_differentiable(nll, tokens)
        return loss, nll, tokens

    @staticmethod
    def backward(ctx, grad_loss, grad_nll_unused, grad_tokens_unused):
        hidden, weight, bias, target, lse = ctx.saved_tensors
        eps = ctx.eps
        n, vocab = hidden.size(0), weight.size(0)
        allowed = torch.isfinite(bias)
        smooth = allowed.float() * (eps / int(allowed.sum())) if eps > 0 else None
        grad_h = torch.zeros_like(hidden) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float, device=weight.device) \
            if ctx.needs_input_grad[1] else None
        grad_b = torch.zeros(vocab, dtype=torch.float, device=bias.device) if ctx.needs_input_grad[2] else None
        for a, b in _chunks(n, vocab):
            g = _logits(hidden[a:b], weight, bias).sub_(lse[a:b].unsqueeze(1)).exp_()  # softmax(z), in place
            g.scatter_add_(1, target[a:b].unsqueeze(1), g.new_full((b - a, 1), -(1.0 - eps)))
            if smooth is not None:
                g -= smooth
            g.mul_(grad_loss[a:b].float().unsqueeze(1))
            if grad_h is not None:
                grad_h[a:b] = (g.to(weight.dtype) @ weight).to(hidden.dtype)
            if grad_w is not None:
                grad_w.addmm_(g.t(), hidden[a:b].float())
            if grad_b is not None:
                grad_b += g.sum(0)
        if grad_w is not None:
            grad_w = grad_w.to(weight.dtype)
        return grad_h, grad_w, grad_b, None, None, None


def projected_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    target: torch.Tensor,
    label_smoothing: float = 0.0,
    tokens: Optional[str] = "argmax",
) -> Tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Per-row training loss, NLL and predicted tokens of the projection ``hidden @ weight.T + bias``.

    Args:
        hidden: (N, C) final decoder states of the real target positions.
        weight: (V, C) output embedding.
        bias: (V,) float, -inf for symbols the model never predicts (never all), 0 or a learned bias for the
            others (it receives its gradient when it requires one).
        target: (N,) reference symbols (each must be allowed).
        label_smoothing: eps in [0, 1).
        tokens: ``"argmax"``, ``"sample"`` (stochastic approximation) or None (not needed).
    Returns:
        loss (N,) with gradient, nll (N,) without, tokens (N,) or None.
    """
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {label_smoothing}")
    if tokens not in ("argmax", "sample", None):
        raise ValueError(f"tokens must be 'argmax', 'sample' or None, got {tokens!r}")
    loss, nll, predicted = _ProjectedCrossEntropy.apply(
        hidden, weight, bias.float(), target, float(label_smoothing), tokens or "none"
    )
    return loss, nll, predicted if tokens else None
