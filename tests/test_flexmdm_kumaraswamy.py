"""Kumaraswamy schedules: closed forms, finite differences, stability at the ends, state probabilities vs
Monte Carlo frequencies of sampled times."""
import math

import numpy as np
import pytest
import torch

from iterref_fairseq.modules import kumaraswamy as kuma


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


T = torch.linspace(0.01, 0.99, 41, dtype=torch.float64)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (0.5, 2.0), (2.0, 0.3), (1.3, 7.0)])
def test_cdf_icdf_hazard_match_closed_forms(a, b):
    bt = torch.tensor(b, dtype=torch.float64)
    expected = 1 - (1 - T.numpy() ** a) ** b
    np.testing.assert_allclose(kuma.cdf(T, a, bt).numpy(), expected, rtol=1e-10, atol=1e-12)
    ok = kuma.survival(T, a, bt) > 1e-8  # where F(t) still resolves t in float64
    np.testing.assert_allclose(kuma.icdf(kuma.cdf(T, a, bt), a, bt)[ok].numpy(), T[ok].numpy(), rtol=1e-6)
    # hazard = f / (1 - F) = -d/dt log(1 - F(t)), by central finite differences (of F where 1 - F is not tiny)
    h = 1e-6
    dlogs = -(torch.log(kuma.survival(T + h, a, bt)) - torch.log(kuma.survival(T - h, a, bt))) / (2 * h)
    np.testing.assert_allclose(kuma.hazard(T, a, bt).numpy(), dlogs.numpy(), rtol=1e-5)
    mid = T < 0.8
    dens = (kuma.cdf(T + h, a, bt) - kuma.cdf(T - h, a, bt)) / (2 * h)
    np.testing.assert_allclose(kuma.hazard(T, a, bt)[mid].numpy(),
                               (dens / kuma.survival(T, a, bt))[mid].numpy(), rtol=1e-4)
    # and the closed form b a t^{a-1} / (1 - t^a)
    closed = b * a * T.numpy() ** (a - 1) / (1 - T.numpy() ** a)
    np.testing.assert_allclose(kuma.hazard(T, a, bt).numpy(), closed, rtol=1e-10)


def test_linear_schedule_is_a_equals_b_equals_one():
    one = torch.tensor(1.0)
    np.testing.assert_allclose(kuma.cdf(T, 1.0, one).numpy(), T.numpy(), atol=1e-14)
    np.testing.assert_allclose(kuma.hazard(T, 1.0, one).numpy(), 1 / (1 - T.numpy()), rtol=1e-12)


def test_stable_near_zero_and_one():
    t = torch.tensor([0.0, 1e-300, 1e-12, 1e-6, 1 - 1e-9, 1 - 1e-15, 1.0])
    b = torch.tensor(2.5)
    for a in (0.3, 1.0, 3.0):
        f = kuma.cdf(t, a, b)
        assert torch.isfinite(f).all() and (f >= 0).all() and (f <= 1).all()
        assert f[0] == 0 and f[-1] == 1
        # tiny t: full relative precision (a naive 1 - (1 - t^a)^b would round to 0)
        for tiny in (1e-12, 1e-300):
            exact = -math.expm1(2.5 * math.log1p(-(tiny ** a)))
            assert math.isclose(float(kuma.cdf(torch.tensor(tiny), a, b)), exact, rel_tol=1e-9)
        assert torch.isfinite(kuma.base_hazard(t, a)).all()
        lp = kuma.state_log_probs(t[1:-1], a, b.expand(5), torch.tensor(0.7).expand(5))
        assert torch.isfinite(lp).all()


def test_gradients_finite_at_the_ends():
    b_in = torch.tensor([0.5, 1.0, 3.0], requires_grad=True)
    b_um = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    for t in (1e-6, 0.5, 1 - 1e-6):
        lp = kuma.state_log_probs(torch.tensor(t), 1.0, b_in, b_um)
        (g_in, g_um) = torch.autograd.grad(lp.sum(), (b_in, b_um))
        assert torch.isfinite(g_in).all() and torch.isfinite(g_um).all()


@pytest.mark.parametrize("a", [0.7, 1.0, 2.0])
def test_state_probabilities_sum_to_one_and_limit_is_continuous(a):
    b_in = torch.tensor([0.3, 1.0, 2.0, 2.0, 5.0])
    b_um = torch.tensor([1.0, 1.0, 2.0, 2.0 + 1e-9, 0.5])
    for t in (0.05, 0.4, 0.9):
        p = kuma.state_log_probs(torch.tensor(t), a, b_in, b_um).exp()
        np.testing.assert_allclose(p.sum(-1).numpy(), 1.0, atol=1e-10)
        assert (p >= 0).all()
        # b_in = b_um limit: -b log(1 - t^a) (1 - t^a)^b
        y = 1 - t ** a
        assert math.isclose(float(p[2, 1]), -2.0 * math.log(y) * y ** 2.0, rel_tol=1e-9)
        assert math.isclose(float(p[3, 1]), float(p[2, 1]), rel_tol=1e-6)


@pytest.mark.parametrize("a,b_in,b_um,t", [(1.0, 1.0, 1.0, 0.5), (0.6, 2.5, 1.0, 0.3), (1.8, 0.4, 3.0, 0.7)])
def test_state_probabilities_match_monte_carlo(a, b_in, b_um, t):
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    bi, bu = torch.full((n,), b_in), torch.full((n,), b_um)
    t_in, t_um = kuma.sample_times(a, bi, bu, generator=gen)
    assert (t_um >= t_in).all()
    freq = torch.stack([(t < t_in).double().mean(), ((t_in <= t) & (t < t_um)).double().mean(),
                        (t_um <= t).double().mean()])
    p = kuma.state_log_probs(torch.tensor(t), a, torch.tensor(b_in), torch.tensor(b_um)).exp()
    np.testing.assert_allclose(freq.numpy(), p.numpy(), atol=4 * math.sqrt(0.25 / n))


def test_sample_times_a_b_one_is_flexmdm_uniform():
    u_in, u_um = torch.rand(1000), torch.rand(1000)
    ones = torch.ones(1000)
    t_in, t_um = kuma.sample_times(1.0, ones, ones, u_in, u_um)
    np.testing.assert_allclose(t_in.numpy(), u_in.numpy(), atol=1e-6)  # T_in ~ U(0, 1)
    np.testing.assert_allclose(t_um.numpy(), (u_in + u_um * (1 - u_in)).numpy(), atol=1e-6)  # T_um ~ U(T_in, 1)


@pytest.mark.parametrize("a,b", [(1.0, 1.0), (2.0, 3.0), (1.5, 1.2)])
def test_kl_to_uniform_matches_numeric_integral(a, b):
    x = np.linspace(1e-7, 1 - 1e-7, 400001)
    dens = a * b * x ** (a - 1) * (1 - x ** a) ** (b - 1)
    numeric = np.trapezoid(dens * np.log(dens), x) if hasattr(np, "trapezoid") else np.trapz(dens * np.log(dens), x)
    assert math.isclose(float(kuma.kl_to_uniform(a, torch.tensor(b))), numeric, abs_tol=2e-3)
