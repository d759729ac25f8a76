"""SLEPc Krylov-Schur on the benchmark operators: ``python -m bench.slepc_worker CONFIG.json RESULT.json``.

Runs in the interpreter that has ``slepc4py`` (Debian's ``python3-slepc4py-real`` in a venv made with
``--system-site-packages`` and torch installed in it, see ``make bench-competitors``), not in the
benchmark's own; :mod:`bench.rivals` starts it. The operator is rebuilt from the same
:class:`bench.operators.ProblemSpec` (``conv_scale`` comes from the parent: its calibration needs
SciPy, which that venv need not have), and every product is the SAME torch matvec of
:class:`spectral_probe.jacobian.JacobianOperators`, inside a PETSc shell matrix whose ``mult`` counts it.

Three untrusted runs, as a user of SLEPc would make them (``nev = 1``, Krylov-Schur, SLEPc's defaults
for everything else unless ``ncv`` is given): ``omega`` (HEP on ``Sym(J_F)``, largest real), ``alpha``
(NHEP on ``J_F``, largest real), ``rho`` (NHEP on ``M``, largest magnitude). The convergence test is
absolute, ``||r|| <= tol`` with ``tol = target ||A||_2`` (the benchmark's normwise target); the TRUE
residual is checked with uncounted products and, if it misses, ``tol`` is tightened 10x and the run
repeated (at most three times). Output: JSON with the version and one record per (quantity, ncv, seed).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import torch

#: quantity -> (operator method, problem type, which, products per application)
RUNS = {
    "omega": ("sym", "HEP", "LARGEST_REAL", 2),
    "alpha": ("jf", "NHEP", "LARGEST_REAL", 1),
    "rho": ("m", "NHEP", "LARGEST_MAGNITUDE", 1),
}
TIGHTENINGS = 3


class _Shell:
    """PETSc shell-matrix context: ``y = A x`` by the torch operator, counted and timed."""

    def __init__(self, apply: Any, n: int) -> None:
        self.apply = apply
        self.n = n
        self.count = 0
        self.seconds = 0.0

    def mult(self, mat: Any, x: Any, y: Any) -> None:
        began = time.perf_counter()
        v = torch.from_numpy(np.array(x.getArray(readonly=True), dtype=np.float64)).reshape(1, self.n)
        with torch.no_grad():
            y.setArray(self.apply(v).reshape(self.n).numpy())
        self.seconds += time.perf_counter() - began
        self.count += 1


def _true_residual(apply: Any, value: complex, vr: np.ndarray, vi: np.ndarray) -> float:
    """``||A v - lambda v|| / ||v||`` for ``v = vr + i vi`` (uncounted products)."""
    n = vr.size
    real, imag = torch.from_numpy(vr).reshape(1, n), torch.from_numpy(vi).reshape(1, n)
    with torch.no_grad():
        applied = torch.complex(apply(real), apply(imag) if np.any(vi) else torch.zeros_like(imag))
    v = torch.complex(real, imag)
    return float(torch.linalg.vector_norm(applied - value * v) / torch.linalg.vector_norm(v))


def _solve_once(slepc: Any, petsc: Any, ops: Any, quantity: str, ncv: int | None, tol: float, seed: int) -> dict:
    method, kind, which, per = RUNS[quantity]
    apply = getattr(ops, method)
    n = ops.n
    shell = _Shell(apply, n)
    mat = petsc.Mat().createPython([n, n], context=shell, comm=petsc.COMM_SELF)
    mat.setUp()
    eps = slepc.EPS().create(comm=petsc.COMM_SELF)
    eps.setOperators(mat)
    eps.setProblemType(getattr(slepc.EPS.ProblemType, kind))
    eps.setType(slepc.EPS.Type.KRYLOVSCHUR)
    eps.setWhichEigenpairs(getattr(slepc.EPS.Which, which))
    eps.setDimensions(nev=1, ncv=petsc.DECIDE if ncv is None else ncv)
    eps.setTolerances(tol=tol)
    eps.setConvergenceTest(slepc.EPS.Conv.ABS)
    start = mat.createVecRight()
    start.setArray(np.random.default_rng(5000 + 10 * seed + list(RUNS).index(quantity)).standard_normal(n))
    eps.setInitialSpace([start])
    began = time.perf_counter()
    eps.solve()
    seconds = time.perf_counter() - began
    out: dict[str, Any] = {
        "products": shell.count * per,
        "applications": shell.count,
        "seconds": seconds,
        "product_seconds": shell.seconds,
        "converged": eps.getConverged() >= 1,
        "iterations": eps.getIterationNumber(),
        "ncv_used": eps.getDimensions()[1],
    }
    if eps.getConverged() < 1:
        return out
    vr, vi = mat.createVecRight(), mat.createVecRight()
    value = complex(eps.getEigenpair(0, vr, vi))
    xr, xi = np.array(vr.getArray(), dtype=np.float64), np.array(vi.getArray(), dtype=np.float64)
    out["value"] = [value.real, abs(value.imag)]
    out["residual"] = _true_residual(apply, value, xr, xi)
    return out


def solve(slepc: Any, petsc: Any, ops: Any, quantity: str, ncv: int | None, norm: float, config: dict) -> dict:
    """One run to the true residual target, tightening ``tol`` if the target is missed."""
    target = float(config["target"])
    tol = target * norm
    tried = []
    for _ in range(TIGHTENINGS + 1):
        tried.append(tol)
        run = _solve_once(slepc, petsc, ops, quantity, ncv, tol, int(config["seed"]))
        rel = run.get("residual", float("inf")) / norm
        run["rel_residual"] = rel
        if rel <= target or not run["converged"]:
            break
        tol /= 10
    run.update({"quantity": quantity, "ncv": ncv, "seed": int(config["seed"]), "tol_tried": tried})
    run["residual_ok"] = run["rel_residual"] <= target
    return run


def build_ops(config: dict) -> Any:
    """The benchmark operator named by ``config["spec"]`` with ``config["eps"]``."""
    from spectral_probe.jacobian import JacobianOperators

    from . import operators

    if config.get("conv_scale") is not None:
        scale = float(config["conv_scale"])
        operators.conv_scale = lambda channels, seed: scale  # the parent's calibration
    problem = operators.build(operators.ProblemSpec.from_dict(config["spec"]))
    return JacobianOperators(problem.nc_force, problem.z_star, c=problem.c, eps=float(config["eps"]))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m bench.slepc_worker CONFIG.json RESULT.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as handle:
        config = json.load(handle)
    import petsc4py
    import slepc4py

    petsc4py.init(sys.argv[:1])
    slepc4py.init(sys.argv[:1])
    from petsc4py import PETSc
    from slepc4py import SLEPc

    torch.set_num_threads(int(config.get("threads", 1)))
    ops = build_ops(config)
    records = []
    for seed in config["seeds"]:
        for ncv in config["ncv"]:
            for quantity in RUNS:
                cfg = {**config, "seed": seed}
                records.append(solve(SLEPc, PETSc, ops, quantity, ncv, float(config["norms"][quantity]), cfg))
    version = ".".join(str(x) for x in SLEPc.Sys.getVersion())
    result = {"version": version, "petsc": ".".join(str(x) for x in PETSc.Sys.getVersion()), "records": records}
    with open(args[1], "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
