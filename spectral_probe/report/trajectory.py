"""The training-trajectory view of ``audit`` in the terminal: sparklines and the first bifurcation.

It renders ``Report.trajectory`` as :func:`spectral_probe.audit.trajectory.build_trajectory` made it; it decides
nothing. The rho sparkline is coloured per checkpoint by verdict where it fits the terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from spectral_probe.report.numbers import fmt
from spectral_probe.report.sparkline import sparkline
from spectral_probe.report.styles import VERDICT_STYLES
from spectral_probe.results import Report

# Room left of and right of a sparkline (quantity name, min -> max).
_MARGIN = 40


def render_trajectory(report: Report, console: Console) -> None:
    """Print the trajectory block under the audit table (nothing when there is no trajectory)."""
    trajectory = report.trajectory
    if not trajectory:
        return
    series: list[dict[str, Any]] = trajectory["series"]
    axis = trajectory.get("x", "index")
    first, last = series[0], series[-1]
    span = f"{axis} {first.get(axis)} -> {last.get(axis)}" if axis == "step" else f"{first['label']} -> {last['label']}"
    console.print(Text(f"trajectory over {len(series)} checkpoints ({span})", style="bold"))
    width = max(8, min(len(series), console.width - _MARGIN))
    grid = Table.grid(padding=(0, 2))
    grid.add_column()
    grid.add_column()
    grid.add_column(justify="right")
    for quantity in ("rho", "alpha", "omega"):
        values = [point.get(quantity) for point in series]
        line = Text(sparkline(values, width=width))
        if quantity == "rho" and len(series) <= width:
            for i, point in enumerate(series):
                line.stylize(VERDICT_STYLES.get(point["verdict"], ""), i, i + 1)
        bounds = (trajectory.get("ranges") or {}).get(quantity)
        label = f"{fmt(bounds[0], 4)} .. {fmt(bounds[1], 4)}" if bounds else "not computed"
        grid.add_row(quantity, line, label)
    console.print(grid)
    bifurcation = trajectory.get("bifurcation")
    if bifurcation:
        estimate = bifurcation.get("estimated_step", bifurcation.get("estimated_index"))
        where = ""
        if estimate is not None:
            # Steps are integers: an interpolated crossing is only worth a rounded step.
            near = f"~{round(estimate)}" if axis == "step" else fmt(estimate, 3)
            where = f"; rho = 1 near {axis} {near}"
        style = VERDICT_STYLES.get(bifurcation["type"], "bold")
        console.print(Text("bifurcation: ", style="bold") + Text(bifurcation["summary"] + where, style=style))
        for note in bifurcation.get("notes", []):
            console.print(Text(f"  {note}", style="dim"))
    else:
        console.print(Text("no loss of stability along the run", style="dim"))
