"""Block Lanczos: the extreme ALGEBRAIC eigenvalues of a symmetric operator from one block of starts.

The math
--------
For a symmetric ``A`` and a block of ``p`` start vectors ``X0 = [x_1 .. x_p]``, the block Krylov space
``span{X0, A X0, .., A^(s-1) X0}`` holds every single-vector Krylov space of every start: one run from
``p`` independent random starts misses an eigenvector only where ALL of them miss it, the protection of
``p`` separate runs compared with each other, and it needs fewer products than those runs (each start's
directions help the others converge). The basis ``V_j`` (orthonormal rows) grows by one block ``Q`` a
step, with the block Krylov relation

    ``A V_j^T = V_j^T H_j + Q_next^T R E_last^T``,        ``H_j = V_j A V_j^T`` (symmetric),

where ``A Q_last = V_j c + Q_next R`` is the last block's product orthogonalized against the basis
(``c`` fills the new columns of ``H``, ``R`` is ``p x p``). A Ritz pair ``(theta, V_j^T y)`` of ``H_j``
therefore has the residual ``||R y_last||`` (``y_last`` the coordinates on the last block): the estimate
that decides convergence without a matvec, confirmed by a TRUE one before anything is reported.

Thick restart (the block form of Wu & Simon's): when the basis is full, keep the ``k`` best Ritz
vectors ``Y_k^T V_j``; the next block, orthogonalized against the whole old basis before the restart,
is orthogonal to the kept one, ``H`` restarts as ``diag(theta_k)`` and the next products' coefficients
on the kept vectors give the coupling back (``A V_kept^T = V_kept^T Theta_k + Q_next^T (R E_last^T Y_k)``).

Implementation choices
----------------------
* Orthogonalization by the package's one kernel (:func:`spectral_probe.linalg.krylov.orthogonalize`,
  classical Gram-Schmidt with DGKS), one block vector at a time against the basis and the block's
  earlier vectors. A vector numerically in the span (breakdown: an invariant subspace, or a start in
  the span of the others) is replaced by a random one orthogonal to the basis, so the space keeps
  growing; the exact Ritz pairs of an invariant subspace are not taken as the answer until a step with
  that random direction has had its say (starts inside an invariant subspace that misses the top
  eigenvector would otherwise return its top). When the basis holds all ``n`` dimensions every Ritz
  pair is exact.
* Full reorthogonalization (every product against the whole basis), so ``H`` is the Rayleigh quotient
  to working precision and the estimates hold.
* Convergence is NORMWISE (``||r|| <= tol * norm_estimate``, the largest ``|theta|`` seen) on the
  estimates, then confirmed by one batched matvec on the wanted Ritz vectors (the TRUE residuals
  reported). A disagreement tightens that problem's threshold tenfold, three of them
  stop it with ``converged=False``.
* The whole batch steps in lockstep (one block size, one basis size); a problem that is done keeps its
  answer. The batch is confirmed when its slowest problem has converged, so the Ritz pairs (a batched
  ``eigh`` of ``H``, which on 64 problems costs more than a cheap product) are computed only where the
  worst estimate is predicted to cross the threshold (:class:`~spectral_probe.linalg.schedule.CheckSchedule`,
  as Krylov-Schur does) and at each restart: the same products as a test at every step.
"""

from __future__ import annotations

import torch

from spectral_probe.linalg.krylov import DGKS_ETA, Orthogonalized, orthogonalize, orthogonalize_rows, random_orthonormal
from spectral_probe.linalg.result import CountingMatvec, EigResult, Matvec
from spectral_probe.linalg.schedule import CheckSchedule
from spectral_probe.linalg.symmetric_ritz import MAX_FAILED_CHECKS, frozen_result, ritz

__all__ = ["block_basis_size"]

#: Ulps of ``||B v|| + |s|`` below which no residual of ``A = B - s I`` is meaningful (the single-vector
#: run's breakdown test uses the same count).
_ROUND_OFF_ULPS = 10.0


def block_basis_size(x0: torch.Tensor, nev: int, krylov_dim: int) -> int:
    """The basis size ``m`` of a block run from ``x0 [*batch, p, n]``, or ``ValueError`` naming the bad
    argument (``which`` and ``max_restarts`` are checked by :func:`~spectral_probe.linalg.symmetric.lanczos`)."""
    if x0.ndim < 2 or not x0.dtype.is_floating_point or x0.shape[-1] < 1 or x0.shape[-2] < 1:
        raise ValueError(f"x0 must be a real floating block [*batch, p, n], got {x0.dtype} {tuple(x0.shape)}")
    n, p = x0.shape[-1], x0.shape[-2]
    if not 1 <= nev <= n:
        raise ValueError(f"nev must be in [1, n = {n}], got {nev}")
    m = min(krylov_dim, n)
    if m < n and m < nev + 2 * min(p, n):
        raise ValueError(f"krylov_dim ({m}) must hold nev ({nev}) plus two blocks of {p} when below n ({n})")
    return m


