"""krylov_schur against independent truths: dense ``torch.linalg.eig`` and SciPy ARPACK (random v0).

Agreement is normwise: ``|lambda - lambda_dense| <= sqrt(eps) * ||A||_2`` (1.5e-8 in float64, 3.5e-4
in float32), asserted only where the eigenvalue condition number makes it meaningful
(``kappa * tol <= sqrt(eps)``, checked). Residuals are re-computed from the dense matrix, never
trusted from the solver.

Recorded observations (scipy 1.17, this file's problems; the tests print them):

* matvecs, both targets (LR and largest_modulus(1, 0.5)) in ONE run vs ARPACK ``eigs(A, 'LR')`` +
  ``eigs(M, 'LM')`` with ncv = 30 and ARPACK's tol rescaled to the same normwise tolerance:
  non-normal n=300: 104 vs 199 + 59 = 258; hidden rightmost n=200: 226 vs 251 + 87 = 338.
  (ARPACK defaults, ncv=20 and tol=0: 489 + 93 = 582 and 476 + 147 = 623.)
* hidden rightmost (n=200, alpha = 0.05 real behind complex pairs up to modulus 9.3, ``ones`` spans an
  invariant subspace that excludes it): ARPACK ``eigs(which='LR', v0=ones)`` returns -0.1 - 5i (the
  rightmost of the wrong block) after 219 matvecs; with a random v0 it finds 0.05. krylov_schur from
  ``ones`` misses it the same way (-0.1 + 5i): only random starts are meaningful (docs/SPEC.md section 2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse.linalg as sla
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.arnoldi import (
    Target,
    as_target,
    krylov_schur,
    largest_modulus,
    rightmost,
    smallest_real,
)
from spectral_probe.linalg.result import default_tol

F64 = torch.float64


STEP = 0.5  # eps of M = I + eps J_F in these tests
RHO = f"LM(shift=1,scale={STEP:g})"


# --------------------------------------------------------------------------------------------------
# builders and independent references
# --------------------------------------------------------------------------------------------------


def agree(dtype: torch.dtype) -> float:
    """Normwise eigenvalue agreement demanded where well conditioned: sqrt(eps)."""
    return torch.finfo(dtype).eps ** 0.5


def schur_form(reals, pairs, offdiag: float, g: torch.Generator, dtype=F64) -> torch.Tensor:
    """Real Schur form D + N: 1x1 blocks ``reals``, 2x2 blocks ``[[a, b], [-b, a]]`` for ``a +- ib``,
    and a random strictly block-upper N of entry scale ``offdiag`` (non-normality; eigenvalues exact)."""
    blocks = [torch.tensor([[a]], dtype=dtype) for a in reals]
    blocks += [torch.tensor([[a, b], [-b, a]], dtype=dtype) for a, b in pairs]
    D = torch.block_diag(*blocks)
    n = D.shape[0]
    mask = torch.ones(n, n, dtype=torch.bool).triu(1)
    i = 0
    for blk in blocks:
        k = blk.shape[0]
        mask[i : i + k, i : i + k] = False
        i += k
    return D + torch.randn(n, n, generator=g, dtype=dtype) * offdiag * mask


def orthogonal(n: int, g: torch.Generator, dtype=F64) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(n, n, generator=g, dtype=dtype))[0]


def nonnormal(n: int, seed: int, offdiag: float = 1.0, dtype=F64) -> torch.Tensor:
    """Q (D + N) Q^T with the rightmost eigenvalue a complex pair 0.1 +- 2i and a large N."""
    g = torch.Generator().manual_seed(seed)
    pairs = [(0.1, 2.0)] + [(-0.2 - 0.06 * k * float(torch.rand(1, generator=g)), 0.5 + 0.4 * k) for k in range(1, 12)]
    reals = (-0.3 - 3 * torch.rand(n - 2 * len(pairs), generator=g, dtype=F64)).tolist()
    T = schur_form(reals, pairs, offdiag / math.sqrt(n), g)
    Q = orthogonal(n, g)
    return (Q @ T @ Q.T).to(dtype)


def hidden_rightmost(n: int = 200, seed: int = 3) -> torch.Tensor:
    """alpha = 0.05 (real, |mu| small) hidden behind complex pairs of larger modulus (up to 9.3).

    ``A = U diag(B1, B2) U^T`` with ``ones`` in range(U1): a Krylov space started from ``ones`` stays in
    the invariant subspace of B1, whose rightmost is the pair -0.1 +- 5i; alpha = 0.05 lives in B2.
    """
    g = torch.Generator().manual_seed(seed)
    n1 = n // 2
    n2 = n - n1
    pairs = [(-0.1, 5.0)] + [(-1.0 - 0.05 * k, 2.0 + 0.3 * k) for k in range(n1 // 4 - 1)]
    reals = (-1.0 - 2 * torch.rand(n1 - 2 * len(pairs), generator=g, dtype=F64)).tolist()
    B1 = schur_form(reals, pairs, 0.5 / math.sqrt(n1), g)
    B2 = schur_form([0.05] + (-0.5 - torch.rand(n2 - 1, generator=g, dtype=F64)).tolist(), [], 0.5 / math.sqrt(n2), g)
    Q1, Q2 = orthogonal(n1, g), orthogonal(n2, g)
    B = torch.block_diag(Q1 @ B1 @ Q1.T, Q2 @ B2 @ Q2.T)
    U = torch.linalg.qr(torch.cat([torch.ones(n, 1, dtype=F64), torch.randn(n, n - 1, generator=g, dtype=F64)], 1))[0]
    return U @ B @ U.T


def op(A: torch.Tensor):
    """matvec on the last dim; A [n, n] shared, or [*batch, n, n] one per problem."""
    if A.ndim == 2:
        return lambda X: X @ A.mT
    return lambda X: (A @ X.unsqueeze(-1)).squeeze(-1)


def start(n: int, seed: int, dtype=F64, batch=()) -> torch.Tensor:
    return torch.randn(*batch, n, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def score_of(name: str, mu: torch.Tensor) -> torch.Tensor:
    return {"LR": mu.real, "SR": -mu.real, "LM": mu.abs(), RHO: (1 + STEP * mu).abs()}[name]


def dense_top(A: torch.Tensor, name: str, k: int) -> torch.Tensor:
    """Dense eigenvalues best first by the target (ties: positive imaginary part first)."""
    lam = torch.linalg.eigvals(A.to(F64))
    lam = lam[torch.argsort(-lam.imag, stable=True)]
    return lam[torch.argsort(-score_of(name, lam), stable=True)][:k]


def eig_condition(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and their condition numbers ||x|| ||y|| / |y^H x| (dense, float64)."""
    lam, X = torch.linalg.eig(A.to(F64))
    Y = torch.linalg.inv(X)  # rows: left eigenvectors with y_i x_i = 1
    return lam, torch.linalg.vector_norm(X, dim=0) * torch.linalg.vector_norm(Y, dim=1)


