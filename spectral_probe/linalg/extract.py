"""Krylov-Schur's answer: the wanted Ritz pairs ``(theta, V_m y)`` with TRUE residuals ``||A x - theta x||``.

A real operator cannot be applied to a complex vector (an autograd jvp, say, is real), so
``A x = A Re x + i A Im x``: two matvecs per complex Ritz vector, one per real one, and the conjugate of
a pair reuses them (``A conj(x) = conj(A x)``). Vectors wanted by several targets are applied once, and
all problems of a batch are applied together (one batched matvec per slot).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from spectral_probe.linalg.ritz import Ritz

__all__ = ["Extracted", "true_residuals"]

Apply = Callable[[torch.Tensor], torch.Tensor]


class Extracted(NamedTuple):
    """Per target: ``values [B, nev]``, unit ``vectors [B, nev, n]``, their ``images`` ``A x`` (the explicit
    products of the true residuals, ``[B, nev, n]``) and TRUE ``residuals [B, nev]``; per problem whether
    every target's residuals meet the tolerance."""

    values: list[torch.Tensor]
    vectors: list[torch.Tensor]
    images: list[torch.Tensor]
    residuals: list[torch.Tensor]
    converged: list[bool]


def _is_rep(r: Ritz, i: int) -> bool:
    """``i`` represents its conjugate pair (a real value, or the one with positive imaginary part)."""
    return r.partners[i] == i or float(r.theta[i].imag) > 0.0


def _representatives(ritz: list[Ritz | None], failed: list[bool], nev: int) -> list[list[int]]:
    """Per problem, the distinct Ritz indices to apply ``A`` to (one per conjugate pair)."""
    reps: list[list[int]] = []
    for b, r in enumerate(ritz):
        chosen: list[int] = []
        if r is not None and not failed[b]:
            for order in r.orders:
                for i in order[:nev].tolist():
                    rep = i if _is_rep(r, i) else r.partners[i]
                    if rep not in chosen:
                        chosen.append(rep)
        reps.append(chosen)
    return reps


def _apply_slot(
    picks: list[tuple[int, Ritz, int]], V: torch.Tensor, m: int, apply: Apply, mv_per: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, A X)`` complex ``[B, n]`` for one Ritz vector per listed problem (others: a unit dummy)."""
    B, n = V.shape[0], V.shape[-1]
    cdtype = V.dtype.to_complex()
    X = torch.zeros(B, n, dtype=cdtype, device=V.device)
    has, is_complex = [False] * B, [False] * B
    for b, r, i in picks:
        # Real and imaginary parts by real products (Y is complex, from eig): a complex copy of the basis
        # would cost more than the products.
        y, basis = r.Y[:, i].to(device=V.device), V[b, : r.Y.shape[0]]  # H_k: k <= m
        x = torch.complex(y.real.to(V.dtype) @ basis, y.imag.to(V.dtype) @ basis)
        X[b] = x / torch.linalg.vector_norm(x)
        has[b], is_complex[b] = True, float(r.theta[i].imag) != 0.0
        mv_per[b] += 1 + int(is_complex[b])
    # Idle problems get a finite unit dummy (their first basis vector), never zeros.
    dummy = V[:, 0]
    has_t = torch.tensor(has, device=V.device)[:, None]
    AXr = apply(torch.where(has_t, X.real, dummy))
    AX = AXr.to(cdtype)
    if any(is_complex):
        cpx = torch.tensor(is_complex, device=V.device)[:, None]
        AXi = apply(torch.where(cpx, X.imag, dummy))
        AX = torch.complex(AXr, torch.where(cpx, AXi, torch.zeros_like(AXi)))
    return X, AX


def true_residuals(
    ritz: list[Ritz | None],
    V: torch.Tensor,
    n_targets: int,
    nev: int,
    m: int,
    apply: Apply,
    failed: list[bool],
    norm_est: list[float],
    tol: float,
    mv_per: list[int],
) -> Extracted:
    """The wanted pairs of every target with their images and TRUE residuals; converged means every
    target's residuals meet ``tol * norm_est`` (updates ``norm_est`` with ``||A x||`` and ``mv_per`` with
    the matvecs spent)."""
    reps = _representatives(ritz, failed, nev)
    vec: list[dict[int, torch.Tensor]] = [{} for _ in ritz]
    img: list[dict[int, torch.Tensor]] = [{} for _ in ritz]
    res: list[dict[int, float]] = [{} for _ in ritz]
    for slot in range(max((len(x) for x in reps), default=0)):
        picks = [(b, r, reps[b][slot]) for b, r in enumerate(ritz) if r is not None and slot < len(reps[b])]
        X, AX = _apply_slot(picks, V, m, apply, mv_per)
        for b, r, i in picks:
            theta = r.theta[i].to(X.dtype).to(X.device)
            res[b][i] = float(torch.linalg.vector_norm(AX[b] - theta * X[b]))
            # Fix the free phase: the largest entry real positive (deterministic, comparable output).
            k = int(torch.argmax(X[b].abs()))
            phase = (X[b][k] / X[b][k].abs()).conj()
            vec[b][i], img[b][i] = X[b] * phase, AX[b] * phase
            # The true residual also refines the lower bound on ||A||: ||A x|| <= ||A|| for unit x.
            norm_est[b] = max(norm_est[b], float(torch.linalg.vector_norm(AX[b])))
    return _by_target(ritz, failed, n_targets, nev, V, vec, img, res, norm_est, tol)


def _by_target(
    ritz: list[Ritz | None],
    failed: list[bool],
    n_targets: int,
    nev: int,
    V: torch.Tensor,
    vec: list[dict[int, torch.Tensor]],
    img: list[dict[int, torch.Tensor]],
    res: list[dict[int, float]],
    norm_est: list[float],
    tol: float,
) -> Extracted:
    """Arrange the applied vectors by target, best first (NaN values, infinite residuals if failed); a
    conjugate takes its partner's vector and image conjugated (``A conj(x) = conj(A x)``)."""
    B, n, device, dtype = V.shape[0], V.shape[-1], V.device, V.dtype
    cdtype = dtype.to_complex()
    values, vectors, images, residuals = [], [], [], []
    for t_i in range(n_targets):
        vals = torch.full((B, nev), complex("nan"), dtype=cdtype, device=device)
        vecs = torch.full((B, nev, n), complex("nan"), dtype=cdtype, device=device)
        imgs = torch.full((B, nev, n), complex("nan"), dtype=cdtype, device=device)
        rs = torch.full((B, nev), math.inf, dtype=dtype, device=device)
        for b, r in enumerate(ritz):
            if r is None or failed[b]:
                continue
            for k, i in enumerate(r.orders[t_i][:nev].tolist()):
                vals[b, k] = r.theta[i].to(cdtype)
                rep = i if _is_rep(r, i) else r.partners[i]
                vecs[b, k] = vec[b][rep] if rep == i else vec[b][rep].conj()
                imgs[b, k] = img[b][rep] if rep == i else img[b][rep].conj()
                rs[b, k] = res[b][rep]
        values.append(vals)
        vectors.append(vecs)
        images.append(imgs)
        residuals.append(rs)
    converged = [
        not failed[b] and all(bool((r_t[b] <= tol * norm_est[b]).all()) for r_t in residuals) for b in range(B)
    ]
    return Extracted(values, vectors, images, residuals, converged)
