"""The Krylov factorization layer: ONE orthogonalization kernel and the decomposition ``A V = V H + r b^T``.

Every Krylov solver of this package (Lanczos, Krylov-Schur, GMRES) keeps, per problem of a batch, a
Krylov decomposition

    A V_j = V_j H_j + v_(j+1) b^T,        V_(j+1)^T V_(j+1) = I,

with ``V_j`` the first ``j`` rows of a PREALLOCATED basis ``V [B, m + 1, n]``, the residual direction
``v_(j+1)`` in row ``j`` and ``H [B, m + 1, m]`` holding ``H_j`` in its leading ``j x j`` block and the
coupling ``b^T`` in row ``j`` (``H_j`` upper Hessenberg after Arnoldi steps, ``b = beta_j e_j``; any
``H_j``, ``b`` after a restart). The solvers differ only in how they read ``H`` and what they keep:

* :meth:`KrylovFactorization.expand`: one Arnoldi step ``w = A v_(j+1)``, orthogonalized against
  ``V_(j+1)`` by :func:`orthogonalize`; its coefficients are column ``j`` of ``H``;
* :meth:`KrylovFactorization.restart`: ``V_p <- V_m Q``, ``v_(p+1) <- v_(m+1)``, ``H_p <- Q^T H_m Q``,
  ``b^T <- b^T Q`` (thick / Krylov-Schur restart; ``p = 0`` with a unit ``Q`` column is an explicit
  restart from one vector), given as one ``[m + 1, m + 1]`` row transform per problem;
* :meth:`KrylovFactorization.replace_next`: a new residual direction (a random vector after an
  invariant subspace was found: coupled by ``b = 0``, the decomposition stays exact).

The orthogonalization kernel is blocked classical Gram-Schmidt with the DGKS criterion (Daniel, Gragg,
Kaufman & Stewart, Math. Comp. 30, 1976): one pass ``w <- w - V (V^T w)`` (two matrix products over the
whole block), and a second pass only where the first removed more than ``1 - eta`` of ``w``'s norm
(``||w'|| < eta ||w||``, ``eta = 1/sqrt(2)``), i.e. where cancellation may have left ``w'`` visibly
non-orthogonal; if the second pass shrinks it by ``eta`` again, ``w`` is numerically in ``span(V)``
(an invariant subspace). "Twice is enough" (Giraud, Langou, Rozloznik & van den Eshof 2005): the
result is orthogonal to working precision either way. The small matrix products on a thin block run
on one thread (see :mod:`spectral_probe.linalg.threads`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.linalg.threads import serial_if_small

__all__ = ["DGKS_ETA", "KrylovFactorization", "Orthogonalized", "orthogonalize", "orthogonalize_rows"]

#: DGKS threshold: a second Gram-Schmidt pass where one pass kept less than this fraction of the norm.
DGKS_ETA = 1.0 / math.sqrt(2.0)


@dataclass(frozen=True)
class Orthogonalized:
    """``w - V^T c`` with ``V w`` removed, and what the kernel learned about it (all per problem).

    vector:       ``[*, n]`` the orthogonalized vector (not normalized).
    coefficients: ``[*, k]`` ``c``, summed over the passes: ``w = V^T c + vector``.
    norm:         ``[*]`` ``||vector||`` (the new ``beta``).
    input_norm:   ``[*]`` ``||w||`` before any pass; non-finite iff ``w`` was not finite.
    in_span:      ``[*]`` bool, ``w`` is numerically in ``span(V)`` (the DGKS test failed twice, or
                  ``||vector|| <= eps ||w||``).
    """

    vector: torch.Tensor
    coefficients: torch.Tensor
    norm: torch.Tensor
    input_norm: torch.Tensor
    in_span: torch.Tensor


def _project(basis: torch.Tensor, w: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One classical Gram-Schmidt pass of the rows of ``w [*, k, n]``: ``C = W V^T`` (entries where ``mask
    [*, k or 1, t or 1]`` is 0 ignored), ``W - C V``: two reads of ``V`` for all ``k`` rows together."""
    # W V^T rather than V w: the same numbers, but torch's batched matrix-VECTOR kernel is 5-7x slower
    # than the row-vector form once the batch has more than one problem (both at n = 512 to 8,192).
    coef = w @ basis.mT
    if mask is not None:
        coef = coef * mask
    return w - coef @ basis, coef


