"""Restarted GMRES for ``A x = b`` with ``A`` given only by matvecs (Newton-Krylov polishing of ``z*``).

The fixed point ``z*`` of ``F(z) = nc_force(z) - (1 + c) z`` is polished by Newton steps
``J_F dz = -F(z)``, each solved matrix-free with :func:`gmres` on ``matvec = J_F`` (jvp).

The math: from ``r_0 = b - A x_0`` (``beta = ||r_0||``), ``k`` Arnoldi steps (classical Gram-Schmidt,
twice) give ``A V_k = V_{k+1} Hbar_k``; the iterate ``x_0 + V_k y`` with
``y = argmin ||beta e_1 - Hbar_k y||`` minimizes the residual over the Krylov space. Givens rotations
triangularize ``Hbar_k`` column by column, so ``|g_{k+1}|`` (the rotated right-hand side) is that
minimal residual without forming ``x``. After ``restart`` steps the cycle restarts from the new
iterate. The stopping test uses the Givens estimate; the reported ``residual_norm`` is always the TRUE
``||b - A x||`` from an explicit matvec, and ``converged`` is decided on it.

Conventions as in :mod:`spectral_probe.linalg.result`: the operator acts on the last dimension,
``b`` is ``[*batch, n]`` with independent systems in ``*batch``, every operator call is batched over
them, and ``matvecs`` counts calls per system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from spectral_probe.linalg.result import CountingMatvec, Matvec, default_tol

__all__ = ["GmresResult", "gmres"]

# DGKS/Kahan-Parlett: a second Gram-Schmidt pass that still removes this much of the vector means it
# was numerically in the span: a (lucky) breakdown, the exact solution is in the Krylov space.
_DGKS_ETA = 1.0 / math.sqrt(2.0)


@dataclass(frozen=True)
class GmresResult:
    """Solution of ``A x = b`` by restarted GMRES.

    x:                 ``[*batch, n]`` the final iterate.
    residual_norm:     ``[*batch]`` TRUE ``||b - A x||`` from an explicit matvec (NaN where the operator
                       returned non-finite numbers; that system stops with its last finite iterate).
    relative_residual: ``[*batch]`` ``||b - A x|| / ||b||`` (0 where ``b = 0``, then ``x = 0``).
    matvecs:           operator applications per system, the residual ones included.
    converged:         ``[*batch]`` bool, ``residual_norm <= tol * ||b||``.
    info:              ``iterations`` (Arnoldi steps), ``restarts``, ``tol``; per system ``breakdowns``
                       and ``failed`` (non-finite operator output).
    """

    x: torch.Tensor
    residual_norm: torch.Tensor
    relative_residual: torch.Tensor
    matvecs: int
    converged: torch.Tensor
    info: dict = field(default_factory=dict)

    @property
    def all_converged(self) -> bool:
        return bool(self.converged.all())


def _givens(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c, s, r)`` with ``[[c, s], [-s, c]] [a, b]^T = [r, 0]^T`` (batched; ``c = 1, s = 0`` at 0)."""
    r = torch.hypot(a, b)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    c = torch.where(r == 0, torch.ones_like(r), a / safe)
    s = torch.where(r == 0, torch.zeros_like(r), b / safe)
    return c, s, r


