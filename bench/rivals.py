"""The full-scan benchmark's competitors: SciPy ARPACK, PRIMME and SLEPc, each on the SAME torch products.

* ARPACK: three untrusted runs (``eigsh`` LA on ``Sym(J_F)``, ``eigs`` LR on ``J_F``, ``eigs`` LM on
  ``M``) through :mod:`bench.competitors` (a SciPy ``LinearOperator`` around the torch matvec);
* PRIMME (``pip install primme``, GD+k): omega only, ``eigsh`` LA on ``Sym(J_F)`` with an absolute
  convergence test ``||r|| <= target ||Sym||``;
* SLEPc 3.18 Krylov-Schur through slepc4py: in ANOTHER interpreter (:mod:`bench.slepc_worker`; Debian's
  slepc4py lives in the system site packages), found by ``--slepc-python``, ``$SLEPC_PYTHON`` or
  ``.venv-slepc/bin/python``; ``SLEPC_DIR``/``PETSC_DIR`` default to Debian's install.

Each is skipped with a reason where it is not installed. Every run meets the TRUE residual target
(checked with uncounted products, the tolerance tightened 10x up to three times if not).
"""

from __future__ import annotations

import glob
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import competitors as comp
from .measure import relative_residual

REPO = Path(__file__).resolve().parent.parent
TIGHTENINGS = 3
#: Debian's SLEPc/PETSc (python3-slepc4py-real), used when the variables are not set.
DEBIAN_DIRS = {
    "SLEPC_DIR": "/usr/lib/slepcdir/slepc3.*/x86_64-linux-gnu-real",
    "PETSC_DIR": "/usr/lib/petscdir/petsc3.*/x86_64-linux-gnu-real",
}


def to_target(run_once: Any, tol: float, check: Any, target: float) -> tuple[comp.SolverRun, float, list[float]]:
    """``run_once(tol)`` until ``check(run) <= target`` (tolerance tightened 10x each time)."""
    tried = []
    for _ in range(TIGHTENINGS + 1):
        tried.append(tol)
        run = run_once(tol)
        residual = check(run)
        if residual <= target or not run.converged:
            break
        tol /= 10
    return run, residual, tried


def _arpack_one(ops: Any, quantity: str, v0: np.ndarray, tol: float, norm: float, target: float) -> dict:
    solver, apply = {
        "omega": (comp.arpack_eigsh, ops.sym),
        "alpha": (comp.arpack_eigs_lr, ops.jf),
        "rho": (comp.arpack_eigs_lm_m, ops.m),
    }[quantity]

    def check(run: comp.SolverRun) -> float:
        pair = run.pairs.get(quantity)
        return float("inf") if pair is None else relative_residual(apply, pair.value, pair.vector, norm)

    run, residual, tried = to_target(lambda t: solver(comp.CountedOps(ops), v0, t), tol, check, target)
    pair = run.pairs.get(quantity)
    return {
        "products": run.jvp + run.vjp,
        "jvp": run.jvp,
        "vjp": run.vjp,
        "rel_residual": residual,
        "residual_ok": residual <= target,
        "converged": run.converged,
        "value": None if pair is None else [pair.value.real, abs(pair.value.imag)],
        "tol_tried": tried,
    }


def arpack_three(ops: Any, seed: int, norms: dict[str, float], hints: dict[str, float], target: float) -> dict:
    """ARPACK's three runs, each from its own random ``v0`` (``seed``): products, residuals, values.

    ARPACK stops at ``||r|| <= tol |theta|``; ``tol = target ||A|| / |theta|`` (``theta`` from ``hints``,
    our solvers' answers) makes that the normwise target.
    """
    out: dict[str, Any] = {}
    for index, quantity in enumerate(("omega", "alpha", "rho")):
        v0 = np.random.default_rng(6000 + 10 * seed + index).standard_normal(ops.n)
        norm = norms[quantity]
        tol = min(0.1, target * norm / max(abs(hints[quantity]), 1e-3 * norm))
        out[quantity] = _arpack_one(ops, quantity, v0, tol, norm, target)
    return out


# --------------------------------------------------------------------------------------------------
# PRIMME


def primme_version() -> str | None:
    if importlib.util.find_spec("primme") is None:
        return None
    try:
        return importlib.metadata.version("primme")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def primme_omega(ops: Any, seed: int, norm: float, target: float) -> dict:
    """omega by PRIMME's GD+k (``method='PRIMME_GD_plusK'``), ``which='LA'``, absolute residual test."""
    import primme
    from scipy.sparse.linalg import LinearOperator

    v0 = np.random.default_rng(7000 + seed).standard_normal((ops.n, 1))
    tol = target * norm
    tried = []
    for _ in range(TIGHTENINGS + 1):
        tried.append(tol)
        counted = comp.CountedOps(ops)
        operator = LinearOperator((ops.n, ops.n), matvec=counted.numpy("sym"), dtype=np.float64)

        def converged(value: float, vector: Any, rnorm: float, limit: float = tol) -> bool:
            return rnorm <= limit

        values, vectors = primme.eigsh(
            operator, k=1, which="LA", v0=v0, method="PRIMME_GD_plusK", convtest=converged, maxiter=100_000
        )
        vector = torch.from_numpy(np.ascontiguousarray(vectors[:, 0]))
        residual = relative_residual(ops.sym, complex(float(values[0])), vector, norm)
        if residual <= target:
            break
        tol /= 10
    return {
        "products": counted.jvp_count + counted.vjp_count,
        "rel_residual": residual,
        "residual_ok": residual <= target,
        "value": [float(values[0]), 0.0],
        "tol_tried": tried,
    }


# --------------------------------------------------------------------------------------------------
# SLEPc (another interpreter)


def slepc_python(explicit: str | None = None) -> str | None:
    """The interpreter that has slepc4py, or ``None``."""
    for candidate in (explicit, os.environ.get("SLEPC_PYTHON"), str(REPO / ".venv-slepc" / "bin" / "python")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def slepc_env() -> dict[str, str]:
    env = dict(os.environ)
    for name, pattern in DEBIAN_DIRS.items():
        if not env.get(name):
            found = sorted(glob.glob(pattern))
            if found:
                env[name] = found[-1]
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def slepc_version(python: str | None) -> tuple[str | None, str]:
    """``(version, why not)``: SLEPc's version as slepc4py reports it, or the reason it is absent."""
    if python is None:
        return None, "no interpreter with slepc4py (make bench-competitors, or --slepc-python)"
    code = "from slepc4py import SLEPc; print('.'.join(map(str, SLEPc.Sys.getVersion())))"
    try:
        done = subprocess.run([python, "-c", code], env=slepc_env(), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{python}: {exc}"
    if done.returncode != 0:
        return None, f"{python}: slepc4py does not import ({(done.stderr.strip().splitlines() or ['?'])[-1]})"
    return done.stdout.strip(), ""


def run_slepc(python: str, config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Every SLEPc run of one operator in one :mod:`bench.slepc_worker` process; ``{"error": ...}`` on failure."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg, out = Path(tmp) / "config.json", Path(tmp) / "result.json"
        cfg.write_text(json.dumps(config))
        try:
            done = subprocess.run(
                [python, "-m", "bench.slepc_worker", str(cfg), str(out)],
                cwd=str(REPO),
                env=slepc_env(),
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"SLEPc worker timed out after {timeout:.0f} s"}
        if done.returncode != 0 or not out.is_file():
            return {"error": f"SLEPc worker failed: {done.stderr.strip()[-400:]}"}
        return json.loads(out.read_text())
