"""What the error bounds cost, in products, on the benchmark operators (issue 13; region ``trust``).

The Krylov path gets the left eigenvectors of alpha and rho from a Krylov-Schur run on ``J_F^T`` that
is ALSO the second start of the independent-start cross-check (before the bounds that was a second run
on ``J_F`` from a random start). So the bound costs: the ``J_F^T`` run's vjps, minus the second ``J_F``
run it replaces; the residual vectors of the two-sided Rayleigh quotient come from the products
Krylov-Schur made for its true residuals (``EigResult.images``: no product; 4 jvps before). This
script measures the three directly (the same starts, settings and seed as the probe) and the whole
probe's products, and rewrites only its own region of ``BENCHMARKS.md``:

    python -m bench.error_bounds [--output BENCHMARKS.md] [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench.markers import write_region
from bench.operators import build, conv_spec, spec_for_size
from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.probe import probe_fixed_points
from spectral_probe.probe.warm import blend
from spectral_probe.tolerances import default_tol

REGION = "trust"


def _real(v: torch.Tensor) -> torch.Tensor:
    return v.real + v.imag if v.is_complex() else v


def _label(problem) -> str:
    spec = problem.spec
    if spec.family == "conv":
        return f"conv C={spec.channels} {spec.side}x{spec.side} (n={spec.n:,}), eps {problem.eps:g}"
    return f"{spec.family} n={spec.n:,}, eps {problem.eps:g}"


def measure(problem) -> dict:
    """Products of the J_F run, of the J_F^T run (warm-started as the probe does) and of the second
    J_F run from a random start that it replaces; and the probe's own counts and bound."""
    z = problem.z_star.reshape(1, -1)
    ops = JacobianOperators(problem.nc_force, z, c=problem.c, eps=problem.eps, mode="autograd")
    options = ProbeOptions(method="krylov")
    settings = {"krylov_dim": options.krylov_dim, "tol": default_tol("float64"), "max_restarts": options.max_restarts}
    targets = (rightmost(), largest_modulus(1.0, problem.eps))
    gen = torch.Generator().manual_seed(0)
    first, noise = (torch.randn(z.shape, generator=gen, dtype=z.dtype) for _ in range(2))
    right = krylov_schur(ops.jf, first, targets=targets, **settings)
    lead = _real(right[targets[1].name].vectors[..., 0, :])
    left = krylov_schur(ops.jf_t, blend(lead, noise), targets=targets, **settings)
    second = krylov_schur(ops.jf, noise, targets=targets, **settings)
    started = time.perf_counter()
    (result,), _ = probe_fixed_points(problem.nc_force, z, c=problem.c, eps=problem.eps, options=options)
    return {
        "operator": _label(problem),
        "right": next(iter(right.values())).matvecs,
        "left": next(iter(left.values())).matvecs,
        "replaced": next(iter(second.values())).matvecs,
        "probe": result.matvecs,
        "by_kind": result.matvecs_by_kind,
        "seconds": time.perf_counter() - started,
        "alpha_bound": result.alpha_bound,
        "rho_bound": result.rho_bound,
        "condition": result.mu_lead_condition,
        "verdict": result.verdict,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "## Error bounds: what they cost (issue 13)",
        "",
        "Products per fixed point on the Krylov path (`python -m bench.error_bounds`, bench/error_bounds.py, seed 0,"
        " default tol). The left eigenvectors come from the Krylov-Schur run on J_F^T that is also the"
        " second start of the cross-check, so the bound costs its vjps, less the second J_F run from a"
        " random start that it replaces (the residual vectors come from Krylov-Schur's own true-residual"
        " products, `EigResult.images`).",
        "",
        "| operator | J_F run (jvp) | J_F^T run (vjp) | replaced 2nd J_F run (jvp) | net cost of the bounds"
        " | probe total (by kind) | rho_bound | kappa(lead) | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        net = r["left"] - r["replaced"]
        kinds = ", ".join(f"{k} {v:,}" for k, v in r["by_kind"].items())
        lines.append(
            f"| {r['operator']} | {r['right']:,} | {r['left']:,} | {r['replaced']:,} | {net:+,} | "
            f"{r['probe']:,} ({kinds}) | {r['rho_bound']:.1e} | {r['condition']:.3g} | {r['verdict']} |"
        )
    lines += [
        "",
        "Dense path: no products (LAPACK's left eigenvectors are the rows of the inverse of the right ones);"
        " one more `torch.linalg.eig` and one solve, O(n^3), about as much again as the dense spectra.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="BENCHMARKS.md")
    parser.add_argument("--quick", action="store_true", help="the smallest operator only")
    args = parser.parse_args()
    specs = [spec_for_size(1024)] if args.quick else [spec_for_size(1024), spec_for_size(8192), conv_spec(16, 64)]
    rows = [measure(build(spec)) for spec in specs]
    body = table(rows)
    print(body)
    write_region(Path(args.output), REGION, body)


if __name__ == "__main__":
    main()
