"""Block Lanczos: the extreme ALGEBRAIC eigenvalues of a symmetric operator from one block of starts.

The math
--------
For a symmetric ``A`` and a block of ``p`` start vectors ``X0 = [x_1 .. x_p]``, the block Krylov space
``span{X0, A X0, .., A^(s-1) X0}`` holds every single-vector Krylov space of every start: one run from
``p`` independent random starts misses an eigenvector only where ALL of them miss it, the protection of
``p`` separate runs compared with each other, and it needs fewer products than those runs (each start's
directions help the others converge). The basis ``V_j`` (orthonormal rows) grows by one block ``Q`` a
step; the products ``A V_j`` are kept, so the Rayleigh quotient ``H_j = V_j^T A V_j`` is formed from
them (two new rows and columns a step) and every Ritz pair ``(theta, V_j^T y)`` has its residual

    ``||A V_j^T y - theta V_j^T y|| = ||(A V_j)^T y - theta V_j^T y||``

from products already made (no recurrence to trust: exact Rayleigh-Ritz on the space).

Thick restart (the block form of Wu & Simon's): when the basis is full, keep the ``k`` best Ritz
vectors ``Y_k^T V_j`` with their products ``Y_k^T (A V_j)``; the next block, orthogonalized against the
whole old basis before the restart, is orthogonal to the kept one, and ``H`` restarts as ``diag(theta_k)``.

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
* Convergence is NORMWISE (``||r|| <= tol * norm_estimate``, the largest ``|theta|`` seen) on the
  residuals from the kept products, then confirmed by one batched matvec on the wanted Ritz vectors
  (the TRUE residuals reported). A disagreement tightens that problem's threshold tenfold, three of them
  stop it with ``converged=False``.
* The whole batch steps in lockstep (one block size, one basis size); a problem that is done keeps its
  answer.
"""

from __future__ import annotations

import torch

from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.krylov import orthogonalize
from spectral_probe.linalg.result import CountingMatvec, EigResult, Matvec, default_tol
from spectral_probe.linalg.symmetric import _random_orthonormal, frozen_result
from spectral_probe.linalg.threads import single_threaded

__all__ = ["block_lanczos"]

_WHICH = ("LA", "SA")
_MAX_FAILED_CHECKS = 3


def block_lanczos(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    which: str = "LA",
    nev: int = 1,
    krylov_dim: int | None = None,
    tol: float | None = None,
    max_restarts: int | None = None,
    generator: torch.Generator | None = None,
) -> EigResult:
    """The ``nev`` largest (``"LA"``) or smallest (``"SA"``) ALGEBRAIC eigenpairs ``A x = lambda x`` of a
    symmetric operator, from ONE block Krylov space of the ``p`` starts ``x0 [*batch, p, n]``.

    Block thick-restart Lanczos with exact Rayleigh-Ritz on the kept products (module docstring).
    ``krylov_dim`` is the basis size ``m`` (default ``DEFAULTS.krylov_dim``, clipped to ``n``), ``tol``
    the normwise tolerance (default ``default_tol(x0.dtype)``), ``max_restarts`` the thick restarts
    allowed (default ``DEFAULTS.max_restarts``); ``generator`` draws the vectors that replace a
    broken-down direction. The matvec counts ``p`` products per problem for a block step.

    Returns :class:`EigResult` (``values [*batch, nev]`` best first, ``vectors [*batch, nev, n]``, TRUE
    residuals, ``converged`` from them). Never raises on non-convergence.
    """
    if which not in _WHICH:
        raise ValueError(f"which must be one of {', '.join(map(repr, _WHICH))}, got {which!r}")
    if x0.ndim < 2 or not x0.dtype.is_floating_point or x0.shape[-1] < 1 or x0.shape[-2] < 1:
        raise ValueError(f"x0 must be a real floating block [*batch, p, n], got {x0.dtype} {tuple(x0.shape)}")
    n, p = x0.shape[-1], x0.shape[-2]
    if not 1 <= nev <= n:
        raise ValueError(f"nev must be in [1, n = {n}], got {nev}")
    m = min(DEFAULTS.krylov_dim if krylov_dim is None else krylov_dim, n)
    max_restarts = DEFAULTS.max_restarts if max_restarts is None else max_restarts
    if m < n and m < nev + 2 * min(p, n):
        raise ValueError(f"krylov_dim ({m}) must hold nev ({nev}) plus two blocks of {p} when below n ({n})")
    tol = default_tol(x0.dtype) if tol is None else float(tol)
    if generator is None:
        generator = torch.Generator(device=x0.device).manual_seed(0xB10C)
    return _BlockLanczos(matvec, x0, which, nev, m, tol, generator).run(max_restarts)


