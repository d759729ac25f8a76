"""What became of one checkpoint of an audit, and the shape of the probe function that made it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from spectral_probe.config import ProbeOptions
from spectral_probe.results import CheckpointError, FixedPointResult


class ProbeFn(Protocol):
    """The signature of :func:`spectral_probe.probe.probe_checkpoint` (injectable for tests)."""

    def __call__(self, path: str, options: ProbeOptions, *, warm: Any = None, use_warm: bool = True) -> Any:
        """Return an object with ``sha256``, ``results``, ``warm``; raise SpectralProbeError on bad input."""
        ...


@dataclass(frozen=True)
class Outcome:
    """What became of one checkpoint: results or an error, and the warm start for the next one."""

    path: str
    sha256: str | None
    results: tuple[FixedPointResult, ...] = ()
    error: CheckpointError | None = None
    warm: Any = None
    #: The error is the run's, not the file's (its worker died: killed, out of memory): ``--resume``
    #: probes the checkpoint again instead of reusing the error row.
    retry: bool = False
