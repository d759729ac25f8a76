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
* Full reorthogonalisation, classical Gram-Schmidt twice ("twice is enough", Giraud et al. 2005):
  Ritz values of the wanted end converge first and, with plain three-term Lanczos, come back as
  spurious copies. Each projection coefficient ``h = V^T A v_j`` is stored in ``T``, so ``T`` is the
  Rayleigh quotient ``V^T A V`` to working precision; this covers the arrowhead after a restart and
  the zero coupling after a breakdown without special cases.
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

from spectral_probe.linalg.result import CountingMatvec, EigResult, Matvec, default_tol
from spectral_probe.linalg.threads import single_threaded

_WHICH = ("LA", "SA")

# A beta below this many ulps of ||A v|| is rounding noise: the basis spans an invariant subspace.
_BREAKDOWN_ULPS = 10.0

# A true residual that disagrees with the Krylov estimate this many times stops the problem.
_MAX_FAILED_CHECKS = 3


def _inner(basis: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Batched ``basis @ w``: ``[*, j, n] x [*, n] -> [*, j]`` (inner product with every row)."""
    return (basis @ w.unsqueeze(-1)).squeeze(-1)


def _combine(coef: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Batched ``sum_i coef_i basis_i``: ``[*, j] x [*, j, n] -> [*, n]``."""
    return (coef.unsqueeze(-2) @ basis).squeeze(-2)


def _cgs2(w: torch.Tensor, basis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Classical Gram-Schmidt, twice, of ``w`` against orthonormal rows ``basis``.

    Returns ``(w - basis^T h, h)`` with ``h = basis w`` accumulated over both passes.
    """
    h = _inner(basis, w)
    w = w - _combine(h, basis)
    h2 = _inner(basis, w)
    w = w - _combine(h2, basis)
    return w, h + h2


def _norm(x: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(x, dim=-1)


def _random_orthonormal(basis: torch.Tensor, generator: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
    """A random unit vector orthogonal to the rows of ``basis``, per problem (``basis`` has < n rows)."""
    gen_device = generator.device if generator is not None else like.device
    out = like.new_zeros(like.shape)
    pending = torch.ones(like.shape[:-1], dtype=torch.bool, device=like.device)
    # A Gaussian vector keeps ~sqrt((n - j) / n) of its norm after projection; one in a million
    # loses (nearly) all of it, then draw again (a handful of tries is more than enough).
    for _ in range(8):
        r = torch.randn(like.shape, generator=generator, dtype=like.dtype, device=gen_device).to(like.device)
        norm0 = _norm(r)
        r, _ = _cgs2(r, basis)
        nr = _norm(r)
        good = pending & (nr > 1e-3 * norm0)
        out = torch.where(good.unsqueeze(-1), r / nr.clamp_min(torch.finfo(like.dtype).tiny).unsqueeze(-1), out)
        pending = pending & ~good
        if not bool(pending.any()):
            break
    return out


@single_threaded()
def _ritz(t: torch.Tensor, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of the symmetric projected matrix, best (by ``which``) first.

    ``t`` holds ``V^T A V`` in its upper triangle (column j = coefficients of ``A v_j``); the lower
    triangle is mirrored from it so that ``eigh`` sees an exactly symmetric matrix.
    """
    sym = torch.triu(t) + torch.triu(t, diagonal=1).mT
    theta, y = torch.linalg.eigh(sym)  # ascending
    if which == "LA":
        theta, y = theta.flip(-1), y.flip(-1)
    return theta, y


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


def lanczos(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    which: str = "LA",
    nev: int = 1,
    krylov_dim: int = 30,
    tol: float | None = None,
    max_restarts: int = 100,
    generator: torch.Generator | None = None,
) -> EigResult:
    """The ``nev`` largest (``"LA"``) or smallest (``"SA"``) ALGEBRAIC eigenpairs of a symmetric operator.

    Thick-restart Lanczos with full reorthogonalisation (see the module docstring for the math).

    Args:
        matvec: ``X -> A X`` on the last dimension, ``A`` symmetric; ``X`` is ``[*batch, n]`` or
            ``[*batch, k, n]``.
        x0: start vectors ``[*batch, n]`` (need not be normalised; a zero row is replaced by a random
            one). Every batch element is an independent problem; all run together.
        which: ``"LA"`` (largest algebraic) or ``"SA"`` (smallest algebraic). Never largest
            magnitude: on an indefinite operator that is the other end of the spectrum.
        nev: number of wanted eigenpairs, ``1 <= nev <= n``.
        krylov_dim: maximum basis size ``m`` (clipped to ``n``; must exceed ``nev`` when ``< n``).
        tol: normwise tolerance: converged iff ``||A x - lambda x|| <= tol * norm_estimate``.
            Defaults to ``default_tol(x0.dtype)``.
        max_restarts: thick restarts allowed before returning a partial result.
        generator: random source for the vectors that replace a broken-down direction (and a zero
            ``x0``); a fixed-seed generator on ``x0``'s device when ``None``.

    Returns:
        :class:`EigResult` with ``values [*batch, nev]`` (best first), ``vectors [*batch, nev, n]``,
        TRUE residuals, ``converged`` from them, ``norm_estimate = max |Ritz value|`` seen.
        ``info``: ``krylov_dim``, ``breakdowns [*batch]``, ``estimates [*batch, nev]`` (Krylov
        residual estimates at the end), ``true_checks`` (residual matvecs spent), ``failed_checks
        [*batch]``. Never raises on non-convergence: ``converged`` is ``False`` and the values are the
        best Ritz pairs found.
    """
    if which not in _WHICH:
        raise ValueError(f"which must be one of {', '.join(map(repr, _WHICH))} for a symmetric operator, got {which!r}")
    if x0.ndim < 1 or not x0.dtype.is_floating_point:
        raise ValueError(f"x0 must be a real floating tensor [*batch, n], got {x0.dtype} of shape {tuple(x0.shape)}")
    n = x0.shape[-1]
    batch = x0.shape[:-1]
    if n < 1:
        raise ValueError("x0 has an empty last dimension (n = 0)")
    if not 1 <= nev <= n:
        raise ValueError(f"nev must be in [1, n = {n}], got {nev}")
    if krylov_dim < 1 or max_restarts < 0:
        raise ValueError(f"krylov_dim must be >= 1 and max_restarts >= 0, got {krylov_dim}, {max_restarts}")
    m = min(krylov_dim, n)
    if m < n and m <= nev:
        raise ValueError(f"krylov_dim ({krylov_dim}) must exceed nev ({nev}) when it is smaller than n ({n})")
    tol = default_tol(x0.dtype) if tol is None else float(tol)
    dtype, device = x0.dtype, x0.device
    eps = torch.finfo(dtype).eps
    if generator is None:
        generator = torch.Generator(device=device).manual_seed(0x5EC7)

    op = CountingMatvec(matvec, batch_ndim=len(batch))
    V = x0.new_zeros((*batch, m, n))
    T = x0.new_zeros((*batch, m, m))
    norm_est = x0.new_zeros(batch)
    breakdowns = torch.zeros(batch, dtype=torch.long, device=device)
    failed = torch.zeros(batch, dtype=torch.long, device=device)
    # Per-problem estimate threshold (a fraction of tol), tightened when a true residual disagrees.
    thresh = torch.full(batch, tol, dtype=dtype, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    # The answer per problem, frozen when the problem is done (later sweeps only refine the others).
    out_vals = x0.new_full((*batch, nev), float("nan"))
    out_vecs = x0.new_full((*batch, nev, n), float("nan"))
    out_res = x0.new_full((*batch, nev), float("nan"))
    out_est = x0.new_full((*batch, nev), float("nan"))
    bad = torch.zeros(batch, dtype=torch.bool, device=device)  # non-finite matvec output
    # The current Krylov block (since the start, or since the last breakdown): its length, and whether
    # it began with an injected random vector. See the breakdown rule in the loop.
    block_len = torch.zeros(batch, dtype=torch.long, device=device)
    block_random = torch.zeros(batch, dtype=torch.bool, device=device)

    # Start vector: x0 normalised; a zero x0 is a breakdown before the first step.
    x0_norm = _norm(x0)
    zero_start = x0_norm == 0
    v = x0 / torch.where(zero_start, torch.ones_like(x0_norm), x0_norm).unsqueeze(-1)
    if bool(zero_start.any()):
        v = torch.where(zero_start.unsqueeze(-1), _random_orthonormal(V[..., :0, :], generator, x0), v)
        block_random |= zero_start

    def true_check(y: torch.Tensor, s: int, est: torch.Tensor) -> torch.Tensor:
        """TRUE residuals of the ``nev`` best Ritz pairs (one batched matvec); returns 'passed'."""
        nonlocal norm_est
        x = y[..., :, :nev].mT @ V[..., :s, :]
        x = x / _norm(x).clamp_min(torch.finfo(dtype).tiny).unsqueeze(-1)
        ax = op(x)
        # The Rayleigh quotient minimises ||A x - lambda x|| over lambda for this x.
        lam = (x * ax).sum(-1)
        res = _norm(ax - lam.unsqueeze(-1) * x)
        norm_est = torch.maximum(norm_est, lam.abs().amax(-1))
        open_ = ~done
        out_vals.copy_(torch.where(open_.unsqueeze(-1), lam, out_vals))
        out_vecs.copy_(torch.where(open_[..., None, None], x, out_vecs))
        out_res.copy_(torch.where(open_.unsqueeze(-1), res, out_res))
        out_est.copy_(torch.where(open_.unsqueeze(-1), est, out_est))
        return (res <= tol * norm_est.unsqueeze(-1)).all(-1)

    s = 0  # current basis size
    restarts = 0
    true_checks = 0
    beta = x0.new_zeros(batch)
    while True:
        # ---- one Lanczos step: v_(s+1) -> column s of T ------------------------------------------
        V[..., s, :] = v
        w = op(v)
        finite = torch.isfinite(w).all(-1)
        if not bool(finite.all()):
            # A non-finite matvec poisons only its own problem: zero it out, report NaN at the end.
            bad |= ~finite
            w = torch.where(finite.unsqueeze(-1), w, torch.zeros_like(w))
        aw = _norm(w)
        w, h = _cgs2(w, V[..., : s + 1, :])
        T[..., : s + 1, s] = h
        s += 1
        block_len += 1
        beta = _norm(w)
        if s < n:
            # Invariant to the requested accuracy: beta <= tol ||A|| means every Ritz estimate already
            # passes (a multiple eigenvalue rounded into a tight cluster ends its Krylov space there,
            # not at round-off); the ulps floor covers the first step, before any Ritz value.
            broke = beta <= torch.maximum(thresh * norm_est, _BREAKDOWN_ULPS * eps * aw)
            # A breakdown makes every Ritz pair exact, but maybe not the WANTED ones: the complement of
            # the basis is invariant and may hold more copies of a multiple eigenvalue (with a random
            # x0, a breakdown before n steps happens only then). Its zero estimates are trusted only
            # when a random vector injected into that complement is itself an eigenvector (a block of
            # length 1 broke down): then, with probability one, the complement is one eigenspace and
            # the whole spectrum is known. Otherwise the iteration goes on with a random vector.
            trusted = broke & block_random & (block_len == 1)
            untrusted = broke & ~trusted
            v = w / torch.where(broke, torch.ones_like(beta), beta).unsqueeze(-1)
            if bool(broke.any()):
                breakdowns += broke.long()
                v = torch.where(broke.unsqueeze(-1), _random_orthonormal(V[..., :s, :], generator, w), v)
                block_len = torch.where(broke, 0, block_len)
                block_random |= broke
        else:
            # The basis spans R^n: A V = V T exactly, nothing is left to couple to.
            broke = torch.ones_like(bad)
            untrusted = torch.zeros_like(bad)
            v = torch.zeros_like(w)
        beta = torch.where(broke, torch.zeros_like(beta), beta)

        # ---- Rayleigh-Ritz and the Krylov residual estimates ---------------------------------------
        if s < nev:
            continue
        theta, y = _ritz(torch.where(bad[..., None, None], 0.0, T[..., :s, :s]), which)
        norm_est = torch.maximum(norm_est, theta.abs().amax(-1))
        est = beta.unsqueeze(-1) * y[..., s - 1, :].abs()  # [*, s]
        est_ok = (est[..., :nev] <= thresh.unsqueeze(-1) * norm_est.unsqueeze(-1)).all(-1) & ~untrusted | bad
        exhausted = s == m and (m == n or restarts >= max_restarts)
        if bool((est_ok | done).all()) or exhausted:
            true_checks += 1
            passed = true_check(y, s, est[..., :nev])
            # A disagreement between estimate and truth: demand a smaller estimate next time.
            disagree = ~done & est_ok & ~passed
            failed += disagree.long()
            thresh = torch.where(disagree, thresh * 0.1, thresh)
            done |= (est_ok & passed) | (failed >= _MAX_FAILED_CHECKS) | bad
            if bool(done.all()) or exhausted:
                break

        # ---- thick restart ----------------------------------------------------------------------------
        if s == m:
            k = _keep_count(theta, which, nev, m, ~done)
            V[..., :k, :] = y[..., :, :k].mT @ V
            T.zero_()
            T[..., :k, :k] = torch.diag_embed(theta[..., :k])
            # v, the last residual direction (or its random replacement), is orthogonal to V_m, hence
            # to the kept Ritz vectors; its couplings beta_m * y_(m,i) are recomputed by the next step.
            s = k
            restarts += 1
            # The kept Ritz vectors join the current block: a breakdown at the next step is no
            # longer that of a lone random vector.
            block_len = torch.where(block_len > 0, block_len + k, block_len)

    converged = (out_res <= tol * norm_est.unsqueeze(-1)) & ~bad.unsqueeze(-1)
    nan = torch.tensor(float("nan"), dtype=dtype, device=device)
    return EigResult(
        values=torch.where(bad.unsqueeze(-1), nan, out_vals),
        vectors=torch.where(bad[..., None, None], nan, out_vecs),
        residuals=torch.where(bad.unsqueeze(-1), nan, out_res),
        converged=converged,
        norm_estimate=norm_est,
        matvecs=op.count,
        iterations=restarts,
        tol=tol,
        info={
            "which": which,
            "krylov_dim": m,
            "breakdowns": breakdowns,
            "estimates": out_est,
            "true_checks": true_checks,
            "failed_checks": failed,
            "nonfinite": bad,
        },
    )
