"""One benchmark task in its own process: ``python -m bench.worker CONFIG.json RESULT.json``.

Tasks (``config["task"]``):

* ``problem``: every solver on one problem (:func:`run_problem`);
* ``batched``: B fixed points of one checkpoint probed together vs one by one (:func:`bench.scenarios.batched`);
* ``crossover``: dense vs Krylov probes over a range of n (:func:`bench.scenarios.crossover`).

A fresh process per task keeps peak-memory readings and the allocator state of one problem away from
the next, and a crash or a time-out loses one task, not the run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from spectral_probe.jacobian import JacobianOperators

from . import competitors as comp
from .measure import PeakMemory, matvec_samples, median, overhead_ratio, relative_residual, rss_mib, timed
from .operators import Problem, ProblemSpec, build
from .reference import NORM_OF, reference, scalar

#: Every solver is run (its tolerance tightened if needed) until its TRUE residual is below this,
#: relative to ||A||_2 of the operator of the quantity.
TARGET_RESIDUAL = 1e-8
#: An answer further than this (times ||A||_2) from the reference is WRONG.
WRONG_TOL = 1e-6
#: Solver names the report looks up.
OURS_OMEGA = "ours: lanczos (LA)"
ARPACK_OMEGA = "ARPACK eigsh (LA)"
OURS_KS = "ours: krylov_schur (LR + LM of M, one run)"
ARPACK_LR = "ARPACK eigs (LR) on J_F"
ARPACK_LM = "ARPACK eigs (LM) on M"
OURS_RR = "ours: block Rayleigh-Ritz p=2 on M (alone)"
PROBE = "spectral-probe probe_fixed_points (krylov, all checks)"
DENSE = "dense path (J + torch.linalg)"

#: Tolerance tightenings tried before a run is reported as missing the residual target.
TIGHTENINGS = 3


# --------------------------------------------------------------------------------------------------
# One problem


class ProblemBench:
    """Runs and records every solver on one problem (see :func:`run_problem`)."""

    def __init__(self, problem: Problem, config: dict[str, Any]) -> None:
        self.problem = problem
        self.config = config
        self.reps = int(config.get("reps", 5))
        self.budget = int(config.get("budget", 20_000))
        self.seed = int(config.get("seed", 0))
        self.slow_seconds = float(config.get("slow_seconds", 10.0))
        self.max_seconds = float(config.get("max_seconds", 300.0))
        with PeakMemory() as memory:
            start = time.perf_counter()
            self.ops = JacobianOperators(problem.nc_force, problem.z_star, c=problem.c, eps=problem.eps)
            self.setup_seconds = time.perf_counter() - start
        self.setup_peak_mib = memory.peak_mib
        self.n = self.ops.n
        generator = torch.Generator().manual_seed(12345 + self.seed)
        self.x0 = torch.randn(1, self.n, generator=generator, dtype=torch.float64)
        self.block0 = torch.randn(1, 2, self.n, generator=generator, dtype=torch.float64)
        self.v0 = self.x0[0].numpy().copy()
        self.ones = np.ones(self.n)
        self.records: list[dict[str, Any]] = []
        self.ref: dict[str, Any] = {}
        self.t: dict[str, float] = {}
        self.t_initial: dict[str, float] = {}
        self.uncounted = {"omega": self.ops.sym, "alpha": self.ops.jf, "rho": self.ops.m}

    def counted(self) -> comp.CountedOps:
        return comp.CountedOps(self.ops, budget=self.budget, max_seconds=self.max_seconds)

    # -- set-up ----------------------------------------------------------------------------------

    def sample_matvecs(self, only: str | None = None) -> dict[str, list[float]]:
        """Times of each matvec kind applied alone (``only``: the kinds one cost model needs)."""
        reps = 10 if self.n < 65_536 else 5
        x = self.x0
        kinds: dict[str, Callable[[], list[float]]] = {
            "jvp": lambda: matvec_samples(self.ops.jvp, x, reps),
            "vjp": lambda: matvec_samples(self.ops.vjp, x, reps),
            "sym": lambda: matvec_samples(self.ops.sym, x, reps),
            "jf": lambda: matvec_samples(self.ops.jf, x, reps),
            "m": lambda: matvec_samples(self.ops.m, x, reps),
            "m_block2": lambda: [t / 2 for t in matvec_samples(self.ops.m, self.block0, reps)],
        }
        wanted = {"probe": ("jvp", "vjp")}.get(only or "", (only,) if only else tuple(kinds))
        return {kind: kinds[kind]() for kind in wanted}

    def measure_matvecs(self) -> None:
        """The initial median matvec times (reported with the problem)."""
        self.t = {kind: median(samples) for kind, samples in self.sample_matvecs().items()}
        self.t_initial = dict(self.t)

    def compute_reference(self) -> None:
        dense = self.n <= int(self.config.get("truth_max_n", 2048))
        start = time.perf_counter()
        self.ref = reference(self.ops, dense, self.seed)
        self.ref["seconds"] = time.perf_counter() - start

    # -- one solver --------------------------------------------------------------------------------

    def check(self, run: comp.SolverRun) -> dict[str, dict[str, Any]]:
        """True relative residual of every reported pair (uncounted matvecs)."""
        out: dict[str, dict[str, Any]] = {}
        for quantity, pair in run.pairs.items():
            norm = self.ref[NORM_OF[quantity]]
            if pair.vector is not None:
                residual = relative_residual(self.uncounted[quantity], pair.value, pair.vector, norm)
            elif pair.residual is not None:
                residual = pair.residual / norm
            else:
                residual = None
            out[quantity] = {
                "value": [pair.value.real, pair.value.imag],
                "scalar": scalar(quantity, pair.value),
                "rel_residual": residual,
                "residual_ok": residual is not None and residual <= TARGET_RESIDUAL,
            }
        return out

    def _calibrated(
        self, make: Callable[[comp.CountedOps, float | None], comp.SolverRun], tol: float | None, calibrate: bool
    ) -> tuple[Any, list[float | None], float | None, float, dict[str, dict[str, Any]], str | None]:
        """The first run at ``tol``, tightened 10x at a time (``TIGHTENINGS`` at most) until the TRUE
        residual target is met: ``(first, tried, tol used, matvec seconds in it, checks, error)``."""
        tried: list[float | None] = []
        current = tol
        first: tuple[comp.SolverRun, float, float | None] | None = None
        in_matvecs = 0.0
        checks: dict[str, dict[str, Any]] = {}
        error: str | None = None
        for attempt in range(TIGHTENINGS + 1):
            tried.append(current)
            counted = self.counted()
            try:
                with PeakMemory() as memory:
                    began = time.perf_counter()
                    run = make(counted, current)
                    seconds = time.perf_counter() - began
            except Exception as exc:  # a competitor that crashes is a finding, not a harness failure
                error = f"{type(exc).__name__}: {exc}"
                break
            first = (run, seconds, memory.peak_mib)
            in_matvecs = counted.seconds or float(run.extra.get("matvec_seconds", 0.0))
            checks = self.check(run)
            ok = bool(checks) and all(c["residual_ok"] for c in checks.values())
            if ok or not calibrate or current is None or attempt == TIGHTENINGS:
                break
            current = current / 10
        return first, tried, current, in_matvecs, checks, error

    def record(
        self,
        solver: str,
        group: str,
        make: Callable[[comp.CountedOps, float | None], comp.SolverRun],
        *,
        tol: float | None = None,
        cost: str = "sym",
        start: str = "random",
        calibrate: bool = True,
        reps: int | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        """Run ``make(counted_ops, tol)``: tighten ``tol`` until the true residual target is met, then repeat.

        ``cost`` names the matvec timing used for the overhead ratio (``sym``: one jvp + one vjp per
        count, ``jf``/``m``/``m_block2``: one jvp, ``probe``: jvp and vjp timed apart).
        """
        reps = self.reps if reps is None else reps
        # t_matvec: the matvecs timed alone just before the first run and just after the repetitions
        # (the machine's speed drifts: the median of both samples brackets the solver's runs).
        samples = self.sample_matvecs(cost)
        first, tried, current, in_matvecs, checks, error = self._calibrated(make, tol, calibrate)
        rec: dict[str, Any] = {"solver": solver, "group": group, "start": start, "tol_tried": tried}
        if first is None:
            rec.update({"error": error, "quantities": {}, "notes": [error]})
            self.records.append(rec)
            return rec
        run = first[0]

        def again() -> comp.SolverRun:
            return make(self.counted(), current)

        reduced = None
        if reps > 1 and first[1] > self.slow_seconds:
            reduced = 3 if first[1] <= 4 * self.slow_seconds else 1
            reps = min(reps, reduced)
        measured = timed(again, reps=reps, first=first)
        for kind, later in self.sample_matvecs(cost).items():
            self.t[kind] = median(samples[kind] + later)
        wall = measured.median
        if cost == "sym":
            costs = {"sym": (run.jvp, self.t["sym"])}
        elif cost == "probe":
            costs = {"jvp": (run.jvp, self.t["jvp"]), "vjp": (run.vjp, self.t["vjp"])}
        else:
            costs = {cost: (run.jvp, self.t[cost])}
        notes = list(run.notes)
        if reduced is not None:
            notes.append(f"{reps} run(s): one takes {first[1]:.0f} s")
        if len(tried) > 1:
            notes.append(f"tolerance tightened {len(tried) - 1}x to meet the residual target")
        if note:
            notes.append(note)
        rec.update(
            {
                "tol": current,
                "jvp": run.jvp,
                "vjp": run.vjp,
                "converged": run.converged,
                "times": measured.times,
                "median_s": wall,
                "reps": len(measured.times),
                "peak_mib": measured.peak_mib,
                "overhead": overhead_ratio(wall, costs),
                "in_run_overhead": (first[1] / in_matvecs) if in_matvecs > 0 else None,
                "t_matvec": {k: v[1] for k, v in costs.items()},
                "quantities": checks,
                "notes": notes,
                "extra": {k: v for k, v in run.extra.items() if isinstance(v, (int, float, str, bool, dict))},
            }
        )
        self.records.append(rec)
        return rec

    # -- the line-up ---------------------------------------------------------------------------------

    def arpack_tol(self, quantity: str, modulus: float | None) -> float:
        """ARPACK stops at ``||r|| <= tol |theta|``; this ``tol`` makes that ``TARGET_RESIDUAL ||A||``.

        ``modulus`` is ``|theta|`` of the wanted eigenvalue (complex modulus for alpha and rho).
        """
        norm = self.ref[NORM_OF[quantity]]
        if modulus is None or not math.isfinite(modulus):
            return TARGET_RESIDUAL
        return min(0.1, TARGET_RESIDUAL * norm / max(modulus, 1e-3 * norm))

    def truth(self, quantity: str) -> float | None:
        if self.ref.get("kind") == "dense":
            return {"omega": self.ref["omega"], "alpha": self.ref["alpha"][0], "rho": self.ref["rho"]}[quantity]
        return None

    def modulus_hint(self, quantity: str, rec: dict[str, Any]) -> float | None:
        """``|eigenvalue|`` of the quantity: from the dense truth, else from the record ``rec`` (ours)."""
        if self.ref.get("kind") == "dense":
            if quantity == "alpha":
                return abs(complex(*self.ref["alpha"]))
            return abs(self.truth(quantity) or 0.0)
        q = rec.get("quantities", {}).get(quantity)
        return None if q is None else abs(complex(*q["value"]))

    def lead_value(self, quantity: str, rec: dict[str, Any]) -> float | None:
        q = rec.get("quantities", {}).get(quantity)
        return None if q is None else q["scalar"]

    def run_all(self) -> None:
        """Every solver of the line-up on this problem (see :mod:`bench.lineup`)."""
        from . import lineup

        lineup.run_all(self)

    def finish(self) -> None:
        """Errors against the reference: the dense truth, or else ARPACK's random-start answer."""
        kind = self.ref.get("kind")
        ref_values: dict[str, float | None] = {}
        ref_source: dict[str, str] = {}
        for quantity in ("omega", "alpha", "rho"):
            value = self.truth(quantity)
            source = "dense"
            if value is None:
                solver = {"omega": ARPACK_OMEGA, "alpha": ARPACK_LR, "rho": ARPACK_LM}
                rec = next((r for r in self.records if r["solver"] == solver[quantity]), None)
                value = None if rec is None else self.lead_value(quantity, rec)
                source = solver[quantity]
            ref_values[quantity] = value
            ref_source[quantity] = source
        for rec in self.records:
            for quantity, q in rec.get("quantities", {}).items():
                value = ref_values.get(quantity)
                if value is None:
                    q["error"] = None
                    q["wrong"] = None
                    continue
                q["error"] = abs(q["scalar"] - value)
                q["wrong"] = q["error"] > WRONG_TOL * max(1.0, self.ref[NORM_OF[quantity]])
        self.ref["reference_values"] = ref_values
        self.ref["reference_source"] = ref_source if kind != "dense" else {q: "dense" for q in ref_values}


