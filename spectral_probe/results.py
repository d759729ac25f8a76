"""Frozen result records shared by the probe, the audit and the formatters (no torch here)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

REPORT_VERSION = 1


@dataclass(frozen=True)
class Check:
    """One judgement of a result: ``value`` against ``bound``; ``passed`` decides, never the text.

    ``kind`` groups the checks (``convergence``, ``residual``, ``invariant``, ``agreement``, ``matvec``,
    ``fixed_point``, ``finite``, ``conditioning``); ``reason`` is the one line shown when it fails.
    A failed check makes the verdict ``inconclusive``, and the exit code 3 under a gate.
    """

    name: str
    kind: str
    value: float | None
    bound: float | None
    passed: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The check as JSON-ready plain values."""
        return {
            "name": self.name,
            "kind": self.kind,
            "value": json_safe(self.value),
            "bound": json_safe(self.bound),
            "passed": self.passed,
            "reason": self.reason,
        }


def check_from_dict(data: dict[str, Any]) -> Check:
    """Inverse of :meth:`Check.to_dict` (``audit --resume`` reads them back from the journal)."""
    return Check(
        name=str(data["name"]),
        kind=str(data["kind"]),
        value=data.get("value"),
        bound=data.get("bound"),
        passed=bool(data["passed"]),
        reason=str(data.get("reason", "")),
    )


def failed_reasons(checks: tuple[Check, ...] | list[Check]) -> list[str]:
    """The reasons of the failed checks, in order."""
    return [c.reason for c in checks if not c.passed]


