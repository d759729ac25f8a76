"""gmres against independent truths: dense ``torch.linalg.solve``, residuals re-computed from dense A,
and a Newton-Krylov polish checked against ``scipy.optimize.root``."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.optimize
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg import LinearSolveResult as GmresResult
from spectral_probe.linalg import gmres
from spectral_probe.linalg.result import default_tol

F64 = torch.float64


def op(A: torch.Tensor):
    """matvec on the last dim; A [n, n] shared, or [*batch, n, n] one per system."""
    if A.ndim == 2:
        return lambda X: X @ A.mT
    return lambda X: (A @ X.unsqueeze(-1)).squeeze(-1)


def nonsymmetric(n: int, seed: int, shift: float = 3.0, dtype=F64) -> torch.Tensor:
    """Shifted random non-symmetric matrix: eigenvalues in a disc around ``shift``, well conditioned."""
    g = torch.Generator().manual_seed(seed)
    return (shift * torch.eye(n, dtype=F64) + torch.randn(n, n, generator=g, dtype=F64) / math.sqrt(n)).to(dtype)


def vec(n: int, seed: int, dtype=F64, batch=()) -> torch.Tensor:
    return torch.randn(*batch, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def check_honest(res: GmresResult, A: torch.Tensor, b: torch.Tensor) -> None:
    """Reported residuals are the true ||b - A x|| (dense, float64); converged matches the tolerance."""
    A64, b64, x64 = A.to(F64), b.to(F64), res.x.to(F64)
    true = torch.linalg.vector_norm(b64 - (A64 @ x64.unsqueeze(-1)).squeeze(-1), dim=-1)
    eps = torch.finfo(b.dtype).eps
    scale = float(torch.linalg.matrix_norm(A64, ord=2).max()) * float(x64.abs().max().clamp_min(1)) + float(
        b64.abs().max()
    )
    n = b.shape[-1]
    assert torch.allclose(res.residual_norm.to(F64), true, rtol=0, atol=10 * math.sqrt(n) * eps * scale)
    bnorm = torch.linalg.vector_norm(b64, dim=-1)
    tol = res.info.tol
    assert torch.equal(res.converged, res.residual_norm <= tol * torch.linalg.vector_norm(b, dim=-1))
    expected_rel = torch.where(
        bnorm > 0, res.residual_norm.to(F64) / bnorm.clamp_min(1e-300), res.residual_norm.to(F64)
    )
    assert torch.allclose(res.relative_residual.to(F64), expected_rel, rtol=1e-6, atol=0)


def solve_error_bound(A: torch.Tensor, res: GmresResult, x_true: torch.Tensor) -> torch.Tensor:
    """Forward error bound ||dx|| <= kappa(A) * ||r|| / ||b|| * ||x|| (plus rounding)."""
    kappa = torch.linalg.cond(A.to(F64))
    return (
        kappa * res.relative_residual.to(F64) + 100 * torch.finfo(res.x.dtype).eps * kappa
    ) * torch.linalg.vector_norm(x_true, dim=-1)


def test_matches_dense_solve():
    n = 120
    A, b = nonsymmetric(n, 0), vec(n, 1)
    res = gmres(op(A), b)
    x_true = torch.linalg.solve(A, b)
    check_honest(res, A, b)
    assert res.all_converged
    assert float(res.relative_residual) <= default_tol(F64)
    assert float(torch.linalg.vector_norm(res.x - x_true)) <= float(solve_error_bound(A, res, x_true))
    # the dense solution agrees to ~ kappa * tol (here kappa ~ 2): 1e-8 relative at least
    assert torch.allclose(res.x, x_true, rtol=0, atol=math.sqrt(torch.finfo(F64).eps) * float(x_true.abs().max()))


def test_restarts_and_initial_guess():
    n = 150
    A, b = nonsymmetric(n, 2, shift=1.5), vec(n, 3)
    res = gmres(op(A), b, restart=5, max_iters=2000)
    check_honest(res, A, b)
    assert res.all_converged and res.info.true_checks > 1
    x_true = torch.linalg.solve(A, b)
    assert float(torch.linalg.vector_norm(res.x - x_true)) <= float(solve_error_bound(A, res, x_true))
    # Starting from the solution: one residual matvec, nothing else to do.
    again = gmres(op(A), b, x0=x_true)
    assert again.all_converged and again.matvecs == 1 and torch.equal(again.x, x_true)


def test_batch_equals_separate_solves():
    n = 60
    As = torch.stack([nonsymmetric(n, s, shift=2.0 + s) for s in range(4)])
    bs = vec(n, 9, batch=(4,))
    bs[2] = 0.0  # a zero right-hand side in the batch: x = 0 exactly
    res = gmres(op(As), bs)
    res2d = gmres(op(As.reshape(2, 2, n, n)), bs.reshape(2, 2, n))
    check_honest(res, As, bs)
    assert res.x.shape == (4, n) and res.residual_norm.shape == (4,) and res.converged.shape == (4,)
    assert res2d.x.shape == (2, 2, n)
    x_true = torch.linalg.solve(As, bs)
    for i in range(4):
        single = gmres(op(As[i]), bs[i])
        assert torch.allclose(
            res.x[i], single.x, rtol=0, atol=1e3 * torch.finfo(F64).eps * float(x_true[i].abs().max() + 1)
        )
        assert torch.allclose(res2d.x.reshape(4, n)[i], single.x, rtol=0, atol=1e3 * torch.finfo(F64).eps * 10)
        assert (
            float(torch.linalg.vector_norm(res.x[i] - x_true[i]))
            <= float(solve_error_bound(As[i], single, x_true[i])) + 1e-300
        )
    assert res.all_converged
    assert torch.equal(res.x[2], torch.zeros(n, dtype=F64)) and float(res.residual_norm[2]) == 0.0


def test_nonconvergence_is_honest():
    n = 200
    A, b = nonsymmetric(n, 4, shift=0.3), vec(n, 5)  # eigenvalues around 0.3 +- 1: hard for GMRES
    res = gmres(op(A), b, restart=10, max_iters=15)
    check_honest(res, A, b)
    assert not res.all_converged
    assert res.info.iterations == 15
    assert res.matvecs == 15 + 2  # one true-residual matvec per cycle (2 cycles)
    assert bool(torch.isfinite(res.x).all())
    assert float(res.relative_residual) < 1.0  # GMRES never increases the residual


def test_singular_inconsistent_system_does_not_blow_up():
    n = 30
    g = torch.Generator().manual_seed(6)
    A = torch.randn(n, 5, generator=g, dtype=F64) @ torch.randn(5, n, generator=g, dtype=F64)
    b = vec(n, 7)
    res = gmres(op(A), b, max_iters=60)
    check_honest(res, A, b)
    assert not res.all_converged and bool(torch.isfinite(res.x).all())
    # the least-squares optimum over the (invariant) Krylov space is the best one can do
    lstsq = torch.linalg.lstsq(A, b.unsqueeze(-1)).solution.squeeze(-1)
    assert float(res.residual_norm) <= float(torch.linalg.vector_norm(b - A @ lstsq)) * (1 + 1e-6) + 1e-12


@pytest.mark.parametrize(
    "A",
    [
        torch.tensor([[2.0]], dtype=F64),
        torch.tensor([[-1e-3]], dtype=F64),
        torch.tensor([[0.0, 2.0], [-3.0, 0.5]], dtype=F64),
        torch.eye(5, dtype=F64),  # lucky breakdown after one step
    ],
)
def test_tiny_and_breakdown(A):
    n = A.shape[0]
    b = vec(n, 11)
    res = gmres(op(A), b)
    check_honest(res, A, b)
    assert res.all_converged
    assert torch.allclose(res.x, torch.linalg.solve(A, b), rtol=1e-10, atol=0)
    assert res.info.iterations <= n


def test_float32():
    n = 100
    A, b = nonsymmetric(n, 12, dtype=torch.float32), vec(n, 13, dtype=torch.float32)
    res = gmres(op(A), b)
    assert res.x.dtype == torch.float32 and res.info.tol == default_tol(torch.float32)
    check_honest(res, A, b)
    assert res.all_converged
    x_true = torch.linalg.solve(A.double(), b.double())
    assert float(torch.linalg.vector_norm(res.x.double() - x_true)) <= float(solve_error_bound(A, res, x_true))


def test_non_finite_operator_fails_one_system_only():
    n = 40
    As = torch.stack([nonsymmetric(n, 17), nonsymmetric(n, 18)])
    As[1, 3, 4] = math.nan
    bs = vec(n, 19, batch=(2,))
    res = gmres(op(As), bs)
    assert bool(res.converged[0]) and not bool(res.converged[1])
    assert math.isnan(float(res.residual_norm[1])) and bool(res.info.nonfinite[1])
    assert bool(torch.isfinite(res.x).all())
    assert torch.allclose(res.x[0], torch.linalg.solve(As[0], bs[0]), rtol=0, atol=1e-8)


def test_bad_arguments():
    with pytest.raises(ValueError):
        gmres(lambda x: x, torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError):
        gmres(lambda x: x, torch.ones(3, dtype=F64), restart=0)
    with pytest.raises(ValueError):
        gmres(lambda x: x, torch.ones(3, dtype=F64), x0=torch.ones(4, dtype=F64))


def test_newton_krylov_polishes_a_fixed_point():
    """z* of F(z) = W tanh(z) + b - z: Newton steps J_F dz = -F(z) solved by gmres on jvp matvecs."""
    n = 40
    g = torch.Generator().manual_seed(14)
    W = 0.8 * torch.randn(n, n, generator=g, dtype=F64) / math.sqrt(n)
    bias = 0.5 * torch.randn(n, generator=g, dtype=F64)

    def F(z):
        return W @ torch.tanh(z) + bias - z

    z = torch.zeros(n, dtype=F64)
    for _ in range(8):
        jvp = lambda v, z=z: torch.func.jvp(F, (z,), (v,))[1]  # noqa: E731
        step = gmres(jvp, -F(z))
        z = z + step.x
        if float(torch.linalg.vector_norm(F(z))) < 1e-13:
            break
    ref = scipy.optimize.root(lambda x: F(torch.from_numpy(x)).numpy(), np.zeros(n), tol=1e-14).x
    assert float(torch.linalg.vector_norm(F(z))) < 1e-12
    assert np.allclose(z.numpy(), ref, rtol=0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), seed=st.integers(0, 2**31 - 1), shift=st.sampled_from([1.5, 3.0, 10.0]))
def test_property_random_systems(n, seed, shift):
    A, b = nonsymmetric(n, seed, shift=shift), vec(n, seed + 1)
    res = gmres(op(A), b)
    check_honest(res, A, b)
    assert res.all_converged
    x_true = torch.linalg.solve(A, b)
    assert float(torch.linalg.vector_norm(res.x - x_true)) <= float(solve_error_bound(A, res, x_true))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    n = 100
    A, b = nonsymmetric(n, 15), vec(n, 16, batch=(3,))
    cpu = gmres(op(A), b)
    gpu = gmres(op(A.cuda()), b.cuda())
    assert gpu.x.device.type == "cuda" and gpu.all_converged
    assert torch.allclose(gpu.x.cpu(), cpu.x, rtol=0, atol=1e-9)