def norm2(A: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(A.to(F64), ord=2))


def check_honest(res, A: torch.Tensor) -> None:
    """Residuals are the true ||A v - lambda v|| (re-computed from dense A), vectors are unit, the
    norm estimate is a lower bound of ||A||_2 and converged = residual <= tol * norm_estimate."""
    A64 = A.to(F64)
    v = res.vectors.to(torch.complex128)
    lam = res.values.to(torch.complex128)
    Av = torch.einsum("...ij,...kj->...ki", A64.to(torch.complex128), v)
    true = torch.linalg.vector_norm(Av - lam[..., None] * v, dim=-1)
    eps = torch.finfo(res.residuals.dtype).eps
    scale = norm2(A64) if A.ndim == 2 else float(torch.linalg.matrix_norm(A64, ord=2).max())
    n = A.shape[-1]
    assert torch.allclose(res.residuals.to(F64), true, rtol=0, atol=10 * math.sqrt(n) * eps * scale)
    assert torch.allclose(torch.linalg.vector_norm(v, dim=-1), torch.ones(()).to(F64), atol=10 * eps)
    # ||Hbar||_2 = ||A V_m||_2 <= ||A||_2 up to the accuracy of the (restarted) Krylov decomposition.
    assert bool((res.norm_estimate.to(F64) <= scale * (1 + res.tol)).all())
    expected = res.residuals <= res.tol * res.norm_estimate[..., None]
    assert torch.equal(res.converged, expected)


