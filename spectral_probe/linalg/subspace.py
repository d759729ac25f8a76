"""Block subspace iteration with Rayleigh-Ritz for the largest-MODULUS eigenvalues of a general operator.

The math
--------
For a general real ``M`` (only ``x -> M x``) and an orthonormal block ``X`` (``p`` vectors), one sweep is

    Y = M X                                   (p matvecs)
    H = X^T Y = X^T M X                       (p x p, real)
    H S = S diag(mu)                          (torch.linalg.eig: complex mu, S)
    u_i = X s_i,   r_i = Y s_i - mu_i u_i     (Ritz pairs and their TRUE residuals M u_i - mu_i u_i)
    X <- orth(Y)                              (QR over the block)

``span(X)`` converges to the dominant invariant subspace of dimension ``p``, at the rate
``|lambda_(p+1)| / |lambda_p|`` per sweep (eigenvalues ordered by modulus). A real matrix has its
complex eigenvalues in conjugate pairs of EQUAL modulus, so a 1-D (``p = 1``) iteration cannot
converge when the leading eigenvalue is complex: the iterate keeps rotating in the 2-D real invariant
plane of the pair, and ``x^T M x`` oscillates. With ``p >= 2`` the block holds that plane and the
``p x p`` eigenproblem returns the pair ``mu, conj(mu)`` (LAPACK returns exact conjugates). Two leading
pairs of nearly equal modulus need ``p >= 4`` (the rate ``|lambda_3| / |lambda_2|`` is then ~1 for
``p = 2``): a wider block is how the caller confirms the leading eigenvalue.

Because ``Y = M X`` is an explicit matvec and ``u_i = X s_i``, ``M u_i = Y s_i`` exactly: the residuals
are the true ones at no extra matvec, and one sweep costs exactly ``p`` matvecs.

Convergence is NORMWISE: ``||r_1|| <= tol * norm_estimate`` for the leading Ritz pair, with
``norm_estimate = max over sweeps of ||M X||_2`` (``X`` orthonormal, so this is a lower bound of
``||M||_2``; it is the largest singular value of the QR factor ``R``). Never relative to ``|mu|``.

Stagnation: when the residual has found no new minimum (by 1 %) for ``_WINDOW`` sweeps AND the leading
Ritz value has moved by no more than ``max(100 eps, 10 tol) ||M||`` over that window (settled to
round-off, or to the noise of a finite-difference matvec near ``tol``), more sweeps cannot help: the
floor is above ``tol``. The problem stops with ``converged=False`` and ``info["stagnated"]`` set. A
slowly but steadily converging problem keeps finding new minima, and one whose subspace is still
turning (two leading pairs of nearly equal modulus in a 2-D block) has a moving Ritz value: neither is
stopped early; they run to ``max_iters`` and report ``converged=False`` unless they converge.
"""

from __future__ import annotations

from collections import deque

import torch

from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.result import ConvergenceInfo, CountingMatvec, EigResult, Matvec, default_tol
from spectral_probe.linalg.threads import serial_if_small, single_threaded

# Sweeps without progress before a problem is declared stagnated.
_WINDOW = 20
# A given image of the start is used where the start's R factor has min |R_ii| >= max |R_ii| / this.
_IMAGE_MAX_CONDITION = 1e3


