"""Arnoldi with Krylov-Schur style thick restarts for a real NON-symmetric operator (here ``A = J_F``).

The math
--------
``m`` steps of Arnoldi (classical Gram-Schmidt, twice) give the Krylov decomposition

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from spectral_probe.linalg.result import CountingMatvec, EigResult, Matvec, default_tol
from spectral_probe.linalg.threads import single_threaded

__all__ = [
    "Target",
    "as_target",
    "krylov_schur",
    "largest_modulus",
    "rightmost",
    "smallest_real",
]

Score = Callable[[torch.Tensor], torch.Tensor]

# Fraction of the Krylov dimension kept at a thick restart (wanted values plus a buffer of the next
# best ones). About one half is the usual compromise (Stewart 2001; ARPACK keeps a similar share):
# more kept vectors means fewer new directions per cycle, fewer means a weaker filter.
_KEEP_FRACTION = 0.5
# A thick restart is accepted only if ||H Q - Q S|| <= _INVARIANCE_FRACTION * tol * ||H||: the error
# it would inject into the Krylov decomposition must stay well below the convergence tolerance.
_INVARIANCE_FRACTION = 1e-2
# DGKS/Kahan-Parlett "twice is enough": if the second Gram-Schmidt pass still shrinks the vector
# below 1/sqrt(2) of its norm, the new direction is rounding noise, i.e. an invariant subspace.
_DGKS_ETA = 1.0 / math.sqrt(2.0)
# After a thick restart claimed convergence but the TRUE residual disagrees (accumulated rounding),
# restart explicitly at most this many times before reporting an honest non-convergence.
_MAX_TRUE_RESIDUAL_RETRIES = 2
# A Ritz vector of H_m with ||H_m y - theta y|| above this fraction of tol * ||A|| is recomputed (see
# _analyze): small enough not to matter for convergence, far above a good vector's rounding.
_VECTOR_FRACTION = 1e-3


# --------------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------------


def _score_real(mu: torch.Tensor) -> torch.Tensor:
    return mu.real


def _score_minus_real(mu: torch.Tensor) -> torch.Tensor:
    return -mu.real


@dataclass(frozen=True)
class _ModulusScore:
    """``|shift + scale * mu|``: the modulus of the eigenvalue of ``shift I + scale A`` behind ``mu``."""

    shift: float
    scale: float

    def __call__(self, mu: torch.Tensor) -> torch.Tensor:
        return (self.shift + self.scale * mu).abs()


@dataclass(frozen=True)
class Target:
    """Which Ritz values are wanted: ``score(mu)`` (real, higher = more wanted) of complex ``mu``.

    ``name`` keys the result returned by :func:`krylov_schur`. Use the constructors :func:`rightmost`
    ("LR", the spectral abscissa alpha), :func:`largest_modulus` ("LM"; with ``shift=1, scale=eps``
    the leading eigenvalue of ``M = I + eps J_F``, i.e. rho) or :func:`smallest_real` ("SR").
    """

    name: str
    score: Score

    @classmethod
    def rightmost(cls) -> Target:
        """Largest real part first: ``score = Re(mu)``, name ``"LR"``."""
        return cls("LR", _score_real)

    @classmethod
    def largest_modulus(cls, shift: float = 0.0, scale: float = 1.0, name: str | None = None) -> Target:
        """Largest ``|shift + scale * mu|`` first.

        Name ``"LM"`` for the plain case (``shift=0, scale=1``), else ``"LM(shift=..,scale=..)"``
        unless ``name`` is given. ``largest_modulus(1.0, eps)`` targets the leading eigenvalue of
        ``M = I + eps J_F`` from a Krylov space of ``J_F``.
        """
        shift, scale = float(shift), float(scale)
        if not (math.isfinite(shift) and math.isfinite(scale)) or scale == 0.0:
            raise ValueError(f"largest_modulus needs a finite shift and a finite non-zero scale: {shift}, {scale}")
        if name is None:
            name = "LM" if (shift == 0.0 and scale == 1.0) else f"LM(shift={shift:g},scale={scale:g})"
        return cls(name, _ModulusScore(shift, scale))

    @classmethod
    def smallest_real(cls) -> Target:
        """Smallest real part first: ``score = -Re(mu)``, name ``"SR"``."""
        return cls("SR", _score_minus_real)


rightmost = Target.rightmost
largest_modulus = Target.largest_modulus
smallest_real = Target.smallest_real

_SHORTHANDS: dict[str, Callable[[], Target]] = {
    "LR": Target.rightmost,
    "LM": Target.largest_modulus,
    "SR": Target.smallest_real,
}


def as_target(target: Target | str) -> Target:
    """A :class:`Target`, or one of the shorthands ``"LR"``, ``"LM"``, ``"SR"``; else ``ValueError``."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str) and target in _SHORTHANDS:
        return _SHORTHANDS[target]()
    valid = ", ".join(repr(k) for k in _SHORTHANDS)
    raise ValueError(f"unknown eigenvalue target {target!r}: use a Target or one of {valid}")