def arpack(A: np.ndarray, k: int, which: str, v0: np.ndarray, tol: float = 0.0, ncv: int | None = None):
    """ARPACK eigenvalues best first and the number of matvecs it used."""
    count = [0]

    def mv(x):
        count[0] += 1
        return A @ x

    L = sla.LinearOperator(A.shape, matvec=mv, dtype=A.dtype)
    w = sla.eigs(L, k=k, which=which, v0=v0, tol=tol, ncv=ncv, return_eigenvectors=False)
    key = {"LR": lambda z: (-z.real, -z.imag), "LM": lambda z: (-abs(z), -z.imag)}[which]
    return sorted(w, key=key), count[0]


def rng_vector(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


# --------------------------------------------------------------------------------------------------
# targets
# --------------------------------------------------------------------------------------------------


def test_target_constructors_and_shorthands():
    mu = torch.tensor([1 + 2j, -3 + 0j, 0.5 - 4j], dtype=torch.complex128)
    assert rightmost().name == "LR" and torch.equal(rightmost().score(mu), mu.real)
    assert smallest_real().name == "SR" and torch.equal(smallest_real().score(mu), -mu.real)
    assert largest_modulus().name == "LM" and torch.equal(largest_modulus().score(mu), mu.abs())
    t = largest_modulus(1.0, STEP)
    assert t.name == RHO and torch.allclose(t.score(mu), (1 + STEP * mu).abs())
    assert largest_modulus(1.0, 0.1, name="rho").name == "rho"
    for s in ("LR", "LM", "SR"):
        assert as_target(s).name == s
    assert isinstance(Target.rightmost(), Target)


@pytest.mark.parametrize("bad", ["LI", "lr", "", 3, None])
def test_unknown_target_lists_valid_choices(bad):
    with pytest.raises(ValueError, match="'LR', 'LM', 'SR'"):
        as_target(bad)
    with pytest.raises(ValueError):
        krylov_schur(lambda x: x, torch.ones(3, dtype=F64), targets=(bad,))


def test_bad_arguments():
    x = torch.ones(4, dtype=F64)
    with pytest.raises(ValueError):
        krylov_schur(lambda v: v, x, nev=5)
    with pytest.raises(ValueError):
        krylov_schur(lambda v: v, x, targets=("LM", largest_modulus()))
    with pytest.raises(ValueError):
        largest_modulus(1.0, 0.0)


# --------------------------------------------------------------------------------------------------
# accuracy against dense and ARPACK
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offdiag", [1.0, 3.0])
def test_nonnormal_complex_leading_pair(offdiag):
    n = 300
    A = nonnormal(n, seed=1, offdiag=offdiag)
    lam, kappa = eig_condition(A)
    scale = norm2(A)
    out = krylov_schur(op(A), start(n, 7), targets=("LR", largest_modulus(1.0, STEP)), nev=2)
    arp, _ = arpack(A.numpy(), 2, "LR", rng_vector(n, 11))
    for name, res in out.items():
        check_honest(res, A)
        assert res.all_converged
        truth = dense_top(A, name, 2)
        idx = [int(torch.argmin((lam - t).abs())) for t in truth]
        assert float(kappa[idx].max()) * res.tol <= agree(F64), "test matrix must be well conditioned"
        assert torch.allclose(res.values, truth, rtol=0, atol=agree(F64) * scale)
        assert truth[0].imag > 0 and torch.allclose(res.values[1], res.values[0].conj())
    lr = out["LR"].values
    assert lr[0].real == pytest.approx(0.1, abs=agree(F64) * scale)
    assert lr[0].imag == pytest.approx(2.0, abs=agree(F64) * scale)
    assert np.allclose(lr.numpy(), np.array(arp), rtol=0, atol=agree(F64) * scale)


def test_hidden_rightmost_found_where_arpack_ones_misses(capsys):
    A = hidden_rightmost()
    n = A.shape[0]
    scale = norm2(A)
    truth = dense_top(A, "LR", 1)[0]
    assert truth.real == pytest.approx(0.05) and abs(truth) < 0.1
    assert float(torch.linalg.eigvals(A).abs().max()) > 9  # hidden behind larger-modulus pairs

    ones_vals, ones_mv = arpack(A.numpy(), 1, "LR", np.ones(n))
    rand_vals, _ = arpack(A.numpy(), 1, "LR", rng_vector(n, 2))
    with capsys.disabled():
        print(f"\n[hidden rightmost] alpha={truth:.6g}; ARPACK LR v0=ones -> {ones_vals[0]:.6g} ({ones_mv} mv)")
    # The structured start misses alpha (it converges to the rightmost of the invariant block it spans).
    assert ones_vals[0].real < 0.0
    assert abs(rand_vals[0] - complex(truth)) <= agree(F64) * scale

    for seed in (0, 1, 2):
        res = krylov_schur(op(A), start(n, seed), targets=("LR",), nev=1)["LR"]
        check_honest(res, A)
        assert res.all_converged
        assert abs(complex(res.values[0]) - complex(truth)) <= agree(F64) * scale


def test_both_targets_in_one_run_give_alpha_and_rho():
    for A in (nonnormal(200, seed=5), hidden_rightmost(160, seed=4)):
        n = A.shape[0]
        out = krylov_schur(op(A), start(n, 3), targets=(rightmost(), largest_modulus(1.0, STEP)), nev=1)
        lam = torch.linalg.eigvals(A)
        alpha = float(lam.real.max())
        rho = float((1 + STEP * lam).abs().max())
        scale = norm2(A)
        assert out["LR"].values[0].real == pytest.approx(alpha, abs=agree(F64) * scale)
        assert float((1 + STEP * out[RHO].values[0]).abs()) == pytest.approx(rho, abs=agree(F64) * scale)
        assert out["LR"].matvecs == out[RHO].matvecs  # one shared run
        for res in out.values():
            check_honest(res, A)
            assert res.all_converged


def test_clustered_eigenvalues():
    n = 120
    g = torch.Generator().manual_seed(0)
    d = torch.cat([torch.tensor([1.0, 1 - 1e-4, 1 - 2e-4], dtype=F64), -2 * torch.rand(n - 3, generator=g, dtype=F64)])
    Q = orthogonal(n, g)
    A = Q @ torch.diag(d) @ Q.T  # normal: eigenvalues perfectly conditioned, eigenvectors not
    res = krylov_schur(op(A), start(n, 1), nev=3, krylov_dim=20)["LR"]
    check_honest(res, A)
    assert res.all_converged
    assert torch.allclose(res.values.real, d[:3], rtol=0, atol=agree(F64) * norm2(A))


def test_repeated_eigenvalue():
    # One start vector sees a multiple eigenvalue only through rounding (a single-vector Krylov
    # space has one direction in the eigenspace): every returned value must still be an eigenvalue
    # with an honest residual, and the leading one must be found.
    n = 80
    g = torch.Generator().manual_seed(2)
    d = torch.cat([torch.tensor([1.0, 1.0, 1.0, 0.5], dtype=F64), -2 * torch.rand(n - 4, generator=g, dtype=F64)])
    Q = orthogonal(n, g)
    A = Q @ torch.diag(d) @ Q.T
    res = krylov_schur(op(A), start(n, 4), nev=3, krylov_dim=20)["LR"]
    check_honest(res, A)
    tol = agree(F64) * norm2(A)
    assert abs(complex(res.values[0]) - 1.0) <= tol
    dist = (res.values[:, None] - d.to(torch.complex128)[None, :]).abs().min(dim=1).values
    assert bool((dist <= tol).all())


def test_low_rank_breakdown_is_exact():
    n, r = 60, 3
    g = torch.Generator().manual_seed(3)
    A = torch.randn(n, r, generator=g, dtype=F64) @ torch.randn(r, n, generator=g, dtype=F64)
    out = krylov_schur(op(A), start(n, 5), targets=("LR", "LM"), nev=2)
    for name, res in out.items():
        check_honest(res, A)
        assert res.all_converged
        assert int(res.info.breakdowns) > 0
        assert res.iterations == 0  # the first cycle was exact: no restart
        assert torch.allclose(res.values, dense_top(A, name, 2), rtol=0, atol=agree(F64) * norm2(A))


@pytest.mark.parametrize(
    "A",
    [
        torch.tensor([[-0.7]], dtype=F64),
        torch.tensor([[0.0]], dtype=F64),
        torch.tensor([[0.0, 2.0], [-3.0, 0.5]], dtype=F64),  # complex pair 0.25 +- 2.44i
        torch.tensor([[1.0, 5.0], [0.0, -2.0]], dtype=F64),
        torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=F64),  # x0 is an eigenvector: breakdown at 1
    ],
)
def test_tiny_n(A):
    n = A.shape[0]
    for nev in range(1, n + 1):
        out = krylov_schur(op(A), start(n, 0), targets=("LR", "LM", "SR"), nev=nev)
        for name, res in out.items():
            check_honest(res, A)
            assert res.all_converged
            assert torch.allclose(res.values, dense_top(A, name, nev), rtol=0, atol=10 * torch.finfo(F64).eps * 6)
            assert res.values.shape == (nev,) and res.vectors.shape == (nev, n)


