"""Arnoldi with Krylov-Schur style thick restarts for a real NON-symmetric operator (here ``A = J_F``).

The math
--------
``m`` steps of Arnoldi (the kernel of :mod:`spectral_probe.linalg.krylov`: blocked classical
Gram-Schmidt, a second pass where DGKS asks) give the Krylov decomposition

    A V_m = V_m H_m + v_{m+1} h^T,        V_m^T V_m = I,  V_m^T v_{m+1} = 0,

whose Ritz pairs ``H_m y = theta y`` approximate eigenpairs ``(theta, V_m y)`` of ``A`` with residual
``||A V_m y - theta V_m y|| = |h^T y|`` (``||y|| = 1``). A restart keeps the wanted part of the space:
torch has no (reordered) Schur decomposition, so it uses the eigenvector form of the Krylov-Schur /
thick restart (Morgan's Arnoldi with deflated restarting, Stewart's Krylov decomposition):

* the wanted Ritz vectors ``y`` are made real (a complex pair ``y, conj(y)`` contributes ``Re y`` and
  ``Im y``: a conjugate pair is always kept or dropped as a whole, the kept count moves by one instead)
  and orthonormalized (``Q``: the leading left singular vectors of those real columns);
* ``W = V_m Q``, ``S = Q^T H_m Q`` and ``b^T = h^T Q`` give ``A W = W S + v_{m+1} b^T``, again a Krylov
  decomposition, exactly so when ``span(Q)`` is invariant under ``H_m``. That is checked
  (``||H_m Q - Q S||``); where it fails (nearly parallel eigenvectors of a non-normal ``H_m``) the
  restart keeps fewer vectors, and as a last resort restarts explicitly from one vector, instead of
  continuing with a corrupted decomposition;
* Arnoldi continues from ``v_{m+1}``; the discarded Ritz values are filtered out as with exact shifts.

One Krylov space serves several targets at once: for the symbols of docs/SPEC.md, the spectral abscissa
``alpha = max Re mu(J_F)`` is the target :func:`rightmost`, and the leading eigenvalue of
``M = I + eps J_F`` (``rho = |lead|``) is the target ``largest_modulus(shift=1, scale=eps)``, because
``M`` is a polynomial in ``J_F``: the same Ritz pairs ``mu`` of ``J_F`` give ``1 + eps mu`` for ``M``.

Conventions (see :mod:`spectral_probe.linalg.result`): the operator acts on the last dimension, ``x0``
is ``[*batch, n]`` with independent problems in ``*batch`` (every operator call is batched over them),
and each problem keeps its own trajectory (restart sizes, convergence, breakdowns), so a batch element
reproduces its separate solve up to rounding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.extract import true_residuals
from spectral_probe.linalg.krylov import KrylovFactorization, orthogonalize
from spectral_probe.linalg.result import ConvergenceInfo, CountingMatvec, EigResult, Matvec, default_tol
from spectral_probe.linalg.ritz import (
    Ritz,
    analyze_many,
    estimates_converged,
    real_basis,
    thick_restart,
    wanted,
    with_buffer,
    worst_ratio,
)
from spectral_probe.linalg.schedule import CheckSchedule, StallWatch
from spectral_probe.linalg.targets import (
    Target,
    as_target,
    checked_arguments,
    largest_modulus,
    rightmost,
    smallest_real,
)
from spectral_probe.linalg.vectors import gaussian_like

__all__ = ["Target", "as_target", "krylov_schur", "largest_modulus", "rightmost", "smallest_real"]

# Fraction of the Krylov dimension kept at a thick restart (wanted values plus a buffer of the next
# best ones). About one half is the usual compromise (Stewart 2001; ARPACK keeps a similar share):
# more kept vectors means fewer new directions per cycle, fewer means a weaker filter.
_KEEP_FRACTION = 0.5
# A thick restart is accepted only if ||H Q - Q S|| <= _INVARIANCE_FRACTION * tol * ||H||: the error
# it would inject into the Krylov decomposition must stay well below the convergence tolerance.
_INVARIANCE_FRACTION = 1e-2
# After a thick restart claimed convergence but the TRUE residual disagrees (accumulated rounding),
# restart explicitly at most this many times before reporting an honest non-convergence.
_MAX_TRUE_RESIDUAL_RETRIES = 2
# A Ritz vector of H_m with ||H_m y - theta y|| above this fraction of tol * ||A|| is recomputed (see
# ritz.analyze): small enough not to matter for convergence, far above a good vector's rounding.
_VECTOR_FRACTION = 1e-3


def krylov_schur(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    targets: Sequence[Target | str] = ("LR",),
    nev: int = 1,
    krylov_dim: int | None = None,
    tol: float | None = None,
    max_restarts: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, EigResult]:
    """Eigenvalues of a real non-symmetric operator ``A`` wanted by several targets, from ONE Krylov run.

    ``A`` only through ``matvec(X) = A X`` on the last dimension; a ``Shifted`` ``B - s I`` is orthogonalized as ``B``.
    Each cycle expands a Krylov decomposition ``A V_m = V_m H_m + v_{m+1} h^T`` to ``m = krylov_dim``
    vectors by Arnoldi (:class:`~spectral_probe.linalg.krylov.KrylovFactorization`) (``m`` is raised to
    ``2 len(targets) (nev + 1) + 2`` if smaller, so that a cycle adds at least as many directions as it
    keeps, and clipped to ``n``). The thick restart keeps the union over ``targets`` of each one's top
    ``nev`` Ritz values plus a buffer of the next best (about half the space), see the module
    docstring. The run stops when the top ``nev`` Ritz pairs of EVERY target have Krylov residuals
    ``||Hbar_m y - theta [y; 0]|| <= tol * norm_estimate`` (``= |h^T y|`` for an exact eigenvector
    ``y`` of ``H_m``), after ``max_restarts``, or once stalled (:class:`~spectral_probe.linalg.schedule.StallWatch`).

    ``targets``: :class:`Target` objects or the shorthands ``"LR"``, ``"LM"``, ``"SR"``; e.g.
    ``(rightmost(), largest_modulus(1.0, eps))`` gives alpha and the leading eigenvalue of
    ``M = I + eps J_F`` (as ``mu``, an eigenvalue of ``J_F``: ``lead = 1 + eps mu``) in one run.

    Returns ``{target.name: EigResult}``. Each result has ``values`` complex ``[*batch, nev]`` (best
    first, a conjugate pair positive imaginary part first), unit complex ``vectors [*batch, nev, n]``
    (phase: largest entry real positive), TRUE ``residuals ||A v - lambda v||`` from extra matvecs (one
    per real eigenvector, two per complex one, shared between targets and conjugates), ``converged =
    residuals <= tol * norm_estimate`` with ``norm_estimate`` the largest ``||H_bar_m||_2`` seen (a lower
    bound on ``||A||_2``: normwise, never relative to ``|lambda|``). ``matvecs`` is the TOTAL of the
    shared run (all targets together, residual matvecs included), the same number in every result;
    ``iterations`` the restarts. ``info`` (:class:`ConvergenceInfo`) holds ``krylov_dim``, per problem
    ``matvecs_per_problem``, ``iterations_per_problem`` (restarts), ``breakdowns``, ``fallback_restarts``
    (thick restarts that failed the invariance check), ``true_residual_retries``, ``nonfinite`` (the
    operator returned non-finite numbers: NaN values, infinite residuals) and the Krylov ``estimates``.
    ``krylov_dim`` and ``max_restarts`` default to ``DEFAULTS`` (:mod:`spectral_probe.linalg.defaults`).

    A breakdown (``A`` leaves the Krylov space invariant: low rank, ``n`` tiny) is exact if the basis
    spans ``R^n``, else Arnoldi continues from a random vector orthogonal to the basis (drawn from
    ``generator``) with zero coupling. ``tol`` defaults to ``default_tol(x0.dtype)``. Non-convergence
    never raises: the best partial result comes back with honest residuals and ``converged=False``.

    The tiny projected eigenproblems (``m x m``) run in float64 on the CPU, whatever the working dtype
    and device: they are ``O(m^3)``, and float64 keeps their own rounding out of the float32 error budget.
    """
    target_list = checked_arguments(targets, x0, nev, max_restarts)
    krylov_dim = DEFAULTS.krylov_dim if krylov_dim is None else int(krylov_dim)
    max_restarts = DEFAULTS.max_restarts if max_restarts is None else max_restarts
    tol = default_tol(x0.dtype) if tol is None else float(tol)
    n = int(x0.shape[-1])
    # Each cycle must add at least as many new directions as it keeps wanted ones (every target's nev
    # values, each possibly completed by a conjugate), else it stagnates; past n the whole space is
    # spanned and the first cycle is exact.
    m = min(n, max(krylov_dim, 2 * len(target_list) * (nev + 1) + 2))
    run = _KrylovSchur(matvec, x0, target_list, nev, m, tol, generator)
    run.solve(max_restarts)
    return run.results()


class _KrylovSchur:
    """One Krylov-Schur run over a flat batch ``[B]``: per-problem trajectories, batched O(n) work."""

    def __init__(self, matvec: Matvec, x0: torch.Tensor, targets: list[Target], nev: int, m: int, tol: float, gen):
        self.batch, n = tuple(x0.shape[:-1]), int(x0.shape[-1])
        B = math.prod(self.batch)
        self.B, self.n, self.m, self.nev, self.tol, self.targets, self.generator = B, n, m, nev, tol, targets, gen
        self.dtype, self.device = x0.dtype, x0.device
        self.small = torch.promote_types(x0.dtype, torch.float64)  # the projected problems (see docstring)
        self.keep_goal, self.keep_cap = max(1, int(_KEEP_FRACTION * m)), m - 2
        self.counter = CountingMatvec(matvec, len(self.batch))
        x = x0.detach().reshape(B, n).clone()
        xnorm = torch.linalg.vector_norm(x, dim=-1)
        bad_start = ~torch.isfinite(xnorm) | (xnorm == 0)
        if bool(bad_start.any()):
            # A zero (or non-finite) start spans nothing: replace it by a random one.
            x[bad_start] = gaussian_like((int(bad_start.sum()), n), x, gen)
            xnorm = torch.linalg.vector_norm(x, dim=-1)
        self.fact = KrylovFactorization(x / xnorm[:, None], m)
        self.done = [False] * B
        self.failed = [False] * B  # operator produced non-finite numbers
        self.mv_per = [0] * B
        self.restarts_per = [0] * B
        self.breakdowns = [0] * B
        self.fallbacks = [0] * B
        self.retries = [0] * B
        self.norm_est = [0.0] * B
        self.ritz: list[Ritz | None] = [None] * B
        self.restarts = 0
        # The first early test once the space can hold every target's wanted pairs (see CheckSchedule).
        first = min(m, max(5, 2 * len(targets) * (nev + 1)))
        self.schedule = [CheckSchedule(first) for _ in range(B)]
        self.stall, self.max_restarts = [StallWatch() for _ in range(B)], 0

    def apply(self, X: torch.Tensor) -> torch.Tensor:
        return self.counter(X.reshape(*self.batch, self.n)).reshape(self.B, self.n)

    def apply_unshifted(self, X: torch.Tensor) -> torch.Tensor:
        return self.counter.unshifted(X.reshape(*self.batch, self.n)).reshape(self.B, self.n)

    def expand(self) -> None:
        """Arnoldi steps until every active problem has ``m`` basis vectors (batched operator calls)."""
        fact, n, device = self.fact, self.n, self.device
        while True:
            sizes = fact.size.tolist()
            stepping = [b for b in range(self.B) if not self.done[b] and sizes[b] < self.m]
            if not stepping:
                return
            step_mask = torch.zeros(self.B, dtype=torch.bool, device=device)
            step_mask[stepping] = True
            step = fact.expand(self.apply_unshifted, step_mask, self.counter.shift)
            orth = step.result
            # Breakdown: the basis spans R^n, or w is numerically in span(V) (DGKS), or non-finite.
            full = step.column + 1 >= n
            broke = step_mask & (full | orth.in_span | ~torch.isfinite(orth.norm))
            broke_list = broke.tolist()
            beta = torch.where(broke, 0.0, orth.norm)  # below: in place, the kernel's vector is this step's own
            new = orth.vector.div_(torch.where(broke, 1.0, orth.norm).unsqueeze(-1))
            if any(broke_list):  # exact breakdown (R^n spanned): no next vector, an eigendecomposition
                new.masked_fill_((broke & full).unsqueeze(-1), 0.0)
            need_random = [b for b in stepping if broke_list[b] and sizes[b] + 1 < n]
            if need_random:
                # Invariant subspace found but not all of R^n: continue with a random direction
                # orthogonal to the basis, coupled by zero, so the decomposition stays exact.
                idx = torch.tensor(need_random, device=device)
                mask = (torch.arange(step.top, device=device)[None, :] <= step.column[idx, None]).to(self.dtype)
                r = orthogonalize(
                    fact.V[idx, : step.top], gaussian_like((len(need_random), n), new, self.generator), mask
                )
                new[idx] = r.vector / r.norm[:, None]
            for b in stepping:
                self.mv_per[b] += 1
                self.breakdowns[b] += int(broke_list[b])
            fact.commit(step, step_mask, beta, new)
            self.early_tests(stepping)

    def early_tests(self, stepping: list[int]) -> None:
        """Convergence tests before the basis is full, where each problem's schedule asks for one: a
        problem that passes is done at its current size ``k < m`` (its Ritz pairs are those of ``H_k``)."""
        sizes = self.fact.size.tolist()
        due = [b for b in stepping if sizes[b] < self.m and self.schedule[b].due(self.mv_per[b])]
        if not due:
            return
        Hc = self.fact.H[due].detach().to(device="cpu", dtype=self.small)
        Hbars = [Hb[: sizes[b] + 1, : sizes[b]] for b, Hb in zip(due, Hc, strict=True)]
        analyses = analyze_many(Hbars, self.targets, _VECTOR_FRACTION * self.tol, [self.norm_est[b] for b in due])
        for b, r in zip(due, analyses, strict=True):
            if r is None:
                continue  # the test at the full basis reports the failure
            self.norm_est[b] = max(self.norm_est[b], r.hnorm)
            ratio = worst_ratio(r, self.nev, self.tol, self.norm_est[b])
            self.schedule[b].record(self.mv_per[b], ratio)
            if ratio <= 1.0:
                self.ritz[b], self.done[b] = r, True

    def analyze_all(self, problems: list[int]) -> None:
        """Ritz pairs of every listed problem; a problem whose estimates all pass is done."""
        Hc = self.fact.H.detach().to(device="cpu", dtype=self.small)
        analyses = analyze_many(
            [Hc[b] for b in problems], self.targets, _VECTOR_FRACTION * self.tol, [self.norm_est[b] for b in problems]
        )
        for b, r in zip(problems, analyses, strict=True):
            self.ritz[b] = r
            if r is None:
                self.failed[b] = True
                self.done[b] = True
                continue
            self.norm_est[b] = max(self.norm_est[b], r.hnorm)
            ratio = worst_ratio(r, self.nev, self.tol, self.norm_est[b])
            self.schedule[b].record(self.mv_per[b], ratio)
            stalled = self.stall[b].stalled(self.restarts, ratio, self.max_restarts - self.restarts)
            if estimates_converged(r, self.nev, self.tol, self.norm_est[b]) or stalled:
                self.done[b] = True  # a stalled problem comes back unconverged, with its TRUE residuals

    def _plan(self, b: int, force_explicit: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The row transform of ``V``, the new ``H`` and the kept size of problem ``b``'s restart."""
        r, m, small = self.ritz[b], self.m, self.small
        assert r is not None
        must = wanted(r, self.nev)
        inv_tol = _INVARIANCE_FRACTION * self.tol * max(r.hnorm, self.norm_est[b])
        # Without a residual direction (h = 0, only possible once R^n is spanned) there is nothing to
        # continue from: restart explicitly.
        plan = None
        if not force_explicit and float(r.h.abs().max()) > 0.0:
            for kept in (with_buffer(r, must, max(self.keep_goal, len(must)), self.keep_cap), must):
                plan = thick_restart(r, kept, inv_tol)
                if plan is not None:
                    break
                self.fallbacks[b] += 1
        T = torch.zeros(m + 1, m + 1, dtype=small)
        Hn = torch.zeros(m + 1, m, dtype=small)
        if plan is None:
            # Explicit restart from the single vector V_m coeff: always a valid decomposition.
            coeff = real_basis(r.Y, must).sum(dim=1)
            T[0, : coeff.shape[0]] = coeff / torch.linalg.vector_norm(coeff)  # H_k, k <= m, after an early test
            return T, Hn, 0
        Q, S = plan
        p = Q.shape[1]
        T[:p, :m] = Q.T
        T[p, m] = 1.0  # the residual direction v_{m+1} becomes v_{p+1}
        Hn[:p, :p] = S
        Hn[p, :p] = r.h @ Q
        return T, Hn, p

    def restart_all(self, problems: list[int], force_explicit: bool = False) -> None:
        """Thick (or explicit) restart of the listed problems, one batched transform of their bases."""
        if not problems:
            return
        plans = []
        for b in problems:
            self.restarts_per[b] += 1
            plans.append(self._plan(b, force_explicit))
        idx = torch.tensor(problems, device=self.device)
        T = torch.stack([t for t, _, _ in plans]).to(device=self.device, dtype=self.dtype)
        Hn = torch.stack([h for _, h, _ in plans]).to(device=self.device, dtype=self.dtype)
        sizes = torch.tensor([p for _, _, p in plans], device=self.device)
        self.fact.restart(idx, T, Hn, sizes)
        V = self.fact.V
        for b, (_, _, p) in zip(problems, plans, strict=True):
            if p == 0:
                V[b, 0] = V[b, 0] / torch.linalg.vector_norm(V[b, 0])
            self.done[b] = False

    def solve(self, max_restarts: int) -> None:
        """Expand, analyze and restart until converged or out of restarts; then the TRUE residuals."""
        nev, tol = self.nev, self.tol
        self.max_restarts = max_restarts
        while True:
            while True:
                self.expand()
                self.analyze_all([b for b in range(self.B) if not self.done[b]])
                todo = [b for b in range(self.B) if not self.done[b]]
                if not todo or self.restarts >= max_restarts:
                    break
                self.restart_all(todo)
                self.restarts += 1
            self.extracted = true_residuals(
                self.ritz,
                self.fact.V,
                len(self.targets),
                self.nev,
                self.m,
                self.apply,
                self.failed,
                self.norm_est,
                self.tol,
                self.mv_per,
            )
            # The Krylov estimate said converged but the true residual disagrees (rounding accumulated
            # over restarts): restart those problems explicitly, a bounded number of times.
            converged_any = self.extracted.converged
            retry = [
                b
                for b in range(self.B)
                if not self.failed[b]
                and self.retries[b] < _MAX_TRUE_RESIDUAL_RETRIES
                and estimates_converged(self.ritz[b], nev, tol, self.norm_est[b])
                and not converged_any[b]
            ]
            if not retry or self.restarts >= max_restarts:
                return
            for b in retry:
                self.retries[b] += 1
            self.restart_all(retry, force_explicit=True)
            self.restarts += 1

    def _all_ritz(self, t_i: int) -> torch.Tensor:
        """Every Ritz value of each problem's last analysis, best first for target ``t_i``, ``[B, m]``
        (NaN-padded where the decomposition was smaller or the problem failed)."""
        cdtype = torch.complex128 if self.small == torch.float64 else torch.complex64
        values = torch.full((self.B, self.m), complex("nan"), dtype=cdtype)
        for b, r in enumerate(self.ritz):
            if r is not None and not self.failed[b]:
                order = r.orders[t_i]
                values[b, : order.numel()] = r.theta[order].to(cdtype)
        return values.to(self.device)

    def results(self) -> dict[str, EigResult]:
        """``{target.name: EigResult}`` from the extracted pairs, one shared :class:`ConvergenceInfo` base."""
        values, vectors, images, residuals, _ = self.extracted
        batch, B, nev, n, dtype = self.batch, self.B, self.nev, self.n, self.dtype
        norm_t = torch.tensor(self.norm_est, dtype=dtype, device=self.device).reshape(batch)
        out: dict[str, EigResult] = {}
        for t_i, t in enumerate(self.targets):
            est = torch.stack(
                [
                    r.estimates[r.orders[t_i][:nev]].to(dtype)
                    if r is not None and not self.failed[b]
                    else torch.full((nev,), math.inf, dtype=dtype)
                    for b, r in enumerate(self.ritz)
                ]
            )
            res = residuals[t_i]
            ritz_values = self._all_ritz(t_i)
            info = ConvergenceInfo(
                converged=(res <= self.tol * norm_t.reshape(B, 1)).reshape(*batch, nev),
                residuals=res.reshape(*batch, nev),
                matvecs=self.counter.count,
                iterations=self.restarts,
                tol=self.tol,
                norm_estimate=norm_t,
                breakdowns=torch.tensor(self.breakdowns).reshape(batch),
                nonfinite=torch.tensor(self.failed).reshape(batch),
                krylov_dim=self.m,
                estimates=est.to(self.device).reshape(*batch, nev),
                true_residual_retries=torch.tensor(self.retries).reshape(batch),
                fallback_restarts=torch.tensor(self.fallbacks).reshape(batch),
                matvecs_per_problem=torch.tensor(self.mv_per).reshape(batch),
                iterations_per_problem=torch.tensor(self.restarts_per).reshape(batch),
                ritz_values=ritz_values.reshape(*batch, self.m),
            )
            vals, vecs = values[t_i].reshape(*batch, nev), vectors[t_i].reshape(*batch, nev, n)
            out[t.name] = EigResult(values=vals, vectors=vecs, info=info, images=images[t_i].reshape(*batch, nev, n))
        return out
