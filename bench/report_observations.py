"""The observations at the end of ``BENCHMARKS.md``: findings for the solver owners, from the numbers."""

from __future__ import annotations

import math
from typing import Any

from .report_format import _label, _met, _n, _num, _ok, _record, _sci, _secs, _table, _value, _wrong  # noqa: F401
from .worker import (
    ARPACK_LM,
    ARPACK_LR,
    ARPACK_OMEGA,
    DENSE,
    OURS_KS,
    OURS_OMEGA,
    OURS_RR,
    PROBE,
)


def _solver_notes(p: dict[str, Any], label: str, notes: list[str]) -> None:
    """Our single solvers against ARPACK on one problem."""
    ours, arpack = _record(p, OURS_OMEGA), _record(p, ARPACK_OMEGA)
    if ours and arpack:
        if ours["jvp"] > arpack["jvp"]:
            notes.append(
                f"{label}: Lanczos (omega) needs {ours['jvp']} Sym matvecs, ARPACK eigsh {arpack['jvp']} "
                f"(+{100 * (ours['jvp'] / arpack['jvp'] - 1):.0f}%)."
            )
        if not _ok(ours):
            notes.append(f"{label}: Lanczos (omega) missed the 1e-8 residual target even after tightening.")
    ks, lr, lm = _record(p, OURS_KS), _record(p, ARPACK_LR), _record(p, ARPACK_LM)
    if ks and lr and lm:
        if ks["jvp"] >= lr["jvp"] + lm["jvp"]:
            notes.append(
                f"{label}: Krylov-Schur (alpha + rho) needs {ks['jvp']} matvecs, ARPACK's two eigs runs "
                f"{lr['jvp']} + {lm['jvp']}."
            )
        elif ks["jvp"] > max(lr["jvp"], lm["jvp"]):
            notes.append(
                f"{label}: Krylov-Schur (alpha + rho, one run) {ks['jvp']} matvecs vs ARPACK's single runs "
                f"LR {lr['jvp']} and LM {lm['jvp']}: the shared run costs more than either alone."
            )
        if not _ok(ks):
            notes.append(f"{label}: Krylov-Schur missed the 1e-8 residual target even after tightening.")
    rr = _record(p, OURS_RR)
    if rr and lm:
        notes.append(
            f"{label}: 2-D block Rayleigh-Ritz (rho alone) {rr['jvp']} matvecs "
            f"({rr.get('extra', {}).get('sweeps', '?')} sweeps) vs ARPACK eigs(LM) on M {lm['jvp']} "
            f"({rr['jvp'] / max(1, lm['jvp']):.1f}x)" + ("" if _ok(rr) else "; missed the residual target") + "."
        )


def _probe_notes(p: dict[str, Any], label: str, notes: list[str]) -> None:
    """The whole probe, memory, the dense path, overheads and hessian-eigenthings on one problem."""
    probe = _record(p, PROBE)
    if probe:
        verdict = probe.get("extra", {}).get("verdict")
        reason = probe.get("extra", {}).get("reason")
        notes.append(
            f"{label}: the whole probe spends {probe['jvp']} jvp + {probe['vjp']} vjp"
            + (f" (overhead {probe['overhead']:.2f})" if probe.get("overhead") else "")
            + f", verdict {verdict}"
            + (f" ({reason})" if reason else "")
            + "."
        )
        if _wrong(probe):
            notes.append(f"{label}: the probe's answer is WRONG against the reference.")
    setup_peak, params = p.get("setup_peak_mib") or 0, p.get("params_mib") or 0
    if params > 16 and setup_peak > 0.5 * params:
        notes.append(
            f"{label}: `JacobianOperators` set-up adds {setup_peak:.0f} MiB at its peak, about "
            f"{setup_peak / params:.1f}x the parameters ({params:.0f} MiB): a parameter-sized temporary."
        )
    dense = _record(p, DENSE)
    if dense and probe:
        notes.append(f"{label}: dense path {dense['median_s']:.3g} s vs Krylov probe {probe['median_s']:.3g} s.")
    heavy = [
        f"{rec['solver'].split(' (')[0].removeprefix('ours: ')} {rec['overhead']:.1f}"
        for rec in p.get("records", [])
        if rec.get("start") == "random" and rec["solver"].startswith("ours:") and (rec.get("overhead") or 0) > 2
    ]
    if heavy:
        notes.append(
            f"{label}: overhead above 2 ({', '.join(heavy)}): at a matvec of "
            f"{p['matvec_seconds'].get('jvp', 0):.1e} s the Python loop and the small dense work dominate."
        )
    he_default = _record(p, "hessian-eigenthings lanczos (defaults)")
    if he_default and _wrong(he_default):
        q = he_default["quantities"]["omega"]
        ref = p["reference"]
        end = "lambda_min, " if abs(q["scalar"] - ref.get("sym_min", math.inf)) < 1e-6 * ref["norm_sym"] else ""
        notes.append(
            f"{label}: hessian-eigenthings with its defaults (which='LM') returns {q['scalar']:.6g} "
            f"({end}the largest-MAGNITUDE end of Sym(J_F)) instead of omega = "
            f"{p['reference']['reference_values']['omega']:.6g}."
        )


def observations(results: dict[str, Any]) -> list[str]:
    """Findings for the solver owners, derived from the numbers (no judgement calls hard-coded)."""
    notes = []
    for p in results.get("problems", []):
        if "error" in p:
            notes.append(f"{_label(p)}: the worker failed ({p['error']}).")
            continue
        label = _label(p)
        for rec in p.get("records", []):
            if "error" in rec:
                notes.append(f"{label}: {rec['solver']} did not finish ({rec['error']}).")
        _solver_notes(p, label, notes)
        _probe_notes(p, label, notes)
    return [f"* {n}" for n in notes]
