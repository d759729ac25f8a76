"""What either path (dense or Krylov) hands to the result records: per-fixed-point spectral quantities."""

from __future__ import annotations

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
