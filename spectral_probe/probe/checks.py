"""The cross-checks that need no eigensolver: matvec determinism, autograd against finite differences,
the adjoint identity, and the docs/SPEC.md section 2 invariants between omega, alpha and rho."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.fdcheck import adjoint_rel_err, determinism_error, fd_jvp_rel_err


@dataclass(frozen=True)
class MatvecChecks:
    """The checks run before any Krylov solve, per fixed point (``fd_err``/``adj_err`` are ``None``
    under ``--matvec fd``, where the matvec is the finite-difference referee itself)."""

    nondeterminism: torch.Tensor  # [B]
    fd_err: torch.Tensor | None  # [B]
    adj_err: torch.Tensor | None  # [B]
    matvecs: int
    notes: tuple[str, ...]


def relative_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``||a - b|| / (||a|| + ||b||)`` along the last dimension."""
    scale = torch.linalg.vector_norm(a, dim=-1) + torch.linalg.vector_norm(b, dim=-1)
    return torch.linalg.vector_norm(a - b, dim=-1) / scale.clamp_min(torch.finfo(a.dtype).tiny)


def matvec_checks(ops: JacobianOperators, options: ProbeOptions, random: Callable[..., torch.Tensor]) -> MatvecChecks:
    """Determinism of ``J v``; the operator's forward rule against central differences and against its
    backward rule; the Krylov matvec (the transpose of the vjp) against the forward rule."""
    batch, n = ops.z_star.shape
    probe_vectors = random(batch, n)
    nondeterminism = determinism_error(ops.jf, probe_vectors)
    directions = random(batch, options.fd_directions, n)
    notes: tuple[str, ...] = ()
    if options.matvec == "autograd":
        fd_err = fd_jvp_rel_err(ops.force, ops.jvp_forward, ops.z_star, directions)
        adj_err = adjoint_rel_err(ops.jvp_forward, ops.vjp, random(batch, n), random(batch, n))
        transposed = relative_difference(ops.jvp(probe_vectors), ops.jvp_forward(probe_vectors))
        adj_err = torch.maximum(adj_err, transposed)
    else:
        fd_err = adj_err = None
        notes = ("--matvec fd: the matvec is the finite-difference referee itself; no fd/adjoint check",)
    # What the checks cost, per fixed point: the determinism probe (2 J v), central differences
    # (2 forces per direction), the forward rule on every direction, the adjoint and transpose tests.
    matvecs = 2 + (3 * options.fd_directions + 4 if options.matvec == "autograd" else 0)
    return MatvecChecks(nondeterminism, fd_err, adj_err, matvecs, notes)


def matvec_failures(
    checks: MatvecChecks, b: int, fp_residual: float, options: ProbeOptions, dtype: torch.dtype
) -> list[str]:
    """Reasons that the checks before the solves give for fixed point ``b`` (empty when all pass)."""
    reasons = []
    fd_tol = 100 * math.sqrt(float(torch.finfo(dtype).eps))
    if fp_residual > options.fixed_point_tol:
        reasons.append(f"z* is not a fixed point: ||F(z*)|| relative {fp_residual:.2e}")
    nondeterminism = checks.nondeterminism[b]
    if nondeterminism > 100 * float(torch.finfo(dtype).eps):
        reasons.append(f"the Jacobian matvec is not deterministic (relative change {nondeterminism:.1e})")
    if checks.fd_err is not None and not checks.fd_err[b] <= fd_tol:
        reasons.append(f"autograd J v disagrees with finite differences (rel err {checks.fd_err[b]:.1e})")
    if checks.adj_err is not None and not checks.adj_err[b] <= fd_tol:
        reasons.append(f"<u, J v> != <J^T u, v> (adjoint rel err {checks.adj_err[b]:.1e})")
    return reasons


def invariant_failures(
    omega: float | None, mu_alpha: complex, mu_lead: complex, norm_M: float | None, eps: float, slack: float
) -> list[str]:
    """docs/SPEC.md section 2 invariants: ``alpha <= omega``, ``rho >= 1 + eps alpha``, ``rho <= ||M||_2``."""
    failures = []
    rho = abs(1 + eps * mu_lead)
    if omega is not None and mu_alpha.real > omega + slack:
        failures.append(f"alpha {mu_alpha.real:.6g} > omega {omega:.6g}")
    if rho < 1 + eps * mu_alpha.real - eps * slack:
        failures.append(f"rho {rho:.6g} < 1 + eps alpha {1 + eps * mu_alpha.real:.6g}")
    if norm_M is not None and rho > norm_M + eps * slack:
        failures.append(f"rho {rho:.6g} > ||M||_2 {norm_M:.6g}")
    return failures
