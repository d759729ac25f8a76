"""Thick-restart Lanczos against dense ``numpy.linalg.eigh``, SciPy ARPACK ``eigsh`` and closed forms.

Tolerances scale with the dtype (``default_tol``, machine epsilon), never with the answer being tested.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.result import default_tol
from spectral_probe.linalg.symmetric import lanczos

from .matrices import CountingOperator, arpack_eigsh, dense_matvec, low_rank_symmetric, symmetric

F64 = torch.float64


def start(shape: tuple[int, ...], seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def dense_truth(a: np.ndarray, which: str, k: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Eigenvalues and eigenvectors (rows) from ``numpy.linalg.eigh``, best first, and ``||A||_2``."""
    w, v = np.linalg.eigh(a)
    order = np.argsort(-w) if which == "LA" else np.argsort(w)
    return w[order][:k], v[:, order][:, :k].T, float(np.abs(w).max())


def independent_residuals(a: np.ndarray, values: torch.Tensor, vectors: torch.Tensor) -> np.ndarray:
    """``||A v - lambda v||`` recomputed in float64 numpy from the returned pairs (no solver code)."""
    lam = values.detach().cpu().double().numpy()
    vec = vectors.detach().cpu().double().numpy()
    return np.linalg.norm(vec @ a.T - lam[..., None] * vec, axis=-1)


def check_against_truth(a: np.ndarray, result, which: str, nev: int, dtype: torch.dtype = F64) -> None:
    """Converged, honest residuals, values within the residual bound of the dense eigenvalues."""
    truth, truth_vecs, norm = dense_truth(a, which, nev)
    eps = torch.finfo(dtype).eps
    tol = default_tol(dtype)
    res = independent_residuals(a, result.values, result.vectors)
    assert result.all_converged, (result.values, result.residuals)
    # The reported residuals are the true ones (to the rounding of one matvec).
    np.testing.assert_allclose(result.residuals.double().numpy(), res, rtol=0, atol=20 * eps * norm)
    assert np.all(res <= tol * norm + 20 * eps * norm)
    # Symmetric: an eigenvalue lies within ||r|| of each Ritz value; it must be the WANTED one.
    got = result.values.double().numpy()
    assert np.all(np.abs(got - truth) <= res + 20 * eps * norm), (got, truth)
    # A lower bound of ||A||_2, up to the rounding of the Rayleigh quotient it comes from (a block basis
    # after restarts: a few dozen u ||A||).
    assert 0 < float(result.norm_estimate) <= norm * (1 + 100 * eps)


# ------------------------------------------------------------------------------------------------------
# The trap: an indefinite matrix whose NEGATIVE end dominates in magnitude.
# ------------------------------------------------------------------------------------------------------


def test_negative_end_dominates_returns_largest_algebraic() -> None:
    n = 120
    lam = np.r_[np.linspace(-10.0, -0.5, n - 2), [0.7, 1.0]]
    a = symmetric(lam, seed=1)
    # Largest magnitude (what plain power iteration finds) is -10, not the answer.
    assert np.abs(np.linalg.eigvalsh(a)).argmax() == 0
    r = lanczos(dense_matvec(a), start((n,), 0), which="LA", nev=2, krylov_dim=20)
    check_against_truth(a, r, "LA", 2)
    np.testing.assert_allclose(r.values.numpy(), [1.0, 0.7], rtol=1e-8)
    # Second oracle: ARPACK from an independent random start.
    w_arpack, v_arpack, _ = arpack_eigsh(a, 2, "LA", seed=7)
    np.testing.assert_allclose(r.values.numpy(), w_arpack, rtol=1e-8)
    # Eigenvectors up to sign: |<v, v_ref>| = 1 (well separated eigenvalues).
    overlap = np.abs(np.sum(r.vectors.numpy() * v_arpack, axis=-1))
    np.testing.assert_allclose(overlap, 1.0, atol=1e-8)
    # And "SA" gets the other end.
    r_sa = lanczos(dense_matvec(a), start((n,), 1), which="SA", nev=1, krylov_dim=20)
    check_against_truth(a, r_sa, "SA", 1)
    np.testing.assert_allclose(float(r_sa.values[0]), -10.0, rtol=1e-8)


@pytest.mark.parametrize("which", ["LM", "SM", "la", "BE", ""])
def test_invalid_which_lists_valid_choices(which: str) -> None:
    with pytest.raises(ValueError, match="'LA', 'SA'"):
        lanczos(lambda x: x, start((4,), 0), which=which)


