"""The projected problem of Krylov-Schur: Ritz pairs of ``H_m``, what a restart keeps, and its invariance.

Small, float64, on the CPU, one problem at a time (``m x m`` with ``m`` about 40): the O(n) work stays in
:mod:`spectral_probe.linalg.krylov`. See :mod:`spectral_probe.linalg.arnoldi` for the restart's math.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from spectral_probe.linalg.targets import Target
from spectral_probe.linalg.threads import single_threaded


def order(score: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Indices of ``theta`` best first: score descending, ties (a conjugate pair) positive imag first
    (on the last dimension: ``[..., k]``)."""
    by_imag = torch.argsort(-theta.imag, dim=-1, stable=True)
    by_score = torch.argsort(-score.gather(-1, by_imag), dim=-1, stable=True)
    return by_imag.gather(-1, by_score)


def _pair_score(score: torch.Tensor, mate: torch.Tensor) -> torch.Tensor:
    """One score per conjugate pair (the larger of its members'): every target is conjugation-symmetric,
    but ``|a + bi|`` and ``|a - bi|`` can differ by an ulp with their position in the array (vectorized
    and scalar code paths), which would break the pair's tie at random instead of Im > 0 first."""
    return torch.maximum(score, score.gather(-1, mate))


def partner_index(theta: torch.Tensor) -> torch.Tensor:
    """Index of each Ritz value's complex conjugate (itself for a real one), on the last dimension.

    LAPACK's real ``geev`` returns real eigenvalues with an imaginary part of exactly zero and complex
    ones in exactly conjugate pairs, so the test ``imag == 0`` is exact.
    """
    k = theta.shape[-1]
    is_complex = theta.imag != 0
    dist = (theta.unsqueeze(-1) - theta.conj().unsqueeze(-2)).abs()
    dist = dist.masked_fill(~is_complex.unsqueeze(-2), math.inf)
    dist = dist.masked_fill(torch.eye(k, dtype=torch.bool, device=theta.device), math.inf)
    itself = torch.arange(k, device=theta.device).expand_as(is_complex)
    nearest = torch.argmin(dist, dim=-1) if k else itself
    return torch.where(is_complex, nearest, itself)


def real_basis(Y: torch.Tensor, kept: list[int]) -> torch.Tensor:
    """Orthonormal real basis ``[m, p]`` (``p = len(kept)``) of the span of the Ritz vectors
    ``Y[:, kept]`` made real: a conjugate pair ``y, conj(y)`` spans the same space as ``Re y, Im y``.

    The SVD (rather than QR of hand-picked columns) keeps the ``p`` dominant directions of all real and
    imaginary parts, which also covers a cluster whose vectors were recomputed as a real basis.
    """
    Z = torch.cat([Y[:, kept].real, Y[:, kept].imag], dim=1)
    U = torch.linalg.svd(Z, full_matrices=False)[0]
    return U[:, : len(kept)]


@dataclass
class Ritz:
    """The analysis of one problem's current decomposition (small, float64, CPU)."""

    theta: torch.Tensor  # [m] complex
    Y: torch.Tensor  # [m, m] complex, unit columns
    estimates: torch.Tensor  # [m] |h^T y|
    orders: list[torch.Tensor]  # per target, best first
    partners: list[int]
    hm: torch.Tensor  # [m, m]
    h: torch.Tensor  # [m]
    hnorm: float  # ||H_bar||_2 <= ||A||_2


def analyze(Hbar: torch.Tensor, targets: Sequence[Target], vec_rtol: float, norm_floor: float) -> Ritz | None:
    """Ritz pairs of ``H_m`` with the Krylov residual ``||Hbar y - theta [y; 0]||`` of each; None if
    ``H`` is not finite.

    That residual is ``sqrt(|h^T y|^2 + ||H_m y - theta y||^2)``, the exact residual of ``(theta, V y)``
    up to the rounding of the Arnoldi relation: unlike the textbook ``|h^T y|`` it stays honest when
    LAPACK's eigenvectors are poor, which happens for (nearly) multiple Ritz values (``trevc`` gives no
    backward-stable vector inside a cluster). Vectors with ``||H_m y - theta y||`` above
    ``vec_rtol * max(||Hbar||_2, norm_floor)`` are
    recomputed per cluster of Ritz values as the smallest right singular vectors of
    ``H_m - c I`` (``c`` the cluster's centre): an orthonormal basis of the cluster's near null space.
    """
    return analyze_many([Hbar], targets, vec_rtol, [norm_floor])[0]


