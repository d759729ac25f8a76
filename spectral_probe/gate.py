"""The gate and the exit code: one function, whatever the output options (docs/SPEC.md sections 2 and 7)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from spectral_probe.exitcodes import ExitCode, combine
from spectral_probe.results import CheckpointError, FixedPointResult, GateOutcome
from spectral_probe.verdict import INCONCLUSIVE


def evaluate(
    results: Sequence[FixedPointResult],
    errors: Sequence[CheckpointError],
    gates: Mapping[str, float],
) -> GateOutcome:
    """Decide the gate and the exit code.

    A gate ``max_q`` is violated by a result whose ``q`` is strictly above it. Under any gate an
    ``inconclusive`` result is untrusted (exit 3): a gate never passes on a number it could not trust.
    A gate on a quantity that a result did not compute (``None``) is bad usage (exit 2).
    Without gates the exit code is 0, or 2 when an input could not be read.
    """
    codes: set[ExitCode] = set()
    violations: list[str] = []
    untrusted: list[str] = []
    if errors:
        codes.add(ExitCode.BAD_INPUT)
    for result in results:
        where = f"{result.checkpoint}[{result.index}]"
        if gates and result.verdict == INCONCLUSIVE:
            untrusted.append(f"{where}: inconclusive ({result.reason})")
            codes.add(ExitCode.UNTRUSTED)
            continue
        for quantity, limit in gates.items():
            value = getattr(result, quantity)
            if value is None:
                untrusted.append(f"{where}: {quantity} was not computed, it cannot be gated")
                codes.add(ExitCode.BAD_INPUT)
            elif value > limit:
                violations.append(f"{where}: {quantity} = {value:.6g} > max-{quantity} {limit:g}")
                codes.add(ExitCode.GATE_VIOLATED)
    exit_code = combine(codes)
    passed = not violations and not untrusted and not errors
    return GateOutcome(
        passed=passed,
        violations=tuple(violations),
        untrusted=tuple(untrusted),
        gates=dict(gates),
        exit_code=int(exit_code),
    )
