"""The full-scan and ``--method auto`` sections of ``BENCHMARKS.md`` (:mod:`bench.full_scan` writes them).

Each section is its own marked region (:mod:`bench.markers`): ``full-scan`` and ``method-auto`` (this run;
``--region full-scan-before`` writes ``full-scan-before`` and ``method-auto-before``, a run kept for comparison).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

from . import rivals
from .markers import write_region
from .product_kinds import KIND_LABELS

SCAN_TARGET, SCAN_STRETCH, CHECKS_TARGET, OVERHEAD_TARGET, OVERHEAD_MIN_N = 1.0, 0.75, 0.5, 1.25, 65_536


def versions(args: argparse.Namespace) -> dict[str, Any]:
    import numpy
    import scipy
    import torch

    out: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "torch_threads": torch.get_num_threads(),
        "cores": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "primme": None if args.no_primme else rivals.primme_version(),
    }
    if out["primme"] is None:
        out["primme_skipped"] = "--no-primme" if args.no_primme else "primme not installed (make bench-competitors)"
    if args.no_slepc:
        out["slepc"], out["slepc_skipped"] = None, "--no-slepc"
    else:
        out["slepc"], out["slepc_skipped"] = rivals.slepc_version(rivals.slepc_python(args.slepc_python))
    return out


def _n(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def _mark(ok: bool | None) -> str:
    return "not measured" if ok is None else ("**met**" if ok else "**MISSED**")


def _label(op: dict[str, Any]) -> str:
    return f"{op['label']}, eps {op['eps']:g}"


def products_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| operator | our solvers alone (omega + alpha + rho) | our full scan (default --tol) "
        "| our full scan at --tol 1e-8 | ARPACK, three runs "
        "| SLEPc, three runs | SLEPc ncv 40, three runs | PRIMME, omega only (ours) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for op in results["operators"]:
        s = op["summary"]
        primme = f"{_n(s['primme'])} ({_n(s['ours_omega'])})" if s["primme"] is not None else "-"
        lines.append(
            f"| {_label(op)} | {_n(s['ours'])} | {_n(s['scan'])} | {_n(s.get('scan_tol'))} | {_n(s['arpack'])} "
            f"| {_n(s['slepc'])} "
            f"| {_n(s['slepc_ncv40'])} | {primme} |"
        )
    return lines


def seconds_table(results: dict[str, Any]) -> list[str]:
    kinds = list(KIND_LABELS)
    lines = [
        "| operator | ours alone s | full scan s | ARPACK s | SLEPc s | SLEPc ncv 40 s | PRIMME s | "
        + " | ".join(f"one {KIND_LABELS[k]} ms" for k in kinds[:3])
        + " | scan overhead (in-run) |",
        "|---|---|---|---|---|---|---|" + "---|" * 3 + "---|",
    ]
    for op in results["operators"]:
        s, t = op["summary"], op["summary"]["seconds"]
        per = op["per_kind_seconds"]
        lines.append(
            f"| {_label(op)} | {_n(t['ours'], 3)} | {_n(t['scan'], 3)} | {_n(t['arpack'], 3)} "
            f"| {_n(t.get('slepc'), 3)} | {_n(t.get('slepc_ncv40'), 3)} | {_n(t['primme'], 3)} | "
            + " | ".join(_n(1e3 * per[k], 3) for k in kinds[:3])
            + f" | {_n(s['scan_overhead'], 2)} ({_n(s['scan_in_run_overhead'], 2)}) |"
        )
    return lines


def kinds_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| operator | "
        + " | ".join(KIND_LABELS.values())
        + " | probe's own count (by kind) | not in the probe's count "
        "| verdict |",
        "|---|" + "---|" * len(KIND_LABELS) + "---|---|---|",
    ]
    for op in results["operators"]:
        s = op["summary"]
        scan0 = op["runs"]["scan"][0]
        own = ", ".join(f"{k} {v:,}" for k, v in scan0["matvecs_by_kind"].items())
        lines.append(
            f"| {_label(op)} | "
            + " | ".join(_n(s["scan_by_kind"].get(k)) for k in KIND_LABELS)
            + f" | {_n(s['scan_self_reported'])} ({own}) | {_n(scan0['products'] - scan0['self_reported'])} "
            f"| {scan0['verdict']} |"
        )
    return lines


def targets(results: dict[str, Any]) -> list[str]:
    ops = results["operators"]
    scan = [(o, o["summary"]["scan_over_baseline"]) for o in ops]
    checks = [(o, o["summary"]["checks_over_solve"]) for o in ops]
    big = [o for o in ops if o["spec"]["n"] >= OVERHEAD_MIN_N]

    def cell(pairs: list[tuple[dict, float | None]], what: str) -> str:
        return "<br>".join(f"{_label(o)}: {what(o)} = {_n(r, 2)}" for o, r in pairs)

    def base(o: dict, key: str = "scan") -> str:
        s = o["summary"]
        return f"{_n(s.get(key))}/{_n(s['slepc'] if s['baseline'] == 'SLEPc' else s['arpack'])} ({s['baseline']})"

    matched = [(o, o["summary"].get("scan_tol_over_baseline")) for o in ops]
    matched_checks = [(o, o["summary"].get("checks_tol_over_solve")) for o in ops]

    def ok(pairs: list[tuple[dict, float | None]], limit: float) -> bool | None:
        return None if not pairs or any(r is None for _, r in pairs) else all(r <= limit for _, r in pairs)

    rows = [
        ("full scan <= 1.0x the products of SLEPc's three runs (ARPACK's where SLEPc is absent)", cell(scan, base),
         ok(scan, SCAN_TARGET)),
        ("stretch: full scan <= 0.75x", cell(scan, base), ok(scan, SCAN_STRETCH)),
        ("cross-checks (full scan - solvers alone) <= 0.5x the solvers alone", cell(
            checks, lambda o: f"({_n(o['summary']['scan'])} - {_n(o['summary']['ours'])})/{_n(o['summary']['ours'])}"
        ), ok(checks, CHECKS_TARGET)),
        ("the same at the competitors' accuracy (`--tol 1e-8`): full scan <= 1.0x SLEPc's three runs",
         cell(matched, lambda o: base(o, "scan_tol")), ok(matched, SCAN_TARGET)),
        ("the same at `--tol 1e-8`: cross-checks <= 0.5x the solvers alone", cell(
            matched_checks,
            lambda o: f"({_n(o['summary'].get('scan_tol'))} - {_n(o['summary']['ours'])})/{_n(o['summary']['ours'])}",
        ), ok(matched_checks, CHECKS_TARGET)),
    ]  # fmt: skip
    if big:
        over = [(o, o["summary"]["scan_overhead"]) for o in big]
        rows.append(("full-scan overhead (wall / sum of products x one product's time) <= 1.25 at n >= 65,536",
                     cell(over, lambda o: "overhead"), ok(over, OVERHEAD_TARGET)))  # fmt: skip
    else:
        rows.append(("overhead <= 1.25 at n >= 65,536", "no operator that large in this run", None))
    residuals = all(o["summary"]["all_residuals_ok"] for o in ops)
    rows.append(("every run (ours, ARPACK, PRIMME) meets the true residual 1e-8 ||A||_2", "checked with uncounted "
                 "products", residuals))  # fmt: skip
    lines = ["| target | measured (medians of the seeds) | result |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {_mark(result)} |" for name, value, result in rows]
    return lines


def render_scan(results: dict[str, Any], before: dict[str, Any] | None = None, title: str = "") -> str:
    v = results["versions"]
    slepc = (
        f"SLEPc {v['slepc']} (Krylov-Schur, slepc4py)"
        if v.get("slepc")
        else f"SLEPc: skipped ({v.get('slepc_skipped')})"
    )
    primme = f"PRIMME {v['primme']} (GD+k)" if v.get("primme") else f"PRIMME: skipped ({v.get('primme_skipped')})"
    seeds = len(results["operators"][0]["runs"]["scan"]) if results["operators"] else 0
    out = [
        f"## Full trusted scan vs three untrusted runs{(' - ' + title) if title else ''}",
        "",
        f"Generated by `{results['command']}` on {results['started']} in {results['seconds'] / 60:.1f} min; "
        f"{slepc}; {primme}; SciPy {v['scipy']} ARPACK; torch {v['torch']} with {v['torch_threads']} thread(s) on "
        f"{v['cores']} shared cores (load {', '.join(f'{x:.1f}' for x in v['load_average'] or [])}). "
        f"Median of {seeds} seed(s). **Products** (every Jacobian product; a Sym(J_F) product is two, J v and "
        "J^T u) to a TRUE residual of 1e-8 ||A||_2, checked with uncounted products; they are deterministic and "
        "are the primary figure. Times are medians on a shared, noisy machine.",
        "",
        *products_table(results),
        "",
        *targets(results),
        "",
        "Products of the full scan by kind (counted outside the probe, on `JacobianOperators`, its set-up "
        "included), and the probe's own count (`matvecs`, `matvecs_by_kind`) with what it leaves out:",
        "",
        *kinds_table(results),
        "",
        "Wall seconds (medians of the seeds) and one product of each kind alone:",
        "",
        *seconds_table(results),
    ]
    if before is not None and before.get("operators"):
        out += ["", *before_after(before, results)]
    out += ["", _method_notes()]
    return "\n".join(out)


def before_after(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old = {o["label"]: o["summary"] for o in before["operators"]}
    lines = [
        f"Before ({before['started']}) and after ({after['started']}), products:",
        "",
        "| operator | solvers alone | full scan | scan / SLEPc | checks / solve |",
        "|---|---|---|---|---|",
    ]
    for op in after["operators"]:
        a, b = op["summary"], old.get(op["label"])
        if b is None:
            continue
        lines.append(
            f"| {_label(op)} | {_n(b['ours'])} -> {_n(a['ours'])} | {_n(b['scan'])} -> {_n(a['scan'])} "
            f"| {_n(b['scan_over_baseline'], 2)} -> {_n(a['scan_over_baseline'], 2)} "
            f"| {_n(b['checks_over_solve'], 2)} -> {_n(a['checks_over_solve'], 2)} |"
        )
    return lines


def _method_notes() -> str:
    return (
        "How: `python -m bench.full_scan` (bench/full_scan.py). Our solvers alone: Lanczos (omega) and ONE "
        "Krylov-Schur run on J_F (alpha and rho), krylov_dim 30, tol 1e-8. Full scan: `probe_fixed_points` with "
        "`ProbeOptions(seed=s)` (the real defaults: default tol u^(2/3) = 3.7e-11, every cross-check), and again "
        "with `tol=1e-8`, the accuracy every competitor is held to. ARPACK: eigsh LA on Sym(J_F), "
        "eigs LR on J_F, eigs LM on M, tol scaled so that ARPACK's `||r|| <= tol |theta|` is the normwise target. "
        "SLEPc (bench/slepc_worker.py, its own venv, a PETSc shell matrix calling the same torch product): "
        "Krylov-Schur, nev 1, HEP/NHEP, its defaults (ncv = max(2 nev, nev + 15) = 16) and ncv 40, absolute "
        "convergence test `||r|| <= 1e-8 ||A||_2`. PRIMME: `primme.eigsh(which='LA', method='PRIMME_GD_plusK')` "
        "with the same absolute test. Every run's TRUE residual is checked (uncounted); a miss tightens its "
        "tolerance 10x (up to 3x). Overhead = wall / sum over kinds of (products x one product of that kind "
        "timed alone); in brackets wall / time spent inside the products in that run. Cross-checks = full scan "
        "minus our solvers alone, as in issue 12."
    )


def render_crossover(cross: dict[str, Any]) -> str:
    lines = [
        f"## `--method auto`: interleaved dense / Krylov / auto repeats, {cross['threads']} thread(s)",
        "",
        f"`dense_max_n` = {cross['dense_max_n']}; torch threads {cross['threads']}; {cross['reps']} interleaved "
        "repetitions per size (dense, krylov, "
        "auto, dense, ...; bench/auto_crossover.py), hopfield operator of `make bench`. Dense/Krylov is the median "
        "of the PAIRED ratios (drift cancels within a pair).",
        "",
        "| n | dense s | krylov s | auto s | dense / krylov (paired) | faster | auto takes | auto / better | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in cross["rows"]:
        m = r["median_s"]
        lines.append(
            f"| {r['n']} | {m['dense']:.4f} | {m['krylov']:.4f} | {m['auto']:.4f} "
            f"| {r['dense_over_krylov_paired']:.2f} "
            f"| {r['faster']} | {r['auto_picks']} | {r['auto_ratio']:.2f} (measured {r['auto_measured_ratio']:.2f}) "
            f"| {_mark(r['within'])} |"
        )
    lines += [
        "",
        f"Target `--method auto` within 10% of the better path at every size: {_mark(cross['within_everywhere'])}. "
        f"Dense is faster at every size up to {cross['recommended_dense_max_n']} "
        f"(first size where Krylov is faster: {cross['first_krylov_faster_n']}).",
    ]
    return "\n".join(lines)


def write(path: Path, results: dict[str, Any], region: str = "full-scan", before: Path | None = None) -> None:
    if results.get("operators"):
        old = json.loads(before.read_text()) if before is not None else None
        title = results.get("label") or ""
        write_region(path, region, render_scan(results, old, title))
    if results.get("crossover"):
        # a run kept for comparison (region full-scan-before) keeps its crossover beside it
        crossovers = results["crossover"] if isinstance(results["crossover"], list) else [results["crossover"]]
        body = "\n\n".join(render_crossover(c) for c in crossovers)
        write_region(path, region.replace("full-scan", "method-auto"), body)
