"""File names and messages that the report formats must carry verbatim: JUnit stays XML, Markdown stays a table."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from spectral_probe.gate import evaluate
from spectral_probe.report import junit, markdown
from spectral_probe.results import CheckpointError, Report

NAMES = ("run|1/a`b.safetensors", "run/e\x1bsc\x01.safetensors", "run/``x|y``.pt", "run/\udcff.pt")


def _report() -> Report:
    errors = tuple(CheckpointError(name, f"{name}: \x1b[31mbad\x1b[0m | value\nsecond line") for name in NAMES)
    return Report(results=(), errors=errors, gate=evaluate((), errors, {"rho": 1.0}), reproducibility={})


def test_junit_is_well_formed_whatever_the_names_and_messages_hold() -> None:
    suite = ET.fromstring(junit.format(_report()))  # ESC, \x01, a lone surrogate: not XML unless escaped
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "run|1/a`b.safetensors",
        "run/e\\x1bsc\\x01.safetensors",
        "run/``x|y``.pt",
        "run/\\udcff.pt",
    ]
    assert all("\\x1b[31mbad" in c.find("error").get("message") for c in cases)


def _cells(row: str) -> list[str]:
    """The cells of a GFM table row: split on each ``|`` that is not escaped."""
    cells, current, escaped = [], "", False
    for char in row.strip()[1:-1]:
        if char == "|" and not escaped:
            cells.append(current)
            current = ""
        else:
            current += char
        escaped = char == "\\" and not escaped
    return [*cells, current]


def test_markdown_table_rows_keep_their_columns() -> None:
    lines = markdown.format(_report()).splitlines()
    header = next(line for line in lines if line.startswith("| checkpoint"))
    rows = [line for line in lines if line.startswith("| ") and line != header]
    assert len(rows) == len(NAMES)  # the message's newline does not end a row
    for row in rows:
        cells = _cells(row)
        assert len(cells) == len(_cells(header)), row
        code = cells[0].strip()
        fence = code[: len(code) - len(code.lstrip("`"))]
        assert code.endswith(fence) and "`" * (len(fence)) not in code[len(fence) : -len(fence)], row
