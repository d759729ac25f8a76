"""The exit codes of docs/SPEC.md section 7 (no torch here)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; when several apply, the first in the order 4, 2, 3, 1 wins."""

    OK = 0  # everything probed; no gate set, or every gate held
    GATE_VIOLATED = 1  # --max-rho / --max-alpha / --max-omega crossed
    BAD_INPUT = 2  # bad usage or bad input (a file, a tensor, an operator, a gate on an uncomputed value)
    UNTRUSTED = 3  # a gate was set but a result is inconclusive: a gate never passes on untrusted numbers
    INTERNAL_ERROR = 4  # a bug in spectral-probe


PRECEDENCE = (ExitCode.INTERNAL_ERROR, ExitCode.BAD_INPUT, ExitCode.UNTRUSTED, ExitCode.GATE_VIOLATED)


def combine(codes: list[ExitCode] | set[ExitCode]) -> ExitCode:
    """The exit code when several conditions hold at once (docs/SPEC.md section 7: 4, then 2, then 3, then 1)."""
    for code in PRECEDENCE:
        if code in codes:
            return code
    return ExitCode.OK
