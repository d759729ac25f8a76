"""eps_max and c_crit against dense eigenvalues; the rho probes beside eps_max (issue 11)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.analysis.margins import eps_max_of, step_limit, step_margins
from spectral_probe.config import ProbeOptions
from tests.analysis.cases import DTYPE, linear_ops


def cloud(n: int, seed: int, near_axis: tuple[float, float] | None = None) -> torch.Tensor:
    """A non-normal ``J_F``: eigenvalues in the disk of centre -1, radius 0.8, optionally with one
    extra pair ``re +- i im`` (placed by a real 2x2 block) in a random basis."""
    g = torch.Generator().manual_seed(seed)
    a = 0.8 * torch.randn(n, n, generator=g, dtype=DTYPE) / n**0.5 - torch.eye(n, dtype=DTYPE)
    if near_axis is not None:
        re, im = near_axis
        a[:2, :] = 0
        a[:, :2] = 0
        a[0, 0] = a[1, 1] = re
        a[0, 1], a[1, 0] = im, -im
        q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DTYPE))
        a = q @ a @ q.T
    return a


def dense_rho(jf: torch.Tensor, eps: float) -> float:
    return float(torch.linalg.eigvals(torch.eye(jf.shape[0], dtype=DTYPE) + eps * jf).abs().max())


def dense_eps_max(jf: torch.Tensor) -> float:
    mu = torch.linalg.eigvals(jf)
    return float((-2 * mu.real / mu.abs() ** 2).min())


def probe(jf: torch.Tensor, *, c: float, eps: float, method: str):
    from spectral_probe.probe import probe_fixed_points

    n = jf.shape[0]
    a = jf + (1 + c) * torch.eye(n, dtype=DTYPE)
    results, _ = probe_fixed_points(
        lambda z: a @ z, torch.zeros(1, n, dtype=DTYPE), c=c, eps=eps, options=ProbeOptions(method=method, margins=True)
    )
    return results[0]


@pytest.mark.parametrize("method", ["dense", "krylov"])
@pytest.mark.parametrize(("seed", "near_axis"), [(0, None), (1, (-0.05, 0.6)), (2, (-0.3, 1.9))])
def test_eps_max_against_dense_eigenvalues(method: str, seed: int, near_axis) -> None:
    jf = cloud(60, seed, near_axis)
    r = probe(jf, c=0.3, eps=0.1, method=method)
    truth = dense_eps_max(jf)
    assert r.eps_max == pytest.approx(truth, rel=1e-8)
    assert r.eps_margin == pytest.approx(truth - 0.1, rel=1e-8)
    assert r.eps_max_confirmed is True
    # the probes, and independently the dense spectrum, on both sides of eps_max
    assert r.eps_max_rho_below < 1 < r.eps_max_rho_above
    assert dense_rho(jf, 0.99 * r.eps_max) < 1 < dense_rho(jf, 1.01 * r.eps_max)
    # the eigenvalue named is an eigenvalue of J_F, and it sets the bound
    mu = complex(r.eps_max_mu_real, r.eps_max_mu_imag)
    assert float((torch.linalg.eigvals(jf) - mu).abs().min()) < 1e-8
    assert step_limit(mu) == pytest.approx(truth, rel=1e-8)
    assert ("dense" in r.eps_max_basis) == (method == "dense")
    assert len(r.eigenvalues_jf) >= 2
    assert r.matvecs_by_kind["margins"] > 0


@pytest.mark.parametrize("c", [0.0, 0.7, -0.4])
def test_c_crit_against_dense_eigenvalues(c: float) -> None:
    jf = cloud(30, 3, near_axis=(-0.2, 0.5))
    r = probe(jf, c=c, eps=0.5, method="dense")
    j_nc = jf + (1 + c) * torch.eye(30, dtype=DTYPE)
    alpha_nc = float(torch.linalg.eigvals(j_nc).real.max())
    assert r.c_crit == pytest.approx(alpha_nc - 1, abs=1e-10)
    assert r.c_margin == pytest.approx(c - (alpha_nc - 1), abs=1e-10)

    def alpha_at(damping: float) -> float:
        return float(torch.linalg.eigvals(j_nc - (1 + damping) * torch.eye(30, dtype=DTYPE)).real.max())

    assert alpha_at(r.c_crit + 0.01) < 0 < alpha_at(r.c_crit - 0.01)


def test_a_missed_eigenvalue_is_found_by_the_probe() -> None:
    """Hand eps_max a candidate set without its minimizer: the probe at 0.99 eps_max finds rho >= 1,
    takes the eigenvalue in, and the next round confirms the true eps_max."""
    jf = cloud(40, 5, near_axis=(-0.05, 0.6))
    values = [complex(v) for v in torch.linalg.eigvals(jf).tolist()]
    truth, minimizer = eps_max_of(values)
    partial = [v for v in values if abs(v - minimizer) > 1e-6 and abs(v - minimizer.conjugate()) > 1e-6]
    assert eps_max_of(partial)[0] > 1.5 * truth  # the incomplete set overestimates (an upper bound)
    generator = torch.Generator().manual_seed(0)

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=DTYPE)

    (m,), used = step_margins(linear_ops(jf), [partial], "partial", random, tol=1e-11, krylov_dim=40, max_restarts=300)
    assert m.eps_max == pytest.approx(truth, rel=1e-8)
    assert m.confirmed is True and used > 0
    assert any("lowered" in note for note in m.notes)


def test_an_unstable_flow_has_no_stable_step() -> None:
    jf = cloud(20, 6, near_axis=(0.1, 0.4))
    r = probe(jf, c=0.0, eps=0.5, method="dense")
    assert r.eps_max == 0.0 and r.eps_max_confirmed is None
    assert r.c_margin < 0


@settings(max_examples=200, deadline=None)
@given(re=st.floats(-10, -1e-3), im=st.floats(-10, 10))
def test_step_limit_is_where_one_eigenvalue_leaves_the_unit_disk(re: float, im: float) -> None:
    mu = complex(re, im)
    limit = step_limit(mu)
    assert abs(1 + 0.999 * limit * mu) < 1 < abs(1 + 1.001 * limit * mu)
