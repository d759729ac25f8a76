"""rho confirmed by block Rayleigh-Ritz on ``M`` (docs/SPEC.md section 2), started where Arnoldi ended.

The math
--------
Krylov-Schur on ``J_F`` gives the leading eigenvalue ``mu`` of ``J_F`` (``lead = 1 + eps mu``) and its
unit Ritz vector ``x``. For a complex ``mu`` the real plane ``Q = orth[Re x, Im x]`` is invariant under
``M = I + eps J_F``; for a real one ``x`` is an eigenvector. One sweep of block Rayleigh-Ritz on ``M``
(:func:`~spectral_probe.linalg.subspace.block_rayleigh_ritz`: ``Y = M Q``, ``H = Q^T M Q``, the Ritz
values of ``H`` and their TRUE residuals ``||M u - theta u||``) then confirms, in real arithmetic and in
the frame of ``M`` itself (no shift and scale of a ``J_F`` eigenvalue), that ``|theta_1|`` is the
Arnoldi rho: ``||r||`` and ``| |theta_1| - rho |`` are small, or the check fails. It costs ``p``
products a sweep, a sweep or two, where a block from a random start pays
``log(tol) / log(|lambda_3| / |lambda_2|)`` sweeps (300 at the cap on a bulk spectrum near the lead).

Dominance, the other half of "rho is the leading modulus", is not this check's job: the second
Krylov-Schur run from an independent random start is (krylov_path.py, ``agreement:rho_starts``). What a
2-D block can NOT do is separate two leading pairs of (nearly) equal modulus: a training-time controller
that runs one from a random start is then misled. Arnoldi's own spectrum says so at no cost: a Ritz value
of the final decomposition other than ``lead`` and its conjugate with ``|1 + eps theta| >= rho - d``
(``d`` the RR agreement) is a second leading eigenvalue. Then ``rr2_misleading`` is set and a wider
block (4, then 8: the Arnoldi plane plus random columns, which converge to the other leading directions)
must confirm rho. A seeded 2-D block that does not confirm rho is widened the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.result import EigResult
from spectral_probe.linalg.subspace import block_rayleigh_ritz
from spectral_probe.probe.checks import FAULTS, judge
from spectral_probe.results import Check
from spectral_probe.tolerances import Tolerances

#: Wider blocks tried, in order, when the 2-D block cannot confirm the Arnoldi rho.
WIDER_BLOCKS = (4, 8)
#: Sweeps allowed to the seeded 2-D block (a sweep or two where the Arnoldi plane is invariant).
SEEDED_SWEEPS = 10
#: Sweeps allowed to a wider block (its random columns converge at the rate of the spectrum).
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
    matvecs: int


def _plane(
    arnoldi: EigResult, dtype: torch.dtype, random: Callable[..., torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[Re x, Im x]`` of the leading Ritz vector, ``[B, 2, n]``: the invariant plane of a complex pair.
    A real lead (LAPACK returns it with an imaginary part of exactly zero) has a real ``x``: a random
    second column takes the place of ``Im x`` (the 2x2 projection is then triangular, ``lead`` on its
    diagonal). Also returns which leads are real, ``[B]`` bool."""
    x, mu = arnoldi.vectors[..., 0, :], arnoldi.values[..., 0]
    x = x if x.is_complex() else x.to(torch.complex128)
    real, imag = x.real.to(dtype), x.imag.to(dtype)
    is_real = (mu.imag == 0) if mu.is_complex() else torch.ones_like(real[..., 0], dtype=torch.bool)
    imag = torch.where(is_real.unsqueeze(-1), random(*real.shape).to(dtype), imag)
    return torch.stack([real, imag], dim=-2).detach(), is_real


def _seeded_image(
    ops: JacobianOperators, arnoldi: EigResult, seeded: torch.Tensor, real_lead: torch.Tensor, eps: float
) -> tuple[torch.Tensor, int]:
    """``M`` applied to the seeded block, and the products it cost: the plane ``[Re x, Im x]`` from the
    product ``J_F x`` that Krylov-Schur made for its true residual (``arnoldi.images``; ``J_F`` is real,
    so ``J_F Re x = Re J_F x``), explicit products for the random columns (the second column where
    ``real_lead``, the columns of a ``--block-size`` above 2)."""
    assert arnoldi.images is not None  # Krylov-Schur always returns them
    jx = arnoldi.images[..., 0, :]
    image = seeded[..., :2, :] + eps * torch.stack([jx.real, jx.imag], dim=-2).to(seeded.dtype)
    products = 0
    if bool(real_lead.any()):  # the random second column of a real lead's block (_plane)
        random_column = ops.m(seeded[..., 1:2, :].contiguous())
        image[..., 1:2, :] = torch.where(real_lead[..., None, None], random_column, image[..., 1:2, :])
        products += 1
    if seeded.shape[-2] > 2:
        extra = seeded[..., 2:, :].contiguous()
        image = torch.cat([image, ops.m(extra)], dim=-2)
        products += extra.shape[-2]
    return image, products


def second_leading(arnoldi: EigResult, rho: list[float], eps: float, allowed: list[float]) -> list[bool]:
    """Per problem: is the best Ritz value of the final Krylov-Schur decomposition after ``lead`` (and
    its conjugate) within ``allowed`` of the leading modulus, ``|1 + eps theta| >= rho - allowed``? Two
    leading eigenvalues of nearly equal modulus, which a 2-D block cannot separate. ``ritz_values`` are
    ordered by ``|1 + eps theta|``, a conjugate pair together; ``False`` where the solver reports none."""
    values = arnoldi.info.ritz_values
    if values is None:
        return [False] * len(rho)
    out = []
    for b, row in enumerate(values.tolist()):
        lead = complex(row[0])
        after = row[2:] if lead.imag != 0 else row[1:]
        nxt = complex(after[0]) if after else complex("nan")
        out.append(not math.isnan(nxt.real) and abs(1 + eps * nxt) >= rho[b] - allowed[b])
    return out


