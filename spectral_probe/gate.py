"""The gate and the exit code: one function, whatever the output options (docs/SPEC.md sections 2 and 7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spectral_probe.exitcodes import ExitCode, combine
from spectral_probe.results import CheckpointError, FixedPointResult, GateFinding, GateOutcome, failed_reasons


def error_bound(result: FixedPointResult, quantity: str) -> float:
    """What ``quantity`` is known to: ``rho_bound``, ``alpha_bound``, omega's Lanczos residual (omega is
    an eigenvalue of a symmetric matrix: its error is at most its residual); 0 where none was computed."""
    bounds = {"rho": result.rho_bound, "alpha": result.alpha_bound, "omega": result.residuals.get("omega")}
    bound = bounds.get(quantity)
    return 0.0 if bound is None else float(bound)


def _judge(result: FixedPointResult, quantity: str, limit: float) -> GateFinding | None:
    """The finding of the gate ``max_quantity = limit`` on one result, or ``None`` where it holds."""
    value = getattr(result, quantity)
    if value is None:
        message = f"{quantity} was not computed, it cannot be gated"
        return GateFinding(result.checkpoint, result.index, "not_computed", quantity, message)
    bound = error_bound(result, quantity)
    if bound > 0 and abs(value - limit) <= bound:
        message = (
            f"{quantity} = {value:.6g} is known only to ±{bound:.2g}: the gate max-{quantity} {limit:g} lies inside"
        )
        return GateFinding(result.checkpoint, result.index, "untrusted", quantity, message)
    if value > limit:
        message = f"{quantity} = {value:.6g} > max-{quantity} {limit:g}"
        return GateFinding(result.checkpoint, result.index, "violation", quantity, message)
    return None


def evaluate(
    results: Sequence[FixedPointResult],
    errors: Sequence[CheckpointError],
    gates: Mapping[str, float],
) -> GateOutcome:
    """Decide the gate and the exit code.

    A gate ``max_q`` is violated by a result whose ``q`` is strictly above it. Under any gate a result
    that is not trusted (a failed check record, or the verdict ``inconclusive``) is untrusted (exit 3),
    and so is a value whose error bound holds the gate's limit: a gate never passes, and never fails,
    on a number it could not trust. A gate on a quantity that a result did not compute (``None``) is
    bad usage (exit 2). Without gates the exit code is 0, or 2 when an input could not be read.
    """
    findings: list[GateFinding] = []
    for result in results:
        if gates and not result.trusted:
            reason = "; ".join(failed_reasons(result.checks)) or result.reason
            message = f"inconclusive ({reason})"
            findings.append(GateFinding(result.checkpoint, result.index, "untrusted", None, message))
            continue
        findings += [f for q, limit in gates.items() if (f := _judge(result, q, limit)) is not None]
    codes = {
        {"violation": ExitCode.GATE_VIOLATED, "untrusted": ExitCode.UNTRUSTED}.get(f.kind, ExitCode.BAD_INPUT)
        for f in findings
    }
    if errors:
        codes.add(ExitCode.INTERNAL_ERROR if any(e.internal for e in errors) else ExitCode.BAD_INPUT)
    violations = tuple(f"{f.where}: {f.message}" for f in findings if f.kind == "violation")
    untrusted = tuple(f"{f.where}: {f.message}" for f in findings if f.kind != "violation")
    return GateOutcome(
        passed=not violations and not untrusted and not errors,
        violations=violations,
        untrusted=untrusted,
        gates=dict(gates),
        exit_code=int(combine(codes)),
        findings=tuple(findings),
    )
