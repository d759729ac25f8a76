"""Where the products of a full trusted scan go, phase by phase, and what the protection costs.

``python -m bench.scan_phases --output BENCHMARKS.md`` runs ``probe_fixed_points`` on the issue-12
operators (:data:`bench.full_scan.OPERATORS`) and counts every product (:func:`bench.product_kinds.counting`,
outside the probe: products answered from known ones are not made, so not counted) inside each phase:

* the checks (``probe.checks.matvec_checks``: ``J d`` and ``J^T d`` on two random directions, the central
  differences along them, ``J d_1`` again);
* omega's block Lanczos (two starts, one block), next to a single-start Lanczos from its first start at
  the same tolerance (run apart, for the comparison only): the difference is what the second start costs;
* the Krylov-Schur run on ``J_F`` (alpha and rho) and the one on ``J_F^T`` (the second start and the left
  eigenvectors);
* the Rayleigh-Ritz confirmation of rho and ``||M||_2`` (``norm_M``, as far as ``rho <= ||M||_2`` needs).

Products are deterministic (no timing): the region ``scan-phases`` of ``BENCHMARKS.md`` is rewritten.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

import spectral_probe.probe.fixed_points as fixed_points
import spectral_probe.probe.krylov_path as krylov_path
from spectral_probe.config import ProbeOptions

from .full_scan import OPERATORS, QUICK_OPERATORS
from .markers import write_region
from .operators import build
from .product_kinds import Ledger, counting

PHASES = ("checks", "omega", "omega single start", "J_F run", "J_F^T run", "RR confirmation", "norm_M")


@contextlib.contextmanager
def _phases(ledger: Ledger, into: dict[str, int]) -> Iterator[None]:
    """Wrap the probe's phases so that the products made inside each are added to ``into``."""
    originals = {
        (fixed_points, "matvec_checks"): "checks",
        (krylov_path, "lanczos"): "omega",
        (krylov_path, "krylov_schur"): "krylov_schur",
        (krylov_path, "confirm_rho"): "RR confirmation",
        (krylov_path, "operator_norm"): "norm_M",
    }
    saved = {key: getattr(*key) for key in originals}

    def wrapped(key: tuple[Any, str], phase: str) -> Any:
        function = saved[key]

        def run(*args: Any, **kwargs: Any) -> Any:
            before = ledger.products
            out = function(*args, **kwargs)
            name = phase
            if phase == "krylov_schur":  # the first run is on J_F, every later one on J_F^T
                name = "J_F run" if "J_F run" not in into else "J_F^T run"
            into[name] = into.get(name, 0) + ledger.products - before
            if phase == "omega":  # the same solve from the first start alone, uncounted
                matvec, starts = args[0], args[1]
                counts = dict(ledger.counts)
                single = function(matvec, starts[..., 0, :], **{**kwargs, "block": False})
                ledger.counts.update(counts)  # not the scan's
                into["omega single start"] = into.get("omega single start", 0) + single.matvecs * 2
            return out

        return run

    try:
        for key, phase in originals.items():
            setattr(key[0], key[1], wrapped(key, phase))
        yield
    finally:
        for key, function in saved.items():
            setattr(key[0], key[1], function)


def measure(spec: Any, eps: float, seed: int, tol: float | None) -> dict[str, int]:
    """Products per phase of one full scan (``tol``: ``--tol``, None for the default)."""
    problem = build(spec)
    into: dict[str, int] = {}
    with counting() as ledger, _phases(ledger, into):
        options = ProbeOptions(seed=seed, tol=tol, method="krylov")
        fixed_points.probe_fixed_points(problem.nc_force, problem.z_star, c=problem.c, eps=eps, options=options)
    into["total"] = ledger.products
    return into


def render(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    head = (
        "| operator | --tol | "
        + " | ".join(PHASES)
        + " | omega's second start | total | protection | protection / solve |"
    )
    lines = [
        "## Where a trusted scan's products go (`python -m bench.scan_phases`)",
        "",
        f"Products (every product made, counted outside the probe; median of seeds {seeds}) of "
        "`probe_fixed_points` per phase. `omega single start` is a Lanczos run from omega's first start alone "
        "at the same tolerance (run apart, not part of the scan). **Solve** = single-start omega + the J_F "
        "run (what an untrusted scan would make); **protection** = everything else: the checks, omega's "
        "second start (block - single), the J_F^T run, the Rayleigh-Ritz confirmation and `||M||_2`.",
        "",
        head,
        "|---|---|" + "---:|" * (len(PHASES) + 4),
    ]
    for row in rows:
        cells = " | ".join(str(row[p]) for p in PHASES)
        lines.append(
            f"| {row['label']} | {row['tol']} | {cells} | {row['omega'] - row['omega single start']} | "
            f"{row['total']} | {row['protection']} | "
            f"{row['protection'] / row['solve']:.2f} |"
        )
    lines += [
        "",
        "Reading: the J_F^T run (a Krylov-Schur run of its own, to `sqrt(tol)`) and omega's second start "
        "(a block of two starts costs about 1.5x one) are the floor of the two-start protection: each is what "
        "an unlucky single start needs to be caught (the hidden-rightmost and hidden-omega tests of "
        "`tests/test_cheap_protection.py`). The checks' products are the solvers' first products "
        "(`spectral_probe.linalg.known`); the Rayleigh-Ritz confirmation from the Arnoldi plane and `||M||_2` "
        "stopped at rho cost a few products. What the protection buys: a single start that misses the top of "
        "the spectrum converges, reports a residual at round-off and says nothing (ARPACK from `v0 = ones` "
        "on the hopfield operators, the `ones` table); here such a miss is found (omega) or flagged "
        "(alpha, rho: `inconclusive`), and every eigenvalue comes with a left vector and an error bound.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan_phases", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=None, help="BENCHMARKS.md to write the region into")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--quick", action="store_true", help="small operators (a smoke test)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for spec, eps in QUICK_OPERATORS if args.quick else OPERATORS:
        for tol in (None, 1e-8):
            runs = [measure(spec, eps, seed, tol) for seed in seeds]
            row: dict[str, Any] = {p: int(statistics.median(r.get(p, 0) for r in runs)) for p in (*PHASES, "total")}
            row["solve"] = row["omega single start"] + row["J_F run"]
            row["protection"] = row["total"] - row["solve"]
            row.update(label=f"{spec.family} n={spec.n:,}, eps {eps:g}", tol="default" if tol is None else f"{tol:g}")
            rows.append(row)
            print(row, flush=True)
    body = render(rows, seeds)
    if args.output is not None:
        write_region(args.output, "scan-phases", body)
    else:
        print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