def test_invalid_sizes() -> None:
    with pytest.raises(ValueError, match="nev"):
        lanczos(lambda x: x, start((3,), 0), nev=4)
    with pytest.raises(ValueError, match="krylov_dim"):
        lanczos(lambda x: x, start((10,), 0), nev=2, krylov_dim=2)
    with pytest.raises(ValueError, match="floating"):
        lanczos(lambda x: x, torch.ones(3, dtype=torch.long))


# ------------------------------------------------------------------------------------------------------
# Clustered and repeated eigenvalues.
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_clustered_top(which: str) -> None:
    n = 150
    cluster = [1.0, 1.0 - 1e-3, 1.0 - 2e-3, 1.0 - 3e-3]
    lam = np.r_[np.linspace(-1.0, 0.9, n - 4), cluster]
    if which == "SA":
        lam = -lam
    a = symmetric(lam, seed=2)
    r = lanczos(dense_matvec(a), start((n,), 3), which=which, nev=3, krylov_dim=24)
    check_against_truth(a, r, which, 3)
    truth, _, _ = dense_truth(a, which, 3)
    np.testing.assert_allclose(r.values.numpy(), truth, rtol=1e-8)
    w_arpack, _, _ = arpack_eigsh(a, 3, which, seed=11)
    np.testing.assert_allclose(r.values.numpy(), w_arpack, rtol=1e-8)


def test_repeated_top_eigenvalue() -> None:
    # lambda_max = 2 with multiplicity 3: one copy is all a single Krylov space holds, and is enough.
    n = 100
    lam = np.r_[np.linspace(-3.0, 1.5, n - 3), [2.0, 2.0, 2.0]]
    a = symmetric(lam, seed=3)
    r = lanczos(dense_matvec(a), start((n,), 4), which="LA", nev=1, krylov_dim=20)
    check_against_truth(a, r, "LA", 1)
    np.testing.assert_allclose(float(r.values[0]), 2.0, rtol=1e-10)
    w_arpack, _, _ = arpack_eigsh(a, 1, "LA", seed=5)
    np.testing.assert_allclose(float(r.values[0]), w_arpack[0], rtol=1e-10)


def test_repeated_eigenvalues_all_copies_when_the_space_is_spanned() -> None:
    # krylov_dim >= n: each breakdown restarts with a random vector orthogonal to the basis, until the
    # basis spans R^n and every copy of a multiple eigenvalue is present.
    n = 12
    lam = np.r_[[5.0, 5.0, 5.0], [1.0] * 5, np.linspace(-2, 0, n - 8)]
    a = symmetric(lam, seed=4)
    r = lanczos(dense_matvec(a), start((n,), 5), which="LA", nev=4, krylov_dim=50)
    check_against_truth(a, r, "LA", 4)
    np.testing.assert_allclose(r.values.numpy(), [5.0, 5.0, 5.0, 1.0], rtol=1e-12)
    assert int(r.info.breakdowns) >= 1
    # The three eigenvectors for 5 are orthonormal: they span the whole eigenspace.
    v = r.vectors[:3].numpy()
    np.testing.assert_allclose(v @ v.T, np.eye(3), atol=1e-12)


def test_identity_operator() -> None:
    n = 9
    r = lanczos(lambda x: x.clone(), start((n,), 6), which="LA", nev=3)
    np.testing.assert_allclose(r.values.numpy(), [1.0, 1.0, 1.0], rtol=1e-14)
    assert r.all_converged


# ------------------------------------------------------------------------------------------------------
# Breakdown: low rank, tiny n, zero start, zero operator.
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("which", "nev", "expected"), [("LA", 1, [2.0]), ("LA", 2, [2.0, 1.0]), ("SA", 1, [-5.0])])
def test_low_rank_operator_breaks_down_early(which: str, nev: int, expected: list[float]) -> None:
    n = 80
    a = low_rank_symmetric([-5.0, 2.0, 1.0], n, seed=5)
    r = lanczos(dense_matvec(a), start((n,), 7), which=which, nev=nev, krylov_dim=30)
    check_against_truth(a, r, which, nev)
    np.testing.assert_allclose(r.values.numpy(), expected, rtol=1e-10)
    # The Krylov space of a rank-3 operator is invariant after 4 steps: a breakdown, not 30 steps.
    assert int(r.info.breakdowns) >= 1
    assert r.matvecs <= 4 + nev + 2
    w_arpack, _, _ = arpack_eigsh(a, nev, which, seed=3)
    np.testing.assert_allclose(r.values.numpy(), w_arpack, rtol=1e-8)


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_n_equals_1(which: str) -> None:
    for value in (-3.5, 0.0, 2.0):
        r = lanczos(lambda x, value=value: value * x, start((1,), 8), which=which)
        assert float(r.values[0]) == pytest.approx(value, abs=1e-15)
        assert r.all_converged
        np.testing.assert_allclose(r.vectors.abs().numpy(), [[1.0]])


