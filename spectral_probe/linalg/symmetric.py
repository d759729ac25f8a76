"""Thick-restart Lanczos for the extreme ALGEBRAIC eigenvalues of a symmetric operator.

The math
--------
For a symmetric ``A`` (only ``v -> A v`` available) and a start vector ``x0``, Lanczos builds an
orthonormal basis ``V_j = [v_1 .. v_j]`` of the Krylov space ``span{x0, A x0, .., A^(j-1) x0}`` with

    A V_j = V_j T_j + beta_j v_(j+1) e_j^T,        T_j = V_j^T A V_j  (symmetric, j x j).

A Ritz pair ``(theta, y)`` of ``T_j`` (``T_j y = theta y``) gives the approximate eigenpair
``(theta, V_j y)`` whose residual is, by the relation above, ``||A V_j y - theta V_j y|| =
|beta_j| |e_j^T y|``: the Krylov residual estimate, available without a matvec.

Thick restart (Wu & Simon, SIAM J. Matrix Anal. Appl. 22(2), 2000). When the basis is full
(``j = m = krylov_dim``), keep the ``k`` best Ritz vectors ``V_m Y_k`` and the residual vector
``v_(m+1)``. Then

    A (V_m Y_k) = (V_m Y_k) Theta_k + v_(m+1) (beta_m e_m^T Y_k),

so the new projected matrix is an arrowhead (``Theta_k`` on the diagonal, the coupling
``s = beta_m Y_k^T e_m`` in row/column ``k+1``) continued by the usual tridiagonal. Memory stays at
``m`` basis vectors of size ``n`` (plus O(1) work vectors), whatever the number of restarts.

Implementation choices, and why
-------------------------------
* Full reorthogonalisation by the package's one kernel (:func:`spectral_probe.linalg.krylov.orthogonalize`:
  blocked classical Gram-Schmidt, a second pass only where DGKS asks for it): Ritz values of the
  wanted end converge first and, with plain three-term Lanczos, come back as spurious copies. Each
  projection coefficient ``h = V^T A v_j`` is stored in ``T``, so ``T`` is the Rayleigh quotient
  ``V^T A V`` to working precision; this covers the arrowhead after a restart and the zero coupling
  after a breakdown without special cases.
* Breakdown (``beta_j <= tol * norm_estimate``): ``span(V_j)`` is invariant to the requested accuracy.
  If it already has ``n`` dimensions every Ritz pair is exact. Otherwise the iteration continues with
  a random unit vector orthogonal to ``V_j``; its coupling to the basis is the (computed, ~0) Rayleigh
  quotient, so ``T`` stays block-diagonal and correct. Breakdowns are per problem: in a batch, the
  others continue with their own ``v_(j+1) = w / beta_j``. The zero residual estimates at a
  breakdown say "exact", not "wanted": the invariant complement may hold further copies of a
  multiple eigenvalue. They are trusted only when the block that broke down is a lone injected
  random vector (an eigenvector, so its whole complement is one eigenspace, with probability one);
  otherwise the next estimates decide, with the random vector's Rayleigh quotient in the running.
  A low-rank operator costs ``rank + 2`` steps.
* Convergence is NORMWISE: ``|beta_j e_j^T y| <= tol * norm_estimate`` with ``norm_estimate`` the
  largest ``|theta|`` seen (a lower bound of ``||A||_2``), never relative to ``|theta|``, which is 0 at
  a bifurcation. The estimate is checked after every step (an eigh of at most ``m x m``: negligible
  next to a matvec), so a run stops as soon as it may, not at the end of a restart cycle.
* When the estimates say "converged", the TRUE residuals ``||A x - lambda x||`` are computed with one
  batched matvec on the ``nev`` Ritz vectors; ``converged`` is set from them. If a true residual
  disagrees (loss of orthogonality, a noisy matvec), the estimate threshold for that problem is
  tightened and the iteration continues; after three such disagreements the problem stops with an
  honest ``converged=False``.
* Single-vector Krylov caveat: in exact arithmetic the Krylov space of ``x0`` holds ONE copy of a
  multiple eigenvalue, and none of an eigenvector that ``x0`` is orthogonal to. Random starts make
  the second event a probability-zero one; callers compare independent random starts.
"""

from __future__ import annotations

import math

import torch

