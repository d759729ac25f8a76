"""The full trusted scan against three untrusted runs of SLEPc, ARPACK and PRIMME (issue 12).

``python -m bench.full_scan --output BENCHMARKS.md [--json out.json] [--quick]``. On each operator of
issue 12 (hopfield n = 1,024 with eps = 0.5, hopfield n = 8,192, conv C=16 64x64, n = 65,536; built by
:mod:`bench.operators`) and for each of three seeds (the start vectors; the operator is fixed):

(a) our solvers alone: Lanczos for omega and ONE Krylov-Schur run for alpha and rho (``krylov_dim``
    30, ``tol`` 1e-8, as in ``make bench``);
(b) our full trusted scan: :func:`spectral_probe.probe.probe_fixed_points` with the real
    :class:`~spectral_probe.config.ProbeOptions` (only ``seed`` set), every cross-check included;
(c) ARPACK's three runs, (d) SLEPc's three runs (its defaults, and ``ncv`` 40), (e) PRIMME omega.

Products count every Jacobian product (a ``Sym(J_F)`` product is two: one ``J v``, one ``J^T u``), by
kind (:mod:`bench.product_kinds`), and every run meets the TRUE residual ``1e-8 ||A||_2`` (checked with
uncounted products). Products are deterministic and are the primary figure; wall times are medians
over the seeds, on a shared machine. ``--quick``: two tiny operators, one seed, no SLEPc/PRIMME, and a
small ``--method auto`` check (:mod:`bench.auto_crossover`): the harness test runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import competitors as comp
from . import rivals
from .measure import median, relative_residual
from .operators import ProblemSpec, build, conv_spec
from .product_kinds import counting, modelled_seconds, time_kinds

TARGET = 1e-8
OURS_SETTINGS = {"krylov_dim": 30, "max_restarts": 10_000}
#: (spec, eps) of issue 12, and the tiny ones of --quick.
OPERATORS = [(ProblemSpec("hopfield", 1024), 0.5), (ProblemSpec("hopfield", 8192), 1.0), (conv_spec(16, 64), 1.0)]
#: --quick: above dense_max_n (288), so --method auto takes the Krylov path as on the real operators.
QUICK_OPERATORS = [(ProblemSpec("hopfield", 320), 0.5), (conv_spec(2, 13), 1.0)]
DENSE_TRUTH_MAX_N = 2048


def reference(ops: Any, dense: bool) -> dict[str, Any]:
    """``||A||_2`` of ``Sym(J_F)``, ``J_F``, ``M`` and, when ``dense``, the exact omega, alpha and rho."""
    if not dense:
        return {"kind": "none", **{q: _gram_norm(ops, q) for q in ("omega", "alpha", "rho")}}
    eye = torch.eye(ops.n, dtype=ops.dtype)
    jf = ops.dense_jacobian()[0] - (1 + ops.c) * eye
    sym, m = (jf + jf.T) / 2, eye + ops.eps * jf
    mu = torch.linalg.eigvals(jf)
    return {
        "kind": "dense",
        "omega": float(torch.linalg.matrix_norm(sym, ord=2)),
        "alpha": float(torch.linalg.matrix_norm(jf, ord=2)),
        "rho": float(torch.linalg.matrix_norm(m, ord=2)),
        "truth": {
            "omega": float(torch.linalg.eigvalsh(sym)[-1]),
            "alpha": float(mu.real.max()),
            "rho": float((1 + ops.eps * mu).abs().max()),
        },
    }


def _gram_norm(ops: Any, quantity: str) -> float:
    """``||A||_2`` from ``eigsh(A^T A)`` at tol 1e-4 (enough for a residual's denominator)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    apply, apply_t = {"omega": (ops.sym, ops.sym), "alpha": (ops.jf, ops.jf_t), "rho": (ops.m, ops.m_t)}[quantity]
    n = ops.n

    def gram(x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(1, n)
        with torch.no_grad():
            return apply_t(apply(v)).reshape(n).numpy()

    start = np.random.default_rng(99).standard_normal(n)
    value = eigsh(LinearOperator((n, n), matvec=gram, dtype=np.float64), k=1, which="LM", v0=start, tol=1e-4)[0]
    return float(np.sqrt(value[0]))


def scalar(quantity: str, value: complex) -> float:
    """omega and alpha are real parts, rho a modulus."""
    return abs(value) if quantity == "rho" else value.real


# --------------------------------------------------------------------------------------------------
# (a) our solvers alone, (b) the full scan


def ours_alone(ops: Any, seed: int, norms: dict[str, float]) -> dict[str, Any]:
    """Lanczos (omega) and one Krylov-Schur run (alpha and rho), each to the true residual target."""
    generator = torch.Generator().manual_seed(12345 + seed)
    x0 = torch.randn(1, ops.n, generator=generator, dtype=ops.dtype)
    applies = {"omega": ops.sym, "alpha": ops.jf, "rho": ops.m}

    def check(run: comp.SolverRun) -> float:
        return max(relative_residual(applies[q], p.value, p.vector, norms[q]) for q, p in run.pairs.items())

    began = time.perf_counter()
    lanczos, res_l, _ = rivals.to_target(
        lambda t: comp.ours_lanczos(comp.CountedOps(ops), x0, t, **OURS_SETTINGS), TARGET, check, TARGET
    )
    ks, res_k, _ = rivals.to_target(
        lambda t: comp.ours_krylov_schur(comp.CountedOps(ops), x0, t, ops.eps, **OURS_SETTINGS), TARGET, check, TARGET
    )
    seconds = time.perf_counter() - began
    values = {q: scalar(q, p.value) for run in (lanczos, ks) for q, p in run.pairs.items()}
    return {
        "products": lanczos.jvp + lanczos.vjp + ks.jvp,
        "omega_products": lanczos.jvp + lanczos.vjp,
        "alpha_rho_products": ks.jvp,
        "rel_residual": max(res_l, res_k),
        "residual_ok": max(res_l, res_k) <= TARGET,
        "values": values,
        "seconds": seconds,
    }


def full_scan(problem: Any, eps: float, seed: int, norms: dict[str, float], tol: float | None = None) -> dict[str, Any]:
    """``probe_fixed_points`` with the real options (``tol``: ``--tol``, None for the default); products
    counted by kind from outside."""
    from spectral_probe.config import ProbeOptions
    from spectral_probe.probe import probe_fixed_points

    with counting() as ledger:
        began = time.perf_counter()
        results, _ = probe_fixed_points(
            problem.nc_force, problem.z_star, c=problem.c, eps=eps, options=ProbeOptions(seed=seed, tol=tol)
        )
        wall = time.perf_counter() - began
    r = results[0]
    reported = r.residuals or {}
    residuals = {q: (reported[q] / norms[q] if reported.get(q) is not None else None) for q in norms}
    return {
        "products": ledger.products,
        "by_kind": dict(ledger.counts),
        "kind_seconds": dict(ledger.seconds),
        "self_reported": int(r.matvecs),
        "matvecs_by_kind": {k: int(v) for k, v in (r.matvecs_by_kind or {}).items()},
        "seconds": wall,
        "method": r.method,
        "verdict": r.verdict,
        "reason": r.reason,
        "values": {"omega": r.omega, "alpha": r.alpha, "rho": r.rho},
        "rel_residual": residuals,
        "residual_ok": all(v is not None and v <= TARGET for v in residuals.values()) and bool(residuals),
    }


# --------------------------------------------------------------------------------------------------
# One operator


def _timed(fn: Any) -> dict[str, Any]:
    began = time.perf_counter()
    out = fn()
    out.setdefault("seconds", time.perf_counter() - began)
    return out


def run_operator(spec: ProblemSpec, eps: float, seeds: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Every solver on one operator, for every seed (SLEPc in one worker process for all seeds)."""
    from spectral_probe.jacobian import JacobianOperators

    began = time.perf_counter()
    problem = build(spec)
    ops = JacobianOperators(problem.nc_force, problem.z_star, c=problem.c, eps=eps)
    ref = reference(ops, dense=spec.n <= DENSE_TRUTH_MAX_N)
    norms = {q: ref[q] for q in ("omega", "alpha", "rho")}
    per_kind = time_kinds(ops, reps=10 if spec.n < 65_536 else 5)
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "scan": [], "scan_tol": [], "arpack": [], "primme": []}
    use_primme = not args.no_primme and rivals.primme_version() is not None
    for seed in seeds:
        print(f"  {spec.label} seed {seed}", file=sys.stderr, flush=True)
        ours = ours_alone(ops, seed, norms)
        runs["ours"].append(ours)
        runs["scan"].append(full_scan(problem, eps, seed, norms))
        runs["scan_tol"].append(full_scan(problem, eps, seed, norms, tol=TARGET))
        hints = {q: abs(v) if q != "alpha" else max(abs(v), 1e-3) for q, v in ours["values"].items()}
        runs["arpack"].append(_timed(lambda s=seed, h=hints: rivals.arpack_three(ops, s, norms, h, TARGET)))
        if use_primme:
            runs["primme"].append(_timed(lambda s=seed: rivals.primme_omega(ops, s, norms["omega"], TARGET)))
    per_kind_after = time_kinds(ops, reps=10 if spec.n < 65_536 else 5)
    per_kind = {k: median([per_kind[k], per_kind_after[k]]) for k in per_kind}
    slepc = _slepc_runs(spec, eps, seeds, norms, problem, args)
    return {
        "spec": spec.to_dict(),
        "label": spec.label,
        "eps": eps,
        "reference": ref,
        "per_kind_seconds": per_kind,
        "runs": runs,
        "slepc": slepc,
        "seconds": time.perf_counter() - began,
        "summary": summarize(runs, slepc, per_kind),
    }


def _slepc_runs(
    spec: ProblemSpec, eps: float, seeds: list[int], norms: dict[str, float], problem: Any, args: argparse.Namespace
) -> dict[str, Any]:
    if args.no_slepc:
        return {"skipped": "--no-slepc"}
    python = rivals.slepc_python(args.slepc_python)
    version, why = rivals.slepc_version(python)
    if version is None:
        return {"skipped": why}
    config = {
        "spec": spec.to_dict(),
        "eps": eps,
        "conv_scale": problem.info.get("conv2_scale"),
        "norms": norms,
        "target": TARGET,
        "seeds": seeds,
        "ncv": [None, 40],
        "threads": torch.get_num_threads(),
    }
    return {"python": python, **rivals.run_slepc(python, config, timeout=args.slepc_timeout)}


# --------------------------------------------------------------------------------------------------
# Summary (medians over the seeds)


def _med(values: list[float]) -> float | None:
    return median(values) if values else None


def summarize(runs: dict[str, list[dict]], slepc: dict[str, Any], per_kind: dict[str, float]) -> dict[str, Any]:
    """Median products and seconds per solver, the ratios the targets need, and the scan's overhead."""
    arpack = [sum(r[q]["products"] for q in ("omega", "alpha", "rho")) for r in runs["arpack"]]
    out: dict[str, Any] = {
        "ours": _med([r["products"] for r in runs["ours"]]),
        "ours_omega": _med([r["omega_products"] for r in runs["ours"]]),
        "scan": _med([r["products"] for r in runs["scan"]]),
        "scan_tol": _med([r["products"] for r in runs.get("scan_tol", [])]),
        "scan_self_reported": _med([r["self_reported"] for r in runs["scan"]]),
        "arpack": _med(arpack),
        "primme": _med([r["products"] for r in runs["primme"]]),
        "seconds": {
            "ours": _med([r["seconds"] for r in runs["ours"]]),
            "scan": _med([r["seconds"] for r in runs["scan"]]),
            "arpack": _med([r["seconds"] for r in runs["arpack"]]),
            "primme": _med([r["seconds"] for r in runs["primme"]]),
        },
        "scan_by_kind": {k: _med([r["by_kind"][k] for r in runs["scan"]]) for k in runs["scan"][0]["by_kind"]},
        "all_residuals_ok": all(r["residual_ok"] for key in ("ours", "scan", "primme") for r in runs[key])
        and all(r[q]["residual_ok"] for r in runs["arpack"] for q in ("omega", "alpha", "rho")),
    }
    for ncv in (None, 40):
        records = [r for r in slepc.get("records", []) if r["ncv"] == ncv]
        by_seed: dict[int, list[dict]] = {}
        for r in records:
            by_seed.setdefault(r["seed"], []).append(r)
        key = "slepc" if ncv is None else "slepc_ncv40"
        out[key] = _med([sum(r["products"] for r in rs) for rs in by_seed.values()])
        out["seconds"][key] = _med([sum(r["seconds"] for r in rs) for rs in by_seed.values()])
        out[f"{key}_residuals_ok"] = all(r["residual_ok"] for r in records) if records else None
    baseline = out["slepc"] if out["slepc"] is not None else out["arpack"]
    out["baseline"] = "SLEPc" if out["slepc"] is not None else "ARPACK"
    out["scan_over_baseline"] = out["scan"] / baseline if baseline else None
    out["checks_over_solve"] = (out["scan"] - out["ours"]) / out["ours"] if out["ours"] else None
    matched = out["scan_tol"]
    out["scan_tol_over_baseline"] = matched / baseline if baseline and matched is not None else None
    out["checks_tol_over_solve"] = (matched - out["ours"]) / out["ours"] if out["ours"] and matched else None
    overheads = [r["seconds"] / modelled_seconds(r["by_kind"], per_kind) for r in runs["scan"]]
    out["scan_overhead"] = _med(overheads)
    out["scan_in_run_overhead"] = _med([r["seconds"] / sum(r["kind_seconds"].values()) for r in runs["scan"]])
    return out


# --------------------------------------------------------------------------------------------------
# Command line


def _warm_up() -> None:
    """Import and exercise every code path once on a tiny operator, so no timed run pays for it."""
    problem = build(ProblemSpec("hopfield", 16))
    full_scan(problem, 1.0, 0, {"omega": 1.0, "alpha": 1.0, "rho": 1.0})


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.full_scan", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=None, help="BENCHMARKS.md to update (own regions only)")
    parser.add_argument("--json", type=Path, default=None, help="raw results")
    parser.add_argument("--quick", action="store_true", help="tiny operators, one seed, no SLEPc/PRIMME")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", type=int, nargs="*", default=None, help="indices of the operators to run")
    parser.add_argument("--slepc-python", default=None, help="interpreter with slepc4py ($SLEPC_PYTHON)")
    parser.add_argument("--slepc-timeout", type=float, default=1800.0)
    parser.add_argument("--no-slepc", action="store_true")
    parser.add_argument("--no-primme", action="store_true")
    parser.add_argument("--no-crossover", action="store_true", help="skip the --method auto measurement")
    parser.add_argument("--no-scan", action="store_true", help="only the --method auto measurement")
    parser.add_argument("--crossover-threads", type=int, nargs="*", default=None, help="default: cores, then 1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared 2-core machine)")
    parser.add_argument("--label", default="", help="a name for this run in the report (e.g. before/after)")
    parser.add_argument("--region", default="full-scan", help="the BENCHMARKS.md region this run writes")
    parser.add_argument("--before", type=Path, default=None, help="JSON of an earlier run: a before/after table")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from . import auto_crossover, full_scan_report

    args = parse(argv)
    if args.quick:
        args.no_slepc = args.no_primme = True
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.full_scan " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "label": args.label,
        "versions": full_scan_report.versions(args),
        "operators": [],
    }
    if not args.no_scan:
        _warm_up()
        seeds = [0] if args.quick else list(range(args.seeds))
        chosen = QUICK_OPERATORS if args.quick else OPERATORS
        for spec, eps in [chosen[i] for i in args.only] if args.only is not None else chosen:
            results["operators"].append(run_operator(spec, eps, seeds, args))
    if not args.no_crossover:
        # what a user gets (torch's default: one thread per core) and one thread; --quick: one thread
        counts = args.crossover_threads or ([1] if args.quick else sorted({1, os.cpu_count() or 1}, reverse=True))
        results["crossover"] = [auto_crossover.measure(quick=args.quick, threads=t) for t in counts]
    results["seconds"] = time.perf_counter() - started
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    if args.output:
        full_scan_report.write(args.output, results, region=args.region, before=args.before)
    print(full_scan_report.render_scan(results) if results["operators"] else "", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
