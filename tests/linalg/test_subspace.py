"""Block Rayleigh-Ritz against dense ``numpy.linalg.eig``, SciPy ARPACK ``eigs`` and closed forms.

The test matrices have spectra known by construction (``matrices.block_spectrum``); the normal ones
(orthogonal similarity of a block-diagonal matrix) bound the eigenvalue error by the residual.
"""

from __future__ import annotations

import cmath
import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.result import default_tol
from spectral_probe.linalg.subspace import block_rayleigh_ritz

from .matrices import CountingOperator, arpack_eigs_lm, block_spectrum, dense_matvec

F64 = torch.float64


def start(shape: tuple[int, ...], seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def independent_residuals(a: np.ndarray, values: torch.Tensor, vectors: torch.Tensor) -> np.ndarray:
    """``||M u - mu u||`` recomputed in complex128 numpy from the returned pairs (no solver code)."""
    mu = values.detach().cpu().to(torch.complex128).numpy()
    u = vectors.detach().cpu().to(torch.complex128).numpy()
    return np.linalg.norm(u @ a.T - mu[..., None] * u, axis=-1)


def leading(eigenvalues: np.ndarray) -> complex:
    """The largest-modulus eigenvalue with ``imag >= 0`` (the convention of the solver's ``values[0]``)."""
    top = eigenvalues[np.argmax(np.abs(eigenvalues))]
    return complex(top.real, abs(top.imag))


def check_leading(a: np.ndarray, result, dtype: torch.dtype = F64, rel: float | None = None) -> None:
    """Converged leading pair, honest residuals, value equal to the dense one (normal matrices)."""
    dense = np.linalg.eigvals(a)
    norm = float(np.linalg.norm(a, 2))
    eps = torch.finfo(dtype).eps
    res = independent_residuals(a, result.values, result.vectors)
    assert bool(result.converged[..., 0].all()), (result.values, result.residuals)
    np.testing.assert_allclose(result.residuals.double().numpy(), res, rtol=0, atol=50 * eps * norm)
    assert res[0] <= default_tol(dtype) * norm + 50 * eps * norm
    assert 0 < float(result.norm_estimate) <= norm * (1 + 50 * eps)
    got = complex(result.values[0])
    truth = leading(dense)
    bound = rel * abs(truth) if rel is not None else res[0] + 50 * eps * norm
    assert abs(got - truth) <= bound, (got, truth)
    assert got.imag >= 0


# ------------------------------------------------------------------------------------------------------
# A complex leading pair: the 2-D block finds it, a 1-D iteration cannot.
# ------------------------------------------------------------------------------------------------------


def hopf_matrix(seed: int, coupling: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Leading pair 1.05 exp(+-0.9 i), then a pair of modulus 0.6 and 40 reals in [-0.5, 0.5]."""
    reals = np.random.default_rng(seed).uniform(-0.5, 0.5, 40)
    return block_spectrum([(1.05, 0.9), (0.6, 2.5)], reals, seed, coupling=coupling)


@pytest.mark.parametrize("p", [2, 3, 4])
def test_complex_leading_pair(p: int) -> None:
    a, lam = hopf_matrix(seed=1)
    r = block_rayleigh_ritz(dense_matvec(a), start((p, a.shape[0]), 0))
    assert r.values.shape == (p,) and r.values.is_complex() and r.vectors.shape == (p, a.shape[0])
    check_leading(a, r, rel=1e-8)
    expected = 1.05 * cmath.exp(0.9j)
    assert abs(complex(r.values[0]) - expected) <= 1e-10
    # The pair comes out as a pair: conj(values[0]) next, with the same residual.
    assert abs(complex(r.values[1]) - expected.conjugate()) <= 1e-10
    assert abs(float(r.values[0].abs()) - 1.05) <= 1e-12
    # Second oracle: ARPACK eigs(LM) from a random start.
    w = arpack_eigs_lm(a, 4, seed=3)
    assert abs(abs(w[0]) - float(r.values[0].abs())) <= 1e-8 * 1.05
    assert abs(complex(w[0].real, abs(w[0].imag)) - complex(r.values[0])) <= 1e-8
    # One sweep costs p matvecs; the residuals need no extra one.
    assert r.matvecs == p * r.iterations


def test_one_dimensional_block_cannot_represent_a_complex_pair() -> None:
    a, _ = hopf_matrix(seed=1)
    r = block_rayleigh_ritz(dense_matvec(a), start((1, a.shape[0]), 0), max_iters=200)
    # A real vector's Rayleigh quotient is real: its modulus is wrong, and it never converges.
    assert not r.all_converged
    assert abs(float(r.values[0].imag)) == 0.0
    assert abs(float(r.values[0].abs()) - 1.05) > 0.1
    res = independent_residuals(a, r.values, r.vectors)
    np.testing.assert_allclose(r.residuals.numpy(), res, rtol=1e-10)


def test_non_normal_complex_leading_pair() -> None:
    # Non-normal: the same spectrum behind strong upper-triangular coupling. The Ritz value error is
    # now kappa * residual; the bound below uses the computed eigenvector condition number.
    a, lam = hopf_matrix(seed=2, coupling=0.3)
    assert np.linalg.norm(a @ a.T - a.T @ a) > 1.0
    r = block_rayleigh_ritz(dense_matvec(a), start((2, a.shape[0]), 1))
    assert r.all_converged
    w, vr = np.linalg.eig(a)
    i = int(np.argmax(np.abs(w)))
    vl = np.linalg.inv(vr).conj().T[:, i]
    kappa = np.linalg.norm(vl) * np.linalg.norm(vr[:, i]) / abs(vl.conj() @ vr[:, i])
    res = independent_residuals(a, r.values, r.vectors)
    assert abs(complex(r.values[0]) - leading(w)) <= 2 * kappa * res[0] + 1e-14
    np.testing.assert_allclose(float(r.values[0].abs()), 1.05, rtol=1e-8)
    w_arpack = arpack_eigs_lm(a, 4, seed=4)
    np.testing.assert_allclose(abs(w_arpack[0]), float(r.values[0].abs()), rtol=1e-8)


def test_real_negative_leading_eigenvalue() -> None:
    # Flip: the largest modulus is real and negative (-1.3); a complex pair of modulus 1.2 follows.
    a, _ = block_spectrum([(1.2, 2.0)], np.r_[[-1.3], np.linspace(-0.7, 0.7, 30)], seed=5)
    r = block_rayleigh_ritz(dense_matvec(a), start((2, a.shape[0]), 2))
    check_leading(a, r, rel=1e-8)
    assert abs(complex(r.values[0]) - (-1.3)) <= 1e-10


# ------------------------------------------------------------------------------------------------------
# Two leading pairs of nearly equal modulus: p = 2 cannot converge (and says so), p = 4 does.
# ------------------------------------------------------------------------------------------------------


def test_two_leading_pairs_need_a_wider_block() -> None:
    reals = np.random.default_rng(6).uniform(-0.4, 0.4, 40)
    a, _ = block_spectrum([(1.0, 0.7), (0.99, 2.0)], reals, seed=6)
    mv = dense_matvec(a)
    narrow = block_rayleigh_ritz(mv, start((2, a.shape[0]), 3), max_iters=500)
    # Rate |lambda_3| / |lambda_2| = 0.99 per sweep: 500 sweeps leave a residual far above tol.
    assert not narrow.all_converged
    res = independent_residuals(a, narrow.values, narrow.vectors)
    np.testing.assert_allclose(narrow.residuals.numpy(), res, rtol=1e-8)
    assert res[0] > narrow.tol * np.linalg.norm(a, 2)
    assert narrow.matvecs == 2 * narrow.iterations
    wide = block_rayleigh_ritz(mv, start((4, a.shape[0]), 4))
    check_leading(a, wide, rel=1e-8)
    assert abs(float(wide.values[0].abs()) - 1.0) <= 1e-10
    # Both pairs are in the wide block.
    np.testing.assert_allclose(wide.values.abs().numpy(), [1.0, 1.0, 0.99, 0.99], rtol=1e-6)
    assert wide.iterations < 100
    np.testing.assert_allclose(abs(arpack_eigs_lm(a, 4, seed=5)[0]), float(wide.values[0].abs()), rtol=1e-8)


def test_stagnation_below_round_off_stops_early() -> None:
    # A tolerance below round-off cannot be met: the leading value settles, the residual stops
    # improving, and the iteration stops long before max_iters with an honest converged=False.
    a, _ = hopf_matrix(seed=7)
    r = block_rayleigh_ritz(dense_matvec(a), start((2, a.shape[0]), 5), tol=1e-20, max_iters=1000)
    assert not r.all_converged
    assert bool(r.info.stagnated)
    assert r.iterations < 300
    check_leading(
        a, dataclasses.replace(r, info=dataclasses.replace(r.info, converged=torch.ones_like(r.converged))), rel=1e-12
    )


def test_forced_non_convergence_returns_honest_partial_result() -> None:
    a, _ = hopf_matrix(seed=8)
    counter = CountingOperator(dense_matvec(a), batch_ndim=0)
    r = block_rayleigh_ritz(counter, start((2, a.shape[0]), 6), max_iters=2)
    assert not r.all_converged and r.iterations == 2
    assert r.matvecs == counter.vectors == 4
    res = independent_residuals(a, r.values, r.vectors)
    np.testing.assert_allclose(r.residuals.numpy(), res, rtol=1e-10, atol=1e-15)
    np.testing.assert_array_equal(r.converged.numpy(), res <= r.tol * float(r.norm_estimate))
    # A partial answer is still a Rayleigh-Ritz answer: unit vectors, ||M|| bounds its values.
    np.testing.assert_allclose(np.linalg.norm(r.vectors.numpy(), axis=-1), 1.0, rtol=1e-12)
    assert float(r.values.abs().max()) <= np.linalg.norm(a, 2) * (1 + 1e-12)
    assert r.info.history.shape == (2,)
    np.testing.assert_allclose(float(r.info.history[-1]), float(r.values[0].abs()), rtol=1e-14)


# ------------------------------------------------------------------------------------------------------
# Tiny n, batches, float32, counting.
# ------------------------------------------------------------------------------------------------------


def test_n_equals_1() -> None:
    for value in (-2.0, 0.0, 0.5):
        r = block_rayleigh_ritz(lambda x, value=value: value * x, start((2, 1), 7))
        assert r.values.shape == (1,)  # the block is clipped to n
        assert complex(r.values[0]) == pytest.approx(value, abs=1e-15)
        assert r.all_converged and r.iterations == 1


@pytest.mark.parametrize("seed", range(4))
def test_n_equals_2_closed_form(seed: int) -> None:
    a = np.random.default_rng(seed).standard_normal((2, 2))
    half_trace, det = np.trace(a) / 2, np.linalg.det(a)
    root = cmath.sqrt(half_trace**2 - det)
    closed = sorted([half_trace + root, half_trace - root], key=lambda z: (-abs(z), -z.imag))
    r = block_rayleigh_ritz(dense_matvec(a), start((2, 2), seed))
    assert r.all_converged and r.iterations == 1  # the block spans R^2: exact in one sweep
    got = r.values.numpy()
    np.testing.assert_allclose(np.abs(got), np.abs(closed), rtol=1e-12)
    assert abs(complex(got[0]) - complex(closed[0].real, abs(closed[0].imag))) <= 1e-12 * abs(closed[0])


def test_batch_equals_separate_solves() -> None:
    n, batch = 30, (2, 2)
    reals = np.linspace(-0.5, 0.5, n - 4)
    cases = [
        block_spectrum([(1.1, 0.5), (0.7, 1.0)], reals, seed=10),  # complex pair leads
        block_spectrum([(0.8, 0.5), (0.7, 1.0)], np.r_[[1.2], reals[1:]], seed=11),  # real leads
        block_spectrum([(0.9, 3.0), (0.3, 1.0)], reals * 0.1, seed=12),  # fast convergence
        block_spectrum([(2.0, 1.5), (1.9, 0.4)], reals, seed=13),  # slow: 0.95 rate
    ]
    mats = np.stack([c[0] for c in cases]).reshape(*batch, n, n)
    x0 = start((*batch, 4, n), 8)
    r = block_rayleigh_ritz(dense_matvec(mats), x0)
    assert r.values.shape == (*batch, 4) and r.vectors.shape == (*batch, 4, n)
    assert r.info.history.shape == (*batch, r.iterations)
    sweeps = r.info.iterations_per_problem
    for i in range(batch[0]):
        for j in range(batch[1]):
            one = block_rayleigh_ritz(dense_matvec(mats[i, j]), x0[i, j])
            # Frozen at convergence: the batch element IS its separate solve (same sweeps, same pairs).
            assert int(sweeps[i, j]) == one.iterations
            np.testing.assert_allclose(r.values[i, j].numpy(), one.values.numpy(), rtol=1e-12, atol=1e-14)
            info = dataclasses.replace(
                r.info, residuals=r.residuals[i, j], converged=r.converged[i, j], norm_estimate=r.norm_estimate[i, j]
            )
            sub = type(r)(values=r.values[i, j], vectors=r.vectors[i, j], info=info)
            check_leading(mats[i, j], sub, rel=1e-8)


def test_float32_complex_pair() -> None:
    a, lam = hopf_matrix(seed=9)
    r = block_rayleigh_ritz(dense_matvec(a, torch.float32), start((2, a.shape[0]), 9, torch.float32))
    assert r.values.dtype == torch.complex64 and r.vectors.dtype == torch.complex64
    assert r.tol == default_tol(torch.float32)
    check_leading(a, r, dtype=torch.float32)
    assert abs(float(r.values[0].abs()) - 1.05) <= 2 * default_tol(torch.float32) * np.linalg.norm(a, 2)


def test_matvec_count_is_what_the_operator_saw() -> None:
    a, _ = hopf_matrix(seed=10)
    mats = np.broadcast_to(a, (3, *a.shape))
    for p in (2, 5):
        counter = CountingOperator(dense_matvec(mats), batch_ndim=1)
        r = block_rayleigh_ritz(counter, start((3, p, a.shape[0]), 11))
        # The run stops on the LEADING pair; the others are reported as they are.
        assert bool(r.converged[..., 0].all())
        assert r.matvecs == counter.vectors == p * r.iterations


def test_warm_start_converges_faster() -> None:
    a, _ = hopf_matrix(seed=11)
    cold = block_rayleigh_ritz(dense_matvec(a), start((2, a.shape[0]), 12))
    # The real and imaginary parts of the leading Ritz vector span the real invariant plane.
    u = cold.vectors[0]
    warm_start = torch.stack([u.real, u.imag])
    warm = block_rayleigh_ritz(dense_matvec(a), warm_start)
    assert warm.all_converged and warm.iterations <= 2 < cold.iterations
    assert abs(complex(warm.values[0]) - complex(cold.values[0])) <= 1e-10


def test_non_finite_matvec_is_reported_not_raised() -> None:
    a, _ = hopf_matrix(seed=13)
    mats = np.stack([a, a])

    def matvec(x: torch.Tensor) -> torch.Tensor:
        y = dense_matvec(mats)(x)
        y[1] = float("inf")  # the second problem's operator is broken
        return y

    r = block_rayleigh_ritz(matvec, start((2, 2, a.shape[0]), 14))
    assert bool(r.converged[0, 0]) and not bool(r.converged[1].any())
    assert bool(r.info.nonfinite[1]) and torch.isnan(r.values[1]).all()
    assert abs(float(r.values[0, 0].abs()) - 1.05) <= 1e-10


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="block"):
        block_rayleigh_ritz(lambda x: x, torch.ones(5, dtype=F64))
    with pytest.raises(ValueError, match="max_iters"):
        block_rayleigh_ritz(lambda x: x, torch.ones(2, 5, dtype=F64), max_iters=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda(dtype: torch.dtype) -> None:
    a, _ = hopf_matrix(seed=12)
    x0 = start((2, 2, a.shape[0]), 13, dtype).cuda()
    r = block_rayleigh_ritz(dense_matvec(np.stack([a, a]), dtype), x0)
    assert r.values.device.type == "cuda" and r.all_converged
    rho = r.values[..., 0].abs().cpu().double().numpy()
    np.testing.assert_allclose(rho, 1.05, atol=2 * default_tol(dtype) * np.linalg.norm(a, 2))


# ------------------------------------------------------------------------------------------------------
# Property-based: random sizes, spectra (a dominant real eigenvalue or complex pair), blocks, seeds.
# ------------------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**31 - 1),
    complex_lead=st.booleans(),
    p=st.integers(2, 4),
    ratio=st.floats(0.05, 0.8),
    scale=st.floats(1e-3, 1e3),
)
def test_property_against_dense(n: int, seed: int, complex_lead: bool, p: int, ratio: float, scale: float) -> None:
    rng = np.random.default_rng(seed)
    complex_lead = complex_lead and n >= 2
    rest = n - (2 if complex_lead else 1)
    # The rest of the spectrum within `ratio` of the leading modulus: a gap the iteration must cross.
    n_pairs = rest // 4
    pairs = [(scale * ratio * rng.uniform(0, 1), rng.uniform(0.1, 3.0)) for _ in range(n_pairs)]
    reals = scale * ratio * rng.uniform(-1, 1, rest - 2 * n_pairs)
    angle = rng.uniform(0.05, math.pi - 0.05)
    if complex_lead:
        pairs = [(scale, angle), *pairs]
    else:
        reals = np.r_[[scale * rng.choice([-1.0, 1.0])], reals]
    a, lam = block_spectrum(pairs, reals, seed)
    r = block_rayleigh_ritz(dense_matvec(a), start((p, n), seed % 1000))
    assert r.values.shape == (min(p, n),)
    check_leading(a, r)
    np.testing.assert_allclose(float(r.values[0].abs()), scale, rtol=1e-8)
    # rho_history ends at the reported modulus, and the cost is p matvecs per sweep.
    np.testing.assert_allclose(float(r.info.history[-1]), float(r.values[0].abs()), rtol=1e-14)
    assert r.matvecs == min(p, n) * r.iterations
    if n >= 6:
        w = arpack_eigs_lm(a, 2, seed=seed % 997)
        np.testing.assert_allclose(abs(w[0]), float(r.values[0].abs()), rtol=1e-8)
