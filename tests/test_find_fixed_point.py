"""find_fixed_point (the Python API): the point it returns is one the probe accepts, in every dtype."""

from __future__ import annotations

import pytest
import torch

from spectral_probe import find_fixed_point, probe
from spectral_probe.fixed_point import normal_least_squares


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_found_point_passes_the_probes_fixed_point_check(dtype: torch.dtype) -> None:
    # In float32 the default tol was 10 eps^(2/3) = 2.4e-4, above the probe's fixed_point_tol 1e-6: every
    # probe(f, find_fixed_point(f, zeros)) came back inconclusive ("z* is not a fixed point").
    torch.manual_seed(0)
    w, b = torch.randn(20, 20, dtype=dtype) * 0.1, torch.randn(20, dtype=dtype)

    def f(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(w @ z + b)

    z = find_fixed_point(f, torch.zeros(20, dtype=dtype))
    result = probe(f, z).results[0]
    assert z.dtype == dtype and result.fixed_point_residual <= 1e-6
    assert result.verdict == "contractive"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_anderson_least_squares_off_the_cpu_is_minimum_norm(dtype: torch.dtype) -> None:
    # CUDA's only lstsq driver, gels, assumes full rank and n >= m; the path taken off the CPU must give
    # the CPU's minimum-norm answer on a rank-deficient history (where gels does not) and on a wide one.
    rng = torch.Generator().manual_seed(0)
    base = torch.randn(1, 12, 2, dtype=torch.float64, generator=rng)
    deficient = torch.cat([base, base[..., :1] * 2.0], dim=-1)
    for a in (deficient, torch.randn(1, 3, 6, dtype=torch.float64, generator=rng)):
        b = torch.randn(1, a.shape[1], 1, dtype=torch.float64, generator=rng)
        expected = torch.linalg.lstsq(a, b).solution
        got = normal_least_squares(a.to(dtype), b.to(dtype))
        assert got.dtype == dtype
        assert torch.allclose(got.double(), expected, atol=1e-4 if dtype == torch.float32 else 1e-7)
    b = torch.randn(1, 12, 1, dtype=torch.float64, generator=rng)
    gels = torch.linalg.lstsq(deficient, b, driver="gels").solution
    assert not torch.allclose(gels, torch.linalg.lstsq(deficient, b).solution, atol=1e-3)


def test_no_fixed_point_is_one_line_with_a_hint_for_python_callers() -> None:
    """``cos(z) + z + 2 - z = cos(z) + 2 >= 1``: no fixed point. The hint speaks to a Python caller, not of
    the command line's --fixed-point and --refine."""
    from spectral_probe.fixed_point import FixedPointNotFound

    with pytest.raises(FixedPointNotFound) as caught:
        find_fixed_point(lambda z: torch.cos(z) + z + 2, torch.zeros(3, dtype=torch.float64))
    message = str(caught.value)
    assert "no fixed point found" in message and "try another start" in message
    assert "--" not in message and "\n" not in message


def _counting(nc_force):
    """``nc_force`` counting its calls (products and evaluations alike pass through it)."""
    calls = [0]

    def counted(z):
        calls[0] += 1
        return nc_force(z)

    return counted, calls


def test_a_map_without_fixed_point_gives_up_once_newton_stalls() -> None:
    """``F(z) = cos(z) + 2 >= 1`` has no zero: ``||F||`` has a floor, every damped step's line search fails
    there, and Newton stops at the first stalled step instead of running all its GMRES solves (before:
    NEWTON_STEPS solves of up to gmres_max_iters products each)."""
    from spectral_probe.fixed_point import NEWTON_STEPS, FixedPointNotFound, solve_fixed_point

    counted, calls = _counting(lambda z: torch.cos(z) + z + 2)
    with pytest.raises(FixedPointNotFound, match=r"and (\d+) Newton-Krylov steps") as caught:
        solve_fixed_point(counted, torch.zeros(1, 50, dtype=torch.float64), tol=1e-10)
    steps = int(caught.value.args[-1].split(" Newton-Krylov")[0].split()[-1])
    assert steps < NEWTON_STEPS
    assert calls[0] < 500 + 40 * NEWTON_STEPS  # Anderson's iterations and a few dozen products per step


def test_damped_newton_converges_where_the_full_step_diverges() -> None:
    """``F(z) = arctan(z)``: from ``|z0| > 1.39`` the full Newton step overshoots ever further (the
    classic example of Dennis & Schnabel, section 6.1); the Armijo-damped step reaches ``z* = 0``."""
    from spectral_probe.fixed_point import newton_krylov, residual

    def nc_force(z):
        return z + torch.atan(z)  # c = 0: F(z) = arctan(z)

    z0 = torch.full((2, 3), 10.0, dtype=torch.float64)
    full = z0.clone()
    for _ in range(4):
        full = full - torch.atan(full) * (1 + full**2)
    assert bool((full.abs() > 1e3).all())  # the undamped iteration diverges
    z, _, _ = newton_krylov(nc_force, z0, 0.0, 1.0, 1e-12)
    assert float(residual(nc_force, z, 0.0).max()) <= 1e-12
    assert float(z.abs().max()) < 1e-10


@pytest.mark.parametrize("c", [-1.0, -3.0, -0.5])
def test_a_vector_field_probed_as_it_is_has_a_scale_at_c_minus_one(c: float) -> None:
    # The residual's scale was ||nc_force|| + (1 + c)||z||: at c = -1 (F = nc_force, an ODE's field g) it
    # divided ||F|| by itself, 1 at every z, so every exact zero of g was "not a fixed point" and
    # find_fixed_point never converged; at c < -1 the scale went negative.
    torch.manual_seed(1)
    n = 6
    a = torch.randn(n, n, dtype=torch.float64) * 0.3 - torch.eye(n, dtype=torch.float64)
    b = torch.randn(n, dtype=torch.float64)
    zero = torch.linalg.solve(a - (1 + c) * torch.eye(n, dtype=torch.float64), -b)  # F(zero) = a z + b - (1+c) z

    def field(z: torch.Tensor) -> torch.Tensor:
        return a @ z + b + 0.1 * torch.sin(z - zero)

    assert float(torch.linalg.vector_norm(field(zero) - (1 + c) * zero)) < 1e-14
    result = probe(field, zero, c=c).results[0]
    assert result.fixed_point_residual <= 1e-14
    jacobian = torch.func.jacrev(field)(zero) - (1 + c) * torch.eye(n, dtype=torch.float64)
    alpha = float(torch.linalg.eigvals(jacobian).real.max())
    assert result.alpha == pytest.approx(alpha, abs=1e-10)
    assert result.verdict != "inconclusive", result.reason
    found = find_fixed_point(field, torch.zeros(n, dtype=torch.float64), c=c)
    assert float(torch.linalg.vector_norm(found - zero)) <= 1e-8 * float(torch.linalg.vector_norm(zero))
