"""Finding ``z*`` with ``F(z*) = 0`` when no file holds it: Anderson acceleration, then Newton-Krylov.

``F(z) = nc_force(z) - (1 + c) z`` (docs/SPEC.md section 1). Two stages, each per fixed point of a batch ``[B, n]``:

1. Anderson-accelerated iteration of the relaxation map ``G(z) = z + eps F(z)`` (the model's own Euler
   dynamics): with the last ``m`` residuals ``f_k = G(z_k) - z_k`` it takes the affine combination
   ``gamma = argmin ||f_k - dF gamma||`` (``dF`` the differences of consecutive residuals) and steps to
   ``z_{k+1} = G(z_k) - (dZ + dF) gamma``. Cheap, global enough from zero for a contractive model.
2. Newton-Krylov polish: ``J_F dz = -F(z)`` solved by the GMRES of ``--refine`` (matrix-free ``J_F v``),
   up to :data:`NEWTON_STEPS` steps, damped by backtracking so that ``||F||`` never grows, which converges
   quadratically near a regular ``z*`` even where the relaxation itself diverges (a saddle, a Hopf
   point), and gives up as soon as no step makes progress.

The residual is the normwise backward error ``||F(z)|| / (||nc_force(z)|| + max(1, |1 + c|) ||z||)``, the
quantity the probe checks. A solve that ends above ``tol`` raises :class:`FixedPointNotFound` (an
:class:`~spectral_probe.errors.InputError`, exit 2): the probe never runs at a point that is not a fixed
point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from spectral_probe.batching import map_rows, torch_quiet
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import InputError
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.linear import gmres
from spectral_probe.linalg.result import default_tol
from spectral_probe.user_model import whole_message

__all__ = ["FixedPointNotFound", "FixedPointSolve", "find_for_checkpoint", "newton_krylov", "solve_fixed_point"]

#: Anderson memory, iterations, and Newton-Krylov steps of the solve (and of ``--refine``).
ANDERSON_MEMORY = 6
ANDERSON_ITERS = 500
NEWTON_STEPS = 20
#: Halvings of a Newton step before the line search gives up on it (a step of 2^-7 makes no progress).
NEWTON_HALVINGS = 8


class FixedPointNotFound(InputError):
    """No ``z*`` with ``||F(z*)|| <= tol`` (relative) was found from the start given."""


@dataclass(frozen=True)
class FixedPointSolve:
    """The outcome: ``z`` ``[B, n]``, ``residual`` per fixed point, and the work it took."""

    z: Tensor
    residual: list[float]
    anderson_iterations: int
    newton_steps: int
    matvecs: int
    converged: bool

    def note(self) -> str:
        """One line on how z* was found (Anderson iterations, Newton-Krylov steps, residual)."""
        worst = max(self.residual)
        return (
            f"z* found by the tool: {self.anderson_iterations} Anderson iterations, {self.newton_steps} "
            f"Newton-Krylov steps ({self.matvecs} J v), residual {worst:.2e}"
        )


def solve_tol(options: ProbeOptions, dtype: torch.dtype) -> float:
    """The residual a found ``z*`` is solved to: ``min(fixed_point_tol, 10 eps(dtype)^(2/3))``, below the
    probe's own fixed-point check (in float32 ``10 eps^(2/3)`` alone is 2.4e-4, which it would refuse)."""
    return min(options.fixed_point_tol, 10 * default_tol(dtype))


def residual(nc_force: Callable[[Tensor], Tensor], z: Tensor, c: float) -> Tensor:
    """``||F(z)|| / (||nc_force(z)|| + max(1, |1 + c|) ||z||)`` per row of ``z`` ``[B, n]``."""
    with torch.no_grad():
        force, _ = map_rows(nc_force, z)  # a loop where vmap cannot run the operator
    return backward_error(force, z, c)


def backward_error(force: Tensor, z: Tensor, c: float) -> Tensor:
    """The normwise backward error ``||F(z)|| / (||nc_force(z)|| + max(1, |1 + c|) ||z||)`` per row, from the
    force ``nc_force(z)`` already evaluated (``F(z) = nc_force(z) - (1 + c) z``).

    The state's own size counts at least once: with ``(1 + c) ||z||`` alone, ``c = -1`` (``F = nc_force``, an
    ODE's vector field probed as it is) would divide ``||F||`` by itself, 1 at every ``z``, and ``c < -1``
    would make the scale negative."""
    shift = 1 + c
    scale = torch.linalg.vector_norm(force, dim=-1) + max(1.0, abs(shift)) * torch.linalg.vector_norm(z, dim=-1)
    value = torch.linalg.vector_norm(force - shift * z, dim=-1)
    return value / scale.clamp_min(torch.finfo(z.dtype).tiny)


