"""rho (or alpha) as a differentiable tensor whose gradient is the EXACT derivative of the eigenvalue.

For a simple eigenvalue ``mu`` of ``J_F`` with right and left eigenvectors ``J_F x = mu x`` and
``J_F^T w = mu w`` (unconjugated), first-order perturbation theory gives

    d mu = w^T (dJ_F) x / (w^T x),      d lead = eps d mu  (lead = 1 + eps mu, an eigenvalue of M),
    d rho = Re(conj(lead) d lead) / rho,      d alpha = Re(d mu).

``x`` comes from Krylov-Schur Arnoldi on ``J_F`` (jvp) and ``w`` from the same machinery on ``J_F^T``
(vjp), both matrix-free. ``w^T (dJ_F) x`` is the differential of the bilinear form
``s(theta, z) = w^T J_nc(z; theta) x`` with ``x, w`` held fixed, computed by double backward through the
user's own ``f``: so the gradient reaches EVERY tensor ``f`` uses (module parameters, closures, ``z*``
itself when it requires grad) without listing them.

``implicit=True`` adds the motion of ``z*`` with the parameters: ``F(z*(theta); theta) = 0`` gives
``dz* = -J_F^{-1} dF``, so the total derivative gains ``-(J_F^{-T} g)^T dF`` with ``g = d rho / d z``;
``J_F^T a = g`` is one adjoint GMRES solve (vjp matvecs). ``z*`` is then treated as a function of the
parameters (its own graph, if any, is not used).

A non-simple leading eigenvalue has no derivative. It is detected three ways: (1) another eigenvalue
(not the conjugate of the leading one) of the same modulus (rho) or real part (alpha), within
``10 sqrt(tol) max(1, ||J_F||)``; (2) right eigenvectors from two independent random starts that are not
parallel (a repeated semisimple eigenvalue: each start converges to another vector of its eigenspace);
(3) a condition number ``||w|| ||x|| / |w^T x|`` above ``1 / sqrt(tol)`` (defective: ``w^T x -> 0``).
Then :func:`leading_eigenvalue` raises :class:`NonSimpleEigenvalue` (or, with ``on_nonsimple="nan"``,
returns NaN with a NaN gradient); never a silent number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from spectral_probe.batching import torch_quiet
from spectral_probe.errors import SpectralProbeError
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.linear import gmres
from spectral_probe.linalg.result import default_tol
from spectral_probe.user_model import StateLayout, checked_state

__all__ = ["LeadingEigenpair", "NonSimpleEigenvalue", "leading_eigenpair", "leading_eigenvalue"]

QUANTITIES = ("rho", "alpha")
#: Ritz values compared with the leading one for the simplicity test.
NEV = 4


class NonSimpleEigenvalue(SpectralProbeError):
    """The leading eigenvalue is repeated, defective, or tied in modulus: it has no derivative."""


@dataclass(frozen=True)
class LeadingEigenpair:
    """The leading eigenvalue with its eigenvectors and the evidence that it is simple.

    value: ``rho`` or ``alpha`` (0-dim tensor carrying the exact gradient, NaN when not ``simple``);
    mu: the eigenvalue of ``J_F`` behind it; right/left: unit ``x`` and ``w`` ``[n]``;
    condition: ``||w|| ||x|| / |w^T x|``; gap: distance to the next competing eigenvalue;
    residuals: true residuals of ``x`` and ``w``; matvecs: operator applications (all solves).
    """

    value: Tensor
    quantity: str
    mu: complex
    simple: bool
    reason: str | None
    condition: float
    gap: float
    right: Tensor
    left: Tensor
    residuals: tuple[float, float]
    converged: bool
    matvecs: int


class _ExactEigenvalue(torch.autograd.Function):
    """Forward: the Krylov eigenvalue. Backward: the gradient of the first-order surrogate ``s``
    (whose differential is ``d rho``), or NaN where the eigenvalue is not simple."""

    @staticmethod
    def forward(ctx: Any, value: Tensor, surrogate: Tensor, simple: bool) -> Tensor:  # type: ignore[override]
        ctx.simple = simple
        return value.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[None, Tensor, None]:  # type: ignore[override]
        return None, grad if ctx.simple else torch.full_like(grad, math.nan), None


def leading_eigenvalue(
    f: Callable[..., Any], z_star: Tensor | tuple[Tensor, ...], *, on_nonsimple: str = "raise", **options: Any
) -> Tensor:
    """``rho = max |lambda(M)|`` (or ``alpha = max Re lambda(J_F)``) of ``f`` at ``z_star``, 0-dim, with the
    exact derivative as its gradient (see the module docstring).

    ``f`` is a callable or ``nn.Module`` on ONE state of any shape (or a tuple of tensors); ``z_star`` is
    that state. The eigen-solves run in ``z_star``'s dtype. ``on_nonsimple``: ``"raise"``
    (:class:`NonSimpleEigenvalue`) or ``"nan"``. ``options``: the keywords of :func:`leading_eigenpair`,
    declared (with their defaults) there only: ``c=0.0``, ``eps=1.0``, ``quantity="rho"``,
    ``implicit=False`` and the solver's ``tol``, ``krylov_dim``, ``max_restarts``, ``seed``.
    """
    pair = leading_eigenpair(f, z_star, **options)
    if not pair.simple and on_nonsimple == "raise":
        raise NonSimpleEigenvalue(f"the leading eigenvalue has no derivative: {pair.reason}")
    if on_nonsimple not in ("raise", "nan"):
        raise ValueError(f"on_nonsimple must be 'raise' or 'nan', not {on_nonsimple!r}")
    return pair.value


def leading_eigenpair(
    f: Callable[..., Any],
    z_star: Tensor | tuple[Tensor, ...],
    *,
    c: float = 0.0,
    eps: float = 1.0,
    quantity: str = "rho",
    implicit: bool = False,
    tol: float | None = None,
    krylov_dim: int = DEFAULTS.krylov_dim,
    max_restarts: int = DEFAULTS.max_restarts,
    seed: int = 0,
) -> LeadingEigenpair:
    """:func:`leading_eigenvalue` with its evidence; never raises on a non-simple eigenvalue."""
    if quantity not in QUANTITIES:
        raise ValueError(f"quantity must be one of {QUANTITIES}, not {quantity!r}")
    z_star = checked_state(z_star)
    layout = StateLayout.of(z_star)
    z_flat = layout.flatten(z_star)
    dtype, device = z_flat.dtype, z_flat.device
    tol = tol if tol is not None else default_tol(dtype)

    def nc_force(z: Tensor) -> Tensor:
        out = f(layout.unflatten_copy(z))
        return layout.flatten(tuple(out) if isinstance(out, list) else out)

    with torch_quiet():
        with torch.no_grad():
            ops = JacobianOperators(nc_force, z_flat.detach().unsqueeze(0), c=c, eps=eps)
            spectral = _solve(ops, quantity, eps, tol, krylov_dim, max_restarts, seed)
        surrogate = _surrogate(nc_force, z_flat, ops, spectral, quantity, eps, implicit, tol, krylov_dim)
    mu = spectral.mu
    number = abs(1 + eps * mu) if quantity == "rho" else mu.real
    if not spectral.simple:
        number = math.nan
    value = _ExactEigenvalue.apply(torch.tensor(number, dtype=dtype, device=device), surrogate, spectral.simple)
    matvecs = spectral.matvecs + surrogate_matvecs(implicit, spectral)
    return LeadingEigenpair(value=value, quantity=quantity, mu=mu, matvecs=matvecs, **spectral.evidence())


def surrogate_matvecs(implicit: bool, spectral: _Spectral) -> int:
    """Matvecs the surrogate's gradient costs: the adjoint solve's, when the gradient is implicit."""
    return spectral.adjoint_matvecs if implicit else 0


@dataclass
class _Spectral:
    mu: complex
    x: Tensor  # [n] complex (or real) right eigenvector of J_F
    w: Tensor  # [n] left eigenvector: J_F^T w = mu w
    simple: bool
    reason: str | None
    condition: float
    gap: float
    residuals: tuple[float, float]
    converged: bool
    matvecs: int
    adjoint_matvecs: int = 0

    def evidence(self) -> dict[str, Any]:
        """The fields of :class:`LeadingEigenpair` read off the solve as they are: the eigenvectors and
        the evidence that the eigenvalue is simple."""
        return {
            "simple": self.simple,
            "reason": self.reason,
            "condition": self.condition,
            "gap": self.gap,
            "right": self.x,
            "left": self.w,
            "residuals": self.residuals,
            "converged": self.converged,
        }


def _solve(
    ops: JacobianOperators, quantity: str, eps: float, tol: float, krylov_dim: int, max_restarts: int, seed: int
) -> _Spectral:
    """Right eigenvectors from two random starts, the left one from a third; the simplicity evidence."""
    target = largest_modulus(1.0, eps) if quantity == "rho" else rightmost()
    generator = torch.Generator(device=ops.device).manual_seed(seed)

    def start() -> Tensor:
        return torch.randn(1, ops.n, generator=generator, dtype=ops.dtype, device=ops.device)

    options = {"targets": (target,), "nev": min(NEV, ops.n), "krylov_dim": krylov_dim, "tol": tol}
    matvecs = (ops.krylov("jf"), ops.krylov("jf"), ops.krylov("jf_t"))  # right from two starts, then left
    runs = [krylov_schur(matvec, start(), max_restarts=max_restarts, **options) for matvec in matvecs]
    right, second, left = (run[target.name] for run in runs)
    values = right.values[0].to(torch.complex128)
    mu = complex(values[0])
    x, x2 = right.vectors[0, 0], second.vectors[0, 0]
    # The left run lists mu among its values (the same spectrum); take the vector of the closest one.
    left_values = left.values[0].to(torch.complex128)
    k = int(torch.argmin((left_values - mu).abs()))
    w = left.vectors[0, k]
    scale = max(1.0, float(right.norm_estimate[0]))
    score = (lambda v: abs(1 + eps * v)) if quantity == "rho" else (lambda v: v.real)
    close = 10 * math.sqrt(tol) * scale
    # Only a genuinely complex mu has a distinct conjugate to set aside: next to a real mu, a Ritz value
    # within ``close`` of conj(mu) = mu is a second (near-)copy of mu, the tie test (1) is for.
    paired = abs(mu.imag) > close
    competitors = [complex(v) for v in values[1:] if not (paired and abs(complex(v) - mu.conjugate()) <= close)]
    gap = min((abs(score(mu) - score(v)) for v in competitors), default=math.inf)
    bilinear = complex((w * x).sum())
    condition = float(torch.linalg.vector_norm(w) * torch.linalg.vector_norm(x)) / max(abs(bilinear), 1e-300)
    parallel = float((x.conj() * x2).sum().abs() / (torch.linalg.vector_norm(x) * torch.linalg.vector_norm(x2)))
    converged = bool(right.converged[0, 0]) and bool(second.converged[0, 0]) and bool(left.converged[0, k])
    reason = None
    if not converged:
        reason = "the Krylov solves for the right and left eigenvectors did not converge"
    elif abs(complex(left_values[k]) - mu) > close:
        reason = f"the left eigenvalue {complex(left_values[k]):.6g} does not match the right one {mu:.6g}"
    elif gap <= close:
        reason = f"another eigenvalue ties the leading one {mu:.6g} (gap {gap:.1e}): repeated or equal modulus"
    elif 1 - parallel > math.sqrt(tol):
        reason = f"right eigenvectors from two starts differ (|cos| = {parallel:.6f}): a repeated eigenvalue"
    elif condition > 1 / math.sqrt(tol):
        reason = f"eigenvalue condition number {condition:.1e} > 1/sqrt(tol): defective or nearly so"
    return _Spectral(
        mu=mu,
        x=x,
        w=w,
        simple=reason is None,
        reason=reason,
        condition=condition,
        gap=gap,
        residuals=(float(right.residuals[0, 0]), float(left.residuals[0, k])),
        converged=converged,
        matvecs=sum(next(iter(run.values())).matvecs for run in runs),
    )


def _surrogate(
    nc_force: Callable[[Tensor], Tensor],
    z_flat: Tensor,
    ops: JacobianOperators,
    spectral: _Spectral,
    quantity: str,
    eps: float,
    implicit: bool,
    tol: float,
    krylov_dim: int,
) -> Tensor:
    """``s = Re(coef w^T J_nc(z; theta) x)`` by double backward; its differential is ``d rho`` (or alpha)."""
    x, w, mu = spectral.x, spectral.w, spectral.mu
    xr, xi = x.real.detach(), (x.imag if x.is_complex() else torch.zeros_like(x)).detach()
    wr, wi = w.real.detach(), (w.imag if w.is_complex() else torch.zeros_like(w)).detach()
    z = z_flat.detach().requires_grad_(True) if implicit or not z_flat.requires_grad else z_flat
    with torch.enable_grad():
        force = nc_force(z)
        jt_wr, jt_wi = (
            torch.autograd.grad(force, z, grad_outputs=cotangent, create_graph=True, retain_graph=True)[0]
            for cotangent in (wr, wi)
        )
        # w^T J x with w = wr + i wi, x = xr + i xi.
        real = (jt_wr * xr).sum() - (jt_wi * xi).sum()
        imag = (jt_wr * xi).sum() + (jt_wi * xr).sum()
        bilinear = complex((w * x).sum())
        if quantity == "rho":
            lead = 1 + eps * mu
            coef = lead.conjugate() / abs(lead) * eps / bilinear
        else:
            coef = 1 / bilinear
        surrogate = coef.real * real - coef.imag * imag  # Re(coef (real + i imag))
        if implicit:
            surrogate = surrogate - _implicit_term(nc_force, z, surrogate, ops, spectral, tol, krylov_dim)
    return surrogate


def _implicit_term(
    nc_force: Callable[[Tensor], Tensor],
    z: Tensor,
    surrogate: Tensor,
    ops: JacobianOperators,
    spectral: _Spectral,
    tol: float,
    krylov_dim: int,
) -> Tensor:
    """``a . nc_force(z; theta)`` with ``J_F^T a = d s / d z`` (adjoint GMRES): its differential in theta
    is ``a^T dF``, the part of ``d rho`` that comes from ``z*`` moving."""
    (g,) = torch.autograd.grad(surrogate, z, retain_graph=True)
    with torch.no_grad():
        solve = gmres(ops.jf_t, g.detach().unsqueeze(0), tol=tol, restart=krylov_dim, max_iters=20 * krylov_dim)
    spectral.adjoint_matvecs = solve.matvecs
    if not solve.all_converged:
        spectral.simple = False
        spectral.reason = "the adjoint solve J_F^T a = d rho / d z* did not converge (J_F singular?)"
    a = solve.x[0].detach()
    return (a * nc_force(z.detach())).sum()
