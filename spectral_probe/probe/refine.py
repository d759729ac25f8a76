"""The fixed-point residual, and the Newton-Krylov polish of ``z*`` behind ``--refine``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from spectral_probe.config import ProbeOptions
from spectral_probe.fixed_point import residual
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.linear import gmres

NcForce = Callable[[torch.Tensor], torch.Tensor]

#: Newton steps allowed to ``--refine``.
NEWTON_STEPS = 20


def fixed_point_residual(nc_force: NcForce, z: torch.Tensor, c: float) -> list[float]:
    """Normwise backward error ``||F(z)|| / (||nc_force(z)|| + (1 + c) ||z||)`` per fixed point."""
    return residual(nc_force, z, c).tolist()


def newton_krylov(
    nc_force: NcForce, z: torch.Tensor, c: float, eps: float, options: ProbeOptions, tol: float
) -> torch.Tensor:
    """Polish ``z*`` by Newton's method with GMRES on ``J_F dz = -F(z)`` (matrix-free)."""
    for _ in range(NEWTON_STEPS):
        if max(fixed_point_residual(nc_force, z, c)) <= tol:
            break
        ops = JacobianOperators(nc_force, z, c=c, eps=eps, mode=options.matvec, krylov_jv=options.krylov_jv)
        step = gmres(ops.jf, -ops.field(z), tol=tol, restart=options.krylov_dim)
        z = z + step.x
    return z
