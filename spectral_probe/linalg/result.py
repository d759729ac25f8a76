"""The one convergence record every solver returns, the two result types on it, and the matvec counter.

Conventions shared by every solver in :mod:`spectral_probe.linalg`:

* An operator is a callable ``matvec(X) -> A X`` acting on the LAST dimension: ``X`` has shape
  ``[..., n]`` and any leading dimensions are batch dimensions (independent problems, or several
  vectors of one block). Solvers never form ``A``.
* A start vector ``x0`` has shape ``[*batch, n]``; every returned tensor carries the same ``*batch``.
* Vectors are stored as rows: ``vectors[..., k, :]`` is the k-th eigenvector.
* ``matvecs`` counts operator applications PER PROBLEM: a call on ``[*batch, p, n]`` counts ``p``.

Every solver returns its numbers with one :class:`ConvergenceInfo` (``converged``, TRUE ``residuals``,
``matvecs``, ``iterations`` and the typed diagnostics): eigensolvers in an :class:`EigResult`, the
linear solver (GMRES) in a :class:`LinearSolveResult`. A diagnostic a solver does not produce is
``None`` (or zero counts), never a missing key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Generic, TypeVar, overload

import torch

from spectral_probe.linalg.defaults import DEFAULTS

__all__ = [
    "ConvergenceInfo",
    "CountingMatvec",
    "EigResult",
    "GmresResult",
    "LinearSolveResult",
    "Shifted",
    "default_tol",
]

Matvec = Callable[[torch.Tensor], torch.Tensor]
T = TypeVar("T")


def default_tol(dtype: torch.dtype) -> float:
    """Normwise residual tolerance ``eps(dtype) ** (2/3)`` (3.7e-11 in float64, 2.4e-05 in float32)."""
    return float(torch.finfo(dtype).eps) ** DEFAULTS.tol_exponent


@dataclass(frozen=True)
class ConvergenceInfo:
    """How a solve ended, the same fields for every solver (shapes: ``*batch`` of the problem, ``k``
    the reported pairs; a linear solve has ``k`` absent: ``[*batch]``).

    converged:      bool, ``residuals <= tol * norm_estimate`` (eigensolvers: normwise, never relative
                    to ``|lambda|``, which is 0 at a bifurcation) or ``<= tol * ||b||`` (GMRES).
    residuals:      TRUE residual norms from explicit matvecs (``||A v - lambda v||``, ``||b - A x||``),
                    never the Krylov estimate; NaN where the operator returned non-finite numbers.
    matvecs:        operator applications per problem, the residual ones included (a shared
                    Krylov-Schur run reports its total in every target's result).
    iterations:     restarts (Lanczos, Krylov-Schur), sweeps (block Rayleigh-Ritz), cycles (GMRES).
    tol:            the tolerance used.
    norm_estimate:  ``[*batch]`` the scale of ``tol``: a lower bound of ``||A||_2`` (eigensolvers) or
                    ``||b||`` (GMRES).
    estimates:      the solver's own residual estimates (Krylov ``|beta e_m^T y|``, the Givens residual),
                    or None.
    breakdowns:     ``[*batch]`` invariant subspaces met (each continued from a random vector, or exact).
    nonfinite:      ``[*batch]`` bool, the operator returned non-finite numbers (that problem stopped).
    stagnated:      ``[*batch]`` bool, stopped because more iterations could not help (block RR), or None.
    true_residual_retries: ``[*batch]`` times a converged estimate was contradicted by the true residual.
    fallback_restarts: ``[*batch]`` thick restarts that failed their invariance check (Krylov-Schur).
    matvecs_per_problem: ``[*batch]`` where problems of a batch stop at different times, else None.
    iterations_per_problem: ``[*batch]`` restarts / the sweep each answer comes from, else None.
    krylov_dim:     the basis size ``m`` (block RR: the block size ``p``; GMRES: the restart length).
    history:        ``[*batch, iterations]`` the leading value per iteration (block RR: ``|mu_1|``), or None.
    true_checks:    times the true residuals were computed (each a batched matvec), where counted.
    ritz_values:    ``[*batch, m]`` complex, every Ritz value of the final decomposition, best first for
                    the result's target (Krylov-Schur; NaN-padded): beyond the reported pairs they are
                    unconverged approximations. What the next eigenvalues look like at no cost (is there
                    a second leading pair of nearly equal modulus, a cluster), or None.
    """

    converged: torch.Tensor
    residuals: torch.Tensor
    matvecs: int
    iterations: int
    tol: float
    norm_estimate: torch.Tensor
    breakdowns: torch.Tensor
    nonfinite: torch.Tensor
    krylov_dim: int
    estimates: torch.Tensor | None = None
    stagnated: torch.Tensor | None = None
    true_residual_retries: torch.Tensor | None = None
    fallback_restarts: torch.Tensor | None = None
    matvecs_per_problem: torch.Tensor | None = None
    iterations_per_problem: torch.Tensor | None = None
    history: torch.Tensor | None = None
    true_checks: int = 0
    ritz_values: torch.Tensor | None = None

    @property
    def all_converged(self) -> bool:
        """Every problem (and every reported pair) converged."""
        return bool(self.converged.all())


class _FromInfo(Generic[T]):
    """A read-only attribute of a result that is the attribute of the same name of its ``info``: one
    convergence record for every solver, read as ``result.converged`` as well as ``result.info.converged``."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, result: None, owner: type) -> _FromInfo[T]: ...
    @overload
    def __get__(self, result: object, owner: type | None = None) -> T: ...
    def __get__(self, result: object, owner: type | None = None) -> T | _FromInfo[T]:
        return self if result is None else getattr(result.info, self.name)  # on the class: itself, for its doc


class _Converging:
    """The convergence fields of a result, read through its :class:`ConvergenceInfo`."""

    info: ConvergenceInfo

    converged = _FromInfo[torch.Tensor]("Bool per problem (and pair): the TRUE residual meets the tolerance.")
    residuals = _FromInfo[torch.Tensor]("TRUE residual norms from explicit matvecs.")
    matvecs = _FromInfo[int]("Operator applications per problem.")
    iterations = _FromInfo[int]("Restarts, sweeps or cycles performed.")
    tol = _FromInfo[float]("The tolerance used.")
    norm_estimate = _FromInfo[torch.Tensor]("The scale of the tolerance (a lower bound of ``||A||_2``, or ``||b||``).")
    all_converged = _FromInfo[bool]("Every problem (and pair) converged.")


@dataclass(frozen=True)
class EigResult(_Converging):
    """Eigenpairs ``A v = lambda v`` found by a solver, best (by the solver's target) first.

    values:  ``[*batch, k]``, real, or complex for non-symmetric operators.
    vectors: ``[*batch, k, n]``, unit 2-norm rows (complex where ``values`` is complex).
    info:    :class:`ConvergenceInfo`; ``residuals``, ``converged``, ``matvecs``, ``iterations``,
             ``tol`` and ``norm_estimate`` read through to it.
    images:  ``[*batch, k, n]`` the explicit products ``A v`` of the vectors where the solver made them
             for the true residuals (Krylov-Schur), else None: a caller that needs ``A v`` (a residual
             vector, a Rayleigh quotient) has it without another product.
    """

    values: torch.Tensor
    vectors: torch.Tensor
    info: ConvergenceInfo
    images: torch.Tensor | None = None

    def with_rows(self, rows: list[int], other: EigResult) -> EigResult:
        """This result with problems ``rows`` of a flat batch ``[B]`` taken from ``other`` (a solve of
        those problems alone, ``[len(rows)]``, by the same solver with the same ``nev`` and basis size):
        every per-problem field is replaced row by row (``ValueError`` where the shapes differ);
        ``matvecs`` and ``iterations`` become the sums of the two solves (what a replaced problem paid)."""
        index = torch.tensor(rows, dtype=torch.long, device=self.values.device)

        def merged(mine: object, theirs: object) -> object:
            if not (isinstance(mine, torch.Tensor) and isinstance(theirs, torch.Tensor)) or mine.ndim == 0:
                return mine
            if mine.shape[1:] != theirs.shape[1:]:
                raise ValueError(
                    f"rows of shape {list(theirs.shape[1:])} cannot replace rows of {list(mine.shape[1:])}"
                )
            out = mine.clone()
            out[index.to(mine.device)] = theirs.to(mine.dtype)
            return out

        changes = {f.name: merged(getattr(self.info, f.name), getattr(other.info, f.name)) for f in fields(self.info)}
        changes.update(matvecs=self.matvecs + other.matvecs, iterations=self.iterations + other.iterations)
        info = replace(self.info, **changes)
        images = None if self.images is None or other.images is None else merged(self.images, other.images)
        return EigResult(merged(self.values, other.values), merged(self.vectors, other.vectors), info, images)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LinearSolveResult(_Converging):
    """The solution of ``A x = b`` (GMRES).

    x:    ``[*batch, n]`` the final iterate.
    info: :class:`ConvergenceInfo`, ``residuals [*batch]`` the TRUE ``||b - A x||``, ``norm_estimate``
          ``||b||``, ``converged = residuals <= tol * ||b||``.
    """

    x: torch.Tensor
    info: ConvergenceInfo

    @property
    def residual_norm(self) -> torch.Tensor:
        """``[*batch]`` TRUE ``||b - A x||`` (NaN where the operator returned non-finite numbers)."""
        return self.info.residuals

    @property
    def relative_residual(self) -> torch.Tensor:
        """``[*batch]`` ``||b - A x|| / ||b||`` (0 where ``b = 0``, then ``x = 0``)."""
        bnorm = self.info.norm_estimate
        return torch.where(bnorm > 0, self.residual_norm / torch.where(bnorm > 0, bnorm, 1.0), self.residual_norm)


#: The former name of :class:`LinearSolveResult` (one result family: it is the same class).
GmresResult = LinearSolveResult


class Shifted:
    """The operator ``A = B - shift I`` given by ``matvec(X) = B X``: a plain matvec of ``A`` to every
    solver, and to the Krylov ones (Lanczos, block Lanczos, Krylov-Schur) a hint.

    They orthogonalize ``B v`` instead of ``A v`` and put ``-shift`` on the diagonal of the projected
    matrix: the Krylov space and ``H`` are the same (``K(A, x) = K(B, x)``, ``V^T A V = V^T B V - shift
    I``), but where ``|shift|`` dominates (``J_F = J_nc - (1 + c) I``), ``A v`` is mostly ``-shift v``,
    a component Gram-Schmidt removes again at every step, and the DGKS criterion then asks for a second
    pass at every step: one more read of the whole basis per product.
    """

    def __init__(self, matvec: Matvec, shift: float) -> None:
        self.matvec, self.shift = matvec, float(shift)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``A x = B x - shift x``."""
        return self.matvec(x) - self.shift * x


class CountingMatvec:
    """Wraps a matvec and counts applications per problem (see module docstring).

    ``batch_ndim`` is the number of leading batch dimensions of the problem; any extra leading
    dimension beyond those (a block of vectors) multiplies the count. For a :class:`Shifted` operator
    ``shift`` is its shift and :meth:`unshifted` its ``B`` (counted the same); else ``shift`` is 0.
    """

    def __init__(self, matvec: Matvec, batch_ndim: int) -> None:
        self._matvec = matvec
        self._unshifted = matvec.matvec if isinstance(matvec, Shifted) else matvec
        self.shift = matvec.shift if isinstance(matvec, Shifted) else 0.0
        self._batch_ndim = batch_ndim
        self.count = 0

    def _count(self, x: torch.Tensor) -> None:
        block = x.shape[self._batch_ndim : x.ndim - 1]
        n_vectors = 1
        for size in block:
            n_vectors *= int(size)
        self.count += n_vectors

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``A x``, counting one application per vector of the block."""
        self._count(x)
        return self._matvec(x)

    def unshifted(self, x: torch.Tensor) -> torch.Tensor:
        """``B x = A x + shift x`` (``A x`` itself where ``A`` is not :class:`Shifted`), counted as ``A x``."""
        self._count(x)
        return self._unshifted(x)