@dataclass(frozen=True)
class FixedPointResult:
    """Everything measured at one fixed point z*; field names are the JSON keys of docs/SPEC.md section 6.

    ``None`` marks a quantity that was not computed (``omega`` under ``--matvec fd`` at large n, the
    adjoint check without a vjp); it is written as JSON ``null`` and a gate on it is a usage error.
    """

    checkpoint: str
    index: int
    n: int
    c: float
    eps: float
    omega: float | None
    alpha: float | None
    alpha_imag: float | None
    rho: float | None
    lead_real: float | None
    lead_imag: float | None
    mu_lead_real: float | None
    mu_lead_imag: float | None
    gap: float | None
    omega_nc: float | None
    alpha_nc: float | None
    fd_jvp_rel_err: float | None
    adjoint_rel_err: float | None
    fixed_point_residual: float
    converged: bool
    method: str
    matvecs: int
    seconds: float
    verdict: str
    reason: str | None = None
    lead_is_complex: bool | None = None
    rho_rr: float | None = None
    rr_block_size: int | None = None
    rr2_misleading: bool = False
    norm_M_estimate: float | None = None
    residuals: dict[str, float | None] = field(default_factory=dict)
    matvecs_by_kind: dict[str, int] = field(default_factory=dict)
    fixed_point_residual_before_refine: float | None = None
    notes: tuple[str, ...] = ()
    sha256: str | None = None
    step: int | None = None
    # Beyond the three numbers (spectral_probe.analysis; None where not computed). Margins:
    c_crit: float | None = None  # alpha_nc - 1: the damping c at which alpha reaches 0
    c_margin: float | None = None  # c - c_crit (= -alpha; > 0: the flow is stable)
    eps_max: float | None = None  # largest stable Euler step, min over Re mu < 0 of -2 Re mu / |mu|^2
    eps_margin: float | None = None  # eps_max - eps (> 0: the current step is stable)
    eps_max_mu_real: float | None = None  # the eigenvalue of J_F that sets eps_max
    eps_max_mu_imag: float | None = None
    eps_max_confirmed: bool | None = None  # rho < 1 at 0.99 eps_max and rho > 1 at 1.01 eps_max
    eps_max_rho_below: float | None = None
    eps_max_rho_above: float | None = None
    eps_max_basis: str | None = None  # which eigenvalues eps_max rests on
    eigenvalues_jf: list[list[float]] | None = None  # those eigenvalues, [re, im] each
    # transient growth (lower bounds):
    transient: bool | None = None  # rho < 1 < max_k ||M^k||_2
    max_power_norm: float | None = None  # lower bound on max_{k <= power_horizon} ||M^k||_2
    max_power_k: int | None = None
    power_horizon: int | None = None
    max_flow_norm: float | None = None  # lower bound on sup_{t <= flow_horizon} ||exp(t J_F)||_2
    max_flow_t: float | None = None
    flow_horizon: float | None = None
    # modes:
    lead_mode_units: list[int] | None = None  # units of largest weight |v_i|^2 in M's leading eigenvector
    lead_mode_weights: list[float] | None = None
    omega_mode_units: list[int] | None = None  # the same for the leading eigenvector of Sym(J_F)
    omega_mode_weights: list[float] | None = None
    modes_file: str | None = None
    # Every judgement behind the verdict (docs/SPEC.md section 2 cross-checks and the error-bound checks).
    checks: tuple[Check, ...] = ()
    # Error bounds, in the frame of J_F (docs/SPEC.md section 8.4; y, x the unit left and right eigenvectors):
    alpha_bound: float | None = None  # |alpha_true - alpha| <= alpha_bound
    alpha_condition: float | None = None  # 1 / |y^H x| of the rightmost eigenvalue
    mu_lead_bound: float | None = None  # |mu_true - mu_lead| <= mu_lead_bound
    mu_lead_condition: float | None = None  # 1 / |y^H x| of mu_lead
    rho_bound: float | None = None  # |rho_true - rho| <= rho_bound = eps mu_lead_bound + 4 u_64 max(1, rho)
    lead_digits: float | None = None  # decimal digits left, normwise
    lead_defective: bool = False  # (nearly) defective leading eigenvalue: a Jordan block, a cluster
    lead_cluster_size: int | None = None  # computed eigenvalues (Krylov: Ritz values) the bound cannot separate

    @property
    def trusted(self) -> bool:
        """Every check passed and the verdict is not ``inconclusive``."""
        return self.verdict != "inconclusive" and all(c.passed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready plain values."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["notes"] = list(self.notes)
        out["residuals"] = dict(self.residuals)
        out["matvecs_by_kind"] = dict(self.matvecs_by_kind)
        out["checks"] = [c.to_dict() for c in self.checks]
        return {key: json_safe(value) for key, value in out.items()}


@dataclass(frozen=True)
class CheckpointError:
    """A checkpoint that could not be probed (exit code 2 material)."""

    checkpoint: str
    error: str
    #: A bug of the tool met on this file (exit 4), not a bad file: an audit records it and goes on.
    internal: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready plain values."""
        return {"checkpoint": self.checkpoint, "error": self.error}


@dataclass(frozen=True)
class GateFinding:
    """One gate finding about one fixed point: ``violation`` (exit 1), ``untrusted`` (exit 3) or
    ``not_computed`` (a gate on a quantity that is ``None``: exit 2). JUnit reads these."""

    checkpoint: str
    index: int
    kind: str
    quantity: str | None
    message: str

    @property
    def where(self) -> str:
        """``checkpoint[index]``: the fixed point the finding is about."""
        return f"{self.checkpoint}[{self.index}]"


@dataclass(frozen=True)
class GateOutcome:
    """The gate and the exit code, both decided by :func:`spectral_probe.gate.evaluate`."""

    passed: bool
    violations: tuple[str, ...]
    untrusted: tuple[str, ...]
    gates: dict[str, float]
    exit_code: int
    findings: tuple[GateFinding, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready plain values."""
        return {
            "passed": self.passed,
            "violations": list(self.violations),
            "untrusted": list(self.untrusted),
            "gates": dict(self.gates),
            "exit_code": self.exit_code,
        }


@dataclass(frozen=True)
class Report:
    """A whole run: what every formatter receives and none may change."""

    results: tuple[FixedPointResult, ...]
    errors: tuple[CheckpointError, ...]
    gate: GateOutcome
    reproducibility: dict[str, Any]
    command: str = "scan"
    trajectory: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready plain values."""
        out: dict[str, Any] = {
            "version": REPORT_VERSION,
            "results": [r.to_dict() for r in self.results],
            "errors": [e.to_dict() for e in self.errors],
            "gate": self.gate.to_dict(),
            "reproducibility": self.reproducibility,
        }
        if self.trajectory is not None:
            out["trajectory"] = self.trajectory
        return out

    def to_json(self, indent: int | None = 2) -> str:
        """The JSON document of ``--json`` (NaN and infinities written as null)."""
        import json

        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity, at any depth, replaced by ``None``: they are not JSON, so
    they are written as null (the verdict already says inconclusive)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def result_from_dict(data: dict[str, Any]) -> FixedPointResult:
    """Inverse of :meth:`FixedPointResult.to_dict` (used by ``audit --resume``)."""
    names = {f.name for f in dataclasses.fields(FixedPointResult)}
    kwargs = {k: v for k, v in data.items() if k in names}
    kwargs["notes"] = tuple(kwargs.get("notes", ()))
    kwargs["checks"] = tuple(check_from_dict(c) for c in kwargs.get("checks", ()))
    for key in ("omega", "alpha", "rho"):
        kwargs.setdefault(key, None)
    return FixedPointResult(**kwargs)
