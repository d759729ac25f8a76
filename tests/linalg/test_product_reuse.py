"""Products made once and used twice (issue 12): Krylov-Schur's images ``A v``, a block Rayleigh-Ritz
start whose image is given, the referees fed a ``J v`` already made, batched Ritz analysis, and a
result whose rows are replaced by a second solve of those problems alone. Truth: dense products and
the same computation without the reuse."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.fdcheck import adjoint_rel_err, determinism_error, fd_jvp_rel_err
from spectral_probe.linalg.ritz import analyze, analyze_many
from spectral_probe.linalg.subspace import block_rayleigh_ritz
from spectral_probe.linalg.targets import as_target

F64 = torch.float64


def _matrix(n: int, seed: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, n, n, generator=g, dtype=F64) / n**0.5


def _op(a: torch.Tensor):
    """``A x`` on the last dimension: ``a [*batch, n, n]``, ``x [*batch, n]`` or ``[*batch, p, n]``."""
    return lambda x: (a @ x.unsqueeze(-1)).squeeze(-1) if x.ndim == a.ndim - 1 else x @ a.mT


def _counted(a: torch.Tensor):
    """:func:`_op` and a tally of the vectors it was applied to (all problems of the batch)."""
    calls = {"vectors": 0}
    apply = _op(a)

    def matvec(x: torch.Tensor) -> torch.Tensor:
        calls["vectors"] += x.numel() // x.shape[-1]
        return apply(x)

    return matvec, calls


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 60), seed=st.integers(0, 10_000))
def test_krylov_schur_images_are_the_operator_applied_to_its_vectors(n: int, seed: int) -> None:
    a = _matrix(n, seed)
    x0 = torch.randn(n, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    results = krylov_schur(lambda x: x @ a.mT, x0, targets=(rightmost(), largest_modulus(1.0, 0.5)), nev=2)
    for result in results.values():
        assert result.images is not None
        dense = result.vectors @ a.to(result.vectors.dtype).mT  # A v, row by row, from the dense matrix
        finite = torch.isfinite(result.values)
        torch.testing.assert_close(result.images[finite], dense[finite], rtol=0, atol=1e-12 * max(1.0, float(a.norm())))


def test_block_rayleigh_ritz_with_the_start_image_saves_one_sweep_of_products() -> None:
    a = _matrix(40, 3, batch=(2,))
    x0 = torch.randn(2, 3, 40, generator=torch.Generator().manual_seed(4), dtype=F64)
    plain_matvec, plain_calls = _counted(a)
    reuse_matvec, reuse_calls = _counted(a)
    plain = block_rayleigh_ritz(plain_matvec, x0, tol=1e-10, max_iters=400)
    reused = block_rayleigh_ritz(reuse_matvec, x0, tol=1e-10, max_iters=400, x0_image=x0 @ a.mT)
    torch.testing.assert_close(reused.values, plain.values, rtol=1e-9, atol=1e-9)
    assert reused.iterations == plain.iterations
    assert plain.matvecs - reused.matvecs == 3 and plain_calls["vectors"] - reuse_calls["vectors"] == 3 * 2
    # the reported residuals are still TRUE ones
    u = reused.vectors[..., 0, :]
    au = (a.to(u.dtype) @ u.unsqueeze(-1)).squeeze(-1)
    true = torch.linalg.vector_norm(au - reused.values[..., :1] * u, dim=-1)
    torch.testing.assert_close(reused.residuals[..., 0], true, rtol=1e-6, atol=1e-12)


def test_a_rank_deficient_start_makes_its_own_products() -> None:
    a = _matrix(10, 5)
    row = torch.randn(10, generator=torch.Generator().manual_seed(6), dtype=F64)
    x0 = torch.stack([row, 2 * row])  # rank one: the given image cannot be mapped onto the QR basis
    matvec, calls = _counted(a)
    result = block_rayleigh_ritz(matvec, x0, max_iters=3, x0_image=x0 @ a.mT)
    assert calls["vectors"] == 2 * result.iterations


def test_referees_fed_their_products_score_as_if_they_made_them() -> None:
    n, batch = 12, 3
    a = _matrix(n, 7)
    z = torch.randn(batch, n, generator=torch.Generator().manual_seed(8), dtype=F64)

    def force(x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x) @ a.mT

    def jvp(v: torch.Tensor) -> torch.Tensor:  # the exact J v at z (v [B, k, n])
        return ((1 - torch.tanh(z) ** 2).unsqueeze(-2) * v) @ a.mT

    def vjp(u: torch.Tensor) -> torch.Tensor:
        return (1 - torch.tanh(z) ** 2).unsqueeze(-2) * (u @ a)

    g = torch.Generator().manual_seed(9)
    directions = torch.randn(batch, 3, n, generator=g, dtype=F64)
    u = torch.randn(batch, 1, n, generator=g, dtype=F64)
    jv = jvp(directions)
    assert torch.equal(fd_jvp_rel_err(force, jvp, z, directions, jv=jv), fd_jvp_rel_err(force, jvp, z, directions))
    first = directions[:, :1]
    torch.testing.assert_close(
        adjoint_rel_err(jvp, vjp, u, first, jv=jv[:, :1]), adjoint_rel_err(jvp, vjp, u, first), rtol=0, atol=1e-15
    )
    assert float(determinism_error(jvp, first, first=jvp(first)).max()) == 0.0
    # a wrong rule is still caught through the reused product
    wrong = jv.clone()
    wrong[:, 0] *= 1.01
    assert float(fd_jvp_rel_err(force, jvp, z, directions, jv=wrong).min()) > 1e-3
    assert float(determinism_error(jvp, first, first=wrong[:, :1]).min()) > 1e-3


def test_batched_ritz_analysis_equals_one_problem_at_a_time() -> None:
    g = torch.Generator().manual_seed(10)
    hbars = [torch.triu(torch.randn(k + 1, k, generator=g, dtype=F64), diagonal=-1) for k in (6, 9, 6, 9, 4)]
    hbars[2] = hbars[0].clone()
    hbars[2][0, 0] = float("nan")  # not finite: no analysis
    targets = [as_target("LR"), as_target("LM")]
    together = analyze_many(hbars, targets, 1e-10, [0.0] * len(hbars))
    for hbar, batched in zip(hbars, together, strict=True):
        alone = analyze(hbar, targets, 1e-10, 0.0)
        assert (alone is None) == (batched is None)
        if alone is not None:
            torch.testing.assert_close(batched.theta, alone.theta, rtol=0, atol=1e-13)
            torch.testing.assert_close(batched.estimates, alone.estimates, rtol=1e-10, atol=1e-14)
            assert [o.tolist() for o in batched.orders] == [o.tolist() for o in alone.orders]


def test_rows_of_a_result_replaced_by_a_solve_of_those_problems_alone() -> None:
    a = _matrix(30, 11, batch=(4,))
    x0 = torch.randn(4, 30, generator=torch.Generator().manual_seed(12), dtype=F64)
    loose = krylov_schur(_op(a), x0, targets=("LR",), tol=1e-4)["LR"]
    rows = [1, 3]
    tight = krylov_schur(_op(a[rows]), x0[rows], targets=("LR",), tol=1e-12)["LR"]
    merged = loose.with_rows(rows, tight)
    for b in range(4):
        source, index = (tight, rows.index(b)) if b in rows else (loose, b)
        assert torch.equal(merged.values[b], source.values[index])
        assert torch.equal(merged.vectors[b], source.vectors[index])
        assert torch.equal(merged.images[b], source.images[index])
        assert torch.equal(merged.residuals[b], source.residuals[index])
        torch.testing.assert_close(
            merged.info.ritz_values[b], source.info.ritz_values[index], rtol=0, atol=0, equal_nan=True
        )
    assert merged.matvecs == loose.matvecs + tight.matvecs
    assert merged.tol == loose.tol


def test_rows_of_another_shape_are_refused() -> None:
    a = _matrix(20, 13, batch=(2,))
    x0 = torch.randn(2, 20, generator=torch.Generator().manual_seed(14), dtype=F64)
    one = krylov_schur(_op(a), x0, targets=("LR",), nev=1)["LR"]
    two = krylov_schur(_op(a[:1]), x0[:1], targets=("LR",), nev=2)["LR"]
    with pytest.raises(ValueError, match="cannot replace"):
        one.with_rows([0], two)


# --------------------------------------------------------------------------------------------------
# KnownImages: a solver's first products answered from products a caller already made


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 3), batch=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_known_images_answer_the_span_by_linearity_and_compute_the_rest(n: int, k: int, batch: int, seed: int) -> None:
    from spectral_probe.linalg.known import KnownImages

    a = _matrix(n, seed, batch=(batch,))
    g = torch.Generator().manual_seed(seed + 7)
    directions = torch.randn(batch, k, n, generator=g, dtype=F64)
    matvec, calls = _counted(a)
    known = KnownImages(matvec, directions, _op(a)(directions), uses=2)
    # A call whose rows are combinations of the directions (what a solver's normalized start is) and,
    # for n > k, one generic row outside their span.
    mix = torch.randn(batch, 2, k, generator=g, dtype=F64)
    inside = mix @ directions
    outside = torch.randn(batch, 1, n, generator=g, dtype=F64)
    rows = torch.cat([inside, outside], dim=1)
    out = known(rows)
    scale = 1e-12 * max(1.0, float(torch.linalg.matrix_norm(a, ord=2).max()))
    torch.testing.assert_close(out, _op(a)(rows), rtol=0, atol=scale * float(rows.norm(dim=-1).max()))
    in_span = min(n, k) == n  # k >= n: every vector is in the span of the (independent) directions
    assert known.reused == 2 + int(in_span)
    assert calls["vectors"] == batch * (1 - int(in_span))
    single = known(inside[:, 0])  # [B, n]: the second (last) use
    torch.testing.assert_close(single, _op(a)(inside[:, 0]), rtol=0, atol=scale * float(inside.norm(dim=-1).max()))
    assert known.reused == 3 + int(in_span)
    before = calls["vectors"]
    known(inside[:, 0])  # uses spent: a product again
    assert calls["vectors"] == before + batch


def test_solvers_started_from_known_directions_return_the_same_answer_in_fewer_products() -> None:
    from spectral_probe.linalg.known import KnownImages
    from spectral_probe.linalg.result import Shifted
    from spectral_probe.linalg.symmetric import lanczos

    n = 50
    a = _matrix(n, 11)
    sym = 0.5 * (a + a.mT)
    directions = torch.randn(1, 2, n, generator=torch.Generator().manual_seed(12), dtype=F64)
    for operator, run in (
        (sym, lambda op: lanczos(op, directions, which="LA", block=True, tol=1e-10)),
        (a, lambda op: krylov_schur(op, directions[:, 0], targets=(rightmost(),), tol=1e-10)["LR"]),
    ):
        plain = run(Shifted(_op(operator), 3.0))
        known = KnownImages(_op(operator), directions, _op(operator)(directions))
        reused = run(Shifted(known, 3.0))
        assert known.reused == (2 if operator is sym else 1)
        assert reused.matvecs == plain.matvecs  # the solver counts every call; the saving is the caller's
        torch.testing.assert_close(reused.values, plain.values, rtol=0, atol=1e-9)
        truth = torch.linalg.eigvalsh(sym)[-1] - 3.0 if operator is sym else torch.linalg.eigvals(a).real.max() - 3.0
        assert abs(float(reused.values[0, 0].real) - float(truth)) < 1e-8
