"""Transient growth bounds against dense matrix_power / matrix_exp norms (issue 11, "What it must show")."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.analysis.transient import is_transient, max_flow_norm, max_power_norm, operator_norm
from tests.analysis.cases import DTYPE, dense_flow_norms, dense_max_power, linear_ops, rotated_shear, shear

ROUNDING = 1e-10  # a lower bound may exceed the truth by rounding only


def starts(n: int, seed: int, p: int = 2) -> torch.Tensor:
    return torch.randn(1, p, n, generator=torch.Generator().manual_seed(seed), dtype=DTYPE)


@pytest.mark.parametrize(
    ("jf", "eps", "horizon"),
    [
        (shear(12, 0.4, 1.0, seed=0), 0.5, 100),  # rho = 0.8, max_k ||M^k|| ~ 3.7e3 at k = 53
        (shear(8, 0.2, 2.0, seed=1), 0.25, 60),
        (rotated_shear(10, seed=2), 0.5, 80),
    ],
)
def test_power_bound_is_a_lower_bound_within_ten_percent(jf: torch.Tensor, eps: float, horizon: int) -> None:
    n = jf.shape[0]
    m = torch.eye(n, dtype=DTYPE) + eps * jf
    truth, k_truth = dense_max_power(m, horizon)
    rho = float(torch.linalg.eigvals(m).abs().max())
    bound = max_power_norm(linear_ops(jf, eps=eps), starts(n, 7), horizon=horizon, tol=1e-8)
    assert bound.value[0] <= truth * (1 + ROUNDING)
    assert bound.value[0] >= 0.9 * truth, (bound.value[0], truth, k_truth)
    # the history is monotone: every sweep's bound is at least the previous one
    assert all(b >= a * (1 - ROUNDING) for a, b in zip(bound.history[0], bound.history[0][1:], strict=False))
    assert rho < 1  # the stable-yet-amplifying regime of the issue
    assert is_transient(rho, bound.value[0], DTYPE) is True


def test_stable_case_with_growth_above_ten() -> None:
    """rho < 1 and max_k ||M^k|| > 10: the flag is set and the bound itself proves the growth."""
    jf = shear(12, 0.4, 1.0, seed=0)
    m = torch.eye(12, dtype=DTYPE) + 0.5 * jf
    truth, _ = dense_max_power(m, 100)
    rho = float(torch.linalg.eigvals(m).abs().max())
    bound = max_power_norm(linear_ops(jf, eps=0.5), starts(12, 3), horizon=100, tol=1e-8)
    assert rho < 1 and truth > 10
    assert 10 < bound.value[0] <= truth * (1 + ROUNDING)
    assert is_transient(rho, bound.value[0], DTYPE)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(2, 9), seed=st.integers(0, 10_000), coupling=st.floats(0.0, 3.0), decay=st.floats(0.05, 1.0))
def test_power_bound_never_exceeds_the_truth(n: int, seed: int, coupling: float, decay: float) -> None:
    jf = shear(n, decay, coupling, seed, noise=0.3)
    horizon = 30
    m = torch.eye(n, dtype=DTYPE) + 0.5 * jf
    truth, _ = dense_max_power(m, horizon)
    bound = max_power_norm(linear_ops(jf, eps=0.5), starts(n, seed + 1), horizon=horizon, tol=1e-8)
    assert bound.value[0] <= truth * (1 + ROUNDING)
    assert bound.value[0] >= 0.9 * truth


@pytest.mark.parametrize(("jf", "eps"), [(shear(12, 0.4, 1.0, seed=0), 0.5), (rotated_shear(10, seed=4), 0.4)])
def test_flow_bound_against_matrix_exp(jf: torch.Tensor, eps: float) -> None:
    n, steps = jf.shape[0], 60
    t_max = steps * eps
    ops = linear_ops(jf, eps=eps)
    norm_jf = float(torch.linalg.matrix_norm(jf, ord=2))
    bound = max_flow_norm(ops, starts(n, 5), t_max=t_max, steps=steps, norm_jf=norm_jf, tol=1e-12)
    grid = dense_flow_norms(jf, [j * t_max / steps for j in range(1, steps + 1)])
    fine = dense_flow_norms(jf, [j * t_max / (8 * steps) for j in range(1, 8 * steps + 1)])
    assert bound.value[0] <= max(fine) * (1 + ROUNDING)  # a lower bound on the sup over (0, T]
    assert bound.value[0] >= 0.9 * max(grid)
    assert max(grid) > 10  # a genuinely amplifying flow although alpha < 0
    assert float(torch.linalg.eigvals(jf).real.max()) < 0
    # the reported time is where the vector found attains the bound
    t = bound.at[0]
    x = bound.vector[0]
    attained = float(torch.linalg.vector_norm(torch.linalg.matrix_exp(t * jf) @ x))
    assert attained == pytest.approx(bound.value[0], rel=1e-8)


def test_operator_norm_matches_dense() -> None:
    jf = rotated_shear(10, seed=6)
    ops = linear_ops(jf, eps=0.7)
    norms, matvecs = operator_norm(ops.m, ops.m_t, starts(10, 1, p=1)[:, 0], tol=1e-12)
    m = torch.eye(10, dtype=DTYPE) + 0.7 * jf
    assert norms[0] == pytest.approx(float(torch.linalg.matrix_norm(m, ord=2)), rel=1e-9)
    assert matvecs > 0


def test_a_normal_contraction_has_no_transient() -> None:
    jf = -0.5 * torch.eye(6, dtype=DTYPE)
    bound = max_power_norm(linear_ops(jf, eps=1.0), starts(6, 2), horizon=20, tol=1e-10)
    assert bound.value[0] == pytest.approx(0.5, rel=1e-12) and bound.at[0] == 1
    assert is_transient(0.5, bound.value[0], DTYPE) is False
    assert is_transient(None, 3.0, DTYPE) is None
    assert is_transient(1.2, 30.0, DTYPE) is False  # unstable: growth is not "transient"
    assert math.isfinite(bound.value[0])
