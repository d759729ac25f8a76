"""rho confirmed by block Rayleigh-Ritz on ``M``: the cheap 2-D block a training-time controller runs,
widened where it cannot confirm the Arnoldi rho."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.subspace import block_rayleigh_ritz
from spectral_probe.probe.checks import FAULTS, judge
from spectral_probe.probe.warm import blend
from spectral_probe.results import Check
from spectral_probe.tolerances import Tolerances

#: Wider blocks tried, in order, when the 2-D Rayleigh-Ritz rho disagrees with Arnoldi.
WIDER_BLOCKS = (4, 8)
#: Sweeps allowed to one block Rayleigh-Ritz run.
RR_MAX_SWEEPS = 300
#: The name of the check record.
RR_CHECK = "agreement:rr_vs_arnoldi"


@dataclass
class RayleighRitzConfirmation:
    """Per fixed point: the RR rho, the block it came from, and whether the 2-D block misled."""

    rho_rr: list[float | None]
    rr_block: list[int | None]
    rr2_misleading: list[bool]
    checks: list[Check]
    next_block: torch.Tensor | None
    matvecs: int


def _warm_block(vectors: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """Re and Im of the leading Ritz vector span a complex pair's invariant plane (the real parts of the
    two conjugate vectors are equal, so they would waste half of the warm block)."""
    vectors = vectors if vectors.is_complex() else vectors.to(torch.complex128)
    lead = vectors[..., 0, :]
    rest = [vectors[..., k, :].real for k in range(2, width)]
    return torch.stack([lead.real, lead.imag, *rest], dim=-2).to(dtype).detach()


def confirm_rho(
    ops: JacobianOperators,
    rho_arnoldi: list[float],
    rho_bounds: list[float],
    lead_vectors: torch.Tensor,
    block_size: int,
    block_start: torch.Tensor | None,
    tolerances: Tolerances,
    random: Callable[..., torch.Tensor],
) -> RayleighRitzConfirmation:
    """The 2-D block from a (warm or) random start first; where it disagrees with Arnoldi, wider blocks
    that hold the Arnoldi leading vectors plus random columns (the random part still drifts to any larger
    eigenvalue of ``M``). ``rho_bounds`` are the error bounds of the Arnoldi rho: the two agree within
    ``max(10 sqrt(tol) max(1, ||M||), 2 rho_bound)``."""
    batch, n = ops.z_star.shape
    out = RayleighRitzConfirmation([None] * batch, [None] * batch, [False] * batch, [], None, 0)
    pending = list(range(batch))
    difference: list[float] = [math.inf] * batch
    allowed: list[float] = [0.0] * batch
    for width in (block_size, *[w for w in WIDER_BLOCKS if w > block_size]):
        if not pending:
            break
        if width == block_size:
            fits = block_start is not None and block_start.shape[-2] == width
            start = blend(block_start if fits else None, random(batch, width, n))
        else:
            start = torch.cat(
                [torch.stack([lead_vectors.real, lead_vectors.imag], dim=-2), random(batch, width - 2, n)], dim=-2
            )
        rr = block_rayleigh_ritz(ops.m, start, tol=tolerances.rayleigh_ritz_tol, max_iters=RR_MAX_SWEEPS)
        out.matvecs += rr.matvecs
        if width == block_size:
            out.next_block = _warm_block(rr.vectors, width, ops.z_star.dtype)
        rr_rho = rr.values[..., 0].abs().tolist()
        rr_scale = rr.norm_estimate.tolist()
        still = []
        for b in pending:
            if out.rho_rr[b] is None:
                out.rho_rr[b], out.rr_block[b] = rr_rho[b], width
            difference[b] = abs(rr_rho[b] - rho_arnoldi[b])
            # Both values approximate one eigenvalue, each to its error bound (an ill-conditioned one
            # is no better known to RR than to Arnoldi).
            allowed[b] = max(tolerances.rayleigh_ritz_agreement * max(1.0, rr_scale[b]), 2 * rho_bounds[b])
            if FAULTS.get(RR_CHECK, difference[b]) <= allowed[b]:
                if width != block_size:
                    out.rr2_misleading[b] = True
                    out.rho_rr[b], out.rr_block[b] = rr_rho[b], width
            else:
                still.append(b)
        pending = still
    for b in pending:
        out.rr2_misleading[b] = True
    reason = (
        "block Rayleigh-Ritz did not confirm rho (Arnoldi {arnoldi:.8g}, RR {rr:.8g} with p = {p};"
        f" widened to {max(WIDER_BLOCKS)})"
    )
    out.checks = [
        judge(
            RR_CHECK,
            "agreement",
            difference[b],
            allowed[b],
            reason,
            arnoldi=rho_arnoldi[b],
            rr=out.rho_rr[b],
            p=out.rr_block[b],
        )
        for b in range(batch)
    ]
    return out
