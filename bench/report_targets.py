"""The targets of ``BENCHMARKS.md``: each ``(target, measured, met)``, one function per target."""

from __future__ import annotations

from typing import Any

from .report_format import _label, _met, _n, _num, _ok, _record, _sci, _secs, _table, _value, _wrong  # noqa: F401
from .worker import (
    ARPACK_LM,
    ARPACK_LR,
    ARPACK_OMEGA,
    OURS_KS,
    OURS_OMEGA,
    PROBE,
)

HUGE_N = 1_048_576
LARGE_N = 65_536
OVERHEAD_TARGET = 1.25
BATCHED_TARGET = 5.0
HELP_TARGET = 0.3
SCAN_TARGET = 1.0
AUTO_TARGET = 1.10


def _omega(results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]) -> None:
    """omega: Lanczos matvecs against ARPACK eigsh."""
    # omega: matvecs vs eigsh
    parts, flags = [], []
    for p in problems:
        ours, arpack = _record(p, OURS_OMEGA), _record(p, ARPACK_OMEGA)
        if ours is None or arpack is None:
            continue
        ratio = ours["jvp"] / max(1, arpack["jvp"])
        flags.append(ratio <= 1.0 and _ok(ours))
        parts.append(
            f"{_label(p)}: {ours['jvp']}/{arpack['jvp']} = {ratio:.2f}" + ("" if _ok(ours) else " (residual!)")
        )
    out.append(
        (
            "omega: no more Sym(J_F) matvecs than ARPACK eigsh at the same residual, on every operator",
            "<br>".join(parts) or "-",
            all(flags) if flags else None,
        )
    )


def _alpha_rho(
    results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]
) -> None:
    """alpha and rho from one Krylov-Schur run against two ARPACK eigs runs."""
    # alpha + rho: one Krylov-Schur run vs two eigs runs
    parts, flags = [], []
    for p in problems:
        ours, lr, lm = _record(p, OURS_KS), _record(p, ARPACK_LR), _record(p, ARPACK_LM)
        if ours is None or lr is None or lm is None:
            continue
        total = lr["jvp"] + lm["jvp"]
        ratio = ours["jvp"] / max(1, total)
        flags.append(ratio < 1.0 and _ok(ours))
        parts.append(
            f"{_label(p)}: {ours['jvp']}/({lr['jvp']}+{lm['jvp']}) = {ratio:.2f}"
            + ("" if _ok(ours) else " (residual!)")
        )
    out.append(
        (
            "alpha and rho together: fewer J_F matvecs than ARPACK's eigs(LR) + eigs(LM on M)",
            "<br>".join(parts) or "-",
            all(flags) if flags else None,
        )
    )


def _never_wrong(
    results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]
) -> None:
    """Never wrong where ARPACK's structured start (v0 = ones) is."""
    # never wrong where ARPACK's structured start is
    parts, flags = [], []
    for p in problems:
        structured = [r for r in p.get("records", []) if r.get("start") == "ones" and r["solver"].startswith("ARPACK")]
        if not structured:
            continue
        arpack_wrong = [q for r in structured for q, v in r.get("quantities", {}).items() if v.get("wrong")]
        ours_recs = [_record(p, OURS_OMEGA), _record(p, OURS_KS), _record(p, PROBE)]
        ours_wrong = any(_wrong(r) for r in ours_recs)
        if arpack_wrong:
            flags.append(not ours_wrong)
            parts.append(
                f"{_label(p)}: ARPACK(ones) wrong on {', '.join(arpack_wrong)}; ours "
                + ("WRONG" if ours_wrong else "right")
            )
        else:
            parts.append(f"{_label(p)}: ARPACK(ones) right; ours " + ("WRONG" if ours_wrong else "right"))
            if ours_wrong:
                flags.append(False)
    out.append(
        (
            "never a wrong answer where ARPACK's structured start (v0 = ones) gives one",
            "<br>".join(parts) or "-",
            (all(flags) if flags else None),
        )
    )