# --------------------------------------------------------------------------------------------------
# Small helpers (the O(n) work, batched)
# --------------------------------------------------------------------------------------------------


def _random(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    # Draw on the generator's own device so a CPU generator also serves CUDA problems.
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)


def _cgs2(
    basis: torch.Tensor, w: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Classical Gram-Schmidt, twice, of ``w [B, n]`` against the rows ``basis [B, k, n]`` kept by
    ``mask [B, k]`` (rows of unequal per-problem bases are masked, never read as data).

    Returns ``(w_orth, coefficients [B, k], ||w after pass 1||, ||w after pass 2||)``. CGS is a pair of
    batched matrix-vector products (fast, one reduction per pass); the second pass restores
    orthogonality to working precision ("twice is enough").
    """
    c1 = torch.bmm(basis, w.unsqueeze(-1)).squeeze(-1) * mask
    w = w - torch.bmm(c1.unsqueeze(1), basis).squeeze(1)
    beta1 = torch.linalg.vector_norm(w, dim=-1)
    c2 = torch.bmm(basis, w.unsqueeze(-1)).squeeze(-1) * mask
    w = w - torch.bmm(c2.unsqueeze(1), basis).squeeze(1)
    beta2 = torch.linalg.vector_norm(w, dim=-1)
    return w, c1 + c2, beta1, beta2


def _order(score: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Indices of ``theta`` best first: score descending, ties (a conjugate pair) positive imag first."""
    by_imag = torch.argsort(-theta.imag, stable=True)
    by_score = torch.argsort(-score[by_imag], stable=True)
    return by_imag[by_score]


def _partners(theta: torch.Tensor) -> list[int]:
    """Index of each Ritz value's complex conjugate (itself for a real one).

    LAPACK's real ``geev`` returns real eigenvalues with an imaginary part of exactly zero and complex
    ones in exactly conjugate pairs, so the test ``imag == 0`` is exact.
    """
    k = theta.shape[0]
    is_complex = theta.imag != 0
    dist = (theta[:, None] - theta.conj()[None, :]).abs()
    dist[:, ~is_complex] = math.inf
    dist.fill_diagonal_(math.inf)
    nearest = torch.argmin(dist, dim=1) if k else torch.zeros(0, dtype=torch.long)
    out = torch.where(is_complex, nearest, torch.arange(k))
    return out.tolist()


def _real_basis(Y: torch.Tensor, kept: list[int]) -> torch.Tensor:
    """Orthonormal real basis ``[m, p]`` (``p = len(kept)``) of the span of the Ritz vectors
    ``Y[:, kept]`` made real: a conjugate pair ``y, conj(y)`` spans the same space as ``Re y, Im y``.

    The SVD (rather than QR of hand-picked columns) keeps the ``p`` dominant directions of all real and
    imaginary parts, which also covers a cluster whose vectors were recomputed as a real basis.
    """
    Z = torch.cat([Y[:, kept].real, Y[:, kept].imag], dim=1)
    U = torch.linalg.svd(Z, full_matrices=False)[0]
    return U[:, : len(kept)]


@dataclass
class _Ritz:
    """The analysis of one problem's current decomposition (small, float64, CPU)."""

    theta: torch.Tensor  # [m] complex
    Y: torch.Tensor  # [m, m] complex, unit columns
    estimates: torch.Tensor  # [m] |h^T y|
    orders: list[torch.Tensor]  # per target, best first
    partners: list[int]
    hm: torch.Tensor  # [m, m]
    h: torch.Tensor  # [m]
    hnorm: float  # ||H_bar||_2 <= ||A||_2


@single_threaded()
def _analyze(Hbar: torch.Tensor, targets: Sequence[Target], vec_rtol: float, norm_floor: float) -> _Ritz | None:
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
    if not bool(torch.isfinite(Hbar).all()):
        return None
    m = Hbar.shape[1]
    hm, h = Hbar[:m, :], Hbar[m, :]
    theta, Y = torch.linalg.eig(hm)
    Y = Y / torch.linalg.vector_norm(Y, dim=0, keepdim=True)
    hmc = hm.to(Y.dtype)
    eig_res = torch.linalg.vector_norm(hmc @ Y - Y * theta, dim=0)
    hnorm = float(torch.linalg.matrix_norm(Hbar, ord=2))
    bad = (eig_res > vec_rtol * max(hnorm, norm_floor)).nonzero().flatten().tolist()
    if bad:
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
    orders = [_order(t.score(theta).to(torch.float64), theta) for t in targets]
    return _Ritz(theta, Y, estimates, orders, _partners(theta), hm, h, hnorm)


def _wanted(ritz: _Ritz, nev: int) -> list[int]:
    """Union over targets of the top ``nev`` Ritz values, each with its conjugate partner, in order."""
    kept: list[int] = []
    for order in ritz.orders:
        for i in order[:nev].tolist():
            for j in (i, ritz.partners[i]):
                if j not in kept:
                    kept.append(j)
    return kept


def _with_buffer(ritz: _Ritz, must: list[int], goal: int, cap: int) -> list[int]:
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
def _thick_restart(ritz: _Ritz, kept: list[int], inv_tol: float) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``Q`` (orthonormal basis of the kept Ritz space) and ``S = Q^T H Q``, or None if ``span(Q)`` is
    not invariant under ``H_m`` to ``inv_tol`` (the restarted decomposition would be corrupted)."""
    Q = _real_basis(ritz.Y, kept)
    S = Q.T @ ritz.hm @ Q
    invariance = float(torch.linalg.matrix_norm(ritz.hm @ Q - Q @ S))
    if not math.isfinite(invariance) or invariance > inv_tol:
        return None
    return Q, S


# --------------------------------------------------------------------------------------------------
# The solver
# --------------------------------------------------------------------------------------------------


def krylov_schur(
    matvec: Matvec,
    x0: torch.Tensor,
    *,
    targets: Sequence[Target | str] = ("LR",),
    nev: int = 1,
    krylov_dim: int = 30,
    tol: float | None = None,
    max_restarts: int = 200,
    generator: torch.Generator | None = None,
) -> dict[str, EigResult]:
    """Eigenvalues of a real non-symmetric operator ``A`` wanted by several targets, from ONE Krylov run.

    ``A`` is given only through ``matvec(X) = A X`` on the last dimension (``A = J_F`` via jvp, say).
    Each cycle expands a Krylov decomposition ``A V_m = V_m H_m + v_{m+1} h^T`` to ``m = krylov_dim``
    vectors by Arnoldi with classical Gram-Schmidt twice (``m`` is raised to
    ``2 len(targets) (nev + 1) + 2`` if smaller, so that a cycle adds at least as many directions as it
    keeps, and clipped to ``n``). The thick restart keeps the union over ``targets`` of each one's top
    ``nev`` Ritz values plus a buffer of the next best (about half the space), see the module
    docstring. The run stops when the top ``nev`` Ritz pairs of EVERY target have Krylov residuals
    ``||Hbar_m y - theta [y; 0]|| <= tol * norm_estimate`` (``= |h^T y|`` for an exact eigenvector
    ``y`` of ``H_m``), or after ``max_restarts``.

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
    ``iterations`` the restarts. ``info`` holds ``krylov_dim``, per-problem ``matvecs_per_problem``,
    ``restarts_per_problem``, ``breakdowns``, ``fallback_restarts`` (thick restarts that failed the
    invariance check), ``true_residual_retries``, ``failed`` (the operator returned non-finite numbers:
    NaN values, infinite residuals) and the Krylov ``residual_estimates``.

    A breakdown (``A`` leaves the Krylov space invariant: low rank, ``n`` tiny) is exact if the basis
    spans ``R^n``, else Arnoldi continues from a random vector orthogonal to the basis (drawn from
    ``generator``) with zero coupling. ``tol`` defaults to ``default_tol(x0.dtype)``. Non-convergence
    never raises: the best partial result comes back with honest residuals and ``converged=False``.

    The tiny projected eigenproblems (``m x m``) run in float64 on the CPU, whatever the working dtype
    and device: they are ``O(m^3)``, and float64 keeps their own rounding out of the float32 error budget.
    """
    target_list = [as_target(t) for t in targets]
    if not target_list:
        raise ValueError("krylov_schur needs at least one target")
    names = [t.name for t in target_list]
    if len(set(names)) != len(names):
        raise ValueError(f"target names must be unique, got {names}")
    if x0.ndim < 1:
        raise ValueError(f"x0 must have shape [*batch, n], got {tuple(x0.shape)}")
    if not x0.is_floating_point():
        raise ValueError(f"x0 must be a real floating-point tensor, got {x0.dtype}")
    n = int(x0.shape[-1])
    batch = tuple(x0.shape[:-1])
    B = math.prod(batch)
    if n < 1 or B < 1:
        raise ValueError(f"x0 must be non-empty, got shape {tuple(x0.shape)}")
    if not 1 <= nev <= n:
        raise ValueError(f"nev must be in [1, n={n}], got {nev}")
    if max_restarts < 0:
        raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")

    dtype, device = x0.dtype, x0.device
    small = torch.promote_types(dtype, torch.float64)  # the projected problems (see docstring)
    eps = float(torch.finfo(dtype).eps)
    tol = default_tol(dtype) if tol is None else float(tol)
    n_targets = len(target_list)
    # Each cycle must add at least as many new directions as it keeps wanted ones (every target's nev
    # values, each possibly completed by a conjugate), else it stagnates; past n the whole space is
    # spanned and the first cycle is exact.
    m_needed = 2 * n_targets * (nev + 1) + 2
    m = min(n, max(int(krylov_dim), m_needed))
    keep_goal = max(1, int(_KEEP_FRACTION * m))
    keep_cap = m - 2

    counter = CountingMatvec(matvec, len(batch))

    def apply(X: torch.Tensor) -> torch.Tensor:
        return counter(X.reshape(*batch, n)).reshape(B, n)

    # ---- state: zero-padded per-problem bases, so the O(n) work stays batched ----
    V = torch.zeros(B, m + 1, n, dtype=dtype, device=device)
    H = torch.zeros(B, m + 1, m, dtype=dtype, device=device)
    x = x0.detach().reshape(B, n).clone()
    xnorm = torch.linalg.vector_norm(x, dim=-1)
    bad_start = ~torch.isfinite(xnorm) | (xnorm == 0)
    if bool(bad_start.any()):
        # A zero (or non-finite) start spans nothing: replace it by a random one.
        x[bad_start] = _random((int(bad_start.sum()), n), x, generator)
        xnorm = torch.linalg.vector_norm(x, dim=-1)
    V[:, 0] = x / xnorm[:, None]

    j = [0] * B  # next column of H to fill
    done = [False] * B
    failed = [False] * B  # operator produced non-finite numbers
    mv_per = [0] * B
    restarts_per = [0] * B
    breakdowns = [0] * B
    fallbacks = [0] * B
    retries = [0] * B
    norm_est = [0.0] * B
    ritz: list[_Ritz | None] = [None] * B
    arange_b = torch.arange(B, device=device)
    restarts = 0

    def expand() -> None:
        """Arnoldi steps until every active problem has ``m`` basis vectors (batched operator calls)."""
        while True:
            stepping = [b for b in range(B) if not done[b] and j[b] < m]
            if not stepping:
                return
            stepping_set = set(stepping)
            step = torch.zeros(B, dtype=torch.bool, device=device)
            step[stepping] = True
            # Idle problems get their first basis vector (unit, finite): the operator is always called
            # on the full batch, and a zero vector could upset a finite-difference matvec.
            col = torch.tensor([j[b] if b in stepping_set else 0 for b in range(B)], device=device)
            w0 = apply(V[arange_b, col])
            for b in stepping:
                mv_per[b] += 1
            top = max(j[b] for b in stepping) + 1
            mask = (torch.arange(top, device=device)[None, :] <= col[:, None]).to(dtype)
            w, coef, beta1, beta2 = _cgs2(V[:, :top], w0, mask)
            wnorm = torch.linalg.vector_norm(w0, dim=-1)
            # Breakdown: the basis spans R^n, or w is numerically in span(V) (DGKS), or non-finite.
            full = col + 1 >= n
            in_span = (beta2 <= _DGKS_ETA * beta1) | (beta2 <= eps * wnorm)
            broke = step & (full | in_span | ~torch.isfinite(beta2))
            beta = torch.where(broke, torch.zeros_like(beta2), beta2)
            safe = torch.where(broke, torch.ones_like(beta2), beta2)
            new = w / safe[:, None]
            # Exact breakdown (R^n spanned): no next vector, the decomposition is an eigendecomposition.
            new = torch.where((broke & full)[:, None], torch.zeros_like(new), new)
            broke_list = broke.tolist()
            need_random = [b for b in stepping if broke_list[b] and j[b] + 1 < n]
            if need_random:
                # Invariant subspace found but not all of R^n: continue with a random direction
                # orthogonal to the basis, coupled by zero, so the decomposition stays exact.
                idx = torch.tensor(need_random, device=device)
                r = _random((len(need_random), n), V, generator)
                r, _, _, rn = _cgs2(V[idx, :top], r, mask[idx])
                new[idx] = r / rn[:, None]
            for b in stepping:
                breakdowns[b] += int(broke_list[b])
                j[b] += 1
            # Write column col of H (coefficients are already zero past col) and row col+1 of V.
            sb = torch.tensor(stepping, device=device)
            cb = col[sb]
            column = torch.zeros(len(stepping), m + 1, dtype=dtype, device=device)
            column[:, :top] = coef[sb]
            column[torch.arange(len(stepping), device=device), cb + 1] = beta[sb]
            H[sb, :, cb] = column
            V[sb, cb + 1] = new[sb]

    def analyze_all(problems: list[int]) -> None:
        Hc = H.detach().to(device="cpu", dtype=small)
        for b in problems:
            r = _analyze(Hc[b], target_list, _VECTOR_FRACTION * tol, norm_est[b])
            ritz[b] = r
            if r is None:
                failed[b] = True
                done[b] = True
                continue
            norm_est[b] = max(norm_est[b], r.hnorm)
            if _estimates_converged(r, nev, tol, norm_est[b]):
                done[b] = True

    def explicit(b: int, coeff: torch.Tensor, T_rows: list, H_new: list) -> None:
        """Restart problem ``b`` from the single vector ``V_m coeff``: always a valid decomposition."""
        T = torch.zeros(m + 1, m + 1, dtype=small)
        T[0, :m] = coeff / torch.linalg.vector_norm(coeff)
        T_rows.append((b, T))
        H_new.append((b, torch.zeros(m + 1, m, dtype=small), 0))

    def restart_all(problems: list[int], force_explicit: bool = False) -> None:
        T_rows: list = []
        H_new: list = []
        for b in problems:
            r = ritz[b]
            assert r is not None
            restarts_per[b] += 1
            must = _wanted(r, nev)
            inv_tol = _INVARIANCE_FRACTION * tol * max(r.hnorm, norm_est[b])
            # Without a residual direction (h = 0, only possible once R^n is spanned) there is nothing
            # to continue from: restart explicitly.
            plan = None
            if not force_explicit and float(r.h.abs().max()) > 0.0:
                for kept in (_with_buffer(r, must, max(keep_goal, len(must)), keep_cap), must):
                    plan = _thick_restart(r, kept, inv_tol)
                    if plan is not None:
                        break
                    fallbacks[b] += 1
            if plan is None:
                explicit(b, _real_basis(r.Y, must).sum(dim=1), T_rows, H_new)
                continue
            Q, S = plan
            p = Q.shape[1]
            T = torch.zeros(m + 1, m + 1, dtype=small)
            T[:p, :m] = Q.T
            T[p, m] = 1.0  # the residual direction v_{m+1} becomes v_{p+1}
            Hn = torch.zeros(m + 1, m, dtype=small)
            Hn[:p, :p] = S
            Hn[p, :p] = r.h @ Q
            T_rows.append((b, T))
            H_new.append((b, Hn, p))
        if not T_rows:
            return
        idx = torch.tensor([b for b, _ in T_rows], device=device)
        T = torch.stack([t for _, t in T_rows]).to(device=device, dtype=dtype)
        V[idx] = T @ V[idx]
        for b, Hn, p in H_new:
            H[b] = Hn.to(device=device, dtype=dtype)
            if p == 0:
                V[b, 0] = V[b, 0] / torch.linalg.vector_norm(V[b, 0])
            j[b] = p
            done[b] = False

    # ---- main loop ----
    while True:
        while True:
            active = [b for b in range(B) if not done[b]]
            expand()
            analyze_all(active)
            todo = [b for b in range(B) if not done[b]]
            if not todo or restarts >= max_restarts:
                break
            restart_all(todo)
            restarts += 1
        values, vectors, residuals, converged_any = _extract(
            ritz, V, target_list, nev, m, n, B, apply, failed, norm_est, tol, mv_per, dtype
        )
        # The Krylov estimate said converged but the true residual disagrees (rounding accumulated
        # over restarts): restart those problems explicitly, a bounded number of times.
        retry = [
            b
            for b in range(B)
            if not failed[b]
            and retries[b] < _MAX_TRUE_RESIDUAL_RETRIES
            and _estimates_converged(ritz[b], nev, tol, norm_est[b])
            and not converged_any[b]
        ]
        if not retry or restarts >= max_restarts:
            break
        for b in retry:
            retries[b] += 1
        restart_all(retry, force_explicit=True)
        restarts += 1

    norm_t = torch.tensor(norm_est, dtype=dtype, device=device).reshape(batch)
    info_common = {
        "krylov_dim": m,
        "targets": names,
        "matvecs_per_problem": torch.tensor(mv_per).reshape(batch),
        "restarts_per_problem": torch.tensor(restarts_per).reshape(batch),
        "breakdowns": torch.tensor(breakdowns).reshape(batch),
        "fallback_restarts": torch.tensor(fallbacks).reshape(batch),
        "true_residual_retries": torch.tensor(retries).reshape(batch),
        "failed": torch.tensor(failed).reshape(batch),
    }
    out: dict[str, EigResult] = {}
    for t_i, t in enumerate(target_list):
        est = torch.stack(
            [
                (
                    ritz[b].estimates[ritz[b].orders[t_i][:nev]].to(dtype)  # type: ignore[union-attr]
                    if not failed[b]
                    else torch.full((nev,), math.inf, dtype=dtype)
                )
                for b in range(B)
            ]
        )
        res = residuals[t_i]
        out[t.name] = EigResult(
            values=values[t_i].reshape(*batch, nev),
            vectors=vectors[t_i].reshape(*batch, nev, n),
            residuals=res.reshape(*batch, nev),
            converged=(res <= tol * norm_t.reshape(B, 1)).reshape(*batch, nev),
            norm_estimate=norm_t,
            matvecs=counter.count,
            iterations=restarts,
            tol=tol,
            info={**info_common, "residual_estimates": est.to(device).reshape(*batch, nev)},
        )
    return out


def _estimates_converged(r: _Ritz | None, nev: int, tol: float, norm: float) -> bool:
    if r is None:
        return False
    return all(bool((r.estimates[o[:nev]] <= tol * norm).all()) for o in r.orders)


def _extract(
    ritz: list[_Ritz | None],
    V: torch.Tensor,
    targets: list[Target],
    nev: int,
    m: int,
    n: int,
    B: int,
    apply: Callable[[torch.Tensor], torch.Tensor],
    failed: list[bool],
    norm_est: list[float],
    tol: float,
    mv_per: list[int],
    dtype: torch.dtype,
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], list[bool]]:
    """Ritz pairs wanted by each target, with TRUE residuals from explicit, batched matvecs.

    A real operator cannot be applied to a complex vector (an autograd jvp, say, is real), so
    ``A x = A Re x + i A Im x``: two matvecs per complex vector, one per real one, and the conjugate
    of a pair reuses them. Vectors needed by several targets are applied once.
    """
    device = V.device
    cdtype = dtype.to_complex()
    # Per problem: the distinct representative Ritz indices (positive imag of a pair) to apply A to.
    reps: list[list[int]] = []
    for b in range(B):
        r = ritz[b]
        if r is None or failed[b]:
            reps.append([])
            continue
        lst: list[int] = []
        for order in r.orders:
            for i in order[:nev].tolist():
                rep = i if (r.partners[i] == i or float(r.theta[i].imag) > 0.0) else r.partners[i]
                if rep not in lst:
                    lst.append(rep)
        reps.append(lst)
    n_slots = max((len(x) for x in reps), default=0)
    # vec[b][rep] = unit complex Ritz vector; res[b][rep] = true residual norm
    vec: list[dict[int, torch.Tensor]] = [{} for _ in range(B)]
    res: list[dict[int, float]] = [{} for _ in range(B)]
    for s in range(n_slots):
        Xc = torch.zeros(B, n, dtype=cdtype, device=device)
        has = [False] * B
        is_complex = [False] * B
        for b in range(B):
            if s < len(reps[b]):
                r = ritz[b]
                assert r is not None
                i = reps[b][s]
                y = r.Y[:, i].to(device=device, dtype=cdtype)
                xb = y @ V[b, :m].to(cdtype)
                xb = xb / torch.linalg.vector_norm(xb)
                Xc[b] = xb
                has[b] = True
                is_complex[b] = float(r.theta[i].imag) != 0.0
        # Idle problems get a finite unit dummy (their first basis vector), never zeros.
        dummy = V[:, 0]
        has_t = torch.tensor(has, device=device)[:, None]
        xr = torch.where(has_t, Xc.real, dummy)
        AXr = apply(xr)
        AX = AXr.to(cdtype)
        for b in range(B):
            if has[b]:
                mv_per[b] += 1
        if any(is_complex):
            cpx_t = torch.tensor(is_complex, device=device)[:, None]
            xi = torch.where(cpx_t, Xc.imag, dummy)
            AXi = apply(xi)
            AX = torch.complex(AXr, torch.where(cpx_t, AXi, torch.zeros_like(AXi)))
            for b in range(B):
                if is_complex[b]:
                    mv_per[b] += 1
        for b in range(B):
            if not has[b]:
                continue
            r = ritz[b]
            assert r is not None
            i = reps[b][s]
            theta = r.theta[i].to(cdtype).to(device)
            resid = float(torch.linalg.vector_norm(AX[b] - theta * Xc[b]))
            # Fix the free phase: the largest entry real positive (deterministic, comparable output).
            k = int(torch.argmax(Xc[b].abs()))
            phase = Xc[b][k] / Xc[b][k].abs()
            vec[b][i] = Xc[b] * phase.conj()
            res[b][i] = resid
            # The true residual also refines the lower bound on ||A||: ||A x|| <= ||A|| for unit x.
            norm_est[b] = max(norm_est[b], float(torch.linalg.vector_norm(AX[b])))

    values, vectors, residuals = [], [], []
    for t_i in range(len(targets)):
        vals = torch.full((B, nev), complex("nan"), dtype=cdtype, device=device)
        vecs = torch.full((B, nev, n), complex("nan"), dtype=cdtype, device=device)
        rs = torch.full((B, nev), math.inf, dtype=dtype, device=device)
        for b in range(B):
            r = ritz[b]
            if r is None or failed[b]:
                continue
            for k, i in enumerate(r.orders[t_i][:nev].tolist()):
                vals[b, k] = r.theta[i].to(cdtype)
                rep_is_self = r.partners[i] == i or float(r.theta[i].imag) > 0.0
                rep = i if rep_is_self else r.partners[i]
                vecs[b, k] = vec[b][rep] if rep_is_self else vec[b][rep].conj()
                rs[b, k] = res[b][rep]
        values.append(vals)
        vectors.append(vecs)
        residuals.append(rs)
    converged_any = []
    for b in range(B):
        ok = not failed[b] and all(bool((r_t[b] <= tol * norm_est[b]).all()) for r_t in residuals)
        converged_any.append(ok)
    return values, vectors, residuals, converged_any
