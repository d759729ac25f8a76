"""Matvecs per checkpoint with and without warm starts, on a generated run crossing a Hopf bifurcation.

Writes a trajectory with :mod:`tools.make_trajectory` (``hopfield``, ``z* = 0``), audits it twice with the
Krylov path forced (``--method krylov``: the dense path has no start vectors to reuse), once with warm
starts and once with ``--no-warm-start``, and prints a table of matvecs (``J v`` plus ``J^T u``) per
checkpoint, the totals and the saving. It also checks that both audits give the same verdicts and the
same numbers to the solver tolerance: warm starts may only save work.

Usage, from the repository root:

    python -m bench.warm_start_savings [--steps 20] [--n 128]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from spectral_probe.audit import run_audit
from spectral_probe.config import ProbeOptions
from tools.make_trajectory import main as make_trajectory


def compare(out_dir: str, steps: int, n: int, hopf_at: int | None = None) -> dict:
    """Audit the generated run twice; return per-checkpoint matvecs and the agreement of the numbers."""
    info = make_trajectory(out_dir, steps=steps, hopf_at=hopf_at, n=n)
    # Pay the first probe's one-off set-up cost (imports, tracing) before timing either audit.
    run_audit(out_dir, ProbeOptions(method="krylov", glob=Path(info["paths"][0]).name))
    runs = {}
    for warm in (True, False):
        started = time.perf_counter()
        report = run_audit(out_dir, ProbeOptions(method="krylov", warm_start=warm))
        runs[warm] = (report, time.perf_counter() - started)
    warm_report, cold_report = runs[True][0], runs[False][0]
    worst = 0.0
    for a, b in zip(warm_report.results, cold_report.results, strict=True):
        assert a.verdict == b.verdict, (a.checkpoint, a.verdict, b.verdict)
        for key in ("rho", "alpha", "omega"):
            x, y = getattr(a, key), getattr(b, key)
            worst = max(worst, abs(x - y) / max(1.0, abs(y)))
    return {
        "info": info,
        "warm": warm_report,
        "cold": cold_report,
        "seconds": {"warm": runs[True][1], "cold": runs[False][1]},
        "max_rel_diff": worst,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--n", type=int, default=128)
    parser.add_argument("--out", default=None, help="where to write the run (default: a temporary folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = compare(args.out or tmp, args.steps, args.n)
    warm, cold = out["warm"].results, out["cold"].results
    # A warm-started probe that came back inconclusive was redone cold by the audit: its matvecs count.
    wasted = {r["checkpoint"]: r["matvecs"] for r in out["warm"].reproducibility["audit"]["warm_start_retries"]}
    print(f"{'step':>6} {'verdict':>12} {'rho':>9} {'cold':>7} {'warm':>7} {'saved':>7}")
    warm_total = []
    for a, b in zip(warm, cold, strict=True):
        spent = a.matvecs + wasted.get(a.checkpoint, 0)
        warm_total.append(spent)
        retry = "  (warm start inconclusive: redone cold)" if a.checkpoint in wasted else ""
        row = f"{a.step:>6} {a.verdict:>12} {a.rho:>9.5f} {b.matvecs:>7} {spent:>7} {b.matvecs - spent:>7}"
        print(row + retry)
    total_cold, total_warm = sum(r.matvecs for r in cold), sum(warm_total)
    # The first checkpoint has no warm start: the saving along the run is what follows it.
    later_cold, later_warm = total_cold - cold[0].matvecs, total_warm - warm_total[0]
    print(
        f"{'total':>6} {'':>12} {'':>9} {total_cold:>7} {total_warm:>7} {total_cold - total_warm:>7}"
        f"  ({100 * (total_cold - total_warm) / total_cold:.1f}% saved;"
        f" {100 * (later_cold - later_warm) / later_cold:.1f}% after the first checkpoint)"
    )
    seconds = out["seconds"]
    print(
        f"n = {args.n}, {args.steps} checkpoints, --method krylov; wall time cold {seconds['cold']:.1f} s,"
        f" warm {seconds['warm']:.1f} s; verdicts identical, max relative difference of rho, alpha, omega"
        f" {out['max_rel_diff']:.1e}; {len(wasted)} warm-started probe(s) redone cold"
    )
    bifurcation = (out["warm"].trajectory or {}).get("bifurcation")
    if bifurcation:
        print(f"bifurcation: {bifurcation['summary']}")
    assert math.isfinite(out["max_rel_diff"])


if __name__ == "__main__":
    main()