from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.krylov import KrylovFactorization, random_orthonormal
from spectral_probe.linalg.result import CountingMatvec, EigResult, Matvec, default_tol
from spectral_probe.linalg.symmetric_block import _BlockLanczos, block_basis_size
from spectral_probe.linalg.symmetric_ritz import MAX_FAILED_CHECKS, WHICH, frozen_result, ritz

__all__ = ["lanczos"]

# A beta below this many ulps of the orthogonalized product ||w|| (B v for a Shifted A = B - s I: the
# rounding of what was computed) is noise: the basis spans an invariant subspace.
_BREAKDOWN_ULPS = 10.0


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1)


def _keep_count(theta: torch.Tensor, which: str, nev: int, m: int, active: torch.Tensor) -> int:
    """How many Ritz vectors to keep at a thick restart (one ``k`` for the whole batch).

    Dynamic thick restart (Yamazaki, Bai, Simon, Wang & Wu, ACM TOMS 37(3), 2010). After keeping
    ``k`` Ritz vectors, the next cycle works on the spectrum deflated of them: by the Chebyshev
    bound the error of the ``nev``-th wanted pair shrinks like ``exp(-2 (m - k) sqrt(gamma_k))`` with
    the gap ratio ``gamma_k = (theta_nev - theta_(k+1)) / (theta_(k+1) - theta_m)`` (Ritz values
    oriented best first, ``theta_(k+1)`` the first discarded, ``theta_m`` the far end). Keeping more
    widens the gap, keeping fewer leaves more new steps: choose ``k`` maximising
    ``(m - k) sqrt(gamma_k)``. At least half of the free room is new each cycle (so a run needs no
    more restarts than ARPACK's keep-half rule), at least two Ritz values are discarded.
    In a batch, the choice maximises the sum over the running problems of ``f / max f``.
    """
    room = m - nev
    k_max = m - max(2, math.ceil(room / 2))
    if k_max <= nev:
        return nev
    t = theta if which == "LA" else -theta  # largest first in both cases
    ks = torch.arange(nev, k_max + 1, device=t.device)
    tiny = torch.finfo(t.dtype).tiny
    wanted, far, first_out = t[..., nev - 1 : nev], t[..., m - 1 : m], t[..., nev : k_max + 1]
    gamma = (wanted - first_out).clamp_min(0) / (first_out - far).clamp_min(tiny)
    f = (m - ks).to(t.dtype) * gamma.sqrt()
    f = f / f.amax(-1, keepdim=True).clamp_min(tiny)
    score = torch.where(active.unsqueeze(-1), f, torch.zeros_like(f)).reshape(-1, len(ks)).sum(0)
    return int(ks[int(score.argmax())])


def _validate(x0: torch.Tensor, which: str, nev: int, krylov_dim: int, max_restarts: int, block: bool = False) -> int:
    """The basis size ``m`` of a run (single-vector, or ``block``), or ``ValueError`` naming the bad argument."""
    if which not in WHICH:
        raise ValueError(f"which must be one of {', '.join(map(repr, WHICH))} for a symmetric operator, got {which!r}")
    if krylov_dim < 1 or max_restarts < 0:
        raise ValueError(f"krylov_dim must be >= 1 and max_restarts >= 0, got {krylov_dim}, {max_restarts}")
    return block_basis_size(x0, nev, krylov_dim) if block else _basis_size(x0, nev, krylov_dim)


def _basis_size(x0: torch.Tensor, nev: int, krylov_dim: int) -> int:
    """The basis size ``m`` of a single-vector run from ``x0 [*batch, n]``, or ``ValueError``."""
    if x0.ndim < 1 or not x0.dtype.is_floating_point:
        raise ValueError(f"x0 must be a real floating tensor [*batch, n], got {x0.dtype} of shape {tuple(x0.shape)}")
    n = x0.shape[-1]
    if n < 1:
        raise ValueError("x0 has an empty last dimension (n = 0)")
    if not 1 <= nev <= n:
        raise ValueError(f"nev must be in [1, n = {n}], got {nev}")
    m = min(krylov_dim, n)
    if m < n and m <= nev:
        raise ValueError(f"krylov_dim ({krylov_dim}) must exceed nev ({nev}) when it is smaller than n ({n})")
    return m


