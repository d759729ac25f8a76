"""Transient growth: how much a (stable) fixed point amplifies a perturbation before it decays.

Symbols of docs/SPEC.md section 1: ``M = I + eps J_F`` (the Euler step), ``J_F`` the Jacobian of the flow.

* ``||M||_2 = sqrt(lambda_max(M^T M))``: Lanczos on ``v -> M^T (M v)`` (one jvp and one vjp a product),
  :func:`operator_norm` (also ``||J_F||_2``, which sets the Taylor substeps below).
* ``G_d = max_{1 <= k <= K} ||M^k||_2`` over a horizon of ``K`` steps, :func:`max_power_norm`, and
  ``G_c = sup_{0 < t <= T} ||exp(t J_F)||_2``, :func:`max_flow_norm`.

Both maxima are found by power iteration on ``A_k^T A_k`` (``A_k = M^k`` or ``exp(t_k J_F)``), with
the exponent chosen afresh at every sweep: a forward sweep ``y_j = A_1^j x`` records the ``k`` where
``||y_k|| / ||x||`` is largest, a backward sweep applies ``A_k^T`` to ``y_k`` and gives the next ``x``.
For a fixed ``k`` a power step never decreases ``||A_k x|| / ||x||`` (``A_k^T A_k`` is positive
semi-definite), and re-choosing ``k`` can only raise it, so the values increase monotonically. The
value reported is ``||A_k x|| / ||x||`` of an explicit vector ``x``: a LOWER bound on ``max_k ||A_k||_2``
(up to the rounding of the matvecs; for the flow also the Taylor truncation, below ``tol``), never an
estimate that could overshoot. It can stop below the truth if power iteration converges slowly (a
small gap between the two largest singular values of ``A_k``) or if ``x`` found a local maximum in
``k``; several random starts run together to make that less likely.

``exp(h J_F) v`` is a Taylor polynomial with ``h ||J_F||_2 <= 2`` per substep, summed until a term
falls below ``tol`` of the sum, so it needs matvecs only.

The horizon ``K`` (``--transient-horizon``, default 100) bounds what is searched: a maximum at the last
step (``at_horizon``) says that the growth has not peaked within it. For the flow ``T = K eps`` (the
time the Euler iteration covers in ``K`` steps), shortened to ``T ||J_F||_2 <= FLOW_BUDGET`` (its cost
is proportional to ``T ||J_F||_2``), on a grid of ``K`` points ``t_j = j T / K``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.norms import operator_norm  # noqa: F401  (re-exported)
from spectral_probe.linalg.symmetric import lanczos
from spectral_probe.linalg.vectors import unit_rows as _unit

Step = Callable[[Tensor], Tensor]

#: Largest ``h ||J_F||_2`` of one Taylor substep of ``exp(h J_F)`` (terms then shrink from the third on).
TAYLOR_RADIUS = 2.0
#: Largest ``T ||J_F||_2`` of the flow horizon (100 Taylor substeps of ``h ||J_F||_2 = 2`` a sweep).
FLOW_BUDGET = 200.0
#: Terms allowed to one Taylor polynomial (``2^60 / 60!`` is far below any tolerance).
TAYLOR_MAX_TERMS = 60


@dataclass(frozen=True)
class Sweeps:
    """When the power iteration on ``A_k^T A_k`` stops: after ``most`` sweeps, or once every fixed
    point's value changed by at most ``rtol`` (relative) in one sweep."""

    most: int
    rtol: float


#: The stopping rules of :func:`max_power_norm` (Lanczos polishes after it) and :func:`max_flow_norm`.
POWER_SWEEPS = Sweeps(most=10, rtol=1e-3)
FLOW_SWEEPS = Sweeps(most=8, rtol=1e-4)


@dataclass(frozen=True)
class GrowthBound:
    """A lower bound ``||A_k x|| / ||x||`` on ``max_k ||A_k||_2`` per fixed point (lists of length B).

    value:      the bound, per fixed point.
    at:         where it is attained: the power ``k`` (an int) or the time ``t``.
    at_horizon: the maximum sits at the last grid point: the growth may continue beyond the horizon.
    history:    the bound after each sweep (monotone non-decreasing), per fixed point.
    matvecs:    products with ``A_1`` and with ``A_1^T``, per fixed point (``kind -> count``).
    vector:     the maximizing unit start ``x`` ``[B, n]`` (the most amplified initial perturbation).
    """

    value: list[float]
    at: list[float]
    at_horizon: list[bool]
    history: list[list[float]]
    matvecs: dict[str, int]
    vector: Tensor


