"""The dense path: ``J_F`` materialized by ``n`` matvecs, its spectra by LAPACK (small n only)."""

from __future__ import annotations

import math

import torch

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.dense import dense_spectrum
from spectral_probe.probe.checks import invariant_failures
from spectral_probe.probe.spectra import Spectra
from spectral_probe.probe.warm import WarmStart


def dense_spectra(ops: JacobianOperators, eps: float, tol: float) -> Spectra:
    """Exact omega, alpha and rho of a dense ``J_F``, with their residual and invariant checks."""
    batch, n = ops.z_star.shape
    eye = torch.eye(n, dtype=ops.z_star.dtype, device=ops.z_star.device)
    jf = ops.dense_jacobian() - (1 + ops.c) * eye
    spectrum = dense_spectrum(jf, eps)
    reasons: list[list[str]] = [[] for _ in range(batch)]
    residuals = []
    for b in range(batch):
        scale = max(1.0, float(spectrum.norm_J[b]))
        residual_b = {name: float(value[b]) for name, value in spectrum.residuals.items()}
        residuals.append(residual_b)
        bad = [name for name, value in residual_b.items() if not value <= 100 * tol * scale * max(1, eps)]
        if bad:
            reasons[b].append(f"dense eigenpair residual too large for {', '.join(bad)}")
    mu_alpha = spectrum.mu_alpha.tolist()
    mu_lead = spectrum.mu_lead.tolist()
    omega = spectrum.omega.tolist()
    norm_M = spectrum.norm_M.tolist()
    for b in range(batch):
        reasons[b] += invariant_failures(
            omega[b], mu_alpha[b], mu_lead[b], norm_M[b], eps, math.sqrt(tol) * max(1.0, float(spectrum.norm_J[b]))
        )
    return Spectra(
        omega=omega,
        mu_alpha=mu_alpha,
        mu_lead=mu_lead,
        rho_rr=[None] * batch,
        rr_block=[None] * batch,
        rr2_misleading=[False] * batch,
        norm_M=norm_M,
        residuals=residuals,
        converged=[not r for r in reasons],
        reasons=reasons,
        matvecs=n,
        matvecs_by_kind={"jvp": n},
        notes=[],
        warm=WarmStart(),
    )
