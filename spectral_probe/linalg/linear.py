"""Restarted GMRES for ``A x = b`` with ``A`` given only by matvecs (Newton-Krylov polishing of ``z*``).

The fixed point ``z*`` of ``F(z) = nc_force(z) - (1 + c) z`` is polished by Newton steps
``J_F dz = -F(z)``, each solved matrix-free with :func:`gmres` on ``matvec = J_F`` (jvp).

The math: from ``r_0 = b - A x_0`` (``beta = ||r_0||``), ``k`` Arnoldi steps (the one orthogonalization kernel,
:func:`spectral_probe.linalg.krylov.orthogonalize`) give ``A V_k = V_{k+1} Hbar_k``; the iterate ``x_0 + V_k y`` with
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

import torch

from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.krylov import orthogonalize
from spectral_probe.linalg.result import (
    ConvergenceInfo,
    CountingMatvec,
    GmresResult,
    LinearSolveResult,
    Matvec,
    default_tol,
)

__all__ = ["GmresResult", "LinearSolveResult", "gmres"]


def _givens(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(c, s, r)`` with ``[[c, s], [-s, c]] [a, b]^T = [r, 0]^T`` (batched; ``c = 1, s = 0`` at 0)."""
    r = torch.hypot(a, b)
    safe = torch.where(r == 0, torch.ones_like(r), r)
    c = torch.where(r == 0, torch.ones_like(r), a / safe)
    s = torch.where(r == 0, torch.zeros_like(r), b / safe)
    return c, s, r


