"""``--matvec fd`` (a black-box operator): the bounds count the central differences' own error, and the
default tolerance sits above it, so the Krylov path converges. Truth: ``torch.func.jacrev`` of the
user's own function and ``torch.linalg.eigvals``."""

from __future__ import annotations

import pytest
import torch

from spectral_probe import probe
from spectral_probe.tolerances import default_tol

D = torch.float64


def _curved(n: int, seed: int):
    """``nc_force(z) = A tanh(100 z) / 100`` at ``z* = 0``: ``J_nc = A`` exactly, and central differences
    at the step ``u^(1/3)`` are off by ``(100 h)^2 / 3 ~ 1e-7`` relative (the curvature of tanh)."""
    gen = torch.Generator().manual_seed(seed)
    a = 0.9 * torch.randn(n, n, dtype=D, generator=gen) / n**0.5
    return (lambda z: a @ torch.tanh(100 * z) / 100), torch.zeros(n, dtype=D)


@pytest.mark.parametrize(("method", "n"), [("dense", 12), ("krylov", 300)])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_fd_bounds_hold_the_truth_of_the_exact_jacobian(method: str, n: int, seed: int) -> None:
    # Before, the bound was the solver's error on the FD operator alone (1e-15 against a 1e-7 error): a
    # leading eigenvalue 1e-6 above 1 was called marginal with full confidence.
    force, zero = _curved(n, seed)
    jf = torch.func.jacrev(force)(zero) - torch.eye(n, dtype=D)
    mu = torch.linalg.eigvals(jf)
    rho_true, alpha_true = float((1 + mu).abs().max()), float(mu.real.max())
    result = probe(force, zero, matvec="fd", method=method).results[0]
    assert result.converged, result.reason
    assert abs(result.rho - rho_true) <= result.rho_bound
    assert abs(result.alpha - alpha_true) <= result.alpha_bound
    assert abs(result.rho - rho_true) > 1e-10  # the operator's error, not the solver's, is what is bounded
    assert any("step doubling" in note for note in result.notes)


def test_a_band_edge_inside_the_fd_error_is_not_a_confident_verdict() -> None:
    # The rightmost eigenvalue of J_F is 1e-6 + 3e-8 right of 0 (rho = 1 + 1.03e-6 at eps 1): central
    # differences put rho 1.2e-7 lower, across the band edge 1 + 1e-6.
    n = 6
    a = torch.diag(torch.tensor([1e-6 + 3e-8, -0.5, -0.3, -0.2, -0.1, -0.7], dtype=D)) + torch.eye(n, dtype=D)
    result = probe(lambda z: a @ torch.tanh(100 * z) / 100, torch.zeros(n, dtype=D), matvec="fd").results[0]
    exact = probe(lambda z: a @ torch.tanh(100 * z) / 100, torch.zeros(n, dtype=D)).results[0]
    assert exact.verdict == "saddle"
    assert result.verdict in ("saddle", "inconclusive")
    assert result.verdict != "marginal"


def test_the_krylov_path_converges_under_fd_at_the_default_tol() -> None:
    # The default tol u^(2/3) = 3.7e-11 sat at the differences' own error: every Krylov run under fd
    # stalled and the scan was inconclusive ("Arnoldi for alpha/rho did not converge").
    torch.manual_seed(0)
    n = 300
    w, b = 0.5 * torch.randn(n, n, dtype=D) / n**0.5, torch.randn(n, dtype=D)

    def force(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(w @ z + b)

    z = torch.zeros(n, dtype=D)
    for _ in range(200):
        z = force(z)
    jf = torch.func.jacrev(force)(z) - torch.eye(n, dtype=D)
    rho_true = float((1 + torch.linalg.eigvals(jf)).abs().max())
    result = probe(force, z, matvec="fd", method="krylov").results[0]
    assert result.converged and result.verdict == "contractive", result.reason
    assert abs(result.rho - rho_true) <= result.rho_bound
    assert default_tol("float64", "fd") == pytest.approx(2.0**-26)
