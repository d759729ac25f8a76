"""End to end through the CLI on operators whose omega, alpha and rho are known in closed form."""

import math

import pytest
import torch

from tests.cli.helpers import run_cli, write_checkpoint


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return q


def rotated_block_diagonal(n: int = 40) -> torch.Tensor:
    """J_F = Q blockdiag([[a1, b1], [0, a1]], [[a2, w], [-w, a2]], diag(d)) Q^T.

    Closed forms: Sym has eigenvalues a1 +- b1/2, a2 (twice) and d, so omega = a1 + b1/2;
    the eigenvalues are a1 (defective), a2 +- i w and d, so alpha = a2 with alpha_imag = w.
    """
    a1, b1, a2, w = -0.5, 3.0, -0.2, 0.8
    t = torch.zeros(n, n, dtype=torch.float64)
    t[0, 0] = t[1, 1] = a1
    t[0, 1] = b1
    t[2, 2] = t[3, 3] = a2
    t[2, 3], t[3, 2] = w, -w
    t[4:, 4:] = torch.diag(torch.linspace(-2.0, -0.6, n - 4, dtype=torch.float64))
    q = _orthogonal(n, 0)
    return q @ t @ q.T


@pytest.mark.parametrize("method", ["dense", "krylov"])
def test_rotated_nonnormal_block_diagonal(tmp_path, method: str) -> None:
    n, eps = 40, 0.5
    jf = rotated_block_diagonal(n)
    a = jf + torch.eye(n, dtype=torch.float64)  # linear: nc_force(z) = A z, c = 0 -> J_F = A - I
    path = write_checkpoint(tmp_path / "rot.safetensors", {"A": a, "z_star": torch.zeros(n)}, operator="linear")
    code, report, output = run_cli("scan", path, "--eps", eps, "--method", method, "--json", "-")
    assert code == 0, output
    (r,) = report["results"]
    assert r["omega"] == pytest.approx(-0.5 + 1.5, abs=1e-8)
    assert r["alpha"] == pytest.approx(-0.2, abs=1e-8)
    assert r["alpha_imag"] == pytest.approx(0.8, abs=1e-8)
    # rho: |1 + eps (a2 + i w)| = |0.9 + 0.4 i| beats 1 + eps a1 = 0.75 and the diagonal
    assert r["rho"] == pytest.approx(math.hypot(0.9, 0.4), abs=1e-8)
    assert r["gap"] == pytest.approx(1.2, abs=1e-8)
    assert r["verdict"] == "stable" and r["method"] == method
    assert r["omega_nc"] == pytest.approx(r["omega"] + 1) and r["alpha_nc"] == pytest.approx(r["alpha"] + 1)


def test_nonlinear_hopfield_closed_form(tmp_path) -> None:
    """hopfield tanh, n = 2: J_nc = W D with D = diag(1 - tanh(z*)^2), eigenvalues from trace/det."""
    w = torch.tensor([[2.0, -3.0], [3.0, 2.0]], dtype=torch.float64)
    z = torch.tensor([0.3, -0.2], dtype=torch.float64)
    c, eps = 0.25, 0.5
    b = (1 + c) * z - w @ torch.tanh(z)
    path = write_checkpoint(tmp_path / "h2.safetensors", {"W": w, "b": b, "z_star": z}, operator="hopfield", c=c)
    d1, d2 = (1 - math.tanh(0.3) ** 2), (1 - math.tanh(-0.2) ** 2)
    trace, det = 2 * d1 + 2 * d2, 13 * d1 * d2  # of W D
    re = trace / 2 - (1 + c)
    im = math.sqrt(4 * det - trace**2) / 2
    lead = complex(1 + eps * re, eps * im)
    for method in ("dense", "krylov"):
        code, report, output = run_cli("scan", path, "--eps", eps, "--method", method, "--json", "-")
        assert code == 0, output
        (r,) = report["results"]
        assert r["alpha"] == pytest.approx(re, abs=1e-9) and r["alpha_imag"] == pytest.approx(im, abs=1e-9)
        assert r["rho"] == pytest.approx(abs(lead), abs=1e-9)
        assert r["lead_imag"] == pytest.approx(abs(lead.imag), abs=1e-9)
        assert r["verdict"] == ("hopf" if abs(lead) > 1 else "stable")
        assert r["fd_jvp_rel_err"] < 1e-7 and r["adjoint_rel_err"] < 1e-10
        assert r["fixed_point_residual"] < 1e-14


def test_fd_matvec_mode_agrees(tmp_path) -> None:
    n = 12
    jf = rotated_block_diagonal(n)
    path = write_checkpoint(
        tmp_path / "fd.safetensors",
        {"A": jf + torch.eye(n, dtype=torch.float64), "z_star": torch.zeros(n)},
        operator="linear",
    )
    code, report, output = run_cli("scan", path, "--matvec", "fd", "--method", "krylov", "--json", "-")
    assert code == 0, output
    (r,) = report["results"]
    assert r["alpha"] == pytest.approx(-0.2, abs=1e-6)
    assert r["omega"] == pytest.approx(1.0, abs=1e-6)  # from the dense FD Jacobian at this n
    assert r["adjoint_rel_err"] is None