def orthogonalize(
    basis: torch.Tensor, w: torch.Tensor, mask: torch.Tensor | None = None, *, eta: float = DGKS_ETA, local: int = 0
) -> Orthogonalized:
    """Blocked classical Gram-Schmidt of ``w [*, n]`` against the orthonormal rows of ``basis [*, k, n]``.

    One pass is ``c = V w``, ``w' = w - V (V^T w)`` (two products over the whole block); a second pass only
    where the first kept ``||w'|| < eta ||w||`` (DGKS); ``mask [*, k]`` (0/1) hides
    the rows a problem does not own (zero-padded bases of unequal size in a batch). Returns
    :class:`Orthogonalized`, with ``in_span`` where ``w`` is numerically in ``span(basis)``.

    ``local``: first remove ``w``'s part on the last ``local`` rows alone (no mask), where a short
    recurrence puts nearly all of it (Lanczos: ``A v_j = beta v_(j-1) + alpha v_j + beta' v_(j+1)``); the
    DGKS test then compares the full pass with what that cheap step left, so the cancellation the
    recurrence itself causes no longer asks for a second read of the whole basis. The result is the same
    to working precision: the full pass and its DGKS test act on the locally reduced vector.
    """
    row_mask = None if mask is None else mask.unsqueeze(-2)
    rows = orthogonalize_rows(basis, w.unsqueeze(-2), row_mask, eta=eta, local=local)
    return Orthogonalized(
        rows.vector.squeeze(-2),
        rows.coefficients.squeeze(-2),
        rows.norm.squeeze(-1),
        rows.input_norm.squeeze(-1),
        rows.in_span.squeeze(-1),
    )


def orthogonalize_rows(
    basis: torch.Tensor, w: torch.Tensor, mask: torch.Tensor | None = None, *, eta: float = DGKS_ETA, local: int = 0
) -> Orthogonalized:
    """:func:`orthogonalize` of each row of ``w [*, p, n]`` against ``basis [*, k, n]`` at once (not against
    each other): every pass reads the basis twice for all ``p`` rows (a block Krylov step), and the DGKS
    second pass is taken per row. ``mask [*, 1, k]`` as in :func:`orthogonalize`. The fields of the
    :class:`Orthogonalized` gain the row axis: ``vector [*, p, n]``, ``coefficients [*, p, k]``, the
    norms and ``in_span`` ``[*, p]``."""
    eps = float(torch.finfo(w.dtype).eps)
    with serial_if_small(basis):
        input_norm = torch.linalg.vector_norm(w, dim=-1)
        top = basis.shape[-2]
        local = min(local, top) if mask is None else 0
        reference, local_coef = input_norm, None
        if local:
            w, local_coef = _project(basis[..., top - local :, :], w, None)
            reference = torch.linalg.vector_norm(w, dim=-1)
        w1, coef = _project(basis, w, mask)
        if local_coef is not None:
            coef = torch.cat([coef[..., : top - local], coef[..., top - local :] + local_coef], dim=-1)
        norm = torch.linalg.vector_norm(w1, dim=-1)
        second = norm < eta * reference
        in_span = norm <= eps * input_norm
        if bool(second.any()):
            # Only the rows that need it: the others' coefficients are zero, their vector unchanged.
            keep = second.unsqueeze(-1).to(w.dtype)
            w2, coef2 = _project(basis, w1, keep if mask is None else keep * mask)
            norm2 = torch.linalg.vector_norm(w2, dim=-1)
            in_span = in_span | (second & ((norm2 < eta * norm) | (norm2 <= eps * input_norm)))
            w1, coef, norm = w2, coef + coef2, torch.where(second, norm2, norm)
    return Orthogonalized(w1, coef, norm, input_norm, in_span)


@dataclass
class Step:
    """One Arnoldi step before it is committed: the column index per problem and the kernel's output."""

    column: torch.Tensor  # [B] long, j (the step fills column j of H and row j + 1 of V)
    top: int  # rows of V read (max j + 1 over the stepping problems)
    result: Orthogonalized
    uniform: int | None = None  # j when every problem steps at the same column (plain slices, no gathers)