def solve_fixed_point(
    nc_force: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    c: float = 0.0,
    eps: float = 1.0,
    tol: float = 1e-10,
    matvec: str = "autograd",
    krylov_dim: int = DEFAULTS.krylov_dim,
    path: str | None = None,
) -> FixedPointSolve:
    """``z*`` of ``F`` from ``start`` ``[B, n]`` (zeros, or a guess); raises :class:`FixedPointNotFound`."""
    with torch_quiet():
        try:
            z, iterations = _anderson(nc_force, start.detach().clone(), c, eps, tol)
        except Exception as exc:  # user code that cannot run at the start: a bad input, not a bug
            raise InputError(path, f"the operator failed in the fixed-point solve: {whole_message(exc)}") from None
        z, steps, matvecs = newton_krylov(nc_force, z, c, eps, tol, matvec=matvec, krylov_dim=krylov_dim)
        final = residual(nc_force, z, c).tolist()
    solve = FixedPointSolve(z, final, iterations, steps, matvecs, all(r <= tol for r in final))
    if not solve.converged or not bool(torch.isfinite(z).all()):
        # A checkpoint's user can store z_star or a start; a Python caller passes another start.
        hint = "give z_star, or a start with --fixed-point and --refine" if path is not None else "try another start"
        raise FixedPointNotFound(
            path,
            f"no fixed point found: after {iterations} Anderson iterations and {steps} Newton-Krylov steps "
            f"the relative residual ||F(z)|| is {max(final):.2e} > {tol:.0e} ({hint})",
        )
    return solve


def _anderson(nc_force: Callable[[Tensor], Tensor], z: Tensor, c: float, eps: float, tol: float) -> tuple[Tensor, int]:
    """Anderson(m) on ``G(z) = z + eps F(z)``; stops at ``tol``, on non-finite iterates, or at the cap."""
    history_z: list[Tensor] = []
    history_f: list[Tensor] = []
    vectorized = True
    for iteration in range(ANDERSON_ITERS):
        with torch.no_grad():
            force, note = map_rows(nc_force, z, vectorized=vectorized)
        vectorized = vectorized and note is None
        f = eps * (force - (1 + c) * z)
        rel = backward_error(force, z, c)
        if not bool(torch.isfinite(f).all()) or bool((rel <= tol).all()):
            return z, iteration
        history_z.append(z)
        history_f.append(f)
        history_z, history_f = history_z[-ANDERSON_MEMORY - 1 :], history_f[-ANDERSON_MEMORY - 1 :]
        step = z + f
        if len(history_f) > 1:
            d_f = torch.stack([b - a for a, b in zip(history_f, history_f[1:], strict=False)], dim=-1)
            d_z = torch.stack([b - a for a, b in zip(history_z, history_z[1:], strict=False)], dim=-1)
            gamma = least_squares(d_f, f.unsqueeze(-1))
            step = step - ((d_z + d_f) @ gamma).squeeze(-1)
        if not bool(torch.isfinite(step).all()):
            return z, iteration
        z = step
    return z, ANDERSON_ITERS


def least_squares(a: Tensor, b: Tensor) -> Tensor:
    """The minimum-norm ``argmin ||a x - b||`` of Anderson's ``[B, n, m]`` history, on any device.

    On the CPU, LAPACK's rank-revealing ``gelsy``. CUDA's only driver (``gels``) assumes ``a`` has full
    rank and ``n >= m``, and an Anderson history is often nearly collinear (or ``n < m`` for a tiny
    state): there the ``m x m`` normal equations, formed on the device in float64, go to the CPU's gelsy.
    """
    if a.device.type == "cpu":
        return torch.linalg.lstsq(a, b).solution
    return normal_least_squares(a, b)


def normal_least_squares(a: Tensor, b: Tensor) -> Tensor:
    """:func:`least_squares` off the CPU: the float64 normal equations, solved by the CPU's gelsy."""
    a64 = a.double()
    gram, rhs = (a64.mT @ a64).cpu(), (a64.mT @ b.double()).cpu()
    return torch.linalg.lstsq(gram, rhs).solution.to(device=a.device, dtype=a.dtype)