class _BlockLanczos:
    """The state of one block Lanczos run over a flat batch ``[B]`` (``lanczos(..., block=True)``).

    ``V [B, m + p, n]`` holds the basis (rows ``0..j-1``) and the next block (rows ``j..j+p-1``); ``H``
    the Rayleigh quotient ``V^T A V`` (upper triangle, from the orthogonalization coefficients of each
    product); ``R [B, p, p]`` the coupling of the last block's products to the next block,
    ``A Q_last = V c + Q_next R``, so a Ritz vector ``V^T y`` has the residual ``||R y_last||`` (the block
    Krylov relation), confirmed by a true matvec before it is reported.
    """

    def __init__(self, matvec: Matvec, x0: torch.Tensor, which: str, nev: int, m: int, tol: float, gen) -> None:
        self.batch, (p, n) = tuple(x0.shape[:-2]), x0.shape[-2:]
        x0 = x0.reshape(-1, p, n)
        B = x0.shape[0]
        self.which, self.nev, self.m, self.n, self.tol, self.generator = which, nev, m, n, tol, gen
        self.p = min(p, n)
        self.counter = CountingMatvec(matvec, batch_ndim=len(self.batch))
        self.op = lambda x: self.counter(x.reshape(*self.batch, *x.shape[1:])).reshape(x.shape)
        self.op_unshifted = lambda x: self.counter.unshifted(x.reshape(*self.batch, *x.shape[1:])).reshape(x.shape)
        self.V = x0.new_zeros((B, m + self.p, n))
        self.H = x0.new_zeros((B, m, m))
        self.R = x0.new_zeros((B, self.p, self.p))
        self.j, self.restarts, self.true_checks, self.steps = 0, 0, 0, 0
        # The whole batch is confirmed at once, when its slowest problem has converged: the Ritz pairs
        # (one batched eigh, which costs more than a cheap product on a large batch) are computed where
        # the worst estimate is predicted to cross the threshold, and whenever a restart needs them.
        self.schedule = CheckSchedule(first=1)
        zeros = torch.zeros(B, dtype=torch.long, device=x0.device)
        self.breakdowns, self.failed = zeros.clone(), zeros.clone()
        self.thresh = torch.full((B,), tol, dtype=x0.dtype, device=x0.device)
        self.done = torch.zeros(B, dtype=torch.bool, device=x0.device)
        self.bad = torch.zeros_like(self.done)
        self.norm_est = x0.new_zeros(B)
        # The residual no product can beat: the rounding of A v = B v - s v, ulps of ||B v|| + |s| (the
        # largest seen). It decides only where ||A|| is itself at round-off of that (J_F = 0 given as
        # J_nc - (1 + c) I), where tol * ||A|| could never be met.
        self.floor = x0.new_zeros(B)
        self.out_vals = x0.new_full((B, nev), float("nan"))
        self.out_vecs = x0.new_full((B, nev, n), float("nan"))
        self.out_res = x0.new_full((B, nev), float("nan"))
        # Whether every vector of the next block is a random replacement (its whole predecessor broke
        # down): see the breakdown rule in run().
        self.replaced = torch.zeros_like(self.done)
        self._next_block(x0[:, : self.p], self.p, column=None)

    def _next_block(self, block: torch.Tensor, rows: int, column: int | None) -> torch.Tensor:
        """Orthonormalize ``block`` against the basis and each other; the first ``rows`` results become the
        next block (rows ``j..j+rows-1`` of ``V``), a vector numerically in the span a random one. Where
        ``block`` is ``A Q_last`` (``column``: the first column of the last block), its coefficients on the
        basis fill ``H`` and those on the next block ``R``. Returns, per problem, whether a breakdown
        happened (``replaced``: whether every one of the ``rows`` was).

        Block classical Gram-Schmidt: the whole block against the basis in one pass (two reads of ``V`` for
        all ``p`` vectors, not two per vector), then each vector against the block's earlier ones (at most
        ``p - 1`` rows); where that second step cancels (DGKS), the vector takes one more pass over the
        whole basis, since its orthogonality to the basis is relative to a norm it no longer has."""
        j = self.j
        broke = torch.zeros_like(self.done)
        self.replaced = torch.ones_like(self.done)
        if column is not None:
            self.R.zero_()
        # A Q_last lies mostly on the last two blocks (the block three-term recurrence): removed first, so
        # DGKS asks for a second full pass only where due.
        against_basis = orthogonalize_rows(self.V[:, :j], block, local=2 * self.p if column is not None else 0)
        if column is not None:
            k = block.shape[1]
            self.H[:, :j, column : column + k] = against_basis.coefficients.mT
            for i in range(k):
                self.H[:, column + i, column + i] -= self.counter.shift  # A = B - shift I (Shifted)
        for i in range(block.shape[1]):
            top = j + min(i, rows)
            o = self._against_block(against_basis, i, top, column)
            if column is not None:
                rounding = _ROUND_OFF_ULPS * torch.finfo(o.norm.dtype).eps * (o.input_norm + abs(self.counter.shift))
                self.floor = torch.maximum(self.floor, torch.nan_to_num(rounding))
            if i >= rows:  # no room left in the space (n reached): only the coefficients count
                continue
            lost = o.in_span | ~(o.norm > 0) | ~torch.isfinite(o.norm)
            self.replaced &= lost
            unit = o.vector / torch.where(lost, torch.ones_like(o.norm), o.norm).unsqueeze(-1)
            if column is not None:
                self.R[:, i, i] = torch.where(lost, torch.zeros_like(o.norm), o.norm)
            if bool(lost.any()):
                self.breakdowns += lost.long()
                broke |= lost
                unit = torch.where(lost.unsqueeze(-1), random_orthonormal(self.V[:, :top], self.generator, unit), unit)
            self.V[:, top] = unit
        return broke

    def _against_block(self, against_basis: Orthogonalized, i: int, top: int, column: int | None) -> Orthogonalized:
        """Vector ``i`` of the block, already orthogonal to the basis ``V[:, :j]``, orthogonalized against the
        block's earlier vectors ``V[:, j:top]``; its coefficients on those go to ``R`` (and, after a pass over
        the whole basis where DGKS asks for one, on the basis to ``H``). ``input_norm`` and ``in_span`` are
        those of the vector as it came, before any pass."""
        j = self.j
        w, first_norm = against_basis.vector[:, i], against_basis.norm[:, i]
        input_norm, in_span = against_basis.input_norm[:, i], against_basis.in_span[:, i]
        if top == j:
            return Orthogonalized(w, against_basis.coefficients[:, i], first_norm, input_norm, in_span)
        inner = orthogonalize(self.V[:, j:top], w)
        w, norm, new_coef = inner.vector, inner.norm, inner.coefficients
        cancelled = norm < DGKS_ETA * first_norm
        if bool(cancelled.any()):
            again = orthogonalize(self.V[:, :top], w, cancelled.unsqueeze(-1).to(w.dtype).expand(-1, top))
            keep = cancelled.unsqueeze(-1)
            w = torch.where(keep, again.vector, w)
            norm = torch.where(cancelled, again.norm, norm)
            new_coef = new_coef + again.coefficients[:, j:]
            if column is not None:
                self.H[:, :j, column + i] += again.coefficients[:, :j]
            in_span = in_span | (cancelled & again.in_span)
        if column is not None:
            self.R[:, : top - j, i] = new_coef
        eps = float(torch.finfo(w.dtype).eps)
        in_span = in_span | inner.in_span | (norm <= eps * input_norm)
        return Orthogonalized(w, new_coef, norm, input_norm, in_span)

    def step(self, rows: int) -> tuple[int, torch.Tensor]:
        """Apply ``A`` to the next block: it joins the basis. Returns the first column of that block and
        its products (zero for a problem whose operator returned non-finite numbers); for a
        :class:`~spectral_probe.linalg.result.Shifted` ``A = B - shift I`` the products ``B Q``."""
        j = self.j
        aq = self.op_unshifted(self.V[:, j : j + rows])
        self.bad |= ~torch.isfinite(aq).flatten(1).all(-1)
        self.j = j + rows
        return j, torch.where(self.bad[:, None, None], torch.zeros_like(aq), aq)

    def wanted(self, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ritz values and coefficients (best first) and the wanted pairs' residual estimates ``||R y_last||``."""
        j, nev = self.j, self.nev
        theta, y = ritz(self.H[:, :j, :j], self.which)
        self.norm_est = torch.maximum(self.norm_est, theta.abs().amax(-1))
        y_last = y[:, j - rows : j, :nev]  # [B, rows, nev]
        estimates = torch.linalg.vector_norm(self.R[:, :, :rows] @ y_last, dim=-2)
        return theta, y, estimates

    def confirm(self, theta: torch.Tensor, y: torch.Tensor, candidates: torch.Tensor) -> None:
        """TRUE residuals of the wanted Ritz vectors by one batched matvec; the answer of ``candidates`` that
        pass is frozen, and a disagreement tightens that problem's threshold."""
        self.true_checks += 1
        vectors = y[..., : self.nev].mT @ self.V[:, : self.j]
        true = torch.linalg.vector_norm(self.op(vectors) - theta[..., : self.nev, None] * vectors, dim=-1)
        passed = (true <= self.limit(self.tol).unsqueeze(-1)).all(-1)
        freeze = ~self.done & (candidates | self.bad)
        self.out_vals = torch.where(freeze.unsqueeze(-1), theta[..., : self.nev], self.out_vals)
        self.out_vecs = torch.where(freeze[:, None, None], vectors, self.out_vecs)
        self.out_res = torch.where(freeze.unsqueeze(-1), true, self.out_res)
        disagree = ~self.done & candidates & ~passed
        self.failed += disagree.long()
        self.thresh = torch.where(disagree, self.thresh * 0.1, self.thresh)
        self.done |= (candidates & passed) | (self.failed >= MAX_FAILED_CHECKS) | self.bad

    def restart(self, theta: torch.Tensor, y: torch.Tensor, rows: int) -> None:
        """Keep the best ``k`` Ritz vectors (``H`` becomes their Ritz values); the next block moves up behind."""
        j = self.j
        k = max(self.nev + rows, (self.m - rows) // 2)
        keep = y[..., :k].mT  # [B, k, j]
        nxt = self.V[:, j : j + rows].clone()
        self.V[:, :k] = keep @ self.V[:, :j]
        self.V[:, k : k + rows] = nxt
        self.H.zero_()
        self.H[:, :k, :k] = torch.diag_embed(theta[..., :k])
        self.j, self.restarts = k, self.restarts + 1

    def run(self, max_restarts: int) -> EigResult:
        rows = self.p
        while True:
            random_block = self.replaced  # the block about to be applied is all random replacements
            column, products = self.step(rows)
            applied, rows = rows, min(rows, self.n - self.j)
            # The next block: A Q orthogonalized against the whole basis (before any restart, so it is
            # orthogonal to the kept Ritz vectors too). Where it breaks down the space is invariant: its
            # Ritz pairs are exact but not necessarily the wanted ones (the starts may have missed the
            # top eigenvector), so they are judged only after a step with the random replacements.
            broke = self._next_block(products, rows, column)
            # ... except where the block that broke down is all random vectors injected into the invariant
            # complement and every one of its products stays in the span: with probability one the
            # complement is then one eigenspace (the identity, a zero or low-rank operator), and every
            # Ritz pair is known (else such an operator broke down at every step until max_restarts).
            trusted = broke & random_block & self.replaced
            self.steps += 1
            if self.j < self.nev:  # fewer Ritz pairs than wanted so far
                continue
            complete = self.j == self.n
            full = self.j + rows > self.m
            if not (full or complete or self.schedule.due(self.steps)):
                continue
            theta, y, estimates = self.wanted(applied)
            converged = (estimates <= self.limit(self.thresh).unsqueeze(-1)).all(-1)
            self.schedule.record(self.steps, self._worst_ratio(estimates))
            candidates = (converged & (~broke | trusted)) | complete
            exhausted = complete or (full and self.restarts >= max_restarts)
            if bool((candidates | self.done).all()) or exhausted:
                self.confirm(theta, y, candidates | exhausted)
                if bool(self.done.all()) or exhausted:
                    return self.result()
            if full:
                self.restart(theta, y, rows)

    def limit(self, tol: float | torch.Tensor) -> torch.Tensor:
        """The normwise residual threshold ``tol * norm_estimate``, never below the rounding floor."""
        return torch.maximum(tol * self.norm_est, self.floor)

    def _worst_ratio(self, estimates: torch.Tensor) -> float:
        """The largest ``estimate / (threshold ||A||)`` over the problems still running (<= 1: all converged)."""
        ratio = (estimates / self.limit(self.thresh).clamp_min(1e-300).unsqueeze(-1)).amax(-1)
        running = ~self.done & ~self.bad
        return float(ratio[running].max()) if bool(running.any()) else 0.0

    def result(self) -> EigResult:
        return frozen_result(self, self.tol, floor=self.floor)
