"""The probe of the ``B`` fixed points of one operator: checks, spectra, verdicts, result records."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from spectral_probe.analysis.run import extend_results
from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.probe.bounds import EigenBound, rho_bound
from spectral_probe.probe.checks import matvec_checks, matvec_failures
from spectral_probe.probe.dense_path import dense_spectra
from spectral_probe.probe.krylov_path import krylov_spectra
from spectral_probe.probe.refine import fixed_point_residual, polish
from spectral_probe.probe.spectra import Spectra, near_modulus
from spectral_probe.probe.warm import WarmStart
from spectral_probe.results import Check, FixedPointResult
from spectral_probe.tolerances import Tolerances, tolerances
from spectral_probe.verdict import Lead, decide, lead_is_complex

NcForce = Callable[[torch.Tensor], torch.Tensor]


def choose_method(options: ProbeOptions, n: int) -> str:
    """``--method auto``: dense at ``n <= dense_max_n`` (the measured crossover), else Krylov."""
    if options.method != "auto":
        return options.method
    return "dense" if n <= options.dense_max_n else "krylov"


def probe_tolerances(options: ProbeOptions, dtype: torch.dtype) -> Tolerances:
    """The one :class:`Tolerances` object of a probe in ``dtype`` under ``options``."""
    name = str(dtype).removeprefix("torch.")
    return tolerances(name, options.tol, options.band, options.fixed_point_tol, options.matvec)


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
    limits = probe_tolerances(options, dtype)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    notes: list[str] = []

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype, device=device)

    residual_before: list[float] | None = None
    if options.refine:
        residual_before = fixed_point_residual(nc_force, fixed_points, c)
        fixed_points = polish(nc_force, fixed_points, c, eps, options, limits.tol)
    ops = JacobianOperators(
        nc_force, fixed_points, c=c, eps=eps, mode=options.matvec, path=label, krylov_jv=options.krylov_jv,
        check_finite=False,  # matvec_checks checks its own products
    )  # fmt: skip
    fp_residual = fixed_point_residual(nc_force, fixed_points, c)

    checks = matvec_checks(ops, options, random)
    notes += checks.notes
    method = choose_method(options, n)
    operator_error = None if checks.operator_error is None else checks.operator_error.tolist()
    if method == "dense":
        spectra = dense_spectra(ops, eps, limits, operator_error)
    else:
        spectra = krylov_spectra(ops, eps, limits, options, random, warm, notes, checks.known, operator_error)
    spectra.matvecs += checks.matvecs
    spectra.matvecs_by_kind["checks"] = checks.matvecs

    notes.extend(note for note in ops.notes if note not in notes)  # e.g. the loop where vmap cannot run
    shared = _Shared(label, n, c, eps, limits, method, (time.perf_counter() - started) / batch)
    results = []
    for b in range(batch):
        records = list(spectra.checks[b]) + matvec_failures(checks, b, fp_residual[b], limits, n)
        measured = {  # the JSON fields of the checks before the solves
            "fd_jvp_rel_err": None if checks.fd_err is None else float(checks.fd_err[b]),
            "adjoint_rel_err": None if checks.adj_err is None else float(checks.adj_err[b]),
            "fixed_point_residual": float(fp_residual[b]),
            "fixed_point_residual_before_refine": None if residual_before is None else float(residual_before[b]),
        }
        results.append(_assemble(shared, spectra, b, records, measured, tuple(notes + spectra.notes)))
    results = extend_results(results, ops, options, random, method=method, tol=limits.tol)  # issue 11 analyses
    return results, spectra.warm


@dataclass(frozen=True)
class _Shared:
    """What every fixed point of one probe shares."""

    label: str
    n: int
    c: float
    eps: float
    limits: Tolerances
    method: str
    seconds: float

    def fields(self) -> dict[str, Any]:
        """The JSON fields every fixed point of the probe has in common."""
        return {
            "checkpoint": self.label,
            "n": self.n,
            "c": self.c,
            "eps": self.eps,
            "method": self.method,
            "seconds": self.seconds,
        }


#: The kinds of check whose failure means a solver did not deliver (the JSON ``converged``).
SOLVER_KINDS = frozenset({"convergence", "residual"})


def _bound_fields(alpha: EigenBound | None, lead: EigenBound | None, eps: float, rho: float) -> dict:
    """The JSON fields of the two error bounds (``None`` where a solver did not converge)."""
    return {
        "alpha_bound": None if alpha is None else alpha.bound,
        "alpha_condition": None if alpha is None else alpha.condition,
        "mu_lead_bound": None if lead is None else lead.bound,
        "mu_lead_condition": None if lead is None else lead.condition,
        "rho_bound": None if lead is None else rho_bound(lead, eps, rho),
        "lead_digits": None if lead is None else lead.digits,
        "lead_defective": False if lead is None else lead.defective,
        "lead_cluster_size": None if lead is None else lead.cluster_size,
    }


def _assemble(
    shared: _Shared,
    spectra: Spectra,
    b: int,
    records: list[Check],
    measured: dict[str, float | None],
    notes: tuple[str, ...],
) -> FixedPointResult:
    eps = shared.eps
    omega = spectra.omega[b]
    mu_alpha = spectra.mu_alpha[b]
    alpha_bound, lead_bound = spectra.alpha_bounds[b], spectra.lead_bounds[b]
    x = math.inf if lead_bound is None else lead_bound.bound
    computed = None if spectra.computed is None else spectra.computed[b]
    # Both values' errors: the lead's bound, the other's unknown (a Ritz value) beyond its solver's tol.
    reach = eps * (2 * x + shared.limits.tol * max(1.0, abs(spectra.mu_lead[b])))
    rivals = near_modulus(computed, spectra.mu_lead[b], eps, reach)
    lead = Lead(spectra.mu_lead[b], eps, x, lead_bound is not None and lead_bound.defective, rivals)
    if not math.isfinite(mu_alpha.real) or not math.isfinite(mu_alpha.imag):
        records = [*records, Check("finite:alpha", "finite", None, None, False, "a computed eigenvalue is not finite")]
    omega_bound = spectra.residuals[b].get("omega") or 0.0
    verdict, reason, records_all = decide(lead, omega, shared.limits.band, records, omega_bound=omega_bound)
    described = [d.describe() for d in (lead_bound,) if d is not None and d.describe()]
    lead_value = lead.lead
    return FixedPointResult(
        index=b,
        omega=omega,
        alpha=mu_alpha.real,
        alpha_imag=abs(mu_alpha.imag),
        rho=lead.rho,
        lead_real=lead_value.real,
        lead_imag=abs(lead_value.imag),
        mu_lead_real=lead.mu.real,
        mu_lead_imag=abs(lead.mu.imag),
        gap=None if omega is None else max(0.0, omega - mu_alpha.real),  # >= 0 up to round-off (checked)
        omega_nc=None if omega is None else omega + (1 + shared.c),
        alpha_nc=mu_alpha.real + (1 + shared.c),
        converged=all(c.passed for c in records_all if c.kind in SOLVER_KINDS),
        matvecs=spectra.matvecs,
        verdict=verdict,
        reason=reason,
        lead_is_complex=lead_is_complex(lead.mu.imag, x, lead.defective) if lead.finite else None,
        rho_rr=spectra.rho_rr[b],
        rr_block_size=spectra.rr_block[b],
        rr2_misleading=spectra.rr2_misleading[b],
        norm_M_estimate=spectra.norm_M[b],
        residuals=spectra.residuals[b],
        matvecs_by_kind=dict(spectra.matvecs_by_kind),
        notes=notes + tuple(described),
        checks=records_all,
        **shared.fields(),
        **measured,
        **_bound_fields(alpha_bound, lead_bound, eps, lead.rho),
    )
