"""``audit``: probe every checkpoint below a folder and assemble one Report (see :mod:`.run`)."""

from __future__ import annotations

from spectral_probe.audit.discovery import DEFAULT_PATTERNS, find_checkpoints, natural_key
from spectral_probe.audit.journal import options_fingerprint
from spectral_probe.audit.outcome import Outcome, ProbeFn
from spectral_probe.audit.run import run_audit
from spectral_probe.audit.trajectory import build_trajectory
from spectral_probe.report.sparkline import sparkline

# The name the tests and older callers use for an outcome.
_Outcome = Outcome

__all__ = [
    "DEFAULT_PATTERNS",
    "Outcome",
    "ProbeFn",
    "build_trajectory",
    "find_checkpoints",
    "natural_key",
    "options_fingerprint",
    "run_audit",
    "sparkline",
]