class KrylovFactorization:
    """``A V_j = V_j H_j + v_(j+1) b^T`` for ``B`` problems at once (see the module docstring).

    ``V [B, m + 1, n]`` and ``H [B, m + 1, m]`` are allocated once; ``size [B]`` is each problem's
    ``j`` (filled columns of ``H``; ``V`` holds ``j + 1`` valid rows, the last one the residual
    direction). Nothing is allocated per step beyond the step's own ``O(n)`` vectors.
    """

    def __init__(self, start: torch.Tensor, m: int) -> None:
        """``start [B, n]``: unit rows, the first basis vector of each problem; ``m``: basis capacity."""
        batch, n = start.shape
        self.m = m
        self.V = start.new_zeros((batch, m + 1, n))
        self.V[:, 0] = start
        self.H = start.new_zeros((batch, m + 1, m))
        self.size = torch.zeros(batch, dtype=torch.long, device=start.device)
        self._rows = torch.arange(batch, device=start.device)
        self._range = torch.arange(m + 1, device=start.device)

    def expand(
        self, apply: Callable[[torch.Tensor], torch.Tensor], stepping: torch.Tensor, shift: float = 0.0, local: int = 0
    ) -> Step:
        """Apply ``A`` to every problem's newest basis vector and orthogonalize (nothing written yet).

        ``stepping [B]`` bool: problems that take the step; the others are fed a finite unit vector
        (their first basis vector: a finite-difference matvec may normalize) and their output ignored.
        ``apply`` may give ``B v`` for ``A = B - shift I`` (:class:`~spectral_probe.linalg.result.Shifted`):
        ``B v`` is orthogonalized and ``-shift`` added to its coefficient on ``v`` (``H``'s diagonal).
        ``local``: the rows of a short recurrence, removed first (:func:`orthogonalize`; lockstep only).
        """
        column = torch.where(stepping, self.size, torch.zeros_like(self.size))
        low, high = (int(c) for c in torch.aminmax(column))
        if low == high and bool(stepping.all()):
            # Lockstep (Lanczos always, Krylov-Schur mostly): views of V, no gathers and no mask.
            w = apply(self.V[:, high])
            result = orthogonalize(self.V[:, : high + 1], w, local=local)
            if shift:
                result.coefficients[:, high] -= shift
            return Step(column, high + 1, result, uniform=high)
        w = apply(self.V[self._rows, column])
        mask = (self._range[: high + 1].unsqueeze(0) <= column.unsqueeze(1)).to(w.dtype)
        result = orthogonalize(self.V[:, : high + 1], w, mask)
        if shift:
            result.coefficients[self._rows, column] -= shift
        return Step(column, high + 1, result)

    def commit(self, step: Step, stepping: torch.Tensor, beta: torch.Tensor, new: torch.Tensor) -> None:
        """Write the step of the ``stepping`` problems: column ``j`` of ``H`` (coefficients, ``beta``
        below the diagonal) and ``new`` (the next unit vector, or a replacement) as row ``j + 1`` of ``V``."""
        j = step.uniform
        if j is not None and bool(stepping.all()):
            self.H[:, : j + 1, j] = step.result.coefficients
            self.H[:, j + 1, j] = beta
            self.V[:, j + 1] = new
            self.size += 1
            return
        rows = self._rows[stepping]
        col = step.column[stepping]
        column = self.H.new_zeros((len(rows), self.m + 1))
        column[:, : step.top] = step.result.coefficients[stepping]
        column[torch.arange(len(rows), device=column.device), col + 1] = beta[stepping]
        self.H[rows, :, col] = column
        self.V[rows, col + 1] = new[stepping]
        self.size[rows] += 1

    def restart(self, rows: torch.Tensor, transform: torch.Tensor, h_new: torch.Tensor, sizes: torch.Tensor) -> None:
        """Restart the problems ``rows``: ``V <- transform @ V`` (``[R, m + 1, m + 1]``: the kept
        combinations ``Q^T`` in the first ``p`` rows, the residual direction moved to row ``p``),
        ``H <- h_new`` (``[R, m + 1, m]``, ``Q^T H Q`` and the coupling ``b^T Q`` in row ``p``), size ``p``.
        Only the first ``max p + 1`` rows of ``transform`` are formed: the rows past a problem's size are
        never read before a step overwrites them (a thick restart keeps about half the basis)."""
        top = min(int(sizes.max()) + 1, transform.shape[-2])
        if len(rows) == self.V.shape[0]:
            self.V[:, :top] = transform[:, :top] @ self.V
        else:
            self.V[rows, :top] = transform[:, :top] @ self.V[rows]
        self.H[rows] = h_new
        self.size[rows] = sizes

    def replace_next(self, rows: torch.Tensor, vectors: torch.Tensor) -> None:
        """Put unit ``vectors [R, n]`` (orthogonal to the basis) as the residual direction of ``rows``."""
        self.V[rows, self.size[rows]] = vectors

    def basis(self, top: int) -> torch.Tensor:
        """The first ``top`` rows of every problem's basis, ``[B, top, n]`` (a view)."""
        return self.V[:, :top]


def random_orthonormal(basis: torch.Tensor, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """A random unit vector orthogonal to the rows of ``basis``, per problem (``basis`` has < n rows)."""
    gen_device = generator.device if generator is not None else like.device
    out = like.new_zeros(like.shape)
    pending = torch.ones(like.shape[:-1], dtype=torch.bool, device=like.device)
    # A Gaussian vector keeps ~sqrt((n - j) / n) of its norm after projection; one in a million
    # loses (nearly) all of it, then draw again (a handful of tries is more than enough).
    for _ in range(8):
        r = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=gen_device).to(like.device)
        projected = orthogonalize(basis, r)
        r, nr = projected.vector, projected.norm
        good = pending & (nr > 1e-3 * projected.input_norm)
        out = torch.where(good.unsqueeze(-1), r / nr.clamp_min(torch.finfo(like.dtype).tiny).unsqueeze(-1), out)
        pending = pending & ~good
        if not bool(pending.any()):
            break
    return out