def test_krylov_dim_is_clipped_and_zero_start_is_replaced():
    A = nonnormal(30, seed=9)
    out = krylov_schur(op(A), torch.zeros(30, dtype=F64), krylov_dim=500, generator=torch.Generator().manual_seed(0))
    res = out["LR"]
    assert res.info.krylov_dim == 30
    check_honest(res, A)
    assert res.all_converged and res.iterations == 0
    assert torch.allclose(res.values[0], dense_top(A, "LR", 1)[0], rtol=0, atol=agree(F64) * norm2(A))


def test_float32():
    n = 150
    A = nonnormal(n, seed=2, dtype=torch.float32)
    out = krylov_schur(op(A), start(n, 8, torch.float32), targets=("LR", largest_modulus(1.0, STEP)), nev=2)
    for name, res in out.items():
        assert res.values.dtype == torch.complex64 and res.residuals.dtype == torch.float32
        assert res.tol == default_tol(torch.float32)
        check_honest(res, A)
        assert res.all_converged
        truth = dense_top(A, name, 2)
        assert torch.allclose(res.values.to(torch.complex128), truth, rtol=0, atol=agree(torch.float32) * norm2(A))


def test_batch_equals_separate_solves():
    n = 90
    As = torch.stack([nonnormal(n, seed=s, offdiag=o) for s, o in ((1, 1.0), (2, 3.0), (3, 0.5), (4, 2.0))])
    X0 = start(n, 21, batch=(4,))
    targets = ("LR", largest_modulus(1.0, STEP))
    batched = krylov_schur(op(As), X0, targets=targets, nev=2)
    batched_2d = krylov_schur(op(As.reshape(2, 2, n, n)), X0.reshape(2, 2, n), targets=targets, nev=2)
    for b in range(4):
        single = krylov_schur(op(As[b]), X0[b], targets=targets, nev=2)
        for name in single:
            s, t, t2 = single[name], batched[name], batched_2d[name]
            # Each problem runs its own trajectory: identical up to the rounding of batched kernels.
            assert torch.allclose(t.values[b], s.values, rtol=0, atol=agree(F64) * norm2(As[b]))
            assert torch.allclose(t2.values.reshape(4, 2)[b], s.values, rtol=0, atol=agree(F64) * norm2(As[b]))
            assert int(t.info.matvecs_per_problem[b]) == s.matvecs
            assert torch.allclose(t.values[b], dense_top(As[b], name, 2), rtol=0, atol=agree(F64) * norm2(As[b]))
    for res in batched.values():
        check_honest(res, As)
        assert res.values.shape == (4, 2) and res.vectors.shape == (4, 2, n)
        # The shared count includes calls where a problem idled (kept sizes differ by a pair).
        per = res.info.matvecs_per_problem
        assert int(per.max()) <= res.matvecs <= int(per.sum())
    assert batched_2d["LR"].values.shape == (2, 2, 2)