class _Gmres:
    """Restarted GMRES over a flat batch ``[B]`` of systems; the cycle's arrays are allocated once."""

    def __init__(self, matvec: Matvec, b: torch.Tensor, x0: torch.Tensor | None, tol: float, m: int) -> None:
        self.batch, n = tuple(b.shape[:-1]), int(b.shape[-1])
        B = math.prod(self.batch)
        dtype, device = b.dtype, b.device
        self.n, self.m, self.tol, self.eps = n, m, tol, float(torch.finfo(dtype).eps)
        self.counter = CountingMatvec(matvec, len(self.batch))
        self.b = b.detach().reshape(B, n)
        self.bnorm = torch.linalg.vector_norm(self.b, dim=-1)
        if x0 is None:
            self.x, self.r = torch.zeros_like(self.b), self.b.clone()
        else:
            if x0.shape != b.shape:
                raise ValueError(f"x0 must have the shape of b {tuple(b.shape)}, got {tuple(x0.shape)}")
            self.x = x0.detach().reshape(B, n).to(dtype=dtype, device=device).clone()
            self.r = self.b - self.apply(self.x)
        # b = 0 is solved exactly by x = 0 (a non-zero x0 could only approach it).
        zero_b = (self.bnorm == 0)[:, None]
        self.x = torch.where(zero_b, torch.zeros_like(self.x), self.x)
        self.r = torch.where(zero_b, torch.zeros_like(self.r), self.r)
        self.rnorm = torch.linalg.vector_norm(self.r, dim=-1)
        self.target = tol * self.bnorm
        # Frozen systems are fed this unit vector (never zeros: a finite-difference matvec may normalize
        # by ||v||), and what comes back for them is discarded.
        self.dummy = torch.full((n,), 1.0 / math.sqrt(n), dtype=dtype, device=device)
        self.V = b.new_zeros((B, m + 1, n))
        # The Hessenberg matrix is triangularized as it grows: R (upper triangular) and the rotated
        # right-hand side g; cs, sn are the rotations, applied to each new column.
        self.R, self.g = b.new_zeros((B, m + 1, m)), b.new_zeros((B, m + 1))
        self.cs, self.sn = b.new_zeros((B, m)), b.new_zeros((B, m))
        self.iters = self.cycles = self.true_checks = 0
        self.breakdowns = torch.zeros(B, dtype=torch.long, device=device)
        # A system is done when its TRUE residual meets the target (b = 0 is solved by x = 0 at once).
        self.done = self.rnorm <= self.target
        # The operator returned non-finite numbers: the system stops, its residual is reported as NaN.
        self.failed = torch.zeros(B, dtype=torch.bool, device=device)
        self.estimate = self.rnorm.clone()

    def apply(self, X: torch.Tensor) -> torch.Tensor:
        return self.counter(X.reshape(*self.batch, self.n)).reshape(X.shape)

    def arnoldi_step(self, j: int, stepping: torch.Tensor) -> torch.Tensor:
        """Step ``j`` of the cycle: column ``j`` of ``R`` (rotated), ``g``; returns the systems still stepping."""
        V, R, g, cs, sn = self.V, self.R, self.g, self.cs, self.sn
        orth = orthogonalize(V[:, : j + 1], self.apply(V[:, j]))
        self.iters += 1
        bad = ~torch.isfinite(orth.input_norm) & stepping
        if bool(bad.any()):
            self.failed |= bad
            stepping = stepping & ~bad
        broke = orth.in_span | (j + 1 >= self.n)
        h = torch.cat([orth.coefficients, torch.where(broke, 0.0, orth.norm)[:, None]], dim=1)
        safe = torch.where(broke | (orth.norm == 0), torch.ones_like(orth.norm), orth.norm)
        V[:, j + 1] = torch.where(broke[:, None], V[:, 0], orth.vector / safe[:, None])
        # Apply the previous rotations to the new column, then a new one to zero h[j+1].
        for i in range(j):
            hi, hi1 = h[:, i].clone(), h[:, i + 1].clone()
            h[:, i] = cs[:, i] * hi + sn[:, i] * hi1
            h[:, i + 1] = -sn[:, i] * hi + cs[:, i] * hi1
        c, s, rr = _givens(h[:, j], h[:, j + 1])
        cs[:, j] = torch.where(stepping, c, torch.ones_like(c))
        sn[:, j] = torch.where(stepping, s, torch.zeros_like(s))
        h[:, j], h[:, j + 1] = rr, 0.0
        R[:, : j + 2, j] = torch.where(stepping[:, None], h, R[:, : j + 2, j])
        gj = g[:, j].clone()
        g[:, j] = torch.where(stepping, cs[:, j] * gj, gj)
        g[:, j + 1] = torch.where(stepping, -sn[:, j] * gj, g[:, j + 1])
        self.steps = torch.where(stepping, self.steps + 1, self.steps)
        self.breakdowns += (stepping & broke).long()
        # A lucky breakdown means the exact solution is in the space: this system stops here.
        return stepping & ~broke & (g[:, j + 1].abs() > self.target)

    def correction(self) -> torch.Tensor:
        """``V_k y`` with ``y = R_k^{-1} g_k``, per system with its own ``k`` (tiny triangular solves)."""
        update = torch.zeros_like(self.x)
        for bi, k in enumerate(self.steps.tolist()):
            if k == 0 or bool(self.failed[bi]):
                continue
            Rk = self.R[bi, :k, :k]
            diag = Rk.diagonal().abs()
            # Well-conditioned pivots (ratio above sqrt(eps)): plain back substitution.
            if float(diag.min()) > math.sqrt(self.eps) * float(diag.max()):
                y = torch.linalg.solve_triangular(Rk, self.g[bi, :k, None], upper=True)[:, 0]
            else:
                # A (near) zero pivot: A is (numerically) singular on the Krylov space. The truncated
                # pseudo-inverse gives the minimum-norm least-squares step instead of a blow-up.
                y = torch.linalg.pinv(Rk, rtol=k * self.eps) @ self.g[bi, :k]
            update[bi] = y @ self.V[bi, :k]
        return update

    def cycle(self, max_iters: int) -> None:
        """One GMRES(m) cycle from the current residual, then the TRUE residual of the new iterate."""
        active = ~self.done
        beta = torch.where(active, self.rnorm, torch.ones_like(self.rnorm))
        self.V[:, 0] = torch.where(active[:, None], self.r / beta[:, None], self.dummy)
        self.R.zero_()
        self.g.zero_()
        self.g[:, 0] = beta
        # steps[b]: columns used by system b this cycle; it stops at convergence or a lucky breakdown.
        self.steps = torch.zeros_like(self.breakdowns)
        stepping = active.clone()
        for j in range(self.m):
            if not bool(stepping.any()) or self.iters >= max_iters:
                break
            stepping = self.arnoldi_step(j, stepping)
        x_new = self.x + self.correction()
        self.cycles += 1
        self.estimate = torch.where(self.steps > 0, self.g[torch.arange(len(self.g)), self.steps].abs(), self.estimate)
        had_steps = self.steps > 0
        if bool(had_steps.any()):
            # TRUE residual (one matvec): the Givens estimate can drift from it by rounding.
            r_new = self.b - self.apply(x_new)
            rnorm_new = torch.linalg.vector_norm(r_new, dim=-1)
            # GMRES never increases the residual in exact arithmetic: an update that does (rounding on a
            # singular system) is rejected and the previous iterate kept.
            accept = (had_steps & (rnorm_new <= self.rnorm))[:, None]
            self.x = torch.where(accept, x_new, self.x)
            self.r = torch.where(accept, r_new, self.r)
            self.rnorm = torch.where(accept[:, 0], rnorm_new, self.rnorm)
            self.true_checks += 1
        self.done = self.done | (self.rnorm <= self.target) | self.failed

    def result(self) -> LinearSolveResult:
        batch = self.batch
        residual = torch.where(self.failed, torch.full_like(self.rnorm, math.nan), self.rnorm)
        info = ConvergenceInfo(
            converged=(residual <= self.target).reshape(batch),
            residuals=residual.reshape(batch),
            matvecs=self.counter.count,
            iterations=self.iters,
            tol=self.tol,
            norm_estimate=self.bnorm.reshape(batch),
            breakdowns=self.breakdowns.reshape(batch),
            nonfinite=self.failed.reshape(batch),
            krylov_dim=self.m,
            estimates=self.estimate.reshape(batch),
            true_checks=self.true_checks,
        )
        return LinearSolveResult(x=self.x.reshape(*batch, self.n), info=info)


