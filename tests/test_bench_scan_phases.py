"""bench.scan_phases: the phases of a scan add up to every product it made (counted outside the probe)."""

from __future__ import annotations

from bench.full_scan import QUICK_OPERATORS
from bench.scan_phases import PHASES, measure, render


def test_the_phases_add_up_to_the_scan_and_the_table_renders() -> None:
    spec, eps = QUICK_OPERATORS[0]
    phases = measure(spec, eps, seed=0, tol=1e-8)
    in_scan = [p for p in PHASES if p != "omega single start"]
    assert sum(phases[p] for p in in_scan) == phases["total"]
    assert phases["checks"] > 0 and phases["J_F^T run"] > 0 and phases["omega single start"] > 0
    # omega's block of two starts costs more than one start, less than two runs
    assert phases["omega single start"] < phases["omega"] < 2 * phases["omega single start"]
    row = {**phases, "label": "x", "tol": "1e-08", "solve": phases["omega single start"] + phases["J_F run"]}
    row["protection"] = row["total"] - row["solve"]
    table = render([row], [0])
    assert table.count("\n| x | 1e-08 |") == 1 and "norm_M" in table
