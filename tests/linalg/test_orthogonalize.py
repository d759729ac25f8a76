"""The one orthogonalization kernel (blocked classical Gram-Schmidt with DGKS), on its own.

Truth is the definition: ``w = V^T c + r`` with ``V r = 0`` to round-off, ``||r||`` reported; a
vector inside ``span(V)`` flagged; a mask hides rows exactly.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.krylov import orthogonalize

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