def test_forced_nonconvergence_returns_honest_partial_result():
    n = 200
    A = nonnormal(n, seed=6, offdiag=2.0)
    out = krylov_schur(
        op(A), start(n, 1), targets=("LR", largest_modulus(1.0, STEP)), nev=2, max_restarts=1, krylov_dim=8
    )
    assert not out["LR"].all_converged
    for res in out.values():
        check_honest(res, A)
        assert res.iterations == 1
        assert bool(torch.isfinite(res.values).all()) and bool(torch.isfinite(res.residuals).all())
    # Not converged means a visibly large residual, not a silently wrong "answer".
    assert float(out["LR"].residuals.max()) > out["LR"].tol * float(out["LR"].norm_estimate)


def test_extreme_nonnormality_exercises_the_restart_fallback():
    """kappa(alpha) ~ 1e14: Ritz vectors are nearly parallel, so thick restarts fail the invariance
    check and fall back. Eigenvalues are then meaningless to 1e-8 (dense eig too): what must hold is
    that each pair is an exact eigenpair of a matrix within its residual of A, i.e. lies in the
    pseudospectrum: sigma_min(A - lambda I) <= residual (checked by dense SVD). The run sits at about
    250 times the tolerance from restart 30 on (it once reached it by chance at restart 197, 7,396
    products): it is called stalled and comes back unconverged, with those honest residuals, in fewer
    than 3,000 products."""
    n = 100
    g = torch.Generator().manual_seed(0)
    T = schur_form(torch.linspace(-1, 0.1, n, dtype=F64).tolist(), [], 5.0 / math.sqrt(n), g)
    Q = orthogonal(n, g)
    A = Q @ T @ Q.T
    out = krylov_schur(op(A), start(n, 0), targets=("LR", largest_modulus(1.0, STEP)), nev=2)
    assert int(out["LR"].info.fallback_restarts) > 0
    for res in out.values():
        check_honest(res, A)
        assert not res.all_converged and res.matvecs < 3000
        assert bool((res.residuals <= 1e3 * res.tol * res.norm_estimate.unsqueeze(-1)).all())
        eye = torch.eye(n, dtype=torch.complex128)
        for lam, r in zip(res.values, res.residuals, strict=True):
            smin = torch.linalg.svdvals(A.to(torch.complex128) - lam * eye).min()
            assert float(smin) <= float(r) * (1 + 1e-6) + 10 * torch.finfo(F64).eps * norm2(A)