@single_threaded()
def _ritz(h: torch.Tensor, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of the symmetric projected matrix, best (by ``which``) first."""
    theta, y = torch.linalg.eigh((h + h.mT) / 2)  # ascending
    return (theta.flip(-1), y.flip(-1)) if which == "LA" else (theta, y)


class _BlockLanczos:
    """The state of one block Lanczos run over a flat batch ``[B]`` (see :func:`block_lanczos`)."""

    def __init__(self, matvec: Matvec, x0: torch.Tensor, which: str, nev: int, m: int, tol: float, gen) -> None:
        self.batch, (p, n) = tuple(x0.shape[:-2]), x0.shape[-2:]
        x0 = x0.reshape(-1, p, n)
        B = x0.shape[0]
        self.which, self.nev, self.m, self.n, self.tol, self.generator = which, nev, m, n, tol, gen
        self.p = min(p, n)
        self.counter = CountingMatvec(matvec, batch_ndim=len(self.batch))
        self.op = lambda x: self.counter(x.reshape(*self.batch, *x.shape[1:])).reshape(x.shape)
        # V: the basis (rows 0..j-1) and the next block (rows j..j+p-1); AV: the products of the basis.
        self.V = x0.new_zeros((B, m + self.p, n))
        self.AV = x0.new_zeros((B, m, n))
        self.H = x0.new_zeros((B, m, m))
        self.j, self.restarts, self.true_checks = 0, 0, 0
        zeros = torch.zeros(B, dtype=torch.long, device=x0.device)
        self.breakdowns, self.failed = zeros.clone(), zeros.clone()
        self.thresh = torch.full((B,), tol, dtype=x0.dtype, device=x0.device)
        self.done = torch.zeros(B, dtype=torch.bool, device=x0.device)
        self.bad = torch.zeros_like(self.done)
        self.norm_est = x0.new_zeros(B)
        self.out_vals = x0.new_full((B, nev), float("nan"))
        self.out_vecs = x0.new_full((B, nev, n), float("nan"))
        self.out_res = x0.new_full((B, nev), float("nan"))
        self._orthonormalize(x0[:, : self.p], rows=self.p)

    def _orthonormalize(self, block: torch.Tensor, rows: int) -> torch.Tensor:
        """Write ``block``'s first ``rows`` vectors, orthonormalized against the basis and each other, as
        the next block (rows ``j..j+rows-1`` of ``V``); a vector in the span becomes a random one.
        Returns, per problem, whether one did (a breakdown)."""
        broke = torch.zeros_like(self.done)
        for i in range(rows):
            top = self.j + i
            basis = self.V[:, :top]
            o = orthogonalize(basis, block[:, i])
            lost = o.in_span | ~(o.norm > 0) | ~torch.isfinite(o.norm)
            unit = o.vector / torch.where(lost, torch.ones_like(o.norm), o.norm).unsqueeze(-1)
            if bool(lost.any()):
                self.breakdowns += lost.long()
                broke |= lost
                unit = torch.where(lost.unsqueeze(-1), _random_orthonormal(basis, self.generator, unit), unit)
            self.V[:, top] = unit
        return broke

    def step(self, rows: int) -> None:
        """Apply ``A`` to the next block, extend ``A V`` and the Rayleigh quotient ``H = V^T A V``."""
        j = self.j
        q = self.V[:, j : j + rows]
        aq = self.op(q)
        self.bad |= ~torch.isfinite(aq).flatten(1).all(-1)
        aq = torch.where(self.bad[:, None, None], torch.zeros_like(aq), aq)
        self.AV[:, j : j + rows] = aq
        coupling = self.V[:, : j + rows] @ aq.mT  # [B, j + rows, rows] = V^T A Q
        self.H[:, : j + rows, j : j + rows] = coupling
        self.H[:, j : j + rows, : j + rows] = coupling.mT
        self.j = j + rows

    def wanted(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ritz values and coefficients (best first), the wanted Ritz vectors and their residuals from the
        kept products."""
        j, nev = self.j, self.nev
        theta, y = _ritz(self.H[:, :j, :j], self.which)
        self.norm_est = torch.maximum(self.norm_est, theta.abs().amax(-1))
        coef = y[..., :nev].mT  # [B, nev, j]
        vectors = coef @ self.V[:, :j]
        residuals = torch.linalg.vector_norm(coef @ self.AV[:, :j] - theta[..., :nev, None] * vectors, dim=-1)
        return theta, y, vectors, residuals

    def confirm(self, theta: torch.Tensor, vectors: torch.Tensor, candidates: torch.Tensor) -> None:
        """TRUE residuals of the wanted Ritz vectors by one batched matvec; the answer of ``candidates`` that
        pass is frozen, and a disagreement tightens that problem's threshold."""
        self.true_checks += 1
        true = torch.linalg.vector_norm(self.op(vectors) - theta[..., : self.nev, None] * vectors, dim=-1)
        passed = (true <= self.tol * self.norm_est.unsqueeze(-1)).all(-1)
        freeze = ~self.done & (candidates | self.bad)
        self.out_vals = torch.where(freeze.unsqueeze(-1), theta[..., : self.nev], self.out_vals)
        self.out_vecs = torch.where(freeze[:, None, None], vectors, self.out_vecs)
        self.out_res = torch.where(freeze.unsqueeze(-1), true, self.out_res)
        disagree = ~self.done & candidates & ~passed
        self.failed += disagree.long()
        self.thresh = torch.where(disagree, self.thresh * 0.1, self.thresh)
        self.done |= (candidates & passed) | (self.failed >= _MAX_FAILED_CHECKS) | self.bad

    def restart(self, theta: torch.Tensor, y: torch.Tensor, rows: int) -> None:
        """Keep the best ``k`` Ritz vectors and their products; the next block moves up behind them."""
        j = self.j
        k = max(self.nev + rows, (self.m - rows) // 2)
        keep = y[..., :k].mT  # [B, k, j]
        nxt = self.V[:, j : j + rows].clone()
        self.V[:, :k] = keep @ self.V[:, :j]
        self.AV[:, :k] = keep @ self.AV[:, :j]
        self.V[:, k : k + rows] = nxt
        self.H.zero_()
        self.H[:, :k, :k] = torch.diag_embed(theta[..., :k])
        self.j, self.restarts = k, self.restarts + 1

    def run(self, max_restarts: int) -> EigResult:
        rows = self.p
        while True:
            self.step(rows)
            last = self.AV[:, self.j - rows : self.j].clone()  # A Q of the block just applied
            rows = min(rows, self.n - self.j)
            # The next block: A Q orthogonalized against the whole basis (before any restart, so it is
            # orthogonal to the kept Ritz vectors too). Where it breaks down the space is invariant: its
            # Ritz pairs are exact but not necessarily the wanted ones (the starts may have missed the
            # top eigenvector), so they are judged only after a step with the random replacements.
            broke = self._orthonormalize(last, rows)
            if self.j < self.nev:  # fewer Ritz pairs than wanted so far
                continue
            theta, y, vectors, residuals = self.wanted()
            complete = self.j == self.n
            converged = (residuals <= (self.thresh * self.norm_est).unsqueeze(-1)).all(-1)
            candidates = (converged & ~broke) | complete
            full = self.j + rows > self.m
            exhausted = complete or (full and self.restarts >= max_restarts)
            if bool((candidates | self.done).all()) or exhausted:
                self.confirm(theta, vectors, candidates | exhausted)
                if bool(self.done.all()) or exhausted:
                    return self.result()
            if full:
                self.restart(theta, y, rows)

    def result(self) -> EigResult:
        return frozen_result(self, self.tol)