@pytest.mark.parametrize("seed", range(4))
def test_n_equals_2_closed_form(seed: int) -> None:
    a11, a12, a22 = np.random.default_rng(seed).standard_normal(3)
    a = np.array([[a11, a12], [a12, a22]])
    mean, half = (a11 + a22) / 2, math.hypot((a11 - a22) / 2, a12)
    for which, nev, expected in (("LA", 2, [mean + half, mean - half]), ("SA", 1, [mean - half])):
        r = lanczos(dense_matvec(a), start((2,), seed), which=which, nev=nev)
        np.testing.assert_allclose(r.values.numpy(), expected, rtol=1e-13, atol=1e-15)
        check_against_truth(a, r, which, nev)


def test_zero_start_and_zero_operator() -> None:
    n = 30
    a = symmetric(np.linspace(-1.0, 3.0, n), seed=6)
    r = lanczos(dense_matvec(a), torch.zeros(n, dtype=F64), which="LA")
    check_against_truth(a, r, "LA", 1)
    r0 = lanczos(lambda x: torch.zeros_like(x), start((n,), 9), which="LA", nev=2)
    assert r0.all_converged
    np.testing.assert_array_equal(r0.values.numpy(), [0.0, 0.0])


# ------------------------------------------------------------------------------------------------------
# float32, batches, counting, non-convergence.
# ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_float32(which: str) -> None:
    n = 200
    lam = np.r_[np.linspace(-4.0, -1.0, n // 2), np.linspace(-0.5, 2.0, n // 2)]
    a = symmetric(lam, seed=7)
    r = lanczos(dense_matvec(a, torch.float32), start((n,), 10, torch.float32), which=which, nev=2)
    assert r.values.dtype == torch.float32 and r.vectors.dtype == torch.float32
    assert r.tol == default_tol(torch.float32)
    check_against_truth(a, r, which, 2, dtype=torch.float32)


def test_batch_equals_separate_solves() -> None:
    n, batch = 60, (2, 3)
    spectra = [
        np.linspace(-5, 1, n),  # negative end dominant
        np.r_[np.linspace(0, 1, n - 1), [1.0 + 1e-4]],  # tight gap
        np.ones(n) * 3.0,  # identity-like: breaks down at once
        np.r_[np.zeros(n - 2), [4.0, -7.0]],  # rank 2: breaks down at step 3
        np.random.default_rng(0).standard_normal(n),
        np.linspace(-1, 1, n) ** 3,
    ]
    mats = np.stack([symmetric(s, seed=10 + i) for i, s in enumerate(spectra)]).reshape(*batch, n, n)
    x0 = start((*batch, n), 11)
    r = lanczos(dense_matvec(mats), x0, which="LA", nev=2, krylov_dim=16)
    assert r.values.shape == (*batch, 2) and r.vectors.shape == (*batch, 2, n)
    assert r.residuals.shape == (*batch, 2) and r.norm_estimate.shape == batch
    for i in range(batch[0]):
        for j in range(batch[1]):
            one = lanczos(dense_matvec(mats[i, j]), x0[i, j], which="LA", nev=2, krylov_dim=16)
            assert one.all_converged
            # Equal to the separate solve (both to the tolerance: the batch runs until its slowest
            # problem converged, the separate solve stops earlier) and to the dense truth.
            norm = np.abs(np.linalg.eigvalsh(mats[i, j])).max()
            np.testing.assert_allclose(r.values[i, j].numpy(), one.values.numpy(), atol=1e-10 * norm)
            info = dataclasses.replace(
                r.info, residuals=r.residuals[i, j], converged=r.converged[i, j], norm_estimate=r.norm_estimate[i, j]
            )
            sub = type(r)(values=r.values[i, j], vectors=r.vectors[i, j], info=info)
            check_against_truth(mats[i, j], sub, "LA", 2)
    # Only the two breakdown problems broke down.
    bd = r.info.breakdowns.numpy()
    assert bd[0, 2] >= 1 and bd[1, 0] >= 1


def test_matvec_count_is_what_the_operator_saw() -> None:
    n = 100
    a = symmetric(np.linspace(-2.0, 1.0, n), seed=8)
    for shape, nev in (((n,), 1), ((3, n), 2)):
        mats = np.broadcast_to(a, (*shape[:-1], n, n))
        counter = CountingOperator(dense_matvec(mats), batch_ndim=len(shape) - 1)
        r = lanczos(counter, start(shape, 12), which="LA", nev=nev, krylov_dim=12)
        assert r.all_converged
        assert r.matvecs == counter.vectors
        # The final TRUE residuals cost nev matvecs per check on top of the Krylov steps.
        assert r.matvecs >= 12 + nev


def test_forced_non_convergence_returns_honest_partial_result() -> None:
    n = 300
    a = symmetric(np.linspace(0.0, 1.0, n), seed=9)  # gap 1/300 at the top: many restarts needed
    counter = CountingOperator(dense_matvec(a), batch_ndim=0)
    r = lanczos(counter, start((n,), 13), which="LA", nev=2, krylov_dim=8, max_restarts=1)
    assert not r.all_converged and r.iterations == 1
    assert r.matvecs == counter.vectors
    res = independent_residuals(a, r.values, r.vectors)
    np.testing.assert_allclose(r.residuals.numpy(), res, rtol=1e-10, atol=1e-14)
    norm = float(np.abs(np.linalg.eigvalsh(a)).max())
    np.testing.assert_array_equal(r.converged.numpy(), res <= r.tol * float(r.norm_estimate))
    assert np.all(res > r.tol * norm)
    # Still a valid partial answer: orthonormal vectors, Ritz values below lambda_max (interlacing),
    # each within its residual of an eigenvalue (symmetric matrices).
    v = r.vectors.numpy()
    np.testing.assert_allclose(v @ v.T, np.eye(2), atol=1e-10)
    got = r.values.numpy()
    assert np.all(got <= 1.0 + 1e-12) and got[0] >= got[1]
    ev = np.linalg.eigvalsh(a)
    assert all(np.abs(ev - g).min() <= rr + 1e-12 for g, rr in zip(got, res, strict=True))


def test_non_finite_matvec_is_reported_not_raised() -> None:
    n = 20
    a = torch.from_numpy(symmetric(np.linspace(-1.0, 1.0, n), seed=12))
    mats = torch.stack([a, a])

    def matvec(x: torch.Tensor) -> torch.Tensor:
        y = dense_matvec(mats)(x)
        y[1] = float("nan")  # the second problem's operator is broken
        return y

    r = lanczos(matvec, start((2, n), 14), which="LA", krylov_dim=10)
    assert bool(r.converged[0].all()) and not bool(r.converged[1].any())
    assert torch.isnan(r.values[1]).all()
    assert float(r.values[0, 0]) == pytest.approx(1.0, abs=1e-10)


def test_generator_makes_breakdown_vectors_reproducible() -> None:
    n = 40
    a = low_rank_symmetric([3.0, -1.0], n, seed=13)
    runs = [
        lanczos(dense_matvec(a), start((n,), 15), nev=3, krylov_dim=n, generator=torch.Generator().manual_seed(s))
        for s in (1, 1, 2)
    ]
    assert torch.equal(runs[0].vectors, runs[1].vectors)
    for r in runs:
        np.testing.assert_allclose(r.values.numpy(), [3.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda(dtype: torch.dtype) -> None:
    n = 500
    lam = np.r_[np.linspace(-10.0, 0.5, n - 1), [1.0]]
    a = symmetric(lam, seed=14)
    x0 = start((2, n), 16, dtype).cuda()
    r = lanczos(dense_matvec(np.stack([a, a]), dtype), x0, which="LA")
    assert r.values.device.type == "cuda" and r.values.dtype == dtype
    assert r.all_converged
    np.testing.assert_allclose(r.values.cpu().double().numpy(), 1.0, atol=2 * default_tol(dtype) * 10)


# ------------------------------------------------------------------------------------------------------
# Cost: no more matvecs than ARPACK at the same basis size and an equivalent tolerance.
# ------------------------------------------------------------------------------------------------------

HARD_SPECTRA = {
    "negative-dominant": np.r_[np.linspace(-10.0, -0.5, 399), [1.0]],
    "uniform": np.linspace(0.0, 1.0, 400),
    "sqrt-accumulating": np.sqrt(np.linspace(0.0, 1.0, 400)),
}


@pytest.mark.parametrize("name", sorted(HARD_SPECTRA))
@pytest.mark.parametrize("nev", [1, 3])
def test_matvecs_not_more_than_arpack(name: str, nev: int) -> None:
    lam = HARD_SPECTRA[name]
    a = symmetric(lam, seed=15)
    m = 20
    tol = default_tol(F64)
    norm = float(np.abs(lam).max())
    truth = np.sort(lam)[::-1][:nev]
    # ARPACK stops at ||r|| <= tol_arpack |theta|; ours at ||r|| <= tol ||A||: make them the same test.
    tol_arpack = tol * norm / float(np.abs(truth).max())
    x0 = start((len(lam),), 17)
    r = lanczos(dense_matvec(a), x0, which="LA", nev=nev, krylov_dim=m)
    w_arpack, _, arpack_matvecs = arpack_eigsh(a, nev, "LA", seed=18, tol=tol_arpack, ncv=m)
    check_against_truth(a, r, "LA", nev)
    np.testing.assert_allclose(r.values.numpy(), w_arpack, rtol=1e-8)
    print(f"{name} nev={nev} m={m}: lanczos {r.matvecs} matvecs, ARPACK {arpack_matvecs}")
    assert r.matvecs <= arpack_matvecs


# ------------------------------------------------------------------------------------------------------
# Property-based: random sizes, spectra, starts.
# ------------------------------------------------------------------------------------------------------


def random_spectrum(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    scale = 10.0 ** rng.uniform(-3, 3)
    if kind == "normal":
        lam = rng.standard_normal(n)
    elif kind == "negative-dominant":
        lam = np.r_[-10.0 * rng.uniform(0.5, 1.0, n - n // 3), rng.uniform(0.0, 1.0, n // 3)]
    elif kind == "clustered":
        centers = rng.standard_normal(3)
        lam = centers[rng.integers(0, 3, n)] + 1e-3 * rng.standard_normal(n)
    else:  # "integers": many exactly repeated eigenvalues
        lam = rng.integers(-3, 4, n).astype(float)
    return scale * lam


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    seed=st.integers(0, 2**31 - 1),
    kind=st.sampled_from(["normal", "negative-dominant", "clustered", "integers"]),
    which=st.sampled_from(["LA", "SA"]),
    nev=st.integers(1, 3),
    extra=st.integers(1, 30),
)
def test_property_against_dense(n: int, seed: int, kind: str, which: str, nev: int, extra: int) -> None:
    rng = np.random.default_rng(seed)
    nev = min(nev, n)
    lam = random_spectrum(kind, n, rng)
    a = symmetric(lam, seed)
    krylov_dim = min(nev + extra, 40)
    r = lanczos(dense_matvec(a), start((n,), seed % 1000), which=which, nev=nev, krylov_dim=krylov_dim)
    norm = float(np.abs(lam).max())
    eps = torch.finfo(F64).eps
    res = independent_residuals(a, r.values, r.vectors)
    # Always honest, converged or not.
    np.testing.assert_allclose(r.residuals.numpy(), res, rtol=0, atol=20 * eps * norm)
    expect = r.residuals.numpy() <= r.tol * r.norm_estimate.numpy()
    np.testing.assert_array_equal(r.converged.numpy(), expect)
    truth = np.sort(lam)[::-1] if which == "LA" else np.sort(lam)
    if r.all_converged:
        got = r.values.numpy()
        # nev = 1: the wanted end itself. nev > 1: a single Krylov space may hold one copy of a
        # multiple eigenvalue, so only "each value is an eigenvalue" holds in general.
        if nev == 1:
            assert abs(got[0] - truth[0]) <= res[0] + 20 * eps * norm
        assert all(np.abs(truth - g).min() <= rr + 20 * eps * norm for g, rr in zip(got, res, strict=True))
        order = -got if which == "LA" else got
        assert np.all(np.diff(order) >= -20 * eps * norm)
    # Enough room (or a full space) must converge within the default restarts. (A small basis on a
    # multiple eigenvalue may not: its further copies grow from round-off, as in any Krylov method.)
    if krylov_dim >= min(n, nev + 12):
        assert r.all_converged, (kind, n, nev, krylov_dim, r.residuals)
