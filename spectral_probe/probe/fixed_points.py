"""The probe of the ``B`` fixed points of one operator: checks, spectra, verdicts, result records."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.analysis.run import extend_results
from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.result import default_tol
from spectral_probe.probe.checks import matvec_checks, matvec_failures
from spectral_probe.probe.dense_path import dense_spectra
from spectral_probe.probe.krylov_path import krylov_spectra
from spectral_probe.probe.refine import fixed_point_residual, newton_krylov
from spectral_probe.probe.spectra import Spectra
from spectral_probe.probe.warm import WarmStart
from spectral_probe.results import FixedPointResult
from spectral_probe.verdict import classify, lead_is_complex

NcForce = Callable[[torch.Tensor], torch.Tensor]


def choose_method(options: ProbeOptions, n: int) -> str:
    """``--method auto``: dense at ``n <= dense_max_n`` (the measured crossover), else Krylov."""
    if options.method != "auto":
        return options.method
    return "dense" if n <= options.dense_max_n else "krylov"


def probe_fixed_points(
    nc_force: NcForce,
    fixed_points: torch.Tensor,
    *,
    c: float,
    eps: float,
    options: ProbeOptions,
    label: str = "<memory>",
    warm: WarmStart | None = None,
) -> tuple[list[FixedPointResult], WarmStart]:
    """Probe the ``B`` fixed points ``fixed_points[b]`` (shape ``[B, n]``) of one operator together.

    Returns one result per fixed point and the start vectors for the next checkpoint of a run.
    """
    started = time.perf_counter()
    batch, n = fixed_points.shape
    dtype, device = fixed_points.dtype, fixed_points.device
    tol = options.tol if options.tol is not None else default_tol(dtype)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    notes: list[str] = []

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype, device=device)

    residual_before: list[float] | None = None
    if options.refine:
        residual_before = fixed_point_residual(nc_force, fixed_points, c)
        fixed_points = newton_krylov(nc_force, fixed_points, c, eps, options, tol)
    ops = JacobianOperators(nc_force, fixed_points, c=c, eps=eps, mode=options.matvec, path=label)
    fp_residual = fixed_point_residual(nc_force, fixed_points, c)

    checks = matvec_checks(ops, options, random)
    notes += checks.notes
    method = choose_method(options, n)
    if method == "dense":
        spectra = dense_spectra(ops, eps, tol)
    else:
        spectra = krylov_spectra(ops, eps, tol, options, random, warm, notes)
    spectra.matvecs += checks.matvecs
    spectra.matvecs_by_kind["checks"] = checks.matvecs

    notes.extend(note for note in ops.notes if note not in notes)  # e.g. the loop where vmap cannot run
    shared = _Shared(label, n, c, eps, options.band, math.sqrt(tol), method, (time.perf_counter() - started) / batch)
    results = []
    for b in range(batch):
        reasons = list(spectra.reasons[b]) + matvec_failures(checks, b, fp_residual[b], options, dtype)
        measured = _Measured(
            fd_err=None if checks.fd_err is None else float(checks.fd_err[b]),
            adj_err=None if checks.adj_err is None else float(checks.adj_err[b]),
            fp_residual=float(fp_residual[b]),
            fp_before=None if residual_before is None else float(residual_before[b]),
        )
        results.append(_assemble(shared, spectra, b, reasons, measured, tuple(notes + spectra.notes)))
    results = extend_results(results, ops, options, random, method=method, tol=tol)  # issue 11 analyses
    return results, spectra.warm


@dataclass(frozen=True)
class _Shared:
    """What every fixed point of one probe shares."""

    label: str
    n: int
    c: float
    eps: float
    band: float
    complex_tol: float
    method: str
    seconds: float


@dataclass(frozen=True)
class _Measured:
    """The per-fixed-point numbers of the checks before the solves."""

    fd_err: float | None
    adj_err: float | None
    fp_residual: float
    fp_before: float | None


def _assemble(
    shared: _Shared, spectra: Spectra, b: int, reasons: list[str], measured: _Measured, notes: tuple[str, ...]
) -> FixedPointResult:
    eps = shared.eps
    omega = spectra.omega[b]
    mu_alpha = spectra.mu_alpha[b]
    mu_lead = spectra.mu_lead[b]
    lead = 1 + eps * mu_lead
    rho = abs(lead)
    finite = all(math.isfinite(x) for x in (mu_alpha.real, mu_alpha.imag, lead.real, lead.imag))
    if not finite:
        reasons = [*reasons, "a computed eigenvalue is not finite"]
    verdict, reason = classify(
        rho=rho,
        lead_real=lead.real,
        lead_imag=lead.imag,
        mu_lead_real=mu_lead.real,
        omega=omega,
        band=shared.band,
        complex_tol=shared.complex_tol,
        reasons=reasons,
    )
    return FixedPointResult(
        checkpoint=shared.label,
        index=b,
        n=shared.n,
        c=shared.c,
        eps=eps,
        omega=omega,
        alpha=mu_alpha.real,
        alpha_imag=abs(mu_alpha.imag),
        rho=rho,
        lead_real=lead.real,
        lead_imag=abs(lead.imag),
        mu_lead_real=mu_lead.real,
        mu_lead_imag=abs(mu_lead.imag),
        gap=None if omega is None else max(0.0, omega - mu_alpha.real),  # >= 0 up to round-off (checked)
        omega_nc=None if omega is None else omega + (1 + shared.c),
        alpha_nc=mu_alpha.real + (1 + shared.c),
        fd_jvp_rel_err=measured.fd_err,
        adjoint_rel_err=measured.adj_err,
        fixed_point_residual=measured.fp_residual,
        converged=spectra.converged[b],
        method=shared.method,
        matvecs=spectra.matvecs,
        seconds=shared.seconds,
        verdict=verdict,
        reason=reason,
        lead_is_complex=lead_is_complex(lead.real, lead.imag, shared.complex_tol) if finite else None,
        rho_rr=spectra.rho_rr[b],
        rr_block_size=spectra.rr_block[b],
        rr2_misleading=spectra.rr2_misleading[b],
        norm_M_estimate=spectra.norm_M[b],
        residuals=spectra.residuals[b],
        matvecs_by_kind=dict(spectra.matvecs_by_kind),
        fixed_point_residual_before_refine=measured.fp_before,
        notes=notes,
    )
