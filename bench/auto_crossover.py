"""``--method auto`` against the better of dense and Krylov, by INTERLEAVED repeats around ``dense_max_n``.

On a shared machine the speed drifts over seconds, so two paths timed one after the other can swap
places by chance. Here each repetition runs dense, Krylov and auto back to back (dense, krylov, auto,
dense, krylov, auto, ...) on the same problem (:func:`bench.operators.spec_for_size`, the non-normal
hopfield), and the comparison uses

* the median of the PAIRED ratios ``t_dense_i / t_krylov_i`` (drift cancels within a pair): the
  faster path is dense where it is < 1;
* ``auto / better``: the median time of the path auto takes (``n <= dense_max_n``: dense) over the
  median of the faster path (the target: <= 1.10); auto's own median is reported beside it.
"""

from __future__ import annotations

import time
from typing import Any

from .measure import median
from .operators import build, spec_for_size

SIZES = (128, 192, 256, 288, 320, 352, 384, 448, 512)
QUICK_SIZES = (16, 32)
METHODS = ("dense", "krylov", "auto")
WITHIN = 1.10


def _probe(problem: Any, method: str) -> tuple[float, Any]:
    from spectral_probe.config import ProbeOptions
    from spectral_probe.probe import probe_fixed_points

    began = time.perf_counter()
    results, _ = probe_fixed_points(
        problem.nc_force, problem.z_star, c=problem.c, eps=problem.eps, options=ProbeOptions(method=method)
    )
    return time.perf_counter() - began, results[0]


def measure_size(n: int, reps: int, dense_max_n: int) -> dict[str, Any]:
    """Interleaved repeats of every method on one size; medians, paired ratio, what auto picks."""
    problem = build(spec_for_size(n))
    first = {m: _probe(problem, m)[1] for m in METHODS}  # warm-up, and the answers
    times: dict[str, list[float]] = {m: [] for m in METHODS}
    for _ in range(reps):
        for method in METHODS:
            times[method].append(_probe(problem, method)[0])
    medians = {m: median(t) for m, t in times.items()}
    paired = median([d / k for d, k in zip(times["dense"], times["krylov"], strict=True)])
    faster = "dense" if paired <= 1.0 else "krylov"
    picks = "dense" if n <= dense_max_n else "krylov"
    better = min(medians["dense"], medians["krylov"])
    return {
        "n": n,
        "times": times,
        "median_s": medians,
        "dense_over_krylov_paired": paired,
        "faster": faster,
        "auto_picks": picks,
        "auto_method_reported": first["auto"].method,
        "auto_ratio": medians[picks] / better,
        "auto_measured_ratio": medians["auto"] / better,
        "within": medians[picks] / better <= WITHIN,
        "matvecs": {m: int(first[m].matvecs) for m in METHODS},
        "rho": {m: float(first[m].rho) for m in METHODS},
        "verdicts": {m: first[m].verdict for m in METHODS},
    }


def measure(
    quick: bool = False, reps: int | None = None, sizes: tuple[int, ...] | None = None, threads: int | None = None
) -> dict[str, Any]:
    """Every size, interleaved, with ``threads`` torch threads (default: as they are)."""
    import torch

    from spectral_probe.config import ProbeOptions

    dense_max_n = ProbeOptions().dense_max_n
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    reps = reps or (2 if quick else 7)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        rows = [measure_size(n, reps, dense_max_n) for n in sizes]
    finally:
        torch.set_num_threads(previous)
    # the largest size below which dense is faster at every measured size
    recommended = 0
    for row in rows:
        if row["faster"] != "dense":
            break
        recommended = row["n"]
    crossing = next((r["n"] for r in rows if r["faster"] == "krylov"), None)
    return {
        "dense_max_n": dense_max_n,
        "reps": reps,
        "threads": threads or previous,
        "rows": rows,
        "recommended_dense_max_n": recommended,
        "first_krylov_faster_n": crossing,
        "within_everywhere": all(r["within"] for r in rows),
    }
