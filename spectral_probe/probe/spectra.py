"""What either path (dense or Krylov) hands to the result records: per-fixed-point spectral quantities."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spectral_probe.linalg.result import EigResult
from spectral_probe.probe.bounds import EigenBound
from spectral_probe.probe.warm import WarmStart
from spectral_probe.results import Check


@dataclass
class Spectra:
    """Per-fixed-point quantities (Python lists of length B) from either path."""

    omega: list[float | None]
    mu_alpha: list[complex]
    mu_lead: list[complex]
    rho_rr: list[float | None]
    rr_block: list[int | None]
    rr2_misleading: list[bool]
    norm_M: list[float | None]
    residuals: list[dict[str, float | None]]
    checks: list[list[Check]]
    alpha_bounds: list[EigenBound | None]
    lead_bounds: list[EigenBound | None]
    matvecs: int
    matvecs_by_kind: dict[str, int]
    notes: list[str]
    warm: WarmStart
    #: Per fixed point, every eigenvalue the path computed (dense: all; Krylov: the Ritz values of the
    #: J_F run), complex on the CPU: the verdict asks whether another one is as far out as the lead.
    computed: list[torch.Tensor | None] | None = None


def near_modulus(values: torch.Tensor | None, mu: complex, eps: float, reach: float) -> tuple[complex, ...]:
    """The computed eigenvalues ``v`` (``Im >= 0``, ``mu`` itself left out) with ``| |1 + eps v| - rho | <=
    reach``, ``rho = |1 + eps mu|``: those that may lead instead of ``mu`` within the error bounds."""
    if values is None or values.numel() < 2 or not math.isfinite(reach):
        return ()
    values = values[torch.isfinite(values)].to(torch.complex128)
    values = values[values.imag >= 0]
    if values.numel() == 0:
        return ()
    itself = int((values - mu).abs().argmin())
    values = torch.cat([values[:itself], values[itself + 1 :]])
    rho = abs(1 + eps * mu)
    near = ((1 + eps * values).abs() - rho).abs() <= reach
    return tuple(complex(v) for v in values[near].tolist())


def leading(result: EigResult) -> tuple[list[complex], list[float], list[bool], list[float]]:
    """First eigenvalue, its residual, converged flag and the norm estimate, per problem."""
    values = result.values[..., 0]
    if not values.is_complex():
        values = values.to(torch.complex128 if values.dtype == torch.float64 else torch.complex64)
    return (
        [complex(v) for v in values.tolist()],
        result.residuals[..., 0].tolist(),
        result.converged[..., 0].tolist(),
        result.norm_estimate.tolist(),
    )
