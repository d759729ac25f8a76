"""The Python API: probe your own callable or ``nn.Module`` at its fixed point, from Python.

``probe(f, z_star)`` runs exactly what ``spectral-probe scan`` runs (the same solvers, cross-checks and
verdicts, docs/SPEC.md section 1-2) on ``nc_force = f``, so ``F(z) = f(z) - (1 + c) z`` and ``M = I + eps J_F``.
``f`` acts on the model's natural state: one tensor of any shape (``[C, H, W]``), or a tuple of
tensors (an LSTM's ``(h, c)``); extra inputs (a DEQ's ``x``) are bound by the caller
(``lambda z: layer(z, x)``). It prints nothing and warns nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from spectral_probe.batching import torch_quiet
from spectral_probe.config import ProbeOptions
from spectral_probe.fixed_point import solve_fixed_point, solve_tol
from spectral_probe.gate import evaluate
from spectral_probe.probe import probe_fixed_points
from spectral_probe.results import Report
from spectral_probe.scan import reproducibility
from spectral_probe.user_model import StateLayout, checked_state, flat_force

__all__ = ["find_fixed_point", "prepare_state", "probe"]

State = Tensor | tuple[Tensor, ...] | list[Tensor]


def probe(
    f: Callable[..., Any],
    z_star: State,
    *,
    c: float = 0.0,
    eps: float = 1.0,
    batched: bool = False,
    label: str = "<python>",
    **options: Any,
) -> Report:
    """omega, alpha, rho, the cross-checks and the verdict of ``f`` at ``z_star``, as ``scan`` reports them.

    ``z_star`` is one state (``batched=False``: any shape, or a tuple of tensors) or, with
    ``batched=True``, a batch of states along the first dimension (each probed and reported).
    ``options`` are the options of ``scan`` by their Python names (``tol``, ``method``, ``matvec``,
    ``max_rho`` ...; see :class:`~spectral_probe.config.ProbeOptions`). The probe runs in the dtype of
    ``z_star`` (float32 or float64; ``dtype=`` overrides) on its device; an ``nn.Module`` is evaluated
    with its parameters cast to that dtype, and is not modified.

    Returns a :class:`~spectral_probe.results.Report`: ``report.results[i]`` has the JSON fields as
    attributes (``.rho``, ``.verdict``, ``.converged`` ...), ``report.to_dict()`` / ``report.to_json()``
    give the JSON document of ``scan --json``, ``report.gate`` the gate of ``max_rho`` and friends.
    """
    nc_force, fixed_points, settings = prepare_state(f, z_star, batched=batched, options=options)
    with torch.no_grad(), torch_quiet():  # parameters that require grad: torch.func ignores it, float() would warn
        results, _ = probe_fixed_points(
            nc_force, fixed_points, c=float(c), eps=float(eps), options=settings, label=label
        )
    gate = evaluate(results, (), settings.gates)
    return Report(results=tuple(results), errors=(), gate=gate, reproducibility=reproducibility(settings))


def find_fixed_point(
    f: Callable[..., Any],
    start: State,
    *,
    c: float = 0.0,
    eps: float = 1.0,
    tol: float | None = None,
) -> State:
    """``z*`` with ``f(z*) = (1 + c) z*`` from ``start`` (zeros of the state's shape, say), in its shape.

    Anderson-accelerated relaxation, then Newton-Krylov (:mod:`spectral_probe.fixed_point`); raises
    :class:`~spectral_probe.fixed_point.FixedPointNotFound` when the residual stays above ``tol``
    (default ``min(fixed_point_tol, 10 eps(dtype)^(2/3))``, ``fixed_point_tol = 1e-6`` the probe's own
    fixed-point check, as for a checkpoint without ``z_star``: in float32 ``10 eps^(2/3)`` is 2.4e-4, and
    :func:`probe` would refuse the point found).
    """
    nc_force, flat, settings = prepare_state(f, start, batched=False, options={})
    layout = StateLayout.of(checked_state(start))
    dtype = getattr(torch, settings.dtype)
    with torch.no_grad(), torch_quiet():
        solve = solve_fixed_point(
            nc_force,
            flat,
            c=float(c),
            eps=float(eps),
            tol=tol if tol is not None else solve_tol(settings, dtype),
        )
    return layout.unflatten(solve.z[0])


def prepare_state(
    f: Callable[..., Any], z_star: State, *, batched: bool, options: dict[str, Any]
) -> tuple[Callable[[Tensor], Tensor], Tensor, ProbeOptions]:
    """The flat ``nc_force``, the fixed points ``[B, n]`` and the options, as the probe takes them."""
    state = checked_state(z_star, batched=batched)
    first = state if isinstance(state, Tensor) else state[0]
    dtype_name = options.pop("dtype", None) or (str(first.dtype).removeprefix("torch."))
    if dtype_name not in ("float32", "float64"):
        dtype_name = "float64"
    device = options.pop("device", None) or str(first.device)
    settings = ProbeOptions(dtype=dtype_name, device=device, **options)
    dtype = getattr(torch, dtype_name)
    if batched:
        example = state[0] if isinstance(state, Tensor) else tuple(t[0] for t in state)
        layout = StateLayout.of(example)
        flat = layout.flatten_batch(state)
    else:
        layout = StateLayout.of(state)
        flat = layout.flatten(state).unsqueeze(0)
    fixed_points = flat.detach().to(device=device, dtype=dtype)
    return flat_force(f, layout, dtype=dtype, device=device), fixed_points, settings
