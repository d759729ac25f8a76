"""Every solver of the benchmark behind one record: ours, SciPy ARPACK, hessian-eigenthings, the dense path.

All of them run on the SAME torch matvecs of :class:`spectral_probe.jacobian.JacobianOperators` in the
same process: ARPACK through a :class:`scipy.sparse.linalg.LinearOperator` whose ``matvec`` calls the
torch operator, hessian-eigenthings through its ``LambdaOperator`` on ``Sym(J_F)``. Every application
is counted by :class:`CountedOps`, with jvp (``J v``) and vjp (``J^T u``) apart: ``Sym(J_F) v`` costs one
of each, ``J_F v`` and ``M v`` one jvp.

Quantities (docs/SPEC.md section 1): ``omega = lambda_max(Sym J_F)`` (real), ``alpha`` the rightmost eigenvalue
``mu`` of ``J_F`` (complex), ``lead`` the largest-modulus eigenvalue of ``M = I + eps J_F`` (complex,
``rho = |lead|``). Each run returns its eigenvectors so that :mod:`bench.measure` can check the TRUE
residual with uncounted matvecs.
"""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spectral_probe.jacobian import JacobianOperators

QUANTITIES = ("omega", "alpha", "rho")


class MatvecBudgetExceeded(RuntimeError):
    """Raised from inside a matvec when a competitor has used its matvec budget."""


@dataclass
class Eigenpair:
    """One reported eigenpair: ``value`` of the quantity's operator and its unit ``vector`` ``[n]``.

    For ``rho`` the value is ``lead``, the eigenvalue of ``M``; ``vector`` may be ``None`` (dense path:
    its residual comes from the dense matrices, ``residual`` holds it).
    """

    value: complex
    vector: Tensor | None
    residual: float | None = None


@dataclass
class SolverRun:
    """What one solver run produced (one repetition; :mod:`bench.measure` adds times and checks)."""

    pairs: dict[str, Eigenpair]
    jvp: int
    vjp: int
    converged: bool
    tol: float | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


