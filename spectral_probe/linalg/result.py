"""The one result type every eigensolver returns, and the matvec counter they share.

Conventions shared by every solver in :mod:`spectral_probe.linalg`:

* An operator is a callable ``matvec(X) -> A X`` acting on the LAST dimension: ``X`` has shape
  ``[..., n]`` and any leading dimensions are batch dimensions (independent problems, or several
  vectors of one block). Solvers never form ``A``.
* A start vector ``x0`` has shape ``[*batch, n]``; every returned tensor carries the same ``*batch``.
* Vectors are stored as rows: ``vectors[..., k, :]`` is the k-th eigenvector.
* ``matvecs`` counts operator applications PER PROBLEM: a call on ``[*batch, p, n]`` counts ``p``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

Matvec = Callable[[torch.Tensor], torch.Tensor]


def default_tol(dtype: torch.dtype) -> float:
    """Normwise residual tolerance ``eps(dtype) ** (2/3)`` (1.8e-11 in float64, 4.8e-6 in float32)."""
    return float(torch.finfo(dtype).eps) ** (2.0 / 3.0)


@dataclass(frozen=True)
class EigResult:
    """Eigenpairs ``A v = lambda v`` found by a solver, best (by the solver's target) first.

    values:        ``[*batch, k]``, real, or complex for non-symmetric operators.
    vectors:       ``[*batch, k, n]``, unit 2-norm rows (complex where ``values`` is complex).
    residuals:     ``[*batch, k]`` TRUE residual norms ``||A v - lambda v||`` from explicit matvecs,
                   not the Krylov estimate.
    converged:     ``[*batch, k]`` bool, ``residuals <= tol * norm_estimate`` (normwise, never relative
                   to ``|lambda|``, which is 0 at a bifurcation).
    norm_estimate: ``[*batch]`` an estimate of ``||A||_2`` (a lower bound from the Krylov space).
    matvecs:       operator applications per problem, the extra residual matvecs included.
    iterations:    restarts (Krylov) or sweeps (subspace iteration) performed.
    tol:           the normwise tolerance used.
    info:          solver-specific diagnostics (breakdowns, krylov dimension, history ...).
    """

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    norm_estimate: torch.Tensor
    matvecs: int
    iterations: int
    tol: float
    info: dict = field(default_factory=dict)

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())


class CountingMatvec:
    """Wraps a matvec and counts applications per problem (see module docstring).

    ``batch_ndim`` is the number of leading batch dimensions of the problem; any extra leading
    dimension beyond those (a block of vectors) multiplies the count.
    """

    def __init__(self, matvec: Matvec, batch_ndim: int) -> None:
        self._matvec = matvec
        self._batch_ndim = batch_ndim
        self.count = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        block = x.shape[self._batch_ndim : x.ndim - 1]
        n_vectors = 1
        for size in block:
            n_vectors *= int(size)
        self.count += n_vectors
        return self._matvec(x)
