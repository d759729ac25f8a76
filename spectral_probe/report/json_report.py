"""The JSON report of SPEC section 6."""

from __future__ import annotations

import json

from spectral_probe.results import Report


def format(report: Report) -> str:  # noqa: A001 - the formatter interface is format(report)
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
