"""Eigenvalue condition numbers of a dense matrix: the right AND left eigenvectors LAPACK's ``geev`` gives.

For a simple eigenvalue ``lambda`` of ``A`` with unit right and left eigenvectors ``x`` and ``y``
(``A x = lambda x``, ``y^H A = lambda y^H``), a perturbation ``E`` moves it by
``|d lambda| <= kappa ||E|| + O(||E||^2)``, ``kappa = 1 / |y^H x|`` (Wilkinson's condition number).
A computed pair ``(lambda, x)`` with residual ``r = A x - lambda x`` is exact for ``A - r x^H``, so
``||r|| kappa`` is its first-order error bound.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spectral_probe.linalg.threads import single_threaded


@dataclass(frozen=True)
class EigenConditions:
    """Every eigenvalue of ``A`` (``[*batch, n, n]``) with its condition number and its residual.

    values:     ``[*batch, n]`` complex eigenvalues, LAPACK's order.
    condition:  ``[*batch, n]`` ``kappa_j = ||x_j|| ||y_j|| / |y_j^H x_j|`` (``inf`` where the eigenvector
                matrix is numerically singular: a defective eigenvalue).
    residuals:  ``[*batch, n]`` true residuals ``||A x_j - lambda_j x_j||`` of the unit right eigenvectors.
    vectors:    ``[*batch, n, n]`` unit right eigenvectors as columns.
    """

    values: torch.Tensor
    condition: torch.Tensor
    residuals: torch.Tensor
    vectors: torch.Tensor


@single_threaded()
def eigen_conditions(a: torch.Tensor) -> EigenConditions:
    """All eigenvalues of ``a`` with condition numbers from the left eigenvectors ``Y^H = X^{-1}``.

    The rows of ``X^{-1}`` are left eigenvectors scaled so that ``y_j^H x_j = 1``; with unit ``x_j`` this
    gives ``kappa_j = ||row_j(X^{-1})||``. That is exact for the matrix LAPACK diagonalized (``A`` plus a
    backward error of order ``u ||A||``), and an estimate good to a modest factor for ``A`` itself.
    """
    values, vectors = torch.linalg.eig(a)
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=-2, keepdim=True)
    eye = torch.eye(a.shape[-1], dtype=vectors.dtype, device=vectors.device).expand_as(vectors)
    inverse, info = torch.linalg.solve_ex(vectors, eye)
    condition = torch.linalg.vector_norm(inverse, dim=-1)
    singular = (info != 0).unsqueeze(-1) | ~torch.isfinite(condition)
    condition = torch.where(singular, torch.full_like(condition, float("inf")), condition)
    applied = a.to(vectors.dtype) @ vectors
    residuals = torch.linalg.vector_norm(applied - vectors * values.unsqueeze(-2), dim=-2)
    return EigenConditions(values=values, condition=condition, residuals=residuals, vectors=vectors)