def test_non_finite_operator_fails_one_problem_only():
    n = 50
    As = torch.stack([nonnormal(n, seed=1), nonnormal(n, seed=2)])
    As[1, 3, 4] = math.nan
    out = krylov_schur(op(As), start(n, 1, batch=(2,)), targets=("LR", "LM"), nev=2)
    for name, res in out.items():
        assert bool(res.converged[0].all()) and not bool(res.converged[1].any())
        assert bool(res.info.nonfinite[1]) and bool(torch.isinf(res.residuals[1]).all())
        assert torch.allclose(res.values[0], dense_top(As[0], name, 2), rtol=0, atol=agree(F64) * norm2(As[0]))


def test_matvecs_fewer_than_arpack_both_targets(capsys):
    """One run for alpha and rho vs ARPACK eigs(A, 'LR') + eigs(M, 'LM'), same Krylov dimension (30)
    and the same normwise stopping rule (ARPACK's tol is relative to |theta|, so it is rescaled)."""
    rows = []
    for label, A in (
        ("non-normal n=300", nonnormal(300, seed=1)),
        ("hidden rightmost n=200", hidden_rightmost()),
    ):
        n = A.shape[0]
        tol = default_tol(F64)
        out = krylov_schur(op(A), start(n, 7), targets=(rightmost(), largest_modulus(1.0, STEP)), nev=1)
        assert all(r.all_converged for r in out.values())
        mine = out["LR"].matvecs
        An = A.numpy()
        M = np.eye(n) + STEP * An
        lr, lead = dense_top(A, "LR", 1)[0], 1 + STEP * dense_top(A, RHO, 1)[0]
        v0 = rng_vector(n, 3)
        w1, c1 = arpack(An, 1, "LR", v0, tol=tol * norm2(A) / abs(complex(lr)), ncv=30)
        w2, c2 = arpack(M, 1, "LM", v0, tol=tol * np.linalg.norm(M, 2) / abs(complex(lead)), ncv=30)
        # ARPACK solved the same problem (k=1 may return either member of a conjugate pair)
        assert min(abs(w1[0] - complex(lr)), abs(w1[0] - complex(lr).conjugate())) <= agree(F64) * norm2(A)
        assert abs(abs(w2[0]) - abs(complex(lead))) <= agree(F64) * np.linalg.norm(M, 2)
        rows.append((label, mine, c1, c2))
        assert mine < c1 + c2
    with capsys.disabled():
        for label, mine, c1, c2 in rows:
            print(f"\n[matvecs] {label}: krylov_schur(LR+rho) {mine} vs ARPACK LR {c1} + M LM {c2} = {c1 + c2}")


