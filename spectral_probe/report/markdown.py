"""A Markdown summary fit for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import re
from collections import Counter

from spectral_probe.report.numbers import fmt, fmt_complex
from spectral_probe.results import Report


def _cell(text: str) -> str:
    """``text`` fit for one table cell: on one line, its ``|`` escaped (GFM splits cells on a bare ``|``,
    even inside a code span)."""
    return " ".join(str(text).splitlines()).replace("|", "\\|")


def _code(text: str) -> str:
    """``text`` as a code span in a table cell, fenced by more backticks than it holds in a row."""
    text = _cell(text)
    fence = "`" * (1 + max((len(run) for run in re.findall("`+", text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def format(report: Report) -> str:  # noqa: A001
    """The report as Markdown: the gate status and one table row per fixed point."""
    gate = report.gate
    if report.errors and not gate.gates:
        status = "input errors"
    elif gate.gates:
        status = "gate passed" if gate.passed else "gate failed"
    else:
        status = "no gate set"
    lines = [f"## spectral-probe {report.command}: {status}", ""]
    lines += [
        "| checkpoint | # | n | omega | alpha | rho | gap | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in report.results:
        lines.append(
            f"| {_code(r.checkpoint)} | {r.index} | {r.n} | {fmt(r.omega)} | {fmt_complex(r.alpha, r.alpha_imag)} "
            f"| {fmt(r.rho)} | {fmt(r.gap, 3)} | **{r.verdict}** |"
        )
    for e in report.errors:
        lines.append(f"| {_code(e.checkpoint)} | - | - | - | - | - | - | **error**: {_cell(e.error)} |")
    counts = Counter(r.verdict for r in report.results)
    if report.errors:
        counts["error"] = len(report.errors)
    lines += ["", "Verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))]
    if gate.gates:
        lines.append("Gates: " + ", ".join(f"max-{k} {v:g}" for k, v in gate.gates.items()))
    for v in gate.violations:
        lines.append(f"- violation: {v}")
    for u in gate.untrusted:
        lines.append(f"- untrusted: {u}")
    if report.trajectory and report.trajectory.get("bifurcation"):
        lines.append(f"- bifurcation along training: {report.trajectory['bifurcation']['summary']}")
    return "\n".join(lines) + "\n"
