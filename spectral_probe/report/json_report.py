"""The JSON report of docs/SPEC.md section 6."""

from __future__ import annotations

import json
import math
from typing import Any

from spectral_probe.results import Report


def format(report: Report) -> str:  # noqa: A001 - the formatter interface is format(report)
    """The report as JSON; a non-finite number anywhere in it is written as ``null`` (docs/SPEC.md section 6).

    ``allow_nan=False`` stays as the proof: a NaN that slipped through would be a bug (exit 4), never
    an exit code that depends on whether ``--json`` was given.
    """
    return json.dumps(json_safe(report.to_dict()), indent=2, allow_nan=False) + "\n"


def json_safe(value: Any) -> Any:
    """``value`` with every NaN or infinity, at any depth, replaced by ``None``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value
