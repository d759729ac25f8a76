"""Block Lanczos against dense ``numpy.linalg.eigh``, SciPy ARPACK ``eigsh`` and closed forms.

The point of the block: one Krylov space of several independent starts finds what any of them sees (a
top eigenvector hidden from one start exactly), in fewer products than separate runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.result import default_tol
from spectral_probe.linalg.symmetric import lanczos

from .matrices import CountingOperator, arpack_eigsh, dense_matvec, low_rank_symmetric, symmetric
from .test_lanczos import check_against_truth, start

F64 = torch.float64


def block_lanczos(matvec, x0: torch.Tensor, **kwargs):
    """One block Krylov space of the starts ``x0 [*batch, p, n]``."""
    return lanczos(matvec, x0, block=True, **kwargs)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 60),
    p=st.integers(1, 3),
    nev=st.integers(1, 3),
    which=st.sampled_from(["LA", "SA"]),
    seed=st.integers(0, 2**16),
)
def test_random_symmetric_matches_eigh(n: int, p: int, nev: int, which: str, seed: int) -> None:
    nev = min(nev, n)
    rng = np.random.default_rng(seed)
    a = symmetric(rng.uniform(-3, 3, n), seed)
    kdim = min(n, nev + 2 * p + 8)
    result = block_lanczos(dense_matvec(a), start((p, n), seed), which=which, nev=nev, krylov_dim=kdim)
    check_against_truth(a, result, which, nev)


def test_indefinite_with_a_dominant_negative_end_returns_the_algebraic_top() -> None:
    a = symmetric(np.concatenate([[-10.0, -9.5], np.linspace(-1, 0.5, 98)]), 3)
    result = block_lanczos(dense_matvec(a), start((2, 100), 1))
    assert abs(float(result.values[0]) - 0.5) <= default_tol(F64) * 10 * 10
    check_against_truth(a, result, "LA", 1)


def test_a_top_eigenvector_hidden_from_one_start_is_found_by_the_block() -> None:
    # e_0 carries the top eigenvalue 2; the first start has an exactly zero e_0 entry, and A keeps it zero
    # (diagonal), so a single-vector Krylov space of that start never sees it. The block's second start does.
    n = 80
    a = np.diag(np.concatenate([[2.0], np.linspace(-1, 1, n - 1)]))
    starts = start((2, n), 5)
    starts[0, 0] = 0.0
    alone = lanczos(dense_matvec(a), starts[0].clone())
    assert float(alone.values[0]) < 1.0 + 1e-8  # the single start misses it
    result = block_lanczos(dense_matvec(a), starts)
    assert abs(float(result.values[0]) - 2.0) <= 1e-9
    check_against_truth(a, result, "LA", 1)


def test_a_double_top_eigenvalue_is_seen_twice() -> None:
    # A single start's Krylov space holds one copy of a multiple eigenvalue; a block of two holds both.
    a = symmetric(np.concatenate([[1.5, 1.5], np.linspace(-1, 1, 58)]), 7)
    result = block_lanczos(dense_matvec(a), start((2, 60), 2), nev=2)
    np.testing.assert_allclose(result.values.numpy(), [1.5, 1.5], atol=1e-9)
    check_against_truth(a, result, "LA", 2)


def test_fewer_products_than_two_separate_runs_and_counted_per_vector() -> None:
    a = symmetric(np.concatenate([[3.0, 2.6], np.linspace(-2, 2, 398)]), 11)
    starts = start((2, 400), 4)
    separate = sum(lanczos(dense_matvec(a), starts[i].clone(), krylov_dim=40).matvecs for i in range(2))
    counted = CountingOperator(dense_matvec(a), batch_ndim=0)
    result = block_lanczos(counted, starts, krylov_dim=40)
    assert result.matvecs == counted.vectors  # p products per block step, the true check included
    assert result.matvecs < separate, (result.matvecs, separate)
    check_against_truth(a, result, "LA", 1)


def test_ritz_pairs_where_convergence_is_predicted_at_the_products_of_every_step(monkeypatch) -> None:
    """The projected ``eigh`` (a batch of them per step) runs where the estimates predict convergence:
    far fewer of them than block steps, and not one product more than testing at every step."""
    import spectral_probe.linalg.symmetric_block as block_module
    from spectral_probe.linalg.schedule import CheckSchedule

    mats = [symmetric(np.concatenate([[3.0, 2.7], np.random.default_rng(s).uniform(-2, 2, 298)]), s) for s in range(4)]
    batch = torch.stack([torch.from_numpy(m) for m in mats])
    starts = start((4, 2, 300), 5)
    calls = {"ritz": 0}
    real_ritz = block_module.ritz

    def counted_ritz(t: torch.Tensor, which: str):
        calls["ritz"] += 1
        return real_ritz(t, which)

    monkeypatch.setattr(block_module, "ritz", counted_ritz)
    scheduled = block_lanczos(dense_matvec(batch), starts, krylov_dim=30)
    scheduled_calls = calls["ritz"]
    monkeypatch.setattr(CheckSchedule, "due", lambda self, clock: True)
    calls["ritz"] = 0
    every_step = block_lanczos(dense_matvec(batch), starts, krylov_dim=30)
    assert scheduled.matvecs <= every_step.matvecs
    assert calls["ritz"] >= every_step.matvecs // 2 - 1  # the control: one per block step of two products
    assert scheduled_calls <= calls["ritz"] // 2, (scheduled_calls, calls["ritz"])
    assert bool(scheduled.converged.all())
    for b, m in enumerate(mats):
        top = float(np.linalg.eigvalsh(m)[-1])
        assert abs(float(scheduled.values[b, 0]) - top) <= float(scheduled.residuals[b, 0]) + 1e-12
        assert float(scheduled.residuals[b, 0]) <= default_tol(F64) * 3.0 + 1e-12


def test_matches_arpack_with_restarts() -> None:
    a = symmetric(np.concatenate([np.linspace(-1, 1, 296), [1.2, 1.25, 1.3, 1.4]]), 13)
    result = block_lanczos(dense_matvec(a), start((2, 300), 6), nev=3, krylov_dim=16)
    arpack, _, _ = arpack_eigsh(a, 3, "LA", seed=1)
    np.testing.assert_allclose(result.values.numpy(), arpack, atol=1e-8)
    assert result.info.iterations > 0  # it restarted
    check_against_truth(a, result, "LA", 3)


def test_low_rank_operator_is_exact_in_a_few_steps() -> None:
    a = low_rank_symmetric([2.0, -1.0, 0.5], 50, 9)
    result = block_lanczos(dense_matvec(a), start((2, 50), 3), nev=2)
    np.testing.assert_allclose(result.values.numpy(), [2.0, 0.5], atol=1e-10)
    # a few block steps hold the rank-3 range and the starts' components outside it: then a breakdown,
    # one step with random directions to make sure, and the true check
    assert result.matvecs <= 12, result.matvecs
    check_against_truth(a, result, "LA", 2)


def test_batch_equals_separate_problems() -> None:
    mats = [symmetric(np.random.default_rng(s).uniform(-2, 2, 40), s) for s in range(3)]
    batch = torch.stack([torch.from_numpy(m) for m in mats])
    starts = start((3, 2, 40), 8)
    together = block_lanczos(dense_matvec(batch), starts)
    for b, m in enumerate(mats):
        alone = block_lanczos(dense_matvec(m), starts[b])
        assert abs(float(together.values[b, 0]) - float(alone.values[0])) <= 1e-10
    assert bool(together.converged.all())


def test_float32() -> None:
    a = symmetric(np.concatenate([[2.0], np.linspace(-1, 1, 99)]), 2)
    result = block_lanczos(dense_matvec(a, torch.float32), start((2, 100), 1, torch.float32))
    assert result.values.dtype == torch.float32
    check_against_truth(a, result, "LA", 1, torch.float32)


def test_nonfinite_operator_stops_unconverged() -> None:
    result = block_lanczos(lambda x: x * float("nan"), start((2, 10), 0))
    assert not bool(result.converged.any()) and bool(result.info.nonfinite.all())


@pytest.mark.parametrize("bad", [{"which": "LM"}, {"nev": 0}, {"krylov_dim": 3}])
def test_bad_arguments(bad: dict) -> None:
    with pytest.raises(ValueError):
        block_lanczos(dense_matvec(np.eye(20)), start((2, 20), 0), **bad)


def test_breakdown_continues_from_a_random_direction() -> None:
    # Both starts in a 2-D invariant subspace that misses the top eigenvector: the block breaks down at
    # once, continues from random directions, and still finds the top (a start can be unlucky, the
    # space is not allowed to stop growing).
    n = 30
    a = np.diag(np.concatenate([[5.0], np.linspace(-1, 1, n - 1)]))
    starts = torch.zeros(2, n, dtype=F64)
    starts[0, 1], starts[1, 2] = 1.0, 1.0  # eigenvectors e_1, e_2: A X0 is in span(X0)
    result = block_lanczos(dense_matvec(a), starts)
    assert int(result.info.breakdowns) >= 1
    assert abs(float(result.values[0]) - 5.0) <= 1e-10
    check_against_truth(a, result, "LA", 1)
