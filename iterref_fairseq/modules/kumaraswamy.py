"""Kumaraswamy time schedules of LFlexMDM (the LFlexMDM paper, §3 and Prop. 1).

Each token i of a clean sequence x1 gets an insertion time T_in^i and an unmasking time T_um^i >= T_in^i with

    F(t) = P(T <= t) = 1 - (1 - t^a)^b                        (Kumaraswamy CDF, a, b > 0, t in [0, 1])
    F^{-1}(u) = (1 - (1 - u)^{1/b})^{1/a}
    lambda(t) = dF/dt / (1 - F) = b * a t^{a-1} / (1 - t^a)   (hazard = target rate of one token)

a is shared by all tokens (fixed), b is per token (from the auxiliary network). With a = b = 1 the schedule is
FlexMDM's linear one: F(t) = t, lambda(t) = 1 / (1 - t).

Numerics. Everything is computed through ``log1m_ta = log(1 - t^a)`` (``log1p(-t^a)`` for t^a < 1/2, else
``log(-expm1(a log t))``), which keeps full precision when t^a is tiny (t -> 0) and when 1 - t^a is tiny
(t -> 1); ``(1 - t^a)^b = exp(b * log1m_ta)``.
The closed-form probability of the "masked" state contains (1 - Y^d) / d with Y = 1 - t^a and d = b_in - b_um,
which is 0/0 at b_in = b_um; we evaluate it with ``-expm1(d log Y) / d`` and switch to its Taylor series
``-log Y (1 + d log Y / 2 + (d log Y)^2 / 6)`` when |d log Y| < 1e-4.
"""
import math
from typing import Optional, Tuple

import torch

_TINY = 1e-12


def _check_t(t: torch.Tensor) -> torch.Tensor:
    return t.clamp(min=0.0, max=1.0)


def log1m_t_pow_a(t: torch.Tensor, a: float) -> torch.Tensor:
    """log(1 - t^a), stable at both ends (-> 0 as t -> 0, -> -inf at t = 1)."""
    t = _check_t(t)
    log_t = torch.log(t.clamp(min=torch.finfo(t.dtype).tiny))
    a_log_t = a * log_t
    # two regimes (as in log1mexp): t^a small -> log1p(-t^a); t^a near 1 -> log(-expm1(a log t))
    small = a_log_t < -math.log(2.0)
    val = torch.where(small, torch.log1p(-torch.exp(a_log_t)),
                      torch.log(-torch.expm1(torch.where(small, -torch.ones_like(a_log_t), a_log_t))))
    return torch.where(t <= 0, torch.zeros_like(val), val)