class _Lanczos:
    """The state of one thick-restart Lanczos run over a flat batch ``[B]`` (see :func:`lanczos`)."""

    def __init__(self, matvec: Matvec, x0: torch.Tensor, which: str, nev: int, m: int, tol: float, gen) -> None:
        self.batch, n = tuple(x0.shape[:-1]), x0.shape[-1]
        x0 = x0.reshape(-1, n)
        B, dtype, device = x0.shape[0], x0.dtype, x0.device
        self.which, self.nev, self.m, self.n, self.tol, self.generator = which, nev, m, n, tol, gen
        self.eps = torch.finfo(dtype).eps
        counter = CountingMatvec(matvec, batch_ndim=len(self.batch))
        self.counter = counter
        self.op = lambda x: counter(x.reshape(*self.batch, *x.shape[1:])).reshape(x.shape)
        self.op_unshifted = lambda x: counter.unshifted(x.reshape(*self.batch, *x.shape[1:])).reshape(x.shape)
        zeros = torch.zeros(B, dtype=torch.long, device=device)
        self.breakdowns, self.failed = zeros.clone(), zeros.clone()
        # Per-problem estimate threshold (a fraction of tol), tightened when a true residual disagrees.
        self.thresh = torch.full((B,), tol, dtype=dtype, device=device)
        self.done = torch.zeros(B, dtype=torch.bool, device=device)
        self.bad = torch.zeros_like(self.done)  # non-finite matvec output
        self.norm_est = x0.new_zeros(B)
        # The answer per problem, frozen when the problem is done (later sweeps only refine the others).
        self.out_vals = x0.new_full((B, nev), float("nan"))
        self.out_vecs = x0.new_full((B, nev, n), float("nan"))
        self.out_res = x0.new_full((B, nev), float("nan"))
        self.out_est = x0.new_full((B, nev), float("nan"))
        # The current Krylov block (since the start, or since the last breakdown): its length, and whether
        # it began with an injected random vector. See the breakdown rule in step().
        self.block_len = zeros.clone()
        self.block_random = torch.zeros_like(self.done)
        # Start vector: x0 normalised; a zero x0 is a breakdown before the first step.
        x0_norm = _norm(x0)
        zero_start = x0_norm == 0
        v = x0 / torch.where(zero_start, torch.ones_like(x0_norm), x0_norm).unsqueeze(-1)
        if bool(zero_start.any()):
            v = torch.where(zero_start.unsqueeze(-1), random_orthonormal(x0.new_zeros((B, 0, n)), gen, x0), v)
            self.block_random |= zero_start
        self.fact = KrylovFactorization(v, m)
        self.everyone = torch.ones(B, dtype=torch.bool, device=device)
        self.s = 0  # current basis size (the same for the whole batch)
        self.restarts = 0
        self.true_checks = 0

    def step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One Lanczos step: column ``s`` of ``T``; returns ``(beta, untrusted breakdown)`` per problem."""
        fact, s, n = self.fact, self.s, self.n
        # The three-term recurrence puts nearly all of A v_j on v_j and v_(j-1): removed first, they leave
        # the full reorthogonalization little to cancel, and DGKS a second pass only where it is due.
        step = fact.expand(self.op_unshifted, self.everyone, self.counter.shift, local=2)
        orth = step.result
        finite = torch.isfinite(orth.input_norm)  # a non-finite w has a non-finite norm: no O(n) scan
        if not bool(finite.all()):
            # A non-finite matvec poisons only its own problem: zero it out, report NaN at the end.
            self.bad |= ~finite
            zero = lambda t: torch.where(finite.view(-1, *[1] * (t.ndim - 1)), t, torch.zeros_like(t))  # noqa: E731
            orth = type(orth)(
                zero(orth.vector), zero(orth.coefficients), zero(orth.norm), orth.input_norm, orth.in_span
            )
            step.result = orth
        beta = orth.norm
        self.s = s + 1
        self.block_len += 1
        if self.s < n:
            # Invariant to the requested accuracy: beta <= tol ||A|| means every Ritz estimate already
            # passes (a multiple eigenvalue rounded into a tight cluster ends its Krylov space there,
            # not at round-off); the ulps floor covers the first step, before any Ritz value.
            aw = torch.where(finite, orth.input_norm, torch.zeros_like(beta))
            broke = beta <= torch.maximum(self.thresh * self.norm_est, _BREAKDOWN_ULPS * self.eps * aw)
            # A breakdown makes every Ritz pair exact, but maybe not the WANTED ones: the complement of
            # the basis is invariant and may hold more copies of a multiple eigenvalue (with a random
            # x0, a breakdown before n steps happens only then). Its zero estimates are trusted only
            # when a random vector injected into that complement is itself an eigenvector (a block of
            # length 1 broke down): then, with probability one, the complement is one eigenspace and
            # the whole spectrum is known. Otherwise the iteration goes on with a random vector.
            trusted = broke & self.block_random & (self.block_len == 1)
            untrusted = broke & ~trusted
            v = orth.vector / torch.where(broke, torch.ones_like(beta), beta).unsqueeze(-1)
            if bool(broke.any()):
                self.breakdowns += broke.long()
                v = torch.where(broke.unsqueeze(-1), random_orthonormal(fact.basis(self.s), self.generator, v), v)
                self.block_len = torch.where(broke, 0, self.block_len)
                self.block_random |= broke
        else:
            # The basis spans R^n: A V = V T exactly, nothing is left to couple to.
            broke = torch.ones_like(self.bad)
            untrusted = torch.zeros_like(self.bad)
            v = torch.zeros_like(orth.vector)
        beta = torch.where(broke, torch.zeros_like(beta), beta)
        fact.commit(step, self.everyone, beta, v)
        return beta, untrusted

    def true_check(self, y: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
        """TRUE residuals of the ``nev`` best Ritz pairs (one batched matvec); returns 'passed'."""
        x = y[..., :, : self.nev].mT @ self.fact.basis(self.s)
        x = x / _norm(x).clamp_min(torch.finfo(x.dtype).tiny).unsqueeze(-1)
        ax = self.op(x)
        # The Rayleigh quotient minimises ||A x - lambda x|| over lambda for this x.
        lam = (x * ax).sum(-1)
        res = _norm(ax - lam.unsqueeze(-1) * x)
        self.norm_est = torch.maximum(self.norm_est, lam.abs().amax(-1))
        open_ = ~self.done
        self.out_vals.copy_(torch.where(open_.unsqueeze(-1), lam, self.out_vals))
        self.out_vecs.copy_(torch.where(open_[..., None, None], x, self.out_vecs))
        self.out_res.copy_(torch.where(open_.unsqueeze(-1), res, self.out_res))
        self.out_est.copy_(torch.where(open_.unsqueeze(-1), est, self.out_est))
        return (res <= self.tol * self.norm_est.unsqueeze(-1)).all(-1)

    def restart(self, theta: torch.Tensor, y: torch.Tensor) -> None:
        """Thick restart: keep ``k`` Ritz vectors ``V_m Y_k`` and the residual direction ``v_(m+1)``."""
        m, fact = self.m, self.fact
        k = _keep_count(theta, self.which, self.nev, m, ~self.done)
        transform = y.new_zeros((y.shape[0], m + 1, m + 1))
        transform[:, :k, :m] = y[..., :, :k].mT
        transform[:, k, m] = 1.0
        h_new = y.new_zeros((y.shape[0], m + 1, m))
        h_new[:, :k, :k] = torch.diag_embed(theta[..., :k])
        # The coupling b^T = beta_m e_m^T Y_k; Lanczos reads only the upper triangle of H, and the next
        # step recomputes these couplings as V^T A v_(k+1) (the operator is symmetric).
        h_new[:, k, :k] = fact.H[:, m, m - 1, None] * y[:, m - 1, :k]
        fact.restart(torch.arange(y.shape[0], device=y.device), transform, h_new, torch.full_like(fact.size, k))
        self.s = k
        self.restarts += 1
        # The kept Ritz vectors join the current block: a breakdown at the next step is no longer that
        # of a lone random vector.
        self.block_len = torch.where(self.block_len > 0, self.block_len + k, self.block_len)

    def run(self, max_restarts: int) -> EigResult:
        """Steps, Ritz checks and restarts until every problem is done or the restarts run out."""
        nev, m, n, tol = self.nev, self.m, self.n, self.tol
        while True:
            beta, untrusted = self.step()
            s = self.s
            if s < nev:
                continue
            t = torch.where(self.bad[..., None, None], 0.0, self.fact.H[:, :s, :s])
            theta, y = ritz(t, self.which)
            self.norm_est = torch.maximum(self.norm_est, theta.abs().amax(-1))
            est = beta.unsqueeze(-1) * y[..., s - 1, :].abs()  # [B, s]
            bound = self.thresh.unsqueeze(-1) * self.norm_est.unsqueeze(-1)
            est_ok = (est[..., :nev] <= bound).all(-1) & ~untrusted | self.bad
            if self.stop_early(theta, y):
                return self.result(tol)
            exhausted = s == m and (m == n or self.restarts >= max_restarts)
            if bool((est_ok | self.done).all()) or exhausted:
                self.true_checks += 1
                passed = self.true_check(y, est[..., :nev])
                # A disagreement between estimate and truth: demand a smaller estimate next time.
                disagree = ~self.done & est_ok & ~passed
                self.failed += disagree.long()
                self.thresh = torch.where(disagree, self.thresh * 0.1, self.thresh)
                self.done |= (est_ok & passed) | (self.failed >= MAX_FAILED_CHECKS) | self.bad
                if bool(self.done.all()) or exhausted:
                    return self.result(tol)
            if s == m:
                self.restart(theta, y)

    def stop_early(self, theta: torch.Tensor, y: torch.Tensor) -> bool:
        """A hook for a caller that needs less than convergence (``operator_norm``): ``True`` stops."""
        return False

    def result(self, tol: float) -> EigResult:
        return frozen_result(self, tol, estimates=self.out_est)


def lanczos(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    which: str = "LA",
    nev: int = 1,
    krylov_dim: int | None = None,
    tol: float | None = None,
    max_restarts: int | None = None,
    generator: torch.Generator | None = None,
    block: bool = False,
) -> EigResult:
    """The ``nev`` largest (``"LA"``) or smallest (``"SA"``) ALGEBRAIC eigenpairs ``A x = lambda x`` of a
    symmetric operator.

    Thick-restart Lanczos with full reorthogonalisation on ``A V_j = V_j T_j + beta_j v_(j+1) e_j^T``
    (see the module docstring for the math); with ``block=True``, block Lanczos on ONE block Krylov
    space of the ``p`` starts ``x0 [*batch, p, n]`` (:mod:`~spectral_probe.linalg.symmetric_block`): it
    misses an eigenvector only where all ``p`` starts miss it, in fewer products than ``p`` runs.

    Args:
        matvec: ``X -> A X`` on the last dimension, ``A`` symmetric; ``X`` is ``[*batch, n]`` or
            ``[*batch, k, n]``. A :class:`~spectral_probe.linalg.result.Shifted` ``A = B - s I`` is
            orthogonalized as ``B`` (no cancellation from a dominant shift).
        x0: start vectors ``[*batch, n]``, or ``[*batch, p, n]`` with ``block`` (need not be normalised; a
            zero row is replaced by a random one). Every batch element is an independent problem; all
            run together.
        which: ``"LA"`` (largest algebraic) or ``"SA"`` (smallest algebraic). Never largest
            magnitude: on an indefinite operator that is the other end of the spectrum.
        nev: number of wanted eigenpairs, ``1 <= nev <= n``.
        krylov_dim: maximum basis size ``m`` (clipped to ``n``; when ``< n`` it must exceed ``nev``, and
            with ``block`` hold ``nev`` plus two blocks); default ``DEFAULTS.krylov_dim``.
        tol: normwise tolerance: converged iff ``||A x - lambda x|| <= tol * norm_estimate``.
            Defaults to ``default_tol(x0.dtype)``.
        max_restarts: thick restarts allowed before returning a partial result (default
            ``DEFAULTS.max_restarts``).
        generator: random source for the vectors that replace a broken-down direction (and a zero
            ``x0``); a fixed-seed generator on ``x0``'s device when ``None``.
        block: the second-to-last dimension of ``x0`` is a block of starts of one problem. A block
            step costs ``p`` products per problem.

    Returns:
        :class:`EigResult` with ``values [*batch, nev]`` (best first), ``vectors [*batch, nev, n]``,
        TRUE residuals, ``converged`` from them, ``norm_estimate = max |Ritz value|`` seen; its
        :class:`ConvergenceInfo` also holds the Krylov ``estimates``, ``breakdowns`` and
        ``true_residual_retries`` (estimates the true residual contradicted) per problem. Never raises
        on non-convergence: ``converged`` is ``False`` and the values are the best Ritz pairs found.
    """
    krylov_dim = DEFAULTS.krylov_dim if krylov_dim is None else krylov_dim
    max_restarts = DEFAULTS.max_restarts if max_restarts is None else max_restarts
    m = _validate(x0, which, nev, krylov_dim, max_restarts, block)
    tol = default_tol(x0.dtype) if tol is None else float(tol)
    if generator is None:
        generator = torch.Generator(device=x0.device).manual_seed(0xB10C if block else 0x5EC7)
    run = _BlockLanczos if block else _Lanczos
    return run(matvec, x0, which, nev, m, tol, generator).run(max_restarts)