def gmres(
    matvec: Matvec,
    b: torch.Tensor,
    *,
    x0: torch.Tensor | None = None,
    tol: float | None = None,
    restart: int | None = None,
    max_iters: int | None = None,
) -> LinearSolveResult:
    """Solve ``A x = b`` (``A`` real, possibly non-symmetric, e.g. ``J_F``) by restarted GMRES(restart):
    ``x = x_0 + V_k y`` with ``y = argmin ||beta e_1 - Hbar_k y||`` over each cycle's Krylov space.

    ``b``: ``[*batch, n]``, independent systems solved together (batched operator calls).
    ``x0``: initial guess (default 0). ``tol``: relative residual target ``||b - A x|| <= tol ||b||``,
    default ``default_tol(b.dtype)``. ``restart``: Krylov dimension per cycle (clipped to ``n``; default
    ``DEFAULTS.gmres_restart``). ``max_iters``: total Arnoldi steps (operator applications, not counting
    the residual ones; default ``DEFAULTS.gmres_max_iters``).

    Returns a :class:`LinearSolveResult`: ``x``, ``residual_norm`` (TRUE ``||b - A x||``, NaN where the
    operator returned non-finite numbers), ``relative_residual``, ``converged``, ``matvecs``; its
    :class:`ConvergenceInfo` has ``iterations`` (Arnoldi steps), ``true_checks`` (cycles that computed a
    true residual), the Givens ``estimates``, ``breakdowns`` and ``nonfinite`` per system. Never raises on
    non-convergence: the best iterate comes back with its TRUE residual and ``converged=False``.
    Device and dtype follow ``b``.
    """
    restart = DEFAULTS.gmres_restart if restart is None else restart
    max_iters = DEFAULTS.gmres_max_iters if max_iters is None else max_iters
    if b.ndim < 1 or not b.is_floating_point():
        raise ValueError(f"b must be a real floating-point tensor [*batch, n], got {b.dtype} {tuple(b.shape)}")
    if restart < 1 or max_iters < 0:
        raise ValueError(f"restart must be >= 1 and max_iters >= 0, got {restart}, {max_iters}")
    tol = default_tol(b.dtype) if tol is None else float(tol)
    run = _Gmres(matvec, b, x0, tol, max(1, min(int(restart), int(b.shape[-1]))))
    while not bool(run.done.all()) and run.iters < max_iters:
        run.cycle(max_iters)
    return run.result()