def gmres(
    matvec: Matvec,
    b: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    tol: float | None = None,
    restart: int = 30,
    max_iters: int = 300,
) -> GmresResult:
    """Solve ``A x = b`` (``A`` real, possibly non-symmetric, e.g. ``J_F``) by restarted GMRES(restart).

    ``b``: ``[*batch, n]``, independent systems solved together (batched operator calls).
    ``x0``: initial guess (default 0). ``tol``: relative residual target ``||b - A x|| <= tol ||b||``,
    default ``default_tol(b.dtype)``. ``restart``: Krylov dimension per cycle (clipped to ``n``).
    ``max_iters``: total Arnoldi steps (operator applications, not counting the residual ones).

    Never raises on non-convergence: the best iterate comes back with its TRUE residual and
    ``converged=False``. Device and dtype follow ``b``.
    """
    if b.ndim < 1 or not b.is_floating_point():
        raise ValueError(f"b must be a real floating-point tensor [*batch, n], got {b.dtype} {tuple(b.shape)}")
    if restart < 1 or max_iters < 0:
        raise ValueError(f"restart must be >= 1 and max_iters >= 0, got {restart}, {max_iters}")
    n = int(b.shape[-1])
    batch = tuple(b.shape[:-1])
    B = math.prod(batch)
    dtype, device = b.dtype, b.device
    tol = default_tol(dtype) if tol is None else float(tol)
    m = max(1, min(int(restart), n))
    eps = float(torch.finfo(dtype).eps)
    counter = CountingMatvec(matvec, len(batch))

    def apply(X: torch.Tensor) -> torch.Tensor:
        return counter(X.reshape(*batch, n)).reshape(B, n)

    bb = b.detach().reshape(B, n)
    bnorm = torch.linalg.vector_norm(bb, dim=-1)
    if x0 is None:
        x = torch.zeros_like(bb)
        r = bb.clone()
    else:
        if x0.shape != b.shape:
            raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}, got {tuple(x0.shape)}")
        x = x0.detach().reshape(B, n).to(dtype=dtype, device=device).clone()
        r = bb - apply(x)
    rnorm = torch.linalg.vector_norm(r, dim=-1)
    target = tol * bnorm
    # b = 0 is solved exactly by x = 0 (a non-zero x0 could only approach it).
    zero_b = bnorm == 0
    if bool(zero_b.any()):
        x = torch.where(zero_b[:, None], torch.zeros_like(x), x)
        r = torch.where(zero_b[:, None], torch.zeros_like(r), r)
        rnorm = torch.linalg.vector_norm(r, dim=-1)
    # Frozen systems are fed this unit vector (never zeros: a finite-difference matvec may normalize
    # by ||v||), and what comes back for them is discarded.
    dummy = torch.full((n,), 1.0 / math.sqrt(n), dtype=dtype, device=device)

    iters = 0
    restarts = 0
    breakdowns = torch.zeros(B, dtype=torch.long)
    # A system is done when its TRUE residual meets the target (b = 0 is solved by x = 0 at once).
    done = rnorm <= target
    # The operator returned non-finite numbers: the system stops, its residual is reported as NaN.
    failed = torch.zeros(B, dtype=torch.bool, device=device)
    while not bool(done.all()) and iters < max_iters:
        active = ~done
        beta = torch.where(active, rnorm, torch.ones_like(rnorm))
        V = torch.zeros(B, m + 1, n, dtype=dtype, device=device)
        V[:, 0] = torch.where(active[:, None], r / beta[:, None], dummy)
        # The Hessenberg matrix is triangularized as it grows: R (upper triangular) and the rotated
        # right-hand side g; cs, sn are the rotations, applied to each new column.
        R = torch.zeros(B, m + 1, m, dtype=dtype, device=device)
        g = torch.zeros(B, m + 1, dtype=dtype, device=device)
        g[:, 0] = beta
        cs = torch.zeros(B, m, dtype=dtype, device=device)
        sn = torch.zeros(B, m, dtype=dtype, device=device)
        # steps[b]: columns used by system b this cycle; it stops at convergence or a lucky breakdown.
        steps = torch.zeros(B, dtype=torch.long, device=device)
        stepping = active.clone()
        for j in range(m):
            if not bool(stepping.any()) or iters >= max_iters:
                break
            w0 = apply(V[:, j])
            iters += 1
            w = w0
            h = torch.zeros(B, j + 2, dtype=dtype, device=device)
            basis = V[:, : j + 1]
            # Classical Gram-Schmidt twice: two batched matrix-vector products per pass.
            c1 = torch.bmm(basis, w.unsqueeze(-1)).squeeze(-1)
            w = w - torch.bmm(c1.unsqueeze(1), basis).squeeze(1)
            beta1 = torch.linalg.vector_norm(w, dim=-1)
            c2 = torch.bmm(basis, w.unsqueeze(-1)).squeeze(-1)
            w = w - torch.bmm(c2.unsqueeze(1), basis).squeeze(1)
            beta2 = torch.linalg.vector_norm(w, dim=-1)
            h[:, : j + 1] = c1 + c2
            wnorm = torch.linalg.vector_norm(w0, dim=-1)
            bad = ~torch.isfinite(wnorm) & stepping
            if bool(bad.any()):
                failed = failed | bad
                stepping = stepping & ~bad
                if not bool(stepping.any()):
                    break
            broke = (beta2 <= _DGKS_ETA * beta1) | (beta2 <= eps * wnorm) | (j + 1 >= n)
            h[:, j + 1] = torch.where(broke, torch.zeros_like(beta2), beta2)
            safe = torch.where(broke | (beta2 == 0), torch.ones_like(beta2), beta2)
            V[:, j + 1] = torch.where(broke[:, None], V[:, 0], w / safe[:, None])
            # Apply the previous rotations to the new column, then a new one to zero h[j+1].
            for i in range(j):
                hi, hi1 = h[:, i].clone(), h[:, i + 1].clone()
                h[:, i] = cs[:, i] * hi + sn[:, i] * hi1
                h[:, i + 1] = -sn[:, i] * hi + cs[:, i] * hi1
            c, s, rr = _givens(h[:, j], h[:, j + 1])
            upd = stepping
            cs[:, j] = torch.where(upd, c, torch.ones_like(c))
            sn[:, j] = torch.where(upd, s, torch.zeros_like(s))
            h[:, j] = rr
            h[:, j + 1] = 0.0
            R[:, : j + 2, j] = torch.where(upd[:, None], h, R[:, : j + 2, j])
            gj = g[:, j].clone()
            g[:, j] = torch.where(upd, cs[:, j] * gj, gj)
            g[:, j + 1] = torch.where(upd, -sn[:, j] * gj, g[:, j + 1])
            steps = torch.where(upd, steps + 1, steps)
            breakdowns += (upd & broke).cpu().long()
            # A lucky breakdown means the exact solution is in the space: this system stops here.
            stepping = stepping & ~broke & (g[:, j + 1].abs() > target)
        # x += V_k y, y = R_k^{-1} g_k, per system with its own k (tiny triangular solves).
        update = torch.zeros(B, n, dtype=dtype, device=device)
        for bi in range(B):
            k = int(steps[bi])
            if k == 0 or bool(failed[bi]):
                continue
            Rk = R[bi, :k, :k]
            diag = Rk.diagonal().abs()
            # Well-conditioned pivots (ratio above sqrt(eps)): plain back substitution.
            if float(diag.min()) > math.sqrt(eps) * float(diag.max()):
                y = torch.linalg.solve_triangular(Rk, g[bi, :k, None], upper=True)[:, 0]
            else:
                # A (near) zero pivot: A is (numerically) singular on the Krylov space. The truncated
                # pseudo-inverse gives the minimum-norm least-squares step instead of a blow-up.
                y = torch.linalg.pinv(Rk, rtol=k * eps) @ g[bi, :k]
            update[bi] = y @ V[bi, :k]
        x_new = x + update
        restarts += 1
        had_steps = steps > 0
        if bool(had_steps.any()):
            # TRUE residual (one matvec): the Givens estimate can drift from it by rounding.
            r_new = bb - apply(x_new)
            rnorm_new = torch.linalg.vector_norm(r_new, dim=-1)
            # GMRES never increases the residual in exact arithmetic: an update that does (rounding
            # on a singular system) is rejected and the previous iterate kept.
            accept = had_steps & (rnorm_new <= rnorm)
            x = torch.where(accept[:, None], x_new, x)
            r = torch.where(accept[:, None], r_new, r)
            rnorm = torch.where(accept, rnorm_new, rnorm)
        done = done | (rnorm <= target) | failed

    residual = torch.where(failed, torch.full_like(rnorm, math.nan), rnorm)
    rel = torch.where(bnorm > 0, residual / torch.where(bnorm > 0, bnorm, torch.ones_like(bnorm)), residual)
    return GmresResult(
        x=x.reshape(*batch, n),
        residual_norm=residual.reshape(batch),
        relative_residual=rel.reshape(batch),
        matvecs=counter.count,
        converged=(residual <= target).reshape(batch),
        info={
            "iterations": iters,
            "restarts": restarts,
            "tol": tol,
            "breakdowns": breakdowns.reshape(batch),
            "failed": failed.cpu().reshape(batch),
        },
    )
