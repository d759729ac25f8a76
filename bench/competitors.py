"""Every solver of the benchmark behind one record: ours, SciPy ARPACK, hessian-eigenthings, the dense path.

All of them run on the SAME torch matvecs of :class:`spectral_probe.jacobian.JacobianOperators` in the
same process: ARPACK through a :class:`scipy.sparse.linalg.LinearOperator` whose ``matvec`` calls the
torch operator, hessian-eigenthings through its ``LambdaOperator`` on ``Sym(J_F)``. Every application
is counted by :class:`CountedOps`, with jvp (``J v``) and vjp (``J^T u``) apart: ``Sym(J_F) v`` costs one
of each, ``J_F v`` and ``M v`` one jvp. This module is the line-up's one import: the records and the
counting live in :mod:`bench.records`, our solvers in :mod:`bench.ours` (both re-exported here).

Quantities (docs/SPEC.md section 1): ``omega = lambda_max(Sym J_F)`` (real), ``alpha`` the rightmost eigenvalue
``mu`` of ``J_F`` (complex), ``lead`` the largest-modulus eigenvalue of ``M = I + eps J_F`` (complex,
``rho = |lead|``). Each run returns its eigenvectors so that :mod:`bench.measure` can check the TRUE
residual with uncounted matvecs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spectral_probe.jacobian import JacobianOperators

from .ours import ours_block_rr, ours_krylov_schur, ours_lanczos, ours_probe
from .records import QUANTITIES, CountedOps, Eigenpair, MatvecBudgetExceeded, SolverRun
from .records import pair as _pair
from .records import unit as _unit
from .records import upper as _upper

__all__ = [
    "QUANTITIES",
    "CountedOps",
    "Eigenpair",
    "MatvecBudgetExceeded",
    "SolverRun",
    "arpack_eigs_lm_m",
    "arpack_eigs_lr",
    "arpack_eigsh",
    "dense_path",
    "he_lanczos",
    "hessian_eigenthings_available",
    "hessian_eigenthings_version",
    "ours_block_rr",
    "ours_krylov_schur",
    "ours_lanczos",
    "ours_probe",
]


# --------------------------------------------------------------------------------------------------
# SciPy ARPACK


def _linear_operator(counted: CountedOps, name: str) -> Any:
    from scipy.sparse.linalg import LinearOperator

    return LinearOperator((counted.n, counted.n), matvec=counted.numpy(name), dtype=np.float64)


def _arpack_call(fn: Callable[..., Any], counted: CountedOps, **kwargs: Any) -> tuple[Any, Any, bool, list[str]]:
    """Run an ARPACK routine; returns (values, vectors, converged, notes) even on non-convergence."""
    from scipy.sparse.linalg import ArpackNoConvergence

    try:
        values, vectors = fn(**kwargs)
        return values, vectors, True, []
    except ArpackNoConvergence as exc:
        return exc.eigenvalues, exc.eigenvectors, False, ["ARPACK: no convergence"]
    except MatvecBudgetExceeded as exc:
        return np.array([]), None, False, [f"stopped: {exc}"]


def _best(values: Any, vectors: Any, score: Callable[[complex], float]) -> tuple[complex, Tensor] | None:
    if vectors is None or len(values) == 0:
        return None
    scores = [score(complex(v)) for v in values]
    i = int(np.argmax(scores))
    return complex(values[i]), torch.from_numpy(np.ascontiguousarray(vectors[:, i]))


def arpack_eigsh(counted: CountedOps, v0: np.ndarray, tol: float, ncv: int | None = None) -> SolverRun:
    """omega: ``eigsh(Sym(J_F), k=1, which='LA')``."""
    from scipy.sparse.linalg import eigsh

    values, vectors, ok, notes = _arpack_call(
        eigsh,
        counted,
        A=_linear_operator(counted, "sym"),
        k=1,
        which="LA",
        v0=v0,
        tol=tol,
        ncv=ncv,
        maxiter=100_000,
    )
    best = _best(values, vectors, lambda v: v.real)
    pairs = {} if best is None else {"omega": Eigenpair(complex(best[0].real), best[1])}
    return SolverRun(pairs, counted.jvp_count, counted.vjp_count, ok and best is not None, tol, notes)


def arpack_eigs_lr(counted: CountedOps, v0: np.ndarray, tol: float, ncv: int | None = None) -> SolverRun:
    """alpha: ``eigs(J_F, k=1, which='LR')``."""
    from scipy.sparse.linalg import eigs

    values, vectors, ok, notes = _arpack_call(
        eigs,
        counted,
        A=_linear_operator(counted, "jf"),
        k=1,
        which="LR",
        v0=v0,
        tol=tol,
        ncv=ncv,
        maxiter=100_000,
    )
    best = _best(values, vectors, lambda v: v.real)
    pairs = {} if best is None else {"alpha": _pair(*best)}
    return SolverRun(pairs, counted.jvp_count, counted.vjp_count, ok and best is not None, tol, notes)


def arpack_eigs_lm_m(counted: CountedOps, v0: np.ndarray, tol: float, ncv: int | None = None) -> SolverRun:
    """rho: ``eigs(M, k=1, which='LM')``."""
    from scipy.sparse.linalg import eigs

    values, vectors, ok, notes = _arpack_call(
        eigs,
        counted,
        A=_linear_operator(counted, "m"),
        k=1,
        which="LM",
        v0=v0,
        tol=tol,
        ncv=ncv,
        maxiter=100_000,
    )
    best = _best(values, vectors, abs)
    pairs = {} if best is None else {"rho": _pair(*best)}
    return SolverRun(pairs, counted.jvp_count, counted.vjp_count, ok and best is not None, tol, notes)


# --------------------------------------------------------------------------------------------------
# hessian-eigenthings


def hessian_eigenthings_available() -> bool:
    return importlib.util.find_spec("hessian_eigenthings") is not None


def hessian_eigenthings_version() -> str | None:
    if not hessian_eigenthings_available():
        return None
    try:
        import importlib.metadata

        return importlib.metadata.version("hessian-eigenthings")
    except Exception:  # noqa: BLE001 (a version is informative only)
        return "unknown"


def he_lanczos(counted: CountedOps, seed: int, **kwargs: Any) -> SolverRun:
    """omega from ``hessian_eigenthings.lanczos`` on ``Sym(J_F)`` (its operator object wraps our matvec).

    With no ``kwargs`` this is the library's defaults: ``k=10``, ``max_iter=min(2k, n-1)``, one run
    without restart, ``which='LM'`` (largest MAGNITUDE: on an indefinite ``Sym(J_F)`` whose negative end
    dominates this is ``lambda_min``, the wrong omega). The eigenvalue reported is its first one.
    """
    import hessian_eigenthings as he

    n = counted.n

    def matvec(v: Tensor) -> Tensor:
        return counted.sym(v.reshape(1, n)).reshape(n)

    operator = he.LambdaOperator(matvec, n, device="cpu", dtype=torch.float64)
    try:
        result = he.lanczos(operator, seed=seed, **kwargs)
    except MatvecBudgetExceeded as exc:
        return SolverRun({}, counted.jvp_count, counted.vjp_count, False, None, [f"stopped: {exc}"])
    value = float(result.eigenvalues[0])
    return SolverRun(
        pairs={"omega": Eigenpair(complex(value), _unit(result.eigenvectors[0]))},
        jvp=counted.jvp_count,
        vjp=counted.vjp_count,
        converged=bool(result.converged[0]),
        tol=kwargs.get("tol", 1e-4),
        extra={"iterations": result.iterations, "kwargs": {k: str(v) for k, v in kwargs.items()}},
    )


# --------------------------------------------------------------------------------------------------
# Dense path


def dense_path(ops: JacobianOperators) -> SolverRun:
    """The exact Jacobian (``n`` jvps) and ``torch.linalg`` (``spectral_probe.linalg.dense``)."""
    from spectral_probe.linalg.dense import dense_spectrum

    n = ops.n
    jac = ops.dense_jacobian() - (1 + ops.c) * torch.eye(n, dtype=ops.dtype)
    spectrum = dense_spectrum(jac, ops.eps)
    mu_alpha = complex(spectrum.mu_alpha[0])
    lead = 1 + ops.eps * complex(spectrum.mu_lead[0])
    res = {k: float(v[0]) for k, v in spectrum.residuals.items()}
    return SolverRun(
        pairs={
            "omega": Eigenpair(complex(float(spectrum.omega[0])), None, res["omega"]),
            "alpha": Eigenpair(_upper(mu_alpha), None, res["alpha"]),
            "rho": Eigenpair(_upper(lead), None, res["rho"]),
        },
        jvp=n,
        vjp=0,
        converged=True,
    )