class CountedOps:
    """The matvecs of a :class:`JacobianOperators` (one fixed point, ``B = 1``), counted by kind and timed.

    ``budget`` (matvecs) and ``max_seconds`` stop a run that would not end (:class:`MatvecBudgetExceeded`).
    """

    def __init__(self, ops: JacobianOperators, budget: int | None = None, max_seconds: float | None = None) -> None:
        self.ops = ops
        self.n = ops.n
        self.jvp_count = 0
        self.vjp_count = 0
        self.budget = budget
        self.max_seconds = max_seconds
        self.started = time.perf_counter()
        #: wall seconds spent inside the matvecs (for the in-run overhead)
        self.seconds = 0.0

    def _count(self, x: Tensor, jvp: int, vjp: int) -> None:
        vectors = math.prod(x.shape[1:-1])
        self.jvp_count += jvp * vectors
        self.vjp_count += vjp * vectors
        if self.budget is not None and max(self.jvp_count, self.vjp_count) > self.budget:
            raise MatvecBudgetExceeded(f"more than {self.budget} matvecs")
        if self.max_seconds is not None and time.perf_counter() - self.started > self.max_seconds:
            raise MatvecBudgetExceeded(f"more than {self.max_seconds:.0f} s")

    def _timed(self, apply: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
        began = time.perf_counter()
        out = apply(x)
        self.seconds += time.perf_counter() - began
        return out

    def sym(self, x: Tensor) -> Tensor:
        self._count(x, 1, 1)
        return self._timed(self.ops.sym, x)

    def jf(self, x: Tensor) -> Tensor:
        self._count(x, 1, 0)
        return self._timed(self.ops.jf, x)

    def m(self, x: Tensor) -> Tensor:
        self._count(x, 1, 0)
        return self._timed(self.ops.m, x)

    def numpy(self, name: str) -> Callable[[np.ndarray], np.ndarray]:
        """``x -> A x`` on 1-D float64 numpy vectors, for SciPy."""
        apply = getattr(self, name)
        n = self.n

        def matvec(x: np.ndarray) -> np.ndarray:
            v = torch.from_numpy(np.ascontiguousarray(np.asarray(x, dtype=np.float64)).reshape(n))
            return apply(v.reshape(1, n)).reshape(n).numpy()

        return matvec


def _unit(vector: Tensor) -> Tensor:
    return vector / torch.linalg.vector_norm(vector)


def _upper(value: complex) -> complex:
    """The member with ``imag >= 0`` of a conjugate pair."""
    return complex(value.real, abs(value.imag))


def _pair(value: complex, vector: Tensor) -> Eigenpair:
    """Report the ``imag >= 0`` member (conjugating the vector with it)."""
    if value.imag < 0:
        return Eigenpair(value.conjugate(), _unit(vector.conj()))
    return Eigenpair(value, _unit(vector))


# --------------------------------------------------------------------------------------------------
# Ours


def ours_lanczos(counted: CountedOps, x0: Tensor, tol: float, **kwargs: Any) -> SolverRun:
    """omega: thick-restart Lanczos on ``Sym(J_F)``, ``which='LA'`` (the probe's omega solver)."""
    from spectral_probe.linalg.symmetric import lanczos

    result = lanczos(counted.sym, x0, which="LA", tol=tol, **kwargs)
    value = float(result.values[0, 0])
    return SolverRun(
        pairs={"omega": Eigenpair(complex(value), result.vectors[0, 0])},
        jvp=counted.jvp_count,
        vjp=counted.vjp_count,
        converged=bool(result.converged[0, 0]),
        tol=tol,
        extra={"reported_matvecs": result.matvecs, "restarts": result.iterations},
    )


def ours_krylov_schur(counted: CountedOps, x0: Tensor, tol: float, eps: float, **kwargs: Any) -> SolverRun:
    """alpha and rho from ONE Krylov-Schur run on ``J_F`` (targets rightmost and ``|1 + eps mu|``)."""
    from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost

    targets = (rightmost(), largest_modulus(1.0, eps))
    out = krylov_schur(counted.jf, x0, targets=targets, tol=tol, **kwargs)
    alpha, lead = out[targets[0].name], out[targets[1].name]
    mu_lead = complex(lead.values[0, 0])
    pairs = {
        "alpha": _pair(complex(alpha.values[0, 0]), alpha.vectors[0, 0]),
        "rho": _pair(1 + eps * mu_lead, lead.vectors[0, 0]),
    }
    return SolverRun(
        pairs=pairs,
        jvp=counted.jvp_count,
        vjp=counted.vjp_count,
        converged=bool(alpha.converged[0, 0]) and bool(lead.converged[0, 0]),
        tol=tol,
        extra={"reported_matvecs": alpha.matvecs, "restarts": alpha.iterations},
    )


def ours_block_rr(counted: CountedOps, x0_block: Tensor, tol: float, max_iters: int) -> SolverRun:
    """rho alone: block (2-D) Rayleigh-Ritz on ``M`` (the probe's confirmation of rho)."""
    from spectral_probe.linalg.subspace import block_rayleigh_ritz

    result = block_rayleigh_ritz(counted.m, x0_block, tol=tol, max_iters=max_iters)
    value = complex(result.values[0, 0])
    notes = []
    stagnated = result.info.stagnated
    if stagnated is not None and bool(stagnated.any()):
        notes.append("stagnated")
    return SolverRun(
        pairs={"rho": _pair(value, result.vectors[0, 0])},
        jvp=counted.jvp_count,
        vjp=counted.vjp_count,
        converged=bool(result.converged[0, 0]),
        tol=tol,
        notes=notes,
        extra={"reported_matvecs": result.matvecs, "sweeps": result.iterations},
    )


def _timed_operators() -> type[JacobianOperators]:
    """A :class:`JacobianOperators` whose jvp/vjp add their wall time to the class attribute ``seconds``."""

    class TimedOperators(JacobianOperators):
        seconds = 0.0

        def jvp(self, v: Tensor) -> Tensor:
            began = time.perf_counter()
            try:
                return super().jvp(v)
            finally:
                TimedOperators.seconds += time.perf_counter() - began

        def vjp(self, u: Tensor) -> Tensor:
            began = time.perf_counter()
            try:
                return super().vjp(u)
            finally:
                TimedOperators.seconds += time.perf_counter() - began

    return TimedOperators


def ours_probe(
    nc_force: Callable[[Tensor], Tensor], z_star: Tensor, c: float, eps: float, method: str = "krylov"
) -> SolverRun:
    """The whole probe (``probe_fixed_points``): omega, alpha, rho and every cross-check, default tol."""
    import spectral_probe.probe.fixed_points as probe_module
    from spectral_probe.config import ProbeOptions

    # Time the probe's own matvecs (for its in-run overhead) with a subclass that clocks the public
    # jvp/vjp; everything else in the probe is untouched.
    timed_ops = _timed_operators()
    original = probe_module.JacobianOperators
    probe_module.JacobianOperators = timed_ops
    try:
        results, _ = probe_module.probe_fixed_points(
            nc_force, z_star, c=c, eps=eps, options=ProbeOptions(method=method)
        )
    finally:
        probe_module.JacobianOperators = original
    r = results[0]
    lead = complex(r.lead_real, r.lead_imag)
    residuals = r.residuals or {}
    pairs = {
        "omega": Eigenpair(complex(r.omega if r.omega is not None else math.nan), None, residuals.get("omega")),
        "alpha": Eigenpair(complex(r.alpha, r.alpha_imag), None, residuals.get("alpha")),
        "rho": Eigenpair(lead, None, residuals.get("rho")),
    }
    kinds = r.matvecs_by_kind or {}
    return SolverRun(
        pairs=pairs,
        jvp=int(kinds.get("jvp", r.matvecs)),
        vjp=int(kinds.get("vjp", 0)),
        converged=bool(r.converged),
        notes=[f"verdict {r.verdict}"]
        + ([r.reason] if r.reason else [])
        + [f"+{v} {k} matvecs" for k, v in kinds.items() if k not in ("jvp", "vjp")],
        extra={
            "verdict": r.verdict,
            "reason": r.reason,
            "rr_block": r.rr_block_size,
            "matvecs_by_kind": {k: int(v) for k, v in kinds.items()},
            "matvec_seconds": timed_ops.seconds,
        },
    )


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
