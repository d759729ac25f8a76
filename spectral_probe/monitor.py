"""A stability monitor for training loops: warm-started, a full probe every K calls, a cheap one between.

Called once per training step with the current model ``f`` and its fixed point ``z*``:

* every ``every``-th call (the first included) runs the full cross-checked probe of
  :func:`spectral_probe.api.probe` (omega, alpha, rho, every check, the verdict), its first Krylov
  solves warm-started from the previous call's vectors (:class:`~spectral_probe.probe.WarmStart`);
* the calls between run one Krylov-Schur Arnoldi run on ``J_F`` (a smaller Krylov space,
  ``cheap_krylov_dim``) started from the previous call's leading vector plus a random part, for rho
  and alpha with their true residuals and ``converged``; no omega (``None``), no second start, no
  Rayleigh-Ritz confirmation, no fd/adjoint checks. The verdict comes from rho alone (``stable`` rather
  than ``contractive``, which needs omega; ``inconclusive`` when the run did not converge, or when
  ``z*`` fails the full probe's fixed-point check, ``||F(z*)||`` relative above ``fixed_point_tol``).

Each call returns a flat dict for a logger (wandb, tensorboard, print): ``rho``, ``alpha``, ``omega``,
``verdict``, ``converged``, ``matvecs``, ``full`` (which kind of call), ``call``. No printing, no warnings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from spectral_probe.api import prepare_state
from spectral_probe.batching import torch_quiet
from spectral_probe.fixed_point import backward_error
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.result import default_tol
from spectral_probe.linalg.vectors import real_start, unit_rows
from spectral_probe.probe import WarmStart, probe_fixed_points
from spectral_probe.results import FixedPointResult
from spectral_probe.verdict import classify

__all__ = ["StabilityMonitor"]

#: Weight of the random part mixed into the warm block (keeps every eigenvector in reach).
WARM_NOISE = 0.1


class StabilityMonitor:
    """``monitor(f, z_star) -> dict``: rho (every call), alpha and omega (every ``every`` calls).

    ``c``, ``eps``, ``batched`` and ``options`` are those of :func:`spectral_probe.api.probe`;
    ``cheap_krylov_dim`` and ``cheap_restarts`` size the Arnoldi run of a cheap call. ``last_result`` holds the
    last full probe's :class:`~spectral_probe.results.FixedPointResult` (the worst of a batch).
    """

    def __init__(
        self,
        *,
        every: int = 10,
        c: float = 0.0,
        eps: float = 1.0,
        batched: bool = False,
        cheap_krylov_dim: int = 20,
        cheap_restarts: int = 50,
        seed: int = 0,
        **options: Any,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.c = float(c)
        self.eps = float(eps)
        self.batched = batched
        self.cheap_krylov_dim = cheap_krylov_dim
        self.cheap_restarts = cheap_restarts
        # Krylov even at small n: the dense path leaves no vectors to warm-start the next call from.
        self.options = {"seed": seed, "method": "krylov", **options}
        self.calls = 0
        self.last_result: FixedPointResult | None = None
        self._warm: WarmStart | None = None
        self._generator = torch.Generator().manual_seed(seed + 1)

    def __call__(self, f: Callable[..., Any], z_star: Tensor | tuple[Tensor, ...]) -> dict[str, Any]:
        nc_force, fixed_points, settings = prepare_state(f, z_star, batched=self.batched, options=dict(self.options))
        full = self.calls % self.every == 0 or not self._warm_fits(fixed_points)
        with torch.no_grad(), torch_quiet():
            if full:
                record = self._full(nc_force, fixed_points, settings)
            else:
                record = self._cheap(nc_force, fixed_points, settings.fixed_point_tol)
        record.update(full=full, call=self.calls)
        self.calls += 1
        return record

    def _warm_fits(self, fixed_points: Tensor) -> bool:
        warm = self._warm
        return warm is not None and warm.arnoldi is not None and warm.arnoldi.shape == fixed_points.shape

    def _full(self, nc_force: Callable[[Tensor], Tensor], fixed_points: Tensor, settings: Any) -> dict[str, Any]:
        results, warm = probe_fixed_points(
            nc_force, fixed_points, c=self.c, eps=self.eps, options=settings, warm=self._warm, label="<monitor>"
        )
        self._warm = warm if warm.arnoldi is not None else self._warm
        worst = max(results, key=lambda r: -math.inf if r.rho is None else r.rho)
        self.last_result = worst
        return {
            "rho": worst.rho,
            "alpha": worst.alpha,
            "omega": worst.omega,
            "verdict": worst.verdict,
            "converged": all(r.converged for r in results),
            "matvecs": worst.matvecs,
        }

    def _cheap(
        self, nc_force: Callable[[Tensor], Tensor], fixed_points: Tensor, fixed_point_tol: float
    ) -> dict[str, Any]:
        assert self._warm is not None and self._warm.arnoldi is not None
        dtype, device = fixed_points.dtype, fixed_points.device
        ops = JacobianOperators(nc_force, fixed_points, c=self.c, eps=self.eps)
        warm = self._warm.arnoldi.to(device=device, dtype=dtype)
        noise = torch.randn(warm.shape, generator=self._generator, dtype=dtype).to(device)
        start = unit_rows(warm) + WARM_NOISE * noise / torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
        tol = self.options.get("tol") or default_tol(dtype)
        targets = (largest_modulus(1.0, self.eps), rightmost())
        runs = krylov_schur(
            ops.krylov("jf"),
            start,
            targets=targets,
            tol=tol,
            krylov_dim=self.cheap_krylov_dim,
            max_restarts=self.cheap_restarts,
        )
        lead_run, alpha_run = runs[targets[0].name], runs[targets[1].name]
        best = lead_run.vectors[..., 0, :]
        self._warm.arnoldi = real_start(best)
        mus = [complex(v) for v in lead_run.values[..., 0].to(torch.complex128).tolist()]
        alphas = [complex(v).real for v in alpha_run.values[..., 0].to(torch.complex128).tolist()]
        converged = bool(lead_run.converged[..., 0].all()) and bool(alpha_run.converged[..., 0].all())
        worst = max(range(len(mus)), key=lambda b: abs(1 + self.eps * mus[b]))
        lead = 1 + self.eps * mus[worst]
        reasons = [] if converged else ["the cheap Arnoldi run did not converge"]
        residual = float(backward_error(ops.force_at_star, ops.z_star, self.c).max())
        if residual > fixed_point_tol:  # the full probe's check, free here: nc_force(z*) is at hand
            reasons.append(f"z* is not a fixed point: ||F(z*)|| relative {residual:.2e}")
        verdict, _ = classify(
            rho=abs(lead),
            lead_real=lead.real,
            lead_imag=abs(lead.imag),
            mu_lead_real=mus[worst].real,
            omega=None,
            band=self.options.get("band", 1e-6),
            complex_tol=math.sqrt(tol),
            reasons=reasons,
        )
        return {
            "rho": abs(lead),
            "alpha": max(alphas),
            "omega": None,
            "verdict": verdict,
            "converged": converged,
            "matvecs": lead_run.matvecs,
        }
