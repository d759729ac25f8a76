"""The one orthogonalization kernel (blocked classical Gram-Schmidt with DGKS), on its own.

Truth is the definition: ``w = V^T c + r`` with ``V r = 0`` to round-off, ``||r||`` reported; a
vector inside ``span(V)`` flagged; a mask hides rows exactly.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.krylov import orthogonalize, orthogonalize_rows

F64 = torch.float64
EPS = torch.finfo(F64).eps


def _basis(batch: int, k: int, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(batch, n, k, generator=g, dtype=F64))
    return q.mT.contiguous()  # [batch, k, n], orthonormal rows


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 3), n=st.integers(2, 50), k=st.integers(0, 49), seed=st.integers(0, 2**16))
def test_the_result_is_orthogonal_and_reconstructs_w(batch: int, n: int, k: int, seed: int) -> None:
    k = min(k, n - 1)
    basis = _basis(batch, k, n, seed)
    w = torch.randn(batch, n, generator=torch.Generator().manual_seed(seed + 1), dtype=F64)
    # Mostly inside the span: the case where one pass leaves visible non-orthogonality (DGKS).
    w = w + 1e6 * (torch.randn(batch, k, dtype=F64).unsqueeze(-2) @ basis).squeeze(-2)
    o = orthogonalize(basis, w)
    scale = torch.linalg.vector_norm(w, dim=-1)
    # Orthogonal relative to the RESULT's own norm (one pass leaves ~u ||w|| / ||r|| = 1e6 u here).
    leak = torch.linalg.vector_norm(basis @ o.vector.unsqueeze(-1), dim=(-2, -1)) / o.norm
    assert float(leak.max()) <= 50 * EPS
    rebuilt = (o.coefficients.unsqueeze(-2) @ basis).squeeze(-2) + o.vector
    assert torch.allclose(rebuilt, w, atol=50 * EPS * float(scale.max()))
    assert torch.allclose(o.norm, torch.linalg.vector_norm(o.vector, dim=-1))
    assert torch.allclose(o.input_norm, scale) and not bool(o.in_span.any())


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(3, 40), k=st.integers(0, 30), p=st.integers(1, 4), local=st.integers(0, 6), seed=st.integers(0, 2**16)
)
def test_rows_at_once_equal_each_row_alone(n: int, k: int, p: int, local: int, seed: int) -> None:
    """``orthogonalize_rows`` (the block Lanczos step: one pair of reads of the basis for every row) gives
    each row what :func:`orthogonalize` gives it alone: the same coefficients, vector and flags, to
    round-off, including the rows that take a DGKS second pass and the rows inside the span."""
    k = min(k, n - 1)
    basis = _basis(2, k, n, seed)
    g = torch.Generator().manual_seed(seed + 7)
    w = torch.randn(2, p, n, generator=g, dtype=F64)
    w[:, 0] += 1e6 * (torch.randn(2, 1, k, generator=g, dtype=F64) @ basis).squeeze(-2)  # a DGKS row
    if p > 1 and k:
        w[:, 1] = (torch.randn(2, 1, k, generator=g, dtype=F64) @ basis).squeeze(-2)  # inside the span
    rows = orthogonalize_rows(basis, w, local=local)
    rebuilt = rows.coefficients @ basis + rows.vector  # the definition, for every row at once
    assert torch.allclose(rebuilt, w, rtol=0, atol=50 * EPS * float(torch.linalg.vector_norm(w, dim=-1).max()))
    kept = ~rows.in_span
    leak = torch.linalg.vector_norm(rows.vector @ basis.mT, dim=-1) / rows.norm
    assert not bool(kept.any()) or float(leak[kept].max()) <= 50 * EPS
    for i in range(p):
        alone = orthogonalize(basis, w[:, i], local=local)
        scale = float(torch.linalg.vector_norm(w[:, i], dim=-1).max())
        assert torch.allclose(rows.coefficients[:, i], alone.coefficients, rtol=0, atol=50 * EPS * scale)
        assert torch.allclose(rows.vector[:, i], alone.vector, rtol=0, atol=50 * EPS * scale)
        assert torch.equal(rows.in_span[:, i], alone.in_span)
        assert torch.allclose(rows.input_norm[:, i], alone.input_norm)


def test_a_vector_in_the_span_is_flagged() -> None:
    basis = _basis(2, 5, 30, 0)
    inside = (torch.randn(2, 5, dtype=F64).unsqueeze(-2) @ basis).squeeze(-2)
    o = orthogonalize(basis, inside)
    assert bool(o.in_span.all()) and float(o.norm.max()) <= 1e-12 * float(o.input_norm.min())


def test_a_mask_hides_the_rows_a_problem_does_not_own() -> None:
    basis = _basis(2, 6, 20, 1)
    w = torch.randn(2, 20, dtype=F64)
    mask = torch.tensor([[1.0] * 6, [1.0] * 3 + [0.0] * 3], dtype=F64)
    o = orthogonalize(basis, w, mask)
    alone = orthogonalize(basis[1:, :3], w[1:])
    assert torch.allclose(o.vector[1], alone.vector[0]) and float(o.coefficients[1, 3:].abs().max()) == 0.0


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 3),
    n=st.integers(3, 50),
    k=st.integers(1, 40),
    local=st.integers(1, 3),
    seed=st.integers(0, 2**16),
)
def test_a_local_first_step_gives_the_same_orthogonal_result(batch: int, n: int, k: int, local: int, seed: int) -> None:
    """``local``: the part on the last rows removed first, as a short recurrence would; the result is
    orthogonal and reconstructs ``w`` as without it, and the cancellation on those rows alone (the
    Lanczos case) no longer costs a second pass."""
    k = min(k, n - 1)
    basis = _basis(batch, k, n, seed)
    g = torch.Generator().manual_seed(seed + 2)
    w = torch.randn(batch, n, generator=g, dtype=F64)
    recurrence = 1e4 * torch.randn(batch, min(local, k), generator=g, dtype=F64)  # big parts on the last rows
    w = w + (recurrence.unsqueeze(-2) @ basis[:, k - min(local, k) :]).squeeze(-2)
    o = orthogonalize(basis, w, local=local)
    plain = orthogonalize(basis, w)
    leak = torch.linalg.vector_norm(basis @ o.vector.unsqueeze(-1), dim=(-2, -1)) / o.norm
    assert float(leak.max()) <= 50 * EPS
    scale = float(torch.linalg.vector_norm(w, dim=-1).max())
    torch.testing.assert_close(o.coefficients, plain.coefficients, rtol=0, atol=100 * EPS * scale)
    torch.testing.assert_close(o.vector, plain.vector, rtol=0, atol=100 * EPS * scale)
    torch.testing.assert_close(o.input_norm, plain.input_norm)
    assert not bool(o.in_span.any())


def test_a_local_first_step_spares_the_second_pass(monkeypatch) -> None:
    import spectral_probe.linalg.krylov as krylov

    basis = _basis(1, 20, 200, 5)
    w = torch.randn(1, 200, generator=torch.Generator().manual_seed(6), dtype=F64)
    w = w + 1e3 * basis[:, -1] + 5e2 * basis[:, -2]  # A v_j: alpha v_j + beta v_(j-1) + a little more
    passes = {"count": 0}
    project = krylov._project

    def counted(*args):
        passes["count"] += 1
        return project(*args)

    monkeypatch.setattr(krylov, "_project", counted)
    orthogonalize(basis, w)
    assert passes["count"] == 2  # one pass, then DGKS asks for a second
    passes["count"] = 0
    orthogonalize(basis, w, local=2)
    assert passes["count"] == 2  # the local step and ONE full pass
