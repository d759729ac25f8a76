"""The dense path: ``J_F`` materialized by ``n`` matvecs, its spectra by LAPACK (small n only), and the
error bound of each reported eigenvalue from LAPACK's right and left eigenvectors."""

from __future__ import annotations

import torch

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.conditioning import eigen_conditions
from spectral_probe.linalg.dense import dense_spectrum
from spectral_probe.linalg.fdcheck import central_difference_jvp
from spectral_probe.probe.bounds import dense_bound
from spectral_probe.probe.checks import invariant_checks, judge
from spectral_probe.probe.spectra import Spectra
from spectral_probe.probe.warm import WarmStart
from spectral_probe.results import Check
from spectral_probe.tolerances import Tolerances


def _residual_checks(residuals: dict[str, float], threshold: float) -> list[Check]:
    """Each eigenpair's TRUE residual within ``threshold`` (normwise, docs/SPEC.md section 2)."""
    return [
        judge(
            f"residual:{name}",
            "residual",
            value,
            threshold,
            "dense eigenpair residual too large for {quantity} ({value:.1e} > {bound:.1e})",
            quantity=name,
        )
        for name, value in residuals.items()
    ]


def _fd_matrix_error(ops: JacobianOperators, narrow: torch.Tensor) -> list[float]:
    """``||J_2h - J_h||_2`` per fixed point, ``J_h`` the central-difference Jacobian ``narrow`` [B, n, n]: three
    times its truncation error and about its round-off (:func:`~spectral_probe.linalg.fdcheck.step_doubling_error`)."""
    batch, n = ops.z_star.shape
    basis = torch.eye(n, dtype=ops.dtype, device=ops.device).expand(batch, n, n)
    wide = central_difference_jvp(ops.force, ops.z_star.unsqueeze(1), basis, widen=2.0).transpose(1, 2)
    return torch.linalg.matrix_norm(wide - narrow, ord=2).tolist()


def dense_spectra(
    ops: JacobianOperators, eps: float, tolerances: Tolerances, operator_error: list[float] | None = None
) -> Spectra:
    """Exact omega, alpha and rho of a dense ``J_F``, with their residual, invariant and bound records;
    ``operator_error``: per fixed point, how far ``J_F`` itself is off (``--matvec fd``), a residual of the
    true ``J_F`` that the bounds add."""
    batch, n = ops.z_star.shape
    eye = torch.eye(n, dtype=ops.z_star.dtype, device=ops.z_star.device)
    jacobian = ops.dense_jacobian()
    jf = jacobian - (1 + ops.c) * eye
    conditions = eigen_conditions(jf)
    spectrum = dense_spectrum(jf, eps, eigen=(conditions.values, conditions.vectors))  # one eig for both
    mu_alpha = spectrum.mu_alpha.tolist()
    mu_lead = spectrum.mu_lead.tolist()
    omega = spectrum.omega.tolist()
    norm_M = spectrum.norm_M.tolist()
    norm_J = spectrum.norm_J.tolist()
    error = operator_error or [0.0] * batch
    if ops.mode == "fd":  # the FD Jacobian's own error, as a matrix: its columns' differences at 2 h
        error = [max(e, m) for e, m in zip(error, _fd_matrix_error(ops, jacobian), strict=True)]
    checks: list[list[Check]] = []
    residuals = []
    for b in range(batch):
        scale = max(1.0, norm_J[b])
        residual_b = {name: float(value[b]) for name, value in spectrum.residuals.items()}
        residuals.append(residual_b)
        records = _residual_checks(residual_b, tolerances.dense_residual * scale * max(1, eps))
        records += invariant_checks(omega[b], mu_alpha[b], mu_lead[b], norm_M[b], eps, tolerances.agreement * scale)
        checks.append(records)
    return Spectra(
        omega=omega,
        mu_alpha=mu_alpha,
        mu_lead=mu_lead,
        rho_rr=[None] * batch,
        rr_block=[None] * batch,
        rr2_misleading=[False] * batch,
        norm_M=norm_M,
        residuals=residuals,
        checks=checks,
        alpha_bounds=[dense_bound(conditions, b, mu_alpha[b], norm_J[b], tolerances, error[b]) for b in range(batch)],
        lead_bounds=[dense_bound(conditions, b, mu_lead[b], norm_J[b], tolerances, error[b]) for b in range(batch)],
        matvecs=n * (2 if ops.mode == "fd" else 1),  # fd: the columns again at 2 h
        matvecs_by_kind={"vjp" if ops.has_vjp and ops.vectorized else "jvp": n * (2 if ops.mode == "fd" else 1)},
        notes=[],
        warm=WarmStart(),
        computed=[conditions.values[b].detach().cpu() for b in range(batch)],
    )
