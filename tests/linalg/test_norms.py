"""``operator_norm``: ``||A||_2`` by Lanczos on ``A^T A`` against ``numpy.linalg.norm(A, 2)``, and the
early stop of ``enough`` (a proven lower bound, for an inequality ``x <= ||A||_2``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg import operator_norm

F64 = torch.float64


def _matrix(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) / np.sqrt(n) + np.diag(rng.uniform(-1, 1, n))


def _norm(a: np.ndarray, enough=None, seed: int = 0):
    t = torch.from_numpy(a)
    x0 = torch.randn(1, a.shape[0], generator=torch.Generator().manual_seed(seed), dtype=F64)
    kwargs = {} if enough is None else {"enough": torch.tensor([enough], dtype=F64)}
    return operator_norm(lambda v: v @ t.T, lambda u: u @ t, x0, tol=1e-10, **kwargs)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 80), seed=st.integers(0, 10_000), fraction=st.floats(0.05, 0.999))
def test_enough_stops_at_a_lower_bound_that_passes_it(n, seed, fraction):
    a = _matrix(n, seed)
    truth = np.linalg.norm(a, 2)
    (full,), full_products = _norm(a)
    assert full is not None and abs(full - truth) <= 1e-8 * truth
    (bound,), products = _norm(a, enough=fraction * truth)
    assert bound is not None
    assert fraction * truth <= bound <= truth * (1 + 1e-12)  # passes the floor, never above ||A||_2
    assert products <= full_products


def test_enough_above_the_norm_runs_to_convergence():
    a = _matrix(50, 1)
    truth = np.linalg.norm(a, 2)
    (value,), _ = _norm(a, enough=2 * truth)
    assert value == pytest.approx(truth, rel=1e-8)
