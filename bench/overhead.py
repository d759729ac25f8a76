"""Solver overhead: wall time over (products x one product's own time), for Lanczos and Krylov-Schur.

``python -m bench.overhead --label after`` measures, at ``n = 65,536`` (``--n``), two operators:

* ``conv``: a 3x3 convolution with 16 channels on a 64 x 64 grid (the shape of the benchmark's conv
  model, as a plain torch function, no autograd) plus a rank-one spike (a separated leading
  eigenvalue): Lanczos on ``Sym(K) = (K + K^T)/2`` (a conv and a transposed conv per product),
  Krylov-Schur (targets LR and LM of ``I + 0.5 K``) on ``K``;
* ``stencil``: a 5-point Laplacian-like stencil with a random diagonal (a few ``roll``s): a product
  so cheap that the ratio shows the solver's own floor (Gram-Schmidt is O(m n) per step against the
  product's O(n), so this ratio cannot reach 1.25 for any Krylov method with a basis of 30-40).

The ratio is ``wall / (matvecs * t_product)`` with ``t_product`` the median time of one product on
the same ``[1, n]`` vector shape the solver uses, measured in the same process just before; 1.0 means
the solver costs nothing beyond its products. Each run is repeated (``--reps``, median reported).
Results accumulate by label in ``bench/overhead_runs.json`` and the table of every label is written
between ``<!-- linalg:start -->`` and ``<!-- linalg:end -->`` of ``BENCHMARKS.md`` (nothing else in the
file changes). Single-threaded by default (``--threads``): the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .markers import write_region

REPO = Path(__file__).resolve().parent.parent
RUNS = Path(__file__).resolve().parent / "overhead_runs.json"
Op = Callable[[torch.Tensor], torch.Tensor]
#: Heights of the rank-one spike of the conv operators (Sym K, K): a separated leading eigenvalue, so a
#: run takes 60-80 products (as the benchmark's models do) rather than crawling through a flat spectrum.
SPIKE_SYM, SPIKE_K = 1.0, 2.0


def conv_operators(n: int, generator: torch.Generator) -> tuple[Op, Op]:
    """``(Sym K, K)`` for a 16-channel 3x3 convolution on a square grid with ``16 side^2 = n``."""
    channels = 16
    side = math.isqrt(n // channels)
    if channels * side * side != n:
        raise ValueError(f"conv needs n = 16 side^2, got {n}")
    weight = torch.randn(channels, channels, 3, 3, generator=generator, dtype=torch.float64) / (3 * channels**0.5)
    conv = torch.nn.functional.conv2d
    conv_t = torch.nn.functional.conv_transpose2d

    u = torch.randn(n, generator=generator, dtype=torch.float64)
    u = u / torch.linalg.vector_norm(u)

    def spike(x: torch.Tensor, height: float) -> torch.Tensor:
        return height * (x @ u).unsqueeze(-1) * u

    def k(x: torch.Tensor) -> torch.Tensor:
        y = conv(x.reshape(-1, channels, side, side), weight, padding=1)
        return y.reshape(x.shape) - x + spike(x, SPIKE_K)

    def sym(x: torch.Tensor) -> torch.Tensor:
        grid = x.reshape(-1, channels, side, side)
        y = conv(grid, weight, padding=1) + conv_t(grid, weight, padding=1)
        return (0.5 * y).reshape(x.shape) - x + spike(x, SPIKE_SYM)

    return sym, k


def stencil_operators(n: int, generator: torch.Generator) -> tuple[Op, Op]:
    """``(S, S + skew)``: a 1-D 3-point stencil with a random diagonal, and a non-symmetric version."""
    diag = torch.randn(n, generator=generator, dtype=torch.float64)

    def sym(x: torch.Tensor) -> torch.Tensor:
        return diag * x + 0.5 * (x.roll(1, -1) + x.roll(-1, -1))

    def nonsym(x: torch.Tensor) -> torch.Tensor:
        return diag * x + 0.8 * x.roll(1, -1) + 0.2 * x.roll(-1, -1)

    return sym, nonsym


def product_seconds(op: Op, x: torch.Tensor, reps: int = 30) -> float:
    """Median seconds of one product on ``x`` (after a warm-up)."""
    for _ in range(3):
        op(x)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        op(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _solve(solver: str, sym: Op, nonsym: Op, x0: torch.Tensor) -> tuple[Op, Callable[[], int]]:
    from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
    from spectral_probe.linalg.symmetric import lanczos

    if solver == "lanczos":
        return sym, lambda: lanczos(sym, x0, which="LA", krylov_dim=30, max_restarts=10_000).matvecs
    targets = (rightmost(), largest_modulus(1.0, 0.5))
    return (
        nonsym,
        lambda: (
            next(iter(krylov_schur(nonsym, x0, targets=targets, krylov_dim=30, max_restarts=10_000).values())).matvecs
        ),
    )


def measure(operator: str, solver: str, n: int, reps: int) -> dict[str, Any]:
    """One row: products, wall seconds (median of ``reps``), one product's seconds, and the ratio."""
    generator = torch.Generator().manual_seed(7)
    build = conv_operators if operator == "conv" else stencil_operators
    sym, nonsym = build(n, generator)
    x0 = torch.randn(1, n, generator=generator, dtype=torch.float64)
    op, run = _solve(solver, sym, nonsym, x0)
    t_product = product_seconds(op, x0)
    walls, products = [], 0
    for _ in range(reps):
        started = time.perf_counter()
        products = run()
        walls.append(time.perf_counter() - started)
    wall = statistics.median(walls)
    return {
        "operator": operator,
        "solver": solver,
        "n": n,
        "products": products,
        "wall_s": wall,
        "product_ms": 1e3 * t_product,
        "ratio": wall / (products * t_product),
    }