def newton_krylov(
    nc_force: Callable[[Tensor], Tensor],
    z: Tensor,
    c: float,
    eps: float,
    tol: float,
    *,
    matvec: str = "autograd",
    krylov_dim: int = DEFAULTS.krylov_dim,
    krylov_jv: str = "transpose",
) -> tuple[Tensor, int, int]:
    """Damped inexact Newton steps ``z <- z + t dz``, ``J_F dz = -F(z)`` by GMRES, until ``residual <= tol``.

    ``t`` is the first of ``1, 1/2, ..., 2^-(NEWTON_HALVINGS - 1)`` with ``||F(z + t dz)|| <= (1 - t/4) ||F(z)||``
    (per fixed point; Armijo backtracking, Dennis & Schnabel section 6.3), so a step never makes ``||F||``
    worse; near a regular ``z*`` the full step passes and convergence stays quadratic. Where no fixed point
    takes a step the iteration has stalled (a start far from any ``z*``, a map without one): it gives up
    at once instead of spending every remaining step on GMRES solves that lead nowhere. Returns ``z``, the
    steps taken and the GMRES products. Serves :func:`solve_fixed_point` and ``--refine``.
    """
    matvecs = 0
    backward = residual(nc_force, z, c)
    for step in range(NEWTON_STEPS):
        if not bool(torch.isfinite(z).all()) or bool((backward <= tol).all()):
            return z, step, matvecs
        ops = JacobianOperators(nc_force, z, c=c, eps=eps, mode=matvec, krylov_jv=krylov_jv)
        field = ops.field_at_star
        # Inexact Newton (Eisenstat & Walker 1996): a forcing term of the order of the residual keeps the
        # convergence quadratic near z*, and far from it spares GMRES a solve to tol/10 of a model that
        # is about to change.
        forcing = max(tol / 10, min(0.1, float(backward.max())))
        solve = gmres(ops.jf, -field, tol=forcing, restart=krylov_dim)
        matvecs += solve.matvecs
        z, backward, moved = _backtrack(nc_force, z, solve.x, torch.linalg.vector_norm(field, dim=-1), backward, c)
        if not moved:
            return z, step + 1, matvecs
    return z, NEWTON_STEPS, matvecs


def _backtrack(
    nc_force: Callable[[Tensor], Tensor], z: Tensor, dz: Tensor, norm: Tensor, backward: Tensor, c: float
) -> tuple[Tensor, Tensor, bool]:
    """``z + t dz`` per row with the Armijo step ``t`` of :func:`newton_krylov`; rows that find none stay.
    Returns it with its backward error (``backward`` where a row stayed: the force is evaluated once
    per trial, and the accepted trial's serves the next step's test) and whether any row moved."""
    z_next, backward, pending = z.clone(), backward.clone(), torch.ones(z.shape[0], dtype=torch.bool, device=z.device)
    t = 1.0
    for _ in range(NEWTON_HALVINGS):
        trial = (z + t * dz).detach()
        with torch.no_grad():
            force, _ = map_rows(nc_force, trial)
        new_norm = torch.linalg.vector_norm(force - (1 + c) * trial, dim=-1)
        accept = pending & torch.isfinite(new_norm) & (new_norm <= (1 - t / 4) * norm)
        z_next[accept] = trial[accept]
        backward[accept] = backward_error(force, trial, c)[accept]
        pending &= ~accept
        if not bool(pending.any()):
            break
        t /= 2
    return z_next, backward, bool((~pending).any())


def find_for_checkpoint(
    nc_force: Callable[[Tensor], Tensor],
    n: int | None,
    c: float,
    eps: float,
    options: ProbeOptions,
    path: str,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[Tensor, tuple[str, ...]]:
    """No ``z_star`` in the files: ``z*`` ``[1, n]`` from zero, and the note that says how it was found.

    The tolerance is ``min(fixed_point_tol, 10 eps(dtype)^(2/3))``: Newton polishes far below the
    probe's own fixed-point check, so the Jacobian is taken at ``z*`` to working accuracy.
    """
    if n is None:
        raise InputError(
            path,
            "has no 'z_star' tensor and the operator declares no state shape, so the tool cannot find z* "
            "itself; store z_star, pass --fixed-point, or declare the shape (nc_force.state_shape, or the "
            "operator option state_shape)",
        )
    tol = solve_tol(options, dtype)
    start = torch.zeros(1, n, dtype=dtype, device=device)
    solve = solve_fixed_point(nc_force, start, c=c, eps=eps, tol=tol, matvec=options.matvec, path=path)
    return solve.z, (solve.note(),)
