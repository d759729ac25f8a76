"""The line-up of solvers run on one benchmark problem (ours, ARPACK, hessian-eigenthings, dense, the probe).

Each ``bench.record(...)`` runs one solver (tightening its tolerance to the residual target) and keeps its
record; the ARPACK tolerances are derived from our answer's modulus so both meet the same residual.
"""

from __future__ import annotations

from typing import Any

import torch

from . import competitors as comp
from .worker import ARPACK_LM, ARPACK_LR, ARPACK_OMEGA, DENSE, OURS_KS, OURS_OMEGA, OURS_RR, PROBE, TARGET_RESIDUAL

#: The Krylov dimension of our solvers in the benchmark (ARPACK's variants are run at 30 too).
KDIM = {"krylov_dim": 30}


def run_all(bench: Any) -> None:  # noqa: ANN401 (a bench.worker.ProblemBench; imported lazily, no cycle)
    """omega, alpha and rho by every solver, the dense path and the probe, then the structured starts."""
    variants = bool(bench.config.get("variants", True))
    omega_hint = _omega(bench, variants)
    alpha_hint, rho_hint = _alpha_rho(bench, variants)
    _dense_and_probe(bench)
    if bench.config.get("structured", True):
        _structured(bench, variants, omega_hint, alpha_hint, rho_hint)


def _omega(bench: Any, variants: bool) -> float | None:  # noqa: ANN401
    """omega: ours, ARPACK eigsh (two ncv), hessian-eigenthings; returns the modulus hint for ARPACK."""
    cfg, n, kdim = bench.config, bench.n, KDIM
    ours_omega = bench.record(
        OURS_OMEGA,
        "omega",
        lambda c, tol: comp.ours_lanczos(c, bench.x0, tol, max_restarts=10_000, **kdim),
        tol=TARGET_RESIDUAL,
    )
    omega_hint = bench.modulus_hint("omega", ours_omega)
    bench.record(
        ARPACK_OMEGA,
        "omega",
        lambda c, tol: comp.arpack_eigsh(c, bench.v0, tol),
        tol=bench.arpack_tol("omega", omega_hint),
        note="ncv=20 (SciPy default)",
    )
    if variants:
        bench.record(
            "ARPACK eigsh (LA, ncv=30)",
            "omega",
            lambda c, tol: comp.arpack_eigsh(c, bench.v0, tol, ncv=min(30, n - 1)),
            tol=bench.arpack_tol("omega", omega_hint),
            note="same Krylov dimension as ours",
        )
    if cfg.get("hessian_eigenthings", True) and comp.hessian_eigenthings_available():
        bench.record(
            "hessian-eigenthings lanczos (defaults)",
            "omega",
            lambda c, tol: comp.he_lanczos(c, bench.seed),
            calibrate=False,
            note="k=10, max_iter=min(2k, n-1), which='LM', one run, no restart",
        )
        bench.record(
            "hessian-eigenthings lanczos (which='LA')",
            "omega",
            lambda c, tol: comp.he_lanczos(c, bench.seed, which="LA"),
            calibrate=False,
            note="other arguments at their defaults",
        )
        if variants:
            he_grown(bench)
    return omega_hint


