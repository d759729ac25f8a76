"""Formatting and look-ups shared by the report's modules (:mod:`bench.report`, :mod:`bench.report_targets`,
:mod:`bench.report_observations`); package-internal helpers."""

from __future__ import annotations

import math
from typing import Any

# --------------------------------------------------------------------------------------------------
# Formatting


def _num(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if x == 0:
        return "0"
    if abs(x) >= 1e5 or abs(x) < 1e-3:
        return f"{x:.{max(1, digits - 2)}e}"
    return f"{x:.{digits}g}"


def _sci(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.1e}"


def _secs(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.3g}" if x < 100 else f"{x:.0f}"


def _value(quantity: str, q: dict[str, Any]) -> str:
    re_, im = q["value"]
    if quantity == "omega":
        return f"omega = {_num(re_, 8)}"
    if quantity == "alpha":
        return f"alpha = {_num(re_, 8)}" + (f" (+-{_num(abs(im), 4)}i)" if abs(im) > 1e-12 else "")
    lead = f"{_num(re_, 6)}" + (f" +- {_num(abs(im), 4)}i" if abs(im) > 1e-12 else "")
    return f"rho = {_num(q['scalar'], 8)} (lead {lead})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _met(flag: bool | None) -> str:
    return {True: "**met**", False: "**MISSED**", None: "not measured"}[flag]


# --------------------------------------------------------------------------------------------------
# Lookups


def _record(problem: dict[str, Any], solver: str) -> dict[str, Any] | None:
    return next((r for r in problem.get("records", []) if r["solver"] == solver and "error" not in r), None)


def _ok(rec: dict[str, Any] | None) -> bool:
    return rec is not None and bool(rec.get("quantities")) and all(q["residual_ok"] for q in rec["quantities"].values())


def _wrong(rec: dict[str, Any] | None) -> bool:
    return rec is not None and any(q.get("wrong") for q in rec.get("quantities", {}).values())


def _n(problem: dict[str, Any]) -> int:
    return int(problem.get("spec", {}).get("n", 0))


def _label(problem: dict[str, Any]) -> str:
    """The problem's name; a worker that failed before naming it is named from its spec."""
    if problem.get("label"):
        return problem["label"]
    spec = problem.get("spec")
    if isinstance(spec, dict):
        from .operators import ProblemSpec

        try:
            return ProblemSpec.from_dict(spec).label
        except TypeError:
            pass
    return str(spec)
