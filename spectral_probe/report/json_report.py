"""The JSON report of docs/SPEC.md section 6."""

from __future__ import annotations

import json

from spectral_probe.results import Report, json_safe

__all__ = ["format", "json_safe"]


def format(report: Report) -> str:  # noqa: A001 - the formatter interface is format(report)
    """The report as JSON; a non-finite number anywhere in it is written as ``null`` (docs/SPEC.md section 6).

    ``allow_nan=False`` stays as the proof: a NaN that slipped through would be a bug (exit 4), never
    an exit code that depends on whether ``--json`` was given.
    """
    return json.dumps(json_safe(report.to_dict()), indent=2, allow_nan=False) + "\n"
