"""The fixed-point residual, and the Newton-Krylov polish of ``z*`` behind ``--refine``."""

from __future__ import annotations

from collections.abc import Callable

import torch

from spectral_probe.batching import map_rows
from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.linear import gmres

NcForce = Callable[[torch.Tensor], torch.Tensor]

#: Newton steps allowed to ``--refine``.
NEWTON_STEPS = 20


def fixed_point_residual(nc_force: NcForce, z: torch.Tensor, c: float) -> list[float]:
    """Normwise backward error ``||F(z)|| / (||nc_force(z)|| + (1 + c) ||z||)`` per fixed point."""
    with torch.no_grad():
        force, _ = map_rows(nc_force, z)  # a loop where vmap cannot run the operator
    field_value = force - (1 + c) * z
    scale = torch.linalg.vector_norm(force, dim=-1) + (1 + c) * torch.linalg.vector_norm(z, dim=-1)
    tiny = torch.finfo(z.dtype).tiny
    return (torch.linalg.vector_norm(field_value, dim=-1) / scale.clamp_min(tiny)).tolist()


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