# --------------------------------------------------------------------------------------------------
# property-based
# --------------------------------------------------------------------------------------------------


@st.composite
def random_problem(draw):
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**31 - 1))
    n_pairs = draw(st.integers(0, n // 2))
    offdiag = draw(st.sampled_from([0.0, 0.3, 1.0, 3.0]))
    spread = draw(st.sampled_from([0.1, 1.0, 10.0]))
    g = torch.Generator().manual_seed(seed)
    reals = (spread * torch.randn(n - 2 * n_pairs, generator=g, dtype=F64)).tolist()
    pairs = [
        (
            spread * float(torch.randn(1, generator=g, dtype=F64)),
            spread * (0.05 + float(torch.rand(1, generator=g))),
        )
        for _ in range(n_pairs)
    ]
    T = schur_form(reals, pairs, offdiag * spread / math.sqrt(max(n, 1)), g)
    Q = orthogonal(n, g)
    nev = draw(st.integers(1, min(3, n)))
    kdim = draw(st.sampled_from([6, 12, 30]))
    return Q @ T @ Q.T, nev, kdim, seed


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_problem())
def test_property_random_spectra(problem):
    A, nev, kdim, seed = problem
    n = A.shape[0]
    out = krylov_schur(
        op(A), start(n, seed % 1000), targets=("LR", largest_modulus(1.0, STEP)), nev=nev, krylov_dim=kdim
    )
    lam, kappa = eig_condition(A)
    scale = max(norm2(A), 1e-300)
    for name, res in out.items():
        check_honest(res, A)
        assert res.values.shape == (nev,)
        if not res.all_converged:
            continue
        # Each converged value is within (condition number) x (residual) of a true eigenvalue ...
        dist = (res.values[:, None] - lam[None, :]).abs()
        nearest = dist.argmin(dim=1)
        bound = 10 * kappa[nearest] * res.residuals + 100 * torch.finfo(F64).eps * scale
        assert bool((dist.min(dim=1).values <= bound).all())
        # ... and none better was missed: the k-th returned is as good as the k-th of the dense list.
        slack = float(bound.max())
        assert bool((score_of(name, dense_top(A, name, nev)) <= score_of(name, res.values) + slack).all())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_problem())
def test_property_random_spectra_float32(problem):
    A64, nev, kdim, seed = problem
    A = A64.to(torch.float32)
    n = A.shape[0]
    out = krylov_schur(op(A), start(n, seed % 1000, torch.float32), targets=("LR",), nev=nev, krylov_dim=kdim)
    res = out["LR"]
    check_honest(res, A)
    if res.all_converged:
        lam, kappa = eig_condition(A)
        dist = (res.values.to(torch.complex128)[:, None] - lam[None, :]).abs()
        bound = 10 * kappa[dist.argmin(dim=1)] * res.residuals.to(F64) + 100 * torch.finfo(torch.float32).eps * norm2(A)
        assert bool((dist.min(dim=1).values <= bound).all())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    n = 200
    A = nonnormal(n, seed=1)
    x0 = start(n, 7, batch=(2,))
    cpu = krylov_schur(op(A), x0, targets=("LR", largest_modulus(1.0, STEP)), nev=2)
    gpu = krylov_schur(op(A.cuda()), x0.cuda(), targets=("LR", largest_modulus(1.0, STEP)), nev=2)
    for name in cpu:
        assert gpu[name].values.device.type == "cuda" and gpu[name].vectors.device.type == "cuda"
        assert gpu[name].all_converged
        assert torch.allclose(gpu[name].values.cpu(), cpu[name].values, rtol=0, atol=agree(F64) * norm2(A))