@dataclass
class _Judge:
    """The agreement of one RR run with Arnoldi, problem by problem (the confirming run's figures stay)."""

    rho_arnoldi: list[float]
    rho_bounds: list[float]
    tolerances: Tolerances
    out: RayleighRitzConfirmation
    difference: list[float]
    allowed: list[float]
    confirmed: list[bool]

    def run(
        self,
        ops: JacobianOperators,
        start: torch.Tensor,
        sweeps: int,
        problems: list[int],
        image: torch.Tensor | None = None,
    ) -> None:
        tol = self.tolerances.rayleigh_ritz_tol
        rr = block_rayleigh_ritz(ops.m, start, tol=tol, max_iters=sweeps, x0_image=image)
        self.out.matvecs += rr.matvecs
        width = start.shape[-2]
        rho, scale, converged = rr.values[..., 0].abs().tolist(), rr.norm_estimate.tolist(), rr.converged[..., 0]
        for b in problems:
            if self.confirmed[b]:
                continue
            difference = abs(rho[b] - self.rho_arnoldi[b])
            allowed = max(self.tolerances.rayleigh_ritz_agreement * max(1.0, scale[b]), 2 * self.rho_bounds[b])
            agrees = FAULTS.get(RR_CHECK, difference) <= allowed and bool(converged[b])
            if agrees or self.out.rho_rr[b] is None:
                self.out.rho_rr[b], self.out.rr_block[b] = rho[b], width
                self.difference[b], self.allowed[b] = difference, allowed
            self.confirmed[b] = agrees


def confirm_rho(
    ops: JacobianOperators,
    rho_arnoldi: list[float],
    rho_bounds: list[float],
    arnoldi: EigResult,
    eps: float,
    block_size: int,
    tolerances: Tolerances,
    random: Callable[..., torch.Tensor],
) -> RayleighRitzConfirmation:
    """The 2-D block seeded with the Arnoldi plane of ``arnoldi`` (the leading-modulus result of the
    Krylov-Schur run on ``J_F``); wider blocks where Arnoldi's spectrum holds a second leading eigenvalue
    or the 2-D block does not confirm (where the Krylov-Schur run converged: otherwise the verdict is
    inconclusive already, and the seeded 2-D block's figure stands). The RR rho agrees with Arnoldi's within
    ``max(10 sqrt(tol) max(1, ||M||), 2 rho_bound)`` (``rho_bounds``: the Arnoldi rho's error bounds).
    A ``block_size`` above 2 adds random columns to the seeded block (a 1-D block cannot hold a pair)."""
    batch, n = ops.z_star.shape
    dtype = ops.z_star.dtype
    out = RayleighRitzConfirmation([None] * batch, [None] * batch, [False] * batch, [], 0)
    judge_run = _Judge(rho_arnoldi, rho_bounds, tolerances, out, [math.inf] * batch, [0.0] * batch, [False] * batch)
    plane, real_lead = _plane(arnoldi, dtype, random)
    seeded = torch.cat([plane, random(batch, block_size - 2, n).to(dtype)], dim=-2) if block_size > 2 else plane
    image, products = _seeded_image(ops, arnoldi, seeded, real_lead, eps)
    out.matvecs += products
    judge_run.run(ops, seeded, SEEDED_SWEEPS, list(range(batch)), image)
    two_d = list(judge_run.confirmed)
    second = second_leading(arnoldi, rho_arnoldi, eps, judge_run.allowed)
    out.rr2_misleading = [flag or not ok for flag, ok in zip(second, two_d, strict=True)]
    # A second leading eigenvalue: the wider block must see rho too, whatever the seeded 2-D one said.
    judge_run.confirmed = [ok and not flag for ok, flag in zip(two_d, out.rr2_misleading, strict=True)]
    # Where Krylov-Schur did not converge the result is inconclusive whatever a wider block finds: it is
    # not widened (a Jordan block: 3,600 products of wider blocks for a verdict already decided).
    arnoldi_converged = [bool(c) for c in arnoldi.converged[..., 0].tolist()]
    for width in (w for w in WIDER_BLOCKS if w > seeded.shape[-2]):
        pending = [b for b in range(batch) if not judge_run.confirmed[b] and arnoldi_converged[b]]
        if not pending or width > n:
            break
        start = torch.cat([plane, random(batch, width - 2, n).to(dtype)], dim=-2)
        judge_run.run(ops, start, RR_MAX_SWEEPS, pending)
    for b in range(batch):
        # The seeded 2-D block's confirmation stands where a wider block could not add one.
        judge_run.confirmed[b] = judge_run.confirmed[b] or two_d[b]
    reason = "block Rayleigh-Ritz did not confirm rho (Arnoldi {arnoldi:.8g}, RR {rr:.8g} with p = {p}; "
    widened = f"widened to {max(WIDER_BLOCKS)})"
    kept = "not widened: Krylov-Schur did not converge)"
    out.checks = [
        judge(
            RR_CHECK,
            "agreement",
            judge_run.difference[b],
            judge_run.allowed[b],
            reason + (widened if arnoldi_converged[b] else kept),
            arnoldi=rho_arnoldi[b],
            rr=out.rho_rr[b],
            p=out.rr_block[b],
        )
        for b in range(batch)
    ]
    return out
