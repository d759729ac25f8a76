"""A Markdown summary fit for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

from collections import Counter

from spectral_probe.report.numbers import fmt, fmt_complex
from spectral_probe.results import Report


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
            f"| `{r.checkpoint}` | {r.index} | {r.n} | {fmt(r.omega)} | {fmt_complex(r.alpha, r.alpha_imag)} "
            f"| {fmt(r.rho)} | {fmt(r.gap, 3)} | **{r.verdict}** |"
        )
    for e in report.errors:
        lines.append(f"| `{e.checkpoint}` | - | - | - | - | - | - | **error**: {e.error} |")
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