def test_converges_before_the_basis_is_full_and_matches_dense():
    """A well-separated pair converges in a few steps: the run stops there (early tests,
    ``schedule.CheckSchedule``) instead of filling all ``krylov_dim`` vectors, and the answer is still the
    dense truth with an honest TRUE residual; in a batch with a slow problem each keeps its own stop."""
    g = torch.Generator().manual_seed(5)
    n = 200
    fast = schur_form([0.5] + (-1.0 - torch.rand(n - 3, generator=g, dtype=F64)).tolist(), [(-1.2, 0.2)], 0.1, g)
    Q = orthogonal(n, g)
    fast = Q @ fast @ Q.T
    slow = nonnormal(n, seed=7)
    targets = ("LR", largest_modulus(1.0, STEP))
    alone = krylov_schur(op(fast), start(n, 3), targets=targets, krylov_dim=40)
    assert alone["LR"].matvecs < 40  # fewer products than one full cycle
    for name, res in alone.items():
        assert bool(res.info.converged.all())
        assert torch.allclose(res.values, dense_top(fast, name, 1), rtol=0, atol=agree(F64) * norm2(fast))
        check_honest(res, fast)
    both = torch.stack([fast, slow])
    batched = krylov_schur(op(both), torch.stack([start(n, 3), start(n, 4)]), targets=targets, krylov_dim=40)
    per = batched["LR"].info.matvecs_per_problem
    assert int(per[0]) == alone["LR"].matvecs and int(per[1]) > 40
    for name, res in batched.items():
        check_honest(res, both)
        for b, A in enumerate((fast, slow)):
            assert torch.allclose(res.values[b], dense_top(A, name, 1), rtol=0, atol=agree(F64) * norm2(A))


def test_check_schedule_places_tests_near_the_predicted_crossing():
    """Geometric convergence by a factor 10 per product from ratio 1e6: the schedule first jumps its
    stride, then lands one step short of the crossing and never past it."""
    from spectral_probe.linalg.schedule import CheckSchedule

    schedule, clock, tests = CheckSchedule(first=5), 5, []
    while True:
        ratio = 10.0 ** (11 - clock)  # crosses 1 at clock 11
        tests.append(clock)
        schedule.record(clock, ratio)
        if ratio <= 1.0:
            break
        clock = schedule.next
    assert tests[-1] == 11 and len(tests) <= 5
    assert tests[1] - tests[0] == CheckSchedule.STRIDE


@given(
    first=st.floats(1.0, 1e12),
    factors=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=300),
    window=st.integers(1, 60),
)
def test_a_run_that_halves_its_ratio_within_every_window_is_never_stalled(
    first: float, factors: list[float], window: int
) -> None:
    """Steady convergence, however slow: the ratio falls by at least 2x within every ``window`` restarts
    (each restart multiplies it by a factor <= 1, and every ``window``-th one by <= 1/2). Never stalled,
    whatever the budget left."""
    from spectral_probe.linalg.schedule import StallWatch

    watch, ratio = StallWatch(window), first
    for k, factor in enumerate(factors):
        assert not watch.stalled(k, ratio, 0)
        ratio *= 0.5 * factor if (k + 1) % window == 0 else factor


@given(first=st.floats(1.0, 1e12), window=st.integers(2, 60), data=st.data())
def test_a_run_that_improves_a_little_at_every_restart_is_never_stalled(first: float, window: int, data) -> None:
    """No single restart halves the ratio, but a factor ``q`` per restart with ``q^window <= 1/2``
    halves it within every window (a slow, steady Krylov-Schur run): never stalled."""
    from spectral_probe.linalg.schedule import StallWatch

    q = data.draw(st.floats(0.5, 0.5 ** (1.0 / window)))
    watch, ratio = StallWatch(window), first
    for k in range(400):
        assert not watch.stalled(k, ratio, 0)
        ratio *= q


@given(level=st.floats(2.0, 1e12), window=st.integers(1, 60), budget=st.integers(0, 600))
def test_a_flat_run_is_stalled_after_one_window_where_the_budget_cannot_reach_the_tolerance(
    level: float, window: int, budget: int
) -> None:
    """A ratio flat at ``level`` (a Jordan block on its pseudospectrum): not stalled during the first
    window; after it, stalled exactly where one halving per window could not bring ``level`` to 1 in the
    restarts left; a ratio at or below 1 (converged) never."""
    from spectral_probe.linalg.schedule import StallWatch

    watch = StallWatch(window)
    for k in range(window):
        assert not watch.stalled(k, level, budget)
    out_of_reach = window * math.log2(level) > budget
    assert watch.stalled(window, level, budget) is out_of_reach
    assert not StallWatch(window).stalled(0, 1.0, 0) and not watch.stalled(window + 1, 1.0, 0)
