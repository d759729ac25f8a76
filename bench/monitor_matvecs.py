"""The monitor's cost per training step against a cold probe, over a real training run (BENCHMARKS.md).

    PYTHONPATH=. python -m bench.monitor_matvecs [--steps 30] [--n 300] [--output BENCHMARKS.md]

Trains the DEQ of ``examples/training_loop.py`` (``z = tanh(W z + U x)``, n = 300 > dense_max_n, so the
cold probe takes the Krylov path as the monitor does) with the rho penalty on, and at every step runs
both the ``StabilityMonitor`` (full probe every 10 calls, warm-started; cheap Arnoldi run between) and a
cold ``spectral_probe.probe`` (no warm start, every check). Counts matvecs (J v and J^T u) and seconds
per call, and writes the table between ``<!-- model:start -->`` and ``<!-- model:end -->``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from statistics import mean, median

import spectral_probe
from bench.markers import write_region

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))

import training_loop  # noqa: E402


def measure(steps: int, n: int) -> list[dict]:
    """Train with the penalty; at each step the monitor's record and a cold probe's counts."""

    def cold(f, z_star) -> dict:
        began = time.perf_counter()
        result = spectral_probe.probe(f, z_star).results[0]
        return {"cold_matvecs": result.matvecs, "cold_seconds": time.perf_counter() - began, "cold_rho": result.rho}

    return training_loop.train(True, steps=steps, n=n, on_step=cold)


def render(history: list[dict], n: int) -> str:
    full = [r for r in history if r["full"]]
    cheap = [r for r in history if not r["full"]]
    per_call = mean(r["matvecs"] for r in history)
    cold = mean(r["cold_matvecs"] for r in history)
    worst_gap = max(abs(r["rho"] - r["cold_rho"]) for r in history)
    lines = [
        "## Training-loop monitor vs a cold probe (`bench/monitor_matvecs.py`)",
        "",
        f"DEQ `z = tanh(W z + U x)`, n = {n}, trained {len(history)} steps with the rho penalty "
        "(`examples/training_loop.py`); at every step `StabilityMonitor(every=10)` and a cold "
        "`spectral_probe.probe` (Krylov path, all checks, no warm start). "
        "Seconds on a shared 2-core machine under load.",
        "",
        "| call | calls | matvecs per call (mean) | min | max | seconds per call (median) |",
        "|---|---|---|---|---|---|",
        _row("monitor, full (warm)", full, "matvecs", "seconds"),
        _row("monitor, cheap (warm)", cheap, "matvecs", "seconds"),
        _row("cold probe", history, "cold_matvecs", "cold_seconds"),
        "",
        f"Monitor: {per_call:.0f} matvecs per step on average, {cold / per_call:.1f}x fewer than the cold probe "
        f"({cold:.0f}); largest |rho_monitor - rho_cold| over the run: {worst_gap:.1e}.",
    ]
    return "\n".join(lines)


def _row(label: str, rows: list[dict], matvecs: str, seconds: str) -> str:
    counts = [r[matvecs] for r in rows]
    return (
        f"| {label} | {len(rows)} | {mean(counts):.0f} | {min(counts)} | {max(counts)} | "
        f"{median(r[seconds] for r in rows):.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"))
    args = parser.parse_args()
    history = measure(args.steps, args.n)
    body = render(history, args.n)
    write_region(Path(args.output), "model", body)
    print(body)


if __name__ == "__main__":
    main()
