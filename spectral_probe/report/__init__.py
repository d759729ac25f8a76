"""Output formats: each module exposes ``format(report) -> str``; ``FORMATTERS`` maps the names.

The terminal table (:mod:`spectral_probe.report.table`) renders with rich instead of returning a string.
No formatter decides anything: the verdicts and the exit code are already in the :class:`Report`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from spectral_probe.report import json_report, junit, markdown
from spectral_probe.results import Report


class OutputFormat(str, Enum):
    JSON = "json"
    MARKDOWN = "markdown"
    JUNIT = "junit"


FORMATTERS: dict[OutputFormat, Callable[[Report], str]] = {
    OutputFormat.JSON: json_report.format,
    OutputFormat.MARKDOWN: markdown.format,
    OutputFormat.JUNIT: junit.format,
}
