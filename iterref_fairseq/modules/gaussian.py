"""Diagonal Gaussians parameterized by mean and log-variance: reparameterized samples and closed-form KLs.

Used by the CVGAE (thesis Eqs. 6.18-6.20: KL(Q || P) between the posterior and the graph-conditioned prior, and
KL(P || N(0, I)), the prior regularizer). All functions act elementwise over the last dimension and sum it; the
caller masks padding and reduces over atoms.

Per dimension (mu_q, var_q) against (mu_p, var_p):

    KL(q || p) = 1/2 [ var_q / var_p + (mu_p - mu_q)^2 / var_p - 1 + log(var_p / var_q) ]
    KL(q || N(0, 1)) = 1/2 [ var_q + mu_q^2 - 1 - log var_q ]

The reference code (nyu-dl/dl4chem-geometry ``_KLD``) adds 1e-5 to both variances and inside the log; here the
exact form is computed from log-variances (variances are exp(.) > 0, so no guard is needed).
"""
from typing import Optional

import torch


def sample_diagonal_gaussian(mu: torch.Tensor, logvar: torch.Tensor, temperature: float = 1.0,
                             generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """mu + temperature * exp(logvar / 2) * eps, eps ~ N(0, I) (the reparameterization trick; ``generator``
    seeds eps for reproducible sampling)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + temperature * torch.exp(0.5 * logvar) * eps


def kl_diagonal_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor,
                          logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, exp logvar_q) || N(mu_p, exp logvar_p)) summed over the last dimension: shape (...,)."""
    ratio = torch.exp(logvar_q - logvar_p)
    diff2 = (mu_p - mu_q).pow(2) * torch.exp(-logvar_p)
    return 0.5 * (ratio + diff2 - 1.0 + logvar_p - logvar_q).sum(-1)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp logvar) || N(0, I)) summed over the last dimension: shape (...,)."""
    return 0.5 * (torch.exp(logvar) + mu.pow(2) - 1.0 - logvar).sum(-1)
