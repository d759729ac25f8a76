"""The fixed-point residual, and the Newton-Krylov polish of ``z*`` behind ``--refine``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from spectral_probe.config import ProbeOptions
from spectral_probe.fixed_point import NEWTON_STEPS, newton_krylov, residual

NcForce = Callable[[torch.Tensor], torch.Tensor]

__all__ = ["NEWTON_STEPS", "fixed_point_residual", "polish"]


def fixed_point_residual(nc_force: NcForce, z: torch.Tensor, c: float) -> list[float]:
    """Normwise backward error ``||F(z)|| / (||nc_force(z)|| + max(1, |1 + c|) ||z||)`` per fixed point."""
    return residual(nc_force, z, c).tolist()


def polish(nc_force: NcForce, z: torch.Tensor, c: float, eps: float, options: ProbeOptions, tol: float) -> torch.Tensor:
    """``z*`` polished by the damped Newton-Krylov of :func:`spectral_probe.fixed_point.newton_krylov`
    (GMRES on ``J_F dz = -F(z)``, matrix-free) with the probe's ``--matvec``, ``--krylov-jv`` and Krylov size."""
    z, _, _ = newton_krylov(
        nc_force, z, c, eps, tol, matvec=options.matvec, krylov_dim=options.krylov_dim, krylov_jv=options.krylov_jv
    )
    return z