@single_threaded()
def analyze_many(
    Hbars: Sequence[torch.Tensor], targets: Sequence[Target], vec_rtol: float, norm_floors: Sequence[float]
) -> list[Ritz | None]:
    """:func:`analyze` of several problems' ``Hbar`` (one ``norm_floor`` each): those of one size share
    ONE batched ``eig`` and ``||.||_2`` (a batch of Krylov-Schur problems tests many at once, and a call
    per problem would cost more than the batched product it decides on)."""
    out: list[Ritz | None] = [None] * len(Hbars)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for i, Hbar in enumerate(Hbars):
        if bool(torch.isfinite(Hbar).all()):
            by_size.setdefault(tuple(Hbar.shape), []).append(i)
    for members in by_size.values():
        H = torch.stack([Hbars[i] for i in members])
        m = H.shape[-1]
        hm = H[:, :m, :]
        theta, Y = torch.linalg.eig(hm)
        Y = Y / torch.linalg.vector_norm(Y, dim=-2, keepdim=True)
        eig_res = torch.linalg.vector_norm(hm.to(Y.dtype) @ Y - Y * theta.unsqueeze(-2), dim=-2)
        hnorms = torch.linalg.matrix_norm(H, ord=2).tolist()
        mate = partner_index(theta)
        orders = [order(_pair_score(t.score(theta).to(torch.float64), mate), theta) for t in targets]
        pairs = mate.tolist()
        for g, i in enumerate(members):
            ritz = _ritz(H[g], theta[g], Y[g], eig_res[g], hnorms[g], vec_rtol, norm_floors[i])
            out[i] = Ritz(*ritz, [o[g] for o in orders], pairs[g], H[g, :m, :], H[g, m, :], hnorms[g])
    return out


def _ritz(
    Hbar: torch.Tensor,
    theta: torch.Tensor,
    Y: torch.Tensor,
    eig_res: torch.Tensor,
    hnorm: float,
    vec_rtol: float,
    norm_floor: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One problem's ``theta``, unit ``Y`` and Krylov residual estimates, poor vectors recomputed per
    cluster (see :func:`analyze`; ``eig_res`` are the columns' ``||H_m y - theta y||``)."""
    m = Hbar.shape[1]
    hm, h = Hbar[:m, :], Hbar[m, :]
    hmc = hm.to(Y.dtype)
    bad = (eig_res > vec_rtol * max(hnorm, norm_floor)).nonzero().flatten().tolist()
    if bad:
        Y = Y.clone()
        radius = math.sqrt(float(torch.finfo(hm.dtype).eps)) * max(hnorm, float(theta.abs().max()))
        done: set[int] = set()
        eye = torch.eye(m, dtype=Y.dtype)
        for i in bad:
            if i in done:
                continue
            members = ((theta - theta[i]).abs() <= radius).nonzero().flatten().tolist()
            centre = theta[members].mean()
            basis = torch.linalg.svd(hmc - centre * eye)[2].conj().T[:, m - len(members) :]
            Y[:, members] = basis
            done.update(members)
        eig_res = torch.linalg.vector_norm(hmc @ Y - Y * theta, dim=0)
    estimates = torch.sqrt((h.to(Y.dtype) @ Y).abs() ** 2 + eig_res**2)
    return theta, Y, estimates


def wanted(ritz: Ritz, nev: int) -> list[int]:
    """Union over targets of the top ``nev`` Ritz values, each with its conjugate partner, in order."""
    kept: list[int] = []
    for order in ritz.orders:
        for i in order[:nev].tolist():
            for j in (i, ritz.partners[i]):
                if j not in kept:
                    kept.append(j)
    return kept


def with_buffer(ritz: Ritz, must: list[int], goal: int, cap: int) -> list[int]:
    """``must`` plus the next best Ritz values of each target, round robin, up to ``goal`` (``cap``
    at most); a conjugate pair that would overshoot ``goal`` by one is kept whole if ``cap`` allows."""
    kept = list(must)
    m = ritz.theta.shape[0]
    for rank in range(m):
        for order in ritz.orders:
            if len(kept) >= goal:
                return kept
            i = int(order[rank])
            if i in kept:
                continue
            pair = [i] if ritz.partners[i] == i else [i, ritz.partners[i]]
            if len(kept) + len(pair) > cap:
                return kept
            kept.extend(pair)
    return kept


@single_threaded()
def thick_restart(ritz: Ritz, kept: list[int], inv_tol: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``Q`` (orthonormal basis of the kept Ritz space) and ``S = Q^T H Q``, or None if ``span(Q)`` is
    not invariant under ``H_m`` to ``inv_tol`` (the restarted decomposition would be corrupted)."""
    Q = real_basis(ritz.Y, kept)
    S = Q.T @ ritz.hm @ Q
    invariance = float(torch.linalg.matrix_norm(ritz.hm @ Q - Q @ S))
    if not math.isfinite(invariance) or invariance > inv_tol:
        return None
    return Q, S


def estimates_converged(r: Ritz | None, nev: int, tol: float, norm: float) -> bool:
    """Every target's top ``nev`` Krylov residual estimates are ``<= tol * norm``."""
    if r is None:
        return False
    return all(bool((r.estimates[o[:nev]] <= tol * norm).all()) for o in r.orders)


def worst_ratio(r: Ritz, nev: int, tol: float, norm: float) -> float:
    """The largest of every target's top ``nev`` Krylov residual estimates over ``tol * norm`` (converged: <= 1)."""
    worst = max(float(r.estimates[o[:nev]].max()) for o in r.orders)
    return worst / max(tol * norm, 1e-300)