def render(runs: dict[str, dict[str, Any]]) -> str:
    """The marked region: one table row per label, operator and solver."""
    lines = [
        "## Solver overhead (linalg)",
        "",
        "Generated by `python -m bench.overhead --label LABEL`: wall time over (products x one product's own",
        "time), float64, single start, `krylov_dim = 30`, default tolerance; median of the repetitions.",
        "`conv` is a 16-channel 3x3 convolution at n = 65,536 (target <= 1.25); `stencil` a 3-point stencil",
        "whose product is so cheap that the ratio shows the Gram-Schmidt floor (O(m n) per step).",
        "",
        "| label | operator | solver | n | products | one product (ms) | wall (s) | overhead | target |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for label, run in runs.items():
        for row in run["rows"]:
            target = ("met" if row["ratio"] <= 1.25 else "MISSED") if row["operator"] == "conv" else "(floor)"
            lines.append(
                f"| {label} | {row['operator']} | {row['solver']} | {row['n']:,} | {row['products']} "
                f"| {row['product_ms']:.3f} | {row['wall_s']:.3f} | {row['ratio']:.2f} | {target} |"
            )
    machines = {f"{label}: {run['machine']}" for label, run in runs.items()}
    lines += ["", "Machine per label: " + "; ".join(sorted(machines)) + "."]
    lines += [f"\n{run['note']}" for run in runs.values() if run.get("note")]  # what each comparison showed
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__.splitlines()[0])
    parser.add_argument("--label", required=True, help="Name of this measurement (e.g. before, after).")
    parser.add_argument("--n", type=int, default=65_536)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--note", default="", help="A reading of this label's rows, printed under the table.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [
        measure(operator, solver, args.n, args.reps)
        for operator in ("conv", "stencil")
        for solver in ("lanczos", "krylov_schur")
    ]
    for row in rows:
        print(json.dumps(row))
    runs = json.loads(RUNS.read_text()) if RUNS.is_file() else {}
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)"
    runs[args.label] = {"machine": machine, "rows": rows, "note": args.note}
    RUNS.write_text(json.dumps(runs, indent=1) + "\n")
    write_region(args.output, "linalg", render(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