def max_power_norm(
    ops: JacobianOperators,
    x0: Tensor,
    *,
    horizon: int,
    tol: float,
    sweeps: Sweeps = POWER_SWEEPS,
    krylov_dim: int = 20,
) -> GrowthBound:
    """Lower bound on ``max_{1<=k<=horizon} ||M^k||_2`` from the starts ``x0`` ``[B, p, n]``.

    The sweeps locate the maximizing ``k`` (to ``sweeps.rtol``); then Lanczos on ``(M^k)^T M^k`` from the best
    vector polishes the bound at that ``k`` (power iteration alone crawls when the two largest
    singular values of ``M^k`` are close), and the larger of the two is reported.
    """
    bound = _power_iteration(ops.m, ops.m_t, x0, horizon, sweeps)
    counts = {"jvp": bound.matvecs["forward"], "vjp": bound.matvecs["backward"]}
    powers = torch.tensor([int(k) for k in bound.at], device=x0.device)
    top = int(powers.max())

    def gram(v: Tensor) -> Tensor:
        vectors = _vectors_per_problem(v)
        counts["jvp"] += top * vectors
        counts["vjp"] += top * vectors
        shape = (-1,) + (1,) * (v.ndim - 1)
        return _masked_power(ops.m_t, _masked_power(ops.m, v, powers.view(shape), top), powers.view(shape), top)

    polished = lanczos(gram, bound.vector, which="LA", tol=tol, krylov_dim=min(krylov_dim, ops.n), max_restarts=20)
    vector = polished.vectors[:, 0]
    # The bound is ||M^k x|| of an explicit unit vector, not the Ritz value: no estimate can overshoot.
    explicit = torch.linalg.vector_norm(_masked_power(ops.m, vector, powers.view(-1, 1), top), dim=-1)
    counts["jvp"] += top
    value = [max(a, b) for a, b in zip(bound.value, explicit.tolist(), strict=True)]
    better = torch.tensor([b > a for a, b in zip(bound.value, explicit.tolist(), strict=True)], device=x0.device)
    return GrowthBound(
        value=value,
        at=[float(k) for k in bound.at],
        at_horizon=bound.at_horizon,
        history=[h + [v] for h, v in zip(bound.history, value, strict=True)],
        matvecs=counts,
        vector=torch.where(better[:, None], vector, bound.vector),
    )


def _masked_power(step: Step, v: Tensor, powers: Tensor, top: int) -> Tensor:
    """``A^{k_b} v_b`` for every fixed point b in ``top`` shared steps (row b stops changing at ``k_b``)."""
    for j in range(1, top + 1):
        v = torch.where(powers >= j, step(v), v)
    return v


def max_flow_norm(
    ops: JacobianOperators,
    x0: Tensor,
    *,
    t_max: float,
    steps: int,
    norm_jf: float,
    tol: float,
    sweeps: Sweeps = FLOW_SWEEPS,
) -> GrowthBound:
    """Lower bound on ``sup_{0<t<=t_max} ||exp(t J_F)||_2`` over ``t_j = j t_max / steps``.

    ``norm_jf`` is an upper estimate of ``||J_F||_2`` (it sets the Taylor substeps); ``tol`` the
    truncation of each Taylor polynomial, relative to its sum.
    """
    if not (t_max > 0 and math.isfinite(t_max) and steps >= 1):
        raise ValueError(f"max_flow_norm needs t_max > 0 and steps >= 1, got {t_max}, {steps}")
    dt = t_max / steps
    substeps = max(1, math.ceil(dt * max(norm_jf, 0.0) / TAYLOR_RADIUS))
    counts = {"jvp": 0, "vjp": 0}

    def flow(v: Tensor) -> Tensor:
        out, used = _taylor_exp(ops.jf, v, dt / substeps, substeps, tol)
        counts["jvp"] += used * _vectors_per_problem(v)
        return out

    def flow_t(v: Tensor) -> Tensor:
        out, used = _taylor_exp(ops.jf_t, v, dt / substeps, substeps, tol)
        counts["vjp"] += used * _vectors_per_problem(v)
        return out

    bound = _power_iteration(flow, flow_t, x0, steps, sweeps)
    return GrowthBound(
        value=bound.value,
        at=[j * dt for j in bound.at],
        at_horizon=bound.at_horizon,
        history=bound.history,
        matvecs=counts,
        vector=bound.vector,
    )


def _taylor_exp(matvec: Step, v: Tensor, h: float, substeps: int, tol: float) -> tuple[Tensor, int]:
    """``exp(h A)^substeps v`` by Taylor polynomials; returns it and the matvecs per block vector."""
    used = 0
    for _ in range(substeps):
        term = v
        total = v
        for i in range(1, TAYLOR_MAX_TERMS + 1):
            term = matvec(term) * (h / i)
            used += 1
            total = total + term
            small = torch.linalg.vector_norm(term, dim=-1) <= tol * torch.linalg.vector_norm(total, dim=-1)
            if bool(small.all()):
                break
        v = total
    return v, used