def _auto(results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]) -> None:
    """`--method auto` within 10% of the faster path."""
    # --method auto
    cross = results.get("crossover") or {}
    if "rows" in cross:
        parts = [f"n={r['n']}: {r['auto']} {r['auto_ratio']:.2f}x the faster" for r in cross["rows"]]
        out.append(
            (
                f"--method auto (dense_max_n = {cross['dense_max_n']}) within 10% of the faster of dense and "
                "Krylov at every size",
                "<br>".join(parts),
                bool(cross["auto_within_10pct_everywhere"]),
            )
        )
    else:
        out.append(("--method auto within 10% of the faster at every size", cross.get("error", "not run"), None))


def _overhead(results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]) -> None:
    """Overhead wall / (matvecs x t_matvec) at n >= 65,536."""
    # overhead at n >= 65,536
    parts, flags = [], []
    for p in problems:
        if _n(p) < LARGE_N:
            continue
        for rec in p.get("records", []):
            if rec.get("start") != "random" or "error" in rec:
                continue
            if not (rec["solver"].startswith("ours:") or rec["solver"] == PROBE):
                continue
            ov = rec.get("overhead")
            if ov is None:
                continue
            flags.append(ov <= OVERHEAD_TARGET)
            in_run = rec.get("in_run_overhead")
            parts.append(
                f"{_label(p)}, {rec['solver'].split(' (')[0]}: {ov:.2f}" + (f" (in-run {in_run:.2f})" if in_run else "")
            )
    out.append(
        (
            f"overhead ratio wall / (matvecs x t_matvec) <= {OVERHEAD_TARGET} at n >= 65,536 (ours)",
            "<br>".join(parts) or "-",
            all(flags) if flags else None,
        )
    )


def _batched(results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]) -> None:
    """The batched probe's speed-up."""
    batched = results.get("batched") or {}
    if "speedup" in batched:
        out.append(
            (
                f"batched: B = {batched['count']} fixed points together >= {BATCHED_TARGET:g}x faster than one by one",
                f"{batched['separate_median_s']:.3g} s / {batched['batched_median_s']:.3g} s = "
                f"{batched['speedup']:.1f}x",
                batched["speedup"] >= BATCHED_TARGET,
            )
        )
    else:
        out.append(("batched B = 64 >= 5x faster", batched.get("error", "not run"), None))


def _startup(results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]) -> None:
    """`--help` and the 512-sample scan start-up."""
    start = results.get("startup") or {}
    if "--help" in start:
        help_s = start["--help"]["median_s"]
        out.append(
            (
                f"`spectral-probe --help` < {HELP_TARGET} s",
                f"{help_s:.3f} s",
                help_s < HELP_TARGET and start["--help"]["exit_code"] == 0,
            )
        )
        beyond = start["scan_beyond_torch_s"]
        out.append(
            (
                f'full `scan` of the 512 sample < {SCAN_TARGET:g} s beyond `python -c "import torch"`',
                f"{start['scan']['median_s']:.2f} s - {start['import torch']['median_s']:.2f} s = {beyond:.2f} s",
                beyond < SCAN_TARGET and start["scan"]["exit_code"] == 0,
            )
        )
    else:
        out.append(("start-up", start.get("error", "not run"), None))


def _huge(results: dict[str, Any], problems: list[dict[str, Any]], out: list[tuple[str, str, bool | None]]) -> None:
    """The n = 1,048,576 full scan completes."""
    huge = [p for p in results.get("problems", []) if _n(p) >= HUGE_N]
    if huge:
        p = huge[0]
        rec = _record(p, PROBE)
        if rec is None:
            out.append(("n = 1,048,576 full scan completes in float64", p.get("error", "probe failed"), False))
        else:
            verdict = rec.get("extra", {}).get("verdict")
            out.append(
                (
                    "n = 1,048,576 full scan (omega, alpha, rho, checks) completes in float64 on this machine",
                    f"{rec['median_s']:.0f} s, {rec['jvp']} jvp + {rec['vjp']} vjp, verdict {verdict}",
                    verdict is not None and verdict != "inconclusive",
                )
            )
    else:
        out.append(("n = 1,048,576 full scan completes", "not run (size not selected)", None))


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """``(target, measured, met)`` for every target of the issue."""
    problems = [p for p in results.get("problems", []) if "error" not in p]
    out: list[tuple[str, str, bool | None]] = []
    for target in (_omega, _alpha_rho, _never_wrong, _auto, _overhead, _batched, _startup, _huge):
        target(results, problems, out)
    return out
