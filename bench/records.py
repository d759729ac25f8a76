"""The benchmark's records and its counted operators: what every solver run returns, and how it is counted.

Every application of a :class:`spectral_probe.jacobian.JacobianOperators` matvec is counted by
:class:`CountedOps`, with jvp (``J v``) and vjp (``J^T u``) apart: ``Sym(J_F) v`` costs one of each, ``J_F v``
and ``M v`` one jvp. A run returns a :class:`SolverRun` of :class:`Eigenpair` (see :mod:`bench.competitors`).
"""

from __future__ import annotations

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


def unit(vector: Tensor) -> Tensor:
    """``vector / ||vector||``."""
    return vector / torch.linalg.vector_norm(vector)


def upper(value: complex) -> complex:
    """The member with ``imag >= 0`` of a conjugate pair."""
    return complex(value.real, abs(value.imag))


def pair(value: complex, vector: Tensor) -> Eigenpair:
    """Report the ``imag >= 0`` member (conjugating the vector with it)."""
    if value.imag < 0:
        return Eigenpair(value.conjugate(), unit(vector.conj()))
    return Eigenpair(value, unit(vector))
