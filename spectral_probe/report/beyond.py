"""The table's "margins / growth" cell: the analyses beyond omega, alpha and rho (issue 11), short."""

from __future__ import annotations

from spectral_probe.report.numbers import fmt
from spectral_probe.results import FixedPointResult

HEADER = "margins / growth"
FOOTER = (
    "  eps_max: largest stable step (+ margin to eps; ok = confirmed by rho probes at 0.99/1.01 eps_max).  "
    "c_crit: damping at which alpha = 0.  |M^k|: lower bound on max_k ||M^k||_2 (at k), |e^tJ|: on "
    "sup_t ||exp(t J_F)||_2.  units: largest weight in the leading mode of M."
)


def shown(results: tuple[FixedPointResult, ...] | list[FixedPointResult]) -> bool:
    """The column appears when any analysis beyond the free c_crit ran."""
    return any(r.eps_max is not None or r.max_power_norm is not None or r.lead_mode_units for r in results)


def cell(r: FixedPointResult) -> str:
    """The table cell of the extra analyses of one fixed point."""
    lines = []
    if r.eps_max is not None:
        mark = {True: " ok", False: " ?", None: ""}[r.eps_max_confirmed]
        lines.append(f"eps_max {fmt(r.eps_max, 4)} ({r.eps_margin:+.3g}){mark}")
    if r.c_crit is not None:
        lines.append(f"c_crit {fmt(r.c_crit, 4)}")
    if r.max_power_norm is not None:
        flag = " [bold yellow]transient[/]" if r.transient else ""
        lines.append(f"|M^k| >= {fmt(r.max_power_norm, 4)} (k {r.max_power_k}){flag}")
    if r.max_flow_norm is not None:
        lines.append(f"|e^tJ| >= {fmt(r.max_flow_norm, 4)} (t {fmt(r.max_flow_t, 3)})")
    if r.lead_mode_units:
        lines.append("units " + ",".join(str(u) for u in r.lead_mode_units))
    return "\n".join(lines) or "-"
