"""The rich terminal table: one row per fixed point, the verdict in colour, a footer for the columns."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table
from rich.text import Text

from spectral_probe.report import beyond
from spectral_probe.report.numbers import fmt, fmt_complex
from spectral_probe.report.styles import VERDICT_STYLES
from spectral_probe.report.trajectory import render_trajectory
from spectral_probe.results import Report, failed_reasons

FOOTER = (
    "omega: lambda_max of Sym(J_F) (transient growth; not a stability verdict).  "
    "alpha: rightmost eigenvalue of J_F (continuous stability iff < 0).  "
    "rho: max |lambda(M)|, M = I + eps J_F (Arnoldi; rr = block Rayleigh-Ritz).  "
    "gap: omega - alpha (non-normality).  fd: autograd J v vs central differences.  "
    "± X: the error bound, shown where fewer than 8 digits are left."
)

#: The bound is shown where it leaves fewer digits than this (relative to max(1, |value|)).
SHOWN_DIGITS = 8


def _with_bound(text: str, value: float | None, bound: float | None) -> str:
    """``text`` and, where the error bound matters, ``± bound`` under it."""
    if value is None or bound is None or bound <= 10.0**-SHOWN_DIGITS * max(1.0, abs(value)):
        return text
    return f"{text}\n± {fmt(bound, 2)}"


def render(report: Report, console: Console) -> None:
    """Print the report as a rich table on ``console``."""
    extra = beyond.shown(report.results)
    caption = FOOTER + (beyond.FOOTER if extra else "")
    table = Table(title=f"spectral-probe {report.command}", caption=caption, caption_justify="left")
    table.add_column("checkpoint", overflow="fold")
    table.add_column("#", justify="right")
    table.add_column("n", justify="right")
    table.add_column("omega", justify="right")
    table.add_column("alpha", justify="right")
    table.add_column("rho (rr)", justify="right")
    table.add_column("gap", justify="right")
    table.add_column("fd err", justify="right")
    if extra:
        table.add_column(beyond.HEADER)
    table.add_column("verdict")
    for r in report.results:
        rho = fmt(r.rho, 8) + (f" ({fmt(r.rho_rr, 8)})" if r.rho_rr is not None else "")
        rho = _with_bound(rho, r.rho, r.rho_bound)
        # Paths and reasons are data, never markup: a file named `run[/]x` prints as it is named.
        verdict = Text(r.verdict, style=VERDICT_STYLES.get(r.verdict, ""))
        reason = "; ".join(failed_reasons(r.checks)) or r.reason
        if reason:
            verdict.append("\n" + reason, style="dim")
        table.add_row(
            Text(r.checkpoint),
            str(r.index),
            str(r.n),
            fmt(r.omega),
            _with_bound(fmt_complex(r.alpha, r.alpha_imag), r.alpha, r.alpha_bound),
            rho,
            fmt(r.gap, 3),
            fmt(r.fd_jvp_rel_err, 2),
            *([beyond.cell(r)] if extra else []),
            verdict,
        )
    for e in report.errors:
        message = Text.assemble(("error", "bold red"), "\n" + e.error)
        table.add_row(Text(e.checkpoint), *["-"] * (8 if extra else 7), message)
    console.print(table)
    if report.trajectory:
        render_trajectory(report, console)
    counts = Counter(r.verdict for r in report.results)
    summary = ", ".join(f"[{VERDICT_STYLES.get(k, '')}]{k}[/] {v}" for k, v in sorted(counts.items()))
    if report.errors:
        summary += f", [bold red]error[/] {len(report.errors)}"
    console.print(f"verdicts: {summary}")
    gate = report.gate
    if gate.gates:
        state = "[green]passed[/]" if gate.passed else "[bold red]failed[/]"
        console.print(f"gate ({', '.join(f'max-{k} {v:g}' for k, v in gate.gates.items())}): {state}")
    for line in gate.violations:
        console.print(Text.assemble(("  violation ", "red"), line))
    for line in gate.untrusted:
        console.print(Text.assemble(("  untrusted ", "magenta"), line))