def cdf(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """F(t) = 1 - (1 - t^a)^b, computed as -expm1(b log(1 - t^a)). Broadcasts t against b."""
    return -torch.expm1(b * log1m_t_pow_a(t, a))


def survival(t: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """1 - F(t) = (1 - t^a)^b."""
    return torch.exp(b * log1m_t_pow_a(t, a))


def icdf(u: torch.Tensor, a: float, b: torch.Tensor) -> torch.Tensor:
    """F^{-1}(u) = (1 - (1 - u)^{1/b})^{1/a}; u in [0, 1]. Differentiable in b (pathwise)."""
    u = u.clamp(0.0, 1.0)
    inner = -torch.expm1(torch.log1p(-u) / b)  # 1 - (1 - u)^{1/b}
    return torch.exp(torch.log(inner.clamp(min=_TINY)) / a).clamp(0.0, 1.0)


def base_hazard(t: torch.Tensor, a: float, t_min: float = 1e-6, t_max: float = 1 - 1e-6) -> torch.Tensor:
    """h_a(t) = a t^{a-1} / (1 - t^a), the hazard of Kumaraswamy(a, 1); lambda(t) = b * h_a(t).

    t is clamped to [t_min, t_max] because the hazard is infinite at t = 1 (and at t = 0 when a < 1).
    """
    t = t.clamp(t_min, t_max)
    return a * torch.exp((a - 1) * torch.log(t) - log1m_t_pow_a(t, a))


def hazard(t: torch.Tensor, a: float, b: torch.Tensor, **kw) -> torch.Tensor:
    """lambda(t) = b * a t^{a-1} / (1 - t^a) (the target rate of one token)."""
    return b * base_hazard(t, a, **kw)


def sample_times(
    a: float, b_in: torch.Tensor, b_um: torch.Tensor, u_in: Optional[torch.Tensor] = None,
    u_um: Optional[torch.Tensor] = None, generator: Optional[torch.Generator] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draws (T_in, T_um) per token (Prop. 1): T_in ~ F_in; T_um | T_in = s has CDF (F_um(t) - F_um(s)) / (1 - F_um(s)).

    Conditional inverse CDF: (1 - T_um^a) = (1 - u)^{1/b_um} (1 - s^a). With a = b = 1: T_in ~ U(0, 1) and
    T_um ~ U(T_in, 1), i.e. FlexMDM's linear schedules. b_in, b_um: same shape (...); u_*: uniforms of that shape.
    """
    if u_in is None:
        u_in = torch.rand(b_in.shape, generator=generator, device=b_in.device)
    if u_um is None:
        u_um = torch.rand(b_in.shape, generator=generator, device=b_in.device)
    t_in = icdf(u_in, a, b_in)
    log_y = torch.log1p(-u_um.clamp(0.0, 1.0)) / b_um + log1m_t_pow_a(t_in, a)  # log(1 - T_um^a)
    t_um = torch.exp(torch.log((-torch.expm1(log_y)).clamp(min=_TINY)) / a).clamp(0.0, 1.0)
    return t_in, torch.maximum(t_um, t_in)


def _one_minus_pow_over_d(d: torch.Tensor, log_y: torch.Tensor) -> torch.Tensor:
    """(1 - Y^d) / d with log_y = log Y <= 0, continuous at d = 0 where it equals -log Y."""
    x = d * log_y
    small = x.abs() < 1e-4
    d_safe = torch.where(small, torch.ones_like(d), d)
    exact = -torch.expm1(x) / d_safe
    series = -log_y * (1 + x / 2 + x * x / 6)
    return torch.where(small, series, exact)


def state_log_probs(t: torch.Tensor, a: float, b_in: torch.Tensor, b_um: torch.Tensor) -> torch.Tensor:
    """Closed-form log-probabilities of the three states of a token at time t (shared a).

    Returns (..., 3): [log P(dropped), log P(masked), log P(revealed)] with
        P(dropped)  = (1 - t^a)^{b_in}
        P(masked)   = (1 - t^a)^{b_um} * b_in / (b_in - b_um) * (1 - (1 - t^a)^{b_in - b_um})
                      (limit b_in = b_um: -b_in log(1 - t^a) (1 - t^a)^{b_um})
        P(revealed) = 1 - P(dropped) - P(masked).
    They are the marginals of the process of :func:`sample_times` and feed the REINFORCE term of the loss.
    t broadcasts against b_in/b_um.
    """
    log_y = log1m_t_pow_a(t, a)
    log_y = torch.broadcast_to(log_y, torch.broadcast_shapes(log_y.shape, b_in.shape, b_um.shape))
    log_drop = b_in * log_y
    ratio = _one_minus_pow_over_d(b_in - b_um, log_y)
    log_mask = b_um * log_y + torch.log(b_in) + torch.log(ratio.clamp(min=1e-30))
    p_rev = (1 - torch.exp(log_drop) - torch.exp(log_mask)).clamp(min=0.0)
    log_rev = torch.log(p_rev.clamp(min=1e-30))
    return torch.stack([log_drop, log_mask, log_rev], dim=-1)


def kl_to_uniform(a: float, b: torch.Tensor) -> torch.Tensor:
    """KL(Kumaraswamy(a, b) || U(0, 1)) = -entropy = log(ab) - (1 - 1/b) - (1 - 1/a)(psi(b + 1) + gamma)."""
    euler_gamma = 0.5772156649015329
    return math.log(a) + torch.log(b) - (1 - 1 / b) - (1 - 1 / a) * (torch.digamma(b + 1) + euler_gamma)