def _orth(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal rows spanning the rows of ``x`` ``[*, p, n]`` (Householder QR), and the R factor.

    Householder QR returns orthonormal columns even for a rank-deficient block, so a degenerate warm
    start (two equal rows, say) still yields a valid (if arbitrary in the missing directions) basis.
    """
    with serial_if_small(x):  # a QR of a tall thin block: the 2-thread OpenMP trap (threads.py)
        q, r = torch.linalg.qr(x.mT, mode="reduced")
    return q.mT, r


def _sort_by_modulus(mu: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Order Ritz values by modulus, largest first; within a conjugate pair, ``imag >= 0`` first."""
    # Two stable sorts give the lexicographic order (modulus desc, imag desc); LAPACK returns exact
    # conjugates, whose moduli are bitwise equal.
    order = torch.sort(-mu.imag, dim=-1, stable=True).indices
    mu, s = mu.gather(-1, order), s.gather(-1, order.unsqueeze(-2).expand_as(s))
    order = torch.sort(-mu.abs(), dim=-1, stable=True).indices
    return mu.gather(-1, order), s.gather(-1, order.unsqueeze(-2).expand_as(s))


def block_rayleigh_ritz(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    tol: float | None = None,
    max_iters: int | None = None,
    x0_image: torch.Tensor | None = None,
) -> EigResult:
    """The ``p`` largest-modulus Ritz pairs of a general real operator by block subspace iteration.

    Each sweep: ``Y = M X``, ``H = X^T M X``, ``H s_i = mu_i s_i``, ``u_i = X s_i`` with the TRUE residual
    ``||M u_i - mu_i u_i||`` (``M u_i = Y s_i``), then ``X <- orth(Y)`` (the module docstring has the math).

    Args:
        matvec: ``X -> M X`` on the last dimension; called on ``[*batch, p, n]`` blocks.
        x0: start block ``[*batch, p, n]`` (random, or a warm start from a previous solve; need not be
            orthonormal). ``p`` larger than ``n`` is clipped to ``n`` (then the block spans R^n and the
            answer is exact after one sweep).
        tol: normwise tolerance on the leading Ritz pair's TRUE residual (default ``default_tol``).
        max_iters: maximum number of sweeps (``p`` matvecs each; default ``DEFAULTS.block_max_iters``).
        x0_image: ``M x0`` where the caller already holds it (explicit products made for another purpose):
            the first sweep then takes ``M X = R^-T (M x0)`` (``x0 = R^T X``, the QR of the start) and
            costs no matvec.

    Returns:
        :class:`EigResult` with complex ``values [*batch, p]`` ordered by modulus (largest first, a
        conjugate pair as ``+imag`` then ``-imag``), complex unit ``vectors [*batch, p, n]``, their TRUE
        residuals, ``converged`` per pair (``residual <= tol * norm_estimate``). The run stops (per
        problem) on the LEADING pair's convergence; the other pairs are reported as they are.
        ``info`` (:class:`ConvergenceInfo`): ``history [*batch, sweeps]`` (leading modulus per sweep),
        ``stagnated [*batch]``, ``iterations_per_problem [*batch]`` (the sweep each problem's answer comes
        from), ``krylov_dim`` (the block size ``p``). Never raises on non-convergence.
    """
    x0, max_iters = _validate(x0, max_iters)
    p, n = x0.shape[-2], x0.shape[-1]
    tol = default_tol(x0.dtype) if tol is None else float(tol)
    batch = x0.shape[:-2]
    dtype, device = x0.dtype, x0.device
    eps = torch.finfo(dtype).eps
    cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
    op = CountingMatvec(matvec, batch_ndim=len(batch))
    x, r0 = _orth(x0)
    first_image = None if x0_image is None else _image_of_orth(x0_image[..., : x.shape[-2], :], r0)
    norm_est = x0.new_zeros(batch)
    done, stagnated, bad = (torch.zeros(batch, dtype=torch.bool, device=device) for _ in range(3))
    sweep_of = torch.zeros(batch, dtype=torch.long, device=device)
    out_vals = torch.full((*batch, p), complex("nan"), dtype=cdtype, device=device)
    out_vecs = torch.full((*batch, p, n), complex("nan"), dtype=cdtype, device=device)
    out_res = x0.new_full((*batch, p), float("nan"))
    rho_history: list[torch.Tensor] = []
    # The last _WINDOW leading values and residuals, and the best residual before them.
    window: deque[tuple[torch.Tensor, torch.Tensor]] = deque()
    best_before = torch.full(batch, float("inf"), dtype=dtype, device=device)

    sweeps = 0
    for sweeps in range(1, max_iters + 1):  # noqa: B007 (the count is reported)
        y, bad = _finite(op(x) if first_image is None or sweeps > 1 else first_image, bad, done)
        mu, u, res = _rayleigh_ritz(x, y, cdtype)
        x, r = _orth(y)
        # ||M X||_2 for orthonormal X is sigma_max(R); |mu| is a lower bound of ||M|| too.
        norm_est = torch.maximum(norm_est, torch.maximum(torch.linalg.matrix_norm(r, ord=2), mu.abs().amax(-1)))
        # The answer of a problem is frozen when it is done (later sweeps only refine the others).
        open_ = ~done
        out_vals, out_res = (torch.where(open_.unsqueeze(-1), a, b) for a, b in ((mu, out_vals), (res, out_res)))
        out_vecs = torch.where(open_[..., None, None], u, out_vecs)
        sweep_of = torch.where(open_, sweeps, sweep_of)
        rho_history.append(mu[..., 0].abs())
        window.append((mu[..., 0], res[..., 0]))
        stuck = torch.zeros_like(done)
        if len(window) > _WINDOW:
            best_before = torch.minimum(best_before, window.popleft()[1])
            stuck = _stagnated(window, best_before, norm_est, eps, tol)

        converged = res[..., 0] <= tol * norm_est
        stuck &= ~converged
        stagnated |= stuck & open_
        done |= converged | stuck | bad
        if bool(done.all()):
            break
    return _result(out_vals, out_vecs, out_res, bad, norm_est, tol, op.count, sweeps, stagnated, sweep_of, rho_history)


def _finite(y: torch.Tensor, bad: torch.Tensor, done: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``y`` with the blocks of problems that turned non-finite zeroed, and ``bad`` updated with them."""
    # A non-finite block has a non-finite norm: one reduction, no separate isfinite pass.
    finite = torch.isfinite(torch.linalg.vector_norm(y, dim=(-2, -1)))
    if bool(finite.all()):
        return y, bad
    return torch.where(finite[..., None, None], y, torch.zeros_like(y)), bad | (~finite & ~done)


def _image_of_orth(x0_image: torch.Tensor, r: torch.Tensor) -> torch.Tensor | None:
    """``M X`` for the orthonormal rows ``X`` of :func:`_orth` from ``M x0``: ``x0 = R^T X`` row-wise, so
    ``M X = R^-T (M x0)`` (a triangular solve on ``p x p``); None where ``R`` is too far from well
    conditioned (the first sweep then makes its products)."""
    diagonal = torch.diagonal(r, dim1=-2, dim2=-1).abs()
    if not bool((diagonal.amin(-1) >= _IMAGE_MAX_CONDITION**-1 * diagonal.amax(-1)).all()):
        return None  # a start of (nearly) deficient rank: the solve would amplify the image's rounding
    image = torch.linalg.solve_triangular(r.mT, x0_image.to(r.dtype), upper=False)
    return image if bool(torch.isfinite(image).all()) else None


def _validate(x0: torch.Tensor, max_iters: int | None) -> tuple[torch.Tensor, int]:
    """The start block (``p`` clipped to ``n``) and the sweep limit, or ``ValueError``."""
    if x0.ndim < 2 or not x0.dtype.is_floating_point:
        raise ValueError(f"x0 must be a real floating block [*batch, p, n], got {x0.dtype} of shape {tuple(x0.shape)}")
    p, n = x0.shape[-2], x0.shape[-1]
    if p < 1 or n < 1:
        raise ValueError(f"x0 must have a block size p >= 1 and n >= 1, got shape {tuple(x0.shape)}")
    max_iters = DEFAULTS.block_max_iters if max_iters is None else max_iters
    if max_iters < 1:
        raise ValueError(f"max_iters must be >= 1, got {max_iters}")
    return (x0[..., :n, :] if p > n else x0), max_iters


def _rayleigh_ritz(
    x: torch.Tensor, y: torch.Tensor, cdtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ritz values ``mu`` of ``H = X^T M X`` (modulus order), unit Ritz vectors ``u_i = X s_i`` and their
    TRUE residuals ``||M u_i - mu_i u_i||`` (``M u_i = Y s_i`` from the explicit ``Y = M X``)."""
    with serial_if_small(x):  # a product of two thin blocks: the 2-thread OpenMP trap (threads.py)
        h = x @ y.mT  # h[i, j] = x_i . M x_j
    with single_threaded():
        mu, s = _sort_by_modulus(*torch.linalg.eig(h))
    u = s.mT @ x.to(cdtype)  # Ritz vectors as rows: u_i = sum_j s_ji x_j
    mu_u = s.mT @ y.to(cdtype)  # M u_i, from the explicit matvec
    scale = torch.linalg.vector_norm(u, dim=-1).clamp_min(torch.finfo(x.dtype).tiny)
    u, mu_u = u / scale.unsqueeze(-1), mu_u / scale.unsqueeze(-1)
    return mu, u, torch.linalg.vector_norm(mu_u - mu.unsqueeze(-1) * u, dim=-1)


def _result(
    out_vals: torch.Tensor,
    out_vecs: torch.Tensor,
    out_res: torch.Tensor,
    bad: torch.Tensor,
    norm_est: torch.Tensor,
    tol: float,
    matvecs: int,
    sweeps: int,
    stagnated: torch.Tensor,
    sweep_of: torch.Tensor,
    history: list[torch.Tensor],
) -> EigResult:
    """The :class:`EigResult` of a run (NaN where the operator returned non-finite numbers)."""
    p = out_vals.shape[-1]
    converged = (out_res <= tol * norm_est.unsqueeze(-1)) & ~bad.unsqueeze(-1)
    info = ConvergenceInfo(
        converged=converged,
        residuals=torch.where(bad.unsqueeze(-1), float("nan"), out_res),
        matvecs=matvecs,
        iterations=sweeps,
        tol=tol,
        norm_estimate=norm_est,
        breakdowns=torch.zeros_like(sweep_of),
        nonfinite=bad,
        krylov_dim=p,
        stagnated=stagnated,
        iterations_per_problem=sweep_of,
        history=torch.stack(history, dim=-1),
    )
    values = torch.where(bad.unsqueeze(-1), complex("nan"), out_vals)
    return EigResult(values=values, vectors=torch.where(bad[..., None, None], complex("nan"), out_vecs), info=info)


def _stagnated(
    window: deque[tuple[torch.Tensor, torch.Tensor]],
    best_before: torch.Tensor,
    norm_est: torch.Tensor,
    eps: float,
    tol: float,
) -> torch.Tensor:
    """Per problem: no 1 % residual progress over the window, and a settled leading Ritz value."""
    values = torch.stack([v for v, _ in window], dim=-1)
    best_recent = torch.stack([r for _, r in window], dim=-1).amin(-1)
    no_progress = best_recent >= 0.99 * best_before
    spread = (values - values[..., -1:]).abs().amax(-1)
    settled = spread <= max(100 * eps, 10 * tol) * norm_est
    return no_progress & settled