def _alpha_rho(bench: Any, variants: bool) -> tuple[float | None, float | None]:  # noqa: ANN401
    """alpha and rho: one Krylov-Schur run, ARPACK's two eigs runs, and our 2-D block RR on M."""
    eps, n, kdim = bench.problem.eps, bench.n, KDIM
    ours_ks = bench.record(
        OURS_KS,
        "alpha+rho",
        lambda c, tol: comp.ours_krylov_schur(c, bench.x0, tol, eps, max_restarts=10_000, **kdim),
        tol=TARGET_RESIDUAL,
        cost="jf",
    )
    alpha_hint = bench.modulus_hint("alpha", ours_ks)
    rho_hint = bench.modulus_hint("rho", ours_ks)
    bench.record(
        ARPACK_LR,
        "alpha+rho",
        lambda c, tol: comp.arpack_eigs_lr(c, bench.v0, tol),
        tol=bench.arpack_tol("alpha", alpha_hint),
        cost="jf",
        note="ncv=20 (SciPy default)",
    )
    bench.record(
        ARPACK_LM,
        "alpha+rho",
        lambda c, tol: comp.arpack_eigs_lm_m(c, bench.v0, tol),
        tol=bench.arpack_tol("rho", rho_hint),
        cost="m",
        note="ncv=20 (SciPy default)",
    )
    if variants:
        bench.record(
            "ARPACK eigs (LR, ncv=30) on J_F",
            "alpha+rho",
            lambda c, tol: comp.arpack_eigs_lr(c, bench.v0, tol, ncv=min(30, n - 1)),
            tol=bench.arpack_tol("alpha", alpha_hint),
            cost="jf",
        )
        bench.record(
            "ARPACK eigs (LM, ncv=30) on M",
            "alpha+rho",
            lambda c, tol: comp.arpack_eigs_lm_m(c, bench.v0, tol, ncv=min(30, n - 1)),
            tol=bench.arpack_tol("rho", rho_hint),
            cost="m",
        )
    bench.record(
        OURS_RR,
        "rho",
        lambda c, tol: comp.ours_block_rr(c, bench.block0, tol, max_iters=bench.budget // 2),
        tol=TARGET_RESIDUAL,
        cost="m_block2",
    )
    return alpha_hint, rho_hint


def _dense_and_probe(bench: Any) -> None:  # noqa: ANN401
    """The dense path (up to ``dense_max_n``) and the whole probe."""
    cfg, eps, n = bench.config, bench.problem.eps, bench.n
    if n <= int(cfg.get("dense_max_n", 2048)):
        bench.record(
            DENSE,
            "all",
            lambda c, tol: comp.dense_path(bench.ops),
            calibrate=False,
            cost="jvp",
            reps=bench.reps if n <= 1024 else min(bench.reps, 3),
        )
    bench.record(
        PROBE,
        "all",
        lambda c, tol: comp.ours_probe(bench.problem.nc_force, bench.problem.z_star, bench.problem.c, eps),
        calibrate=False,
        cost="probe",
        reps=bench.reps if n < 65_536 else 1,
        note="default tol eps^(2/3), two random starts per quantity, block RR, ||M|| bound",
    )


def _structured(  # noqa: PLR0913
    bench: Any,  # noqa: ANN401
    variants: bool,
    omega_hint: float | None,
    alpha_hint: float | None,
    rho_hint: float | None,
) -> None:
    """The structured start ``v0 = ones``: ARPACK (where it can go wrong) and ours for comparison."""
    eps, n, kdim = bench.problem.eps, bench.n, KDIM
    bench.record(
        "ARPACK eigsh (LA), v0 = ones",
        "structured",
        lambda c, tol: comp.arpack_eigsh(c, bench.ones, tol),
        tol=bench.arpack_tol("omega", omega_hint),
        start="ones",
        reps=1,
    )
    bench.record(
        "ARPACK eigs (LR) on J_F, v0 = ones",
        "structured",
        lambda c, tol: comp.arpack_eigs_lr(c, bench.ones, tol),
        tol=bench.arpack_tol("alpha", alpha_hint),
        start="ones",
        cost="jf",
        reps=1,
    )
    bench.record(
        "ARPACK eigs (LM) on M, v0 = ones",
        "structured",
        lambda c, tol: comp.arpack_eigs_lm_m(c, bench.ones, tol),
        tol=bench.arpack_tol("rho", rho_hint),
        start="ones",
        cost="m",
        reps=1,
    )
    if variants:
        ones = torch.ones(1, n, dtype=torch.float64)
        bench.record(
            "ours: lanczos from ones (the probe never does this)",
            "structured",
            lambda c, tol: comp.ours_lanczos(c, ones, tol, max_restarts=10_000, **kdim),
            tol=TARGET_RESIDUAL,
            start="ones",
            reps=1,
        )
        bench.record(
            "ours: krylov_schur from ones (the probe never does this)",
            "structured",
            lambda c, tol: comp.ours_krylov_schur(c, ones, tol, eps, max_restarts=10_000, **kdim),
            tol=TARGET_RESIDUAL,
            start="ones",
            cost="jf",
            reps=1,
        )


def he_grown(bench: Any) -> None:  # noqa: ANN401
    n = bench.n
    total = 0
    max_iter = 20
    last = None
    while True:
        max_iter = min(max_iter, n - 1)
        rec = bench.record(
            f"hessian-eigenthings lanczos (which='LA', max_iter={max_iter})",
            "omega-he-grown",
            lambda c, tol, m=max_iter: comp.he_lanczos(c, bench.seed, which="LA", max_iter=m),
            calibrate=False,
            reps=1,
        )
        bench.records.pop()
        total += rec.get("jvp", 0)
        last = rec
        q = rec.get("quantities", {}).get("omega")
        if (q and q["residual_ok"]) or max_iter >= n - 1 or total > bench.budget or "error" in rec:
            break
        max_iter *= 2
    assert last is not None
    last["solver"] = "hessian-eigenthings lanczos (which='LA', max_iter doubled to the target)"
    last["group"] = "omega"
    last["notes"] = [*last.get("notes", []), f"final max_iter={max_iter}; {total} Sym matvecs over all the runs"]
    last["extra"] = {**last.get("extra", {}), "total_matvecs": total, "max_iter": max_iter}
    bench.records.append(last)