def _vectors_per_problem(v: Tensor) -> int:
    return v.numel() // max(1, v.shape[0] * v.shape[-1])


def _power_iteration(step: Step, step_t: Step, x0: Tensor, steps: int, sweeps: Sweeps) -> GrowthBound:
    """The sweeps of the module docstring; ``x0`` is ``[B, p, n]`` (``p`` independent starts)."""
    if steps < 1:
        raise ValueError(f"the horizon must be at least 1 step, got {steps}")
    x = _unit(x0)
    batch, starts = x.shape[0], x.shape[1]
    counts = {"forward": 0, "backward": 0}
    history: list[list[float]] = [[] for _ in range(batch)]
    best_value = torch.full((batch,), -math.inf, dtype=torch.float64)
    best_at = torch.zeros(batch, dtype=torch.long)
    best_x = x[:, 0]
    for sweep in range(sweeps.most):
        log_peak, peak_at, peak_y = _forward(step, x, steps)
        counts["forward"] += steps * starts
        value, which = log_peak.to(torch.float64).exp().cpu().max(dim=1)
        improved = value > best_value
        rows = torch.arange(batch)
        best_value = torch.where(improved, value, best_value)
        best_at = torch.where(improved, peak_at.cpu()[rows, which], best_at)
        best_x = torch.where(improved.to(x.device)[:, None], x[rows.to(x.device), which.to(x.device)], best_x)
        for b in range(batch):
            history[b].append(float(best_value[b]))
        settled = sweep > 0 and all(abs(h[-1] - h[-2]) <= sweeps.rtol * abs(h[-1]) for h in history)
        if settled or sweep == sweeps.most - 1:
            break
        x, used = _backward(step_t, peak_at, peak_y)
        counts["backward"] += used * starts
    return GrowthBound(
        value=best_value.tolist(),
        at=[float(k) for k in best_at.tolist()],
        at_horizon=[int(k) == steps for k in best_at.tolist()],
        history=history,
        matvecs=counts,
        vector=best_x,
    )


def _forward(step: Step, x: Tensor, steps: int) -> tuple[Tensor, Tensor, Tensor]:
    """``log max_j ||A_1^j x||``, its ``j`` and the unit ``A_1^j x`` there, per start ``[B, p]``.

    The iterate is renormalized every step (its log-norm accumulated), so no ``rho^K`` overflows.
    """
    y = x
    log_norm = torch.zeros(x.shape[:-1], dtype=x.dtype, device=x.device)
    log_peak = torch.full_like(log_norm, -math.inf)
    peak_at = torch.zeros(x.shape[:-1], dtype=torch.long, device=x.device)
    peak_y = torch.zeros_like(x)
    for j in range(1, steps + 1):
        y = step(y)
        norm = torch.linalg.vector_norm(y, dim=-1)
        log_norm = log_norm + torch.log(norm.clamp_min(torch.finfo(x.dtype).tiny))
        y = y / norm.clamp_min(torch.finfo(x.dtype).tiny).unsqueeze(-1)
        better = log_norm > log_peak
        log_peak = torch.where(better, log_norm, log_peak)
        peak_at = torch.where(better, j, peak_at)
        peak_y = torch.where(better.unsqueeze(-1), y, peak_y)
    return log_peak, peak_at, peak_y


def _backward(step_t: Step, peak_at: Tensor, peak_y: Tensor) -> tuple[Tensor, int]:
    """``(A_1^T)^k y_k`` per start, each with its own ``k``, in one shared sweep of ``max k`` steps.

    A start joins the sweep at its own ``k`` (it is zero until then), so every start gets exactly ``k``
    products with ``A_1^T``.
    """
    top = int(peak_at.max())
    u = torch.zeros_like(peak_y)
    for j in range(top, 0, -1):
        u = u + (peak_at == j).unsqueeze(-1).to(peak_y.dtype) * peak_y
        u = _unit(step_t(u))
    return _unit(u), top


def is_transient(rho: float | None, max_power: float | None, dtype: torch.dtype) -> bool | None:
    """``rho < 1 < max_k ||M^k||_2``: stable, yet some perturbation grows first (``None``: unknown).

    The power bound is a lower bound, so ``True`` is certain (up to rounding); ``False`` only says no
    amplification was found within the horizon.
    """
    if rho is None or max_power is None or not (math.isfinite(rho) and math.isfinite(max_power)):
        return None
    return rho < 1 and max_power > 1 + 100 * float(torch.finfo(dtype).eps)