def warm_imports() -> None:
    """Import every solver's module up front, so that no timed run pays for an import."""
    import scipy.sparse.linalg  # noqa: F401

    import spectral_probe.linalg.arnoldi  # noqa: F401
    import spectral_probe.linalg.dense  # noqa: F401
    import spectral_probe.linalg.subspace  # noqa: F401
    import spectral_probe.linalg.symmetric  # noqa: F401
    import spectral_probe.probe  # noqa: F401

    if comp.hessian_eigenthings_available():
        import hessian_eigenthings  # noqa: F401


def run_problem(config: dict[str, Any]) -> dict[str, Any]:
    """Every solver on the problem ``config["spec"]``; returns a JSON-ready dict."""
    warm_imports()
    spec = ProblemSpec.from_dict(config["spec"])
    started = time.perf_counter()
    problem = build(spec)
    build_seconds = time.perf_counter() - started
    bench = ProblemBench(problem, config)
    bench.measure_matvecs()
    bench.compute_reference()
    bench.run_all()
    bench.finish()
    return {
        "task": "problem",
        "spec": spec.to_dict(),
        "label": spec.label,
        "description": problem.description,
        "c": problem.c,
        "eps": problem.eps,
        "build_seconds": build_seconds,
        "setup_seconds": bench.setup_seconds,
        "setup_peak_mib": bench.setup_peak_mib,
        "params_mib": sum(t.numel() * t.element_size() for t in problem.params.values()) / 2**20,
        "matvec_seconds": bench.t_initial,
        "reference": bench.ref,
        "records": bench.records,
        "rss_mib": rss_mib(),
        "seconds": time.perf_counter() - started,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.worker CONFIG.json RESULT.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        config = json.load(handle)
    torch.set_num_threads(int(config.get("threads", torch.get_num_threads())))
    task = config.get("task", "problem")
    if task == "problem":
        result = run_problem(config)
    else:
        from . import scenarios

        result = scenarios.TASKS[task](config)
    with open(args[1], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1, default=_jsonable)
    return 0


def _jsonable(obj: object) -> Any:
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    return str(obj)


if __name__ == "__main__":
    sys.exit(main())
