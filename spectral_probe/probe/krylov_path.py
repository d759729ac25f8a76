"""The Krylov path: omega by Lanczos, alpha and rho by Krylov-Schur, rho confirmed by block
Rayleigh-Ritz and bounded by ``||M||_2``, every quantity from two independent starts (matrix-free)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.lanczos import lanczos
from spectral_probe.probe.checks import invariant_failures
from spectral_probe.probe.rr_confirm import confirm_rho
from spectral_probe.probe.spectra import Spectra, leading
from spectral_probe.probe.warm import WarmStart, blend

Random = Callable[..., torch.Tensor]


@dataclass
class _Run:
    """What the Krylov path collects for the B fixed points as it goes."""

    batch: int
    n: int
    tol: float
    krylov: dict
    random: Random
    warm: WarmStart | None
    counts: dict[str, int]
    reasons: list[list[str]]
    residuals: list[dict[str, float | None]]
    notes: list[str]

    def warm_vector(self, name: str) -> torch.Tensor | None:
        return None if self.warm is None else getattr(self.warm, name)


def _omega(ops: JacobianOperators, run: _Run, options: ProbeOptions) -> tuple[list[float | None], torch.Tensor | None]:
    """omega: Lanczos on Sym(J_F) for the largest ALGEBRAIC eigenvalue, from two independent starts."""
    batch, n, tol = run.batch, run.n, run.tol
    omega: list[float | None] = [None] * batch
    if ops.has_vjp:
        first_start = blend(run.warm_vector("omega"), run.random(batch, n))
        starts = (first_start, run.random(batch, n))
        sym_runs = [lanczos(ops.sym, start, which="LA", **run.krylov) for start in starts]
        run.counts["jvp"] += sum(r.matvecs for r in sym_runs)
        run.counts["vjp"] += sum(r.matvecs for r in sym_runs)
        pairs = [leading(r) for r in sym_runs]
        for b in range(batch):
            (v1, r1, c1, s1), (v2, _, c2, s2) = ((x[b] for x in pair) for pair in pairs)
            omega[b] = v1.real
            run.residuals[b]["omega"] = r1
            if not (c1 and c2):
                run.reasons[b].append("Lanczos for omega did not converge")
            elif abs(v1.real - v2.real) > math.sqrt(tol) * max(1.0, s1, s2):
                run.reasons[b].append(f"omega differs between random starts ({v1.real:.8g} vs {v2.real:.8g})")
        return omega, sym_runs[0].vectors[..., 0, :]
    if n <= options.fd_dense_max_n:
        eye = torch.eye(n, dtype=ops.z_star.dtype, device=ops.z_star.device)
        jf = ops.dense_jacobian() - (1 + ops.c) * eye
        run.counts["jvp"] += 2 * n
        run.notes.append("omega from a dense finite-difference Jacobian (--matvec fd)")
        return torch.linalg.eigvalsh((jf + jf.transpose(-1, -2)) / 2)[..., -1].tolist(), None
    run.notes.append(f"omega not computed: --matvec fd has no J^T u and n > {options.fd_dense_max_n}")
    return omega, None


def _alpha_and_lead(ops: JacobianOperators, run: _Run, eps: float) -> tuple[list[complex], list[complex], torch.Tensor]:
    """alpha and rho: one Krylov-Schur run on J_F serves both targets; a second one from another start.

    Returns ``mu_alpha``, ``mu_lead`` (``Im >= 0``) and the leading Ritz vectors of the first run.
    """
    batch, n = run.batch, run.n
    targets = (rightmost(), largest_modulus(1.0, eps))
    first_start = blend(run.warm_vector("arnoldi"), run.random(batch, n))
    starts = (first_start, run.random(batch, n))
    arnoldi_runs = [krylov_schur(ops.jf, start, targets=targets, **run.krylov) for start in starts]
    run.counts["jvp"] += sum(next(iter(r.values())).matvecs for r in arnoldi_runs)
    alpha_runs = [leading(r[targets[0].name]) for r in arnoldi_runs]
    lead_runs = [leading(r[targets[1].name]) for r in arnoldi_runs]
    mu_alpha: list[complex] = []
    mu_lead: list[complex] = []
    for b in range(batch):
        (a1, ra, ca1, sa), (a2, _, ca2, _) = ((x[b] for x in r) for r in alpha_runs)
        (l1, rl, cl1, sl), (l2, _, cl2, _) = ((x[b] for x in r) for r in lead_runs)
        mu_alpha.append(complex(a1.real, abs(a1.imag)))
        mu_lead.append(complex(l1.real, abs(l1.imag)))
        run.residuals[b]["alpha"] = ra
        run.residuals[b]["rho"] = eps * rl
        scale = math.sqrt(run.tol) * max(1.0, sa, sl)
        if not (ca1 and ca2 and cl1 and cl2):
            run.reasons[b].append("Arnoldi for alpha/rho did not converge")
        else:
            if abs(a1.real - a2.real) > scale:
                run.reasons[b].append(f"alpha differs between random starts ({a1.real:.8g} vs {a2.real:.8g})")
            if abs(abs(1 + eps * l1) - abs(1 + eps * l2)) > eps * scale:
                run.reasons[b].append("rho differs between random starts")
    return mu_alpha, mu_lead, arnoldi_runs[0][targets[1].name].vectors[..., 0, :]


def _norm_M(ops: JacobianOperators, run: _Run) -> list[float | None]:
    """``||M||_2`` by Lanczos on ``M^T M`` (a lower bound that converges from below), for rho <= ||M||_2."""
    norm_M: list[float | None] = [None] * run.batch
    if not ops.has_vjp:
        return norm_M
    settings = {k: v for k, v in run.krylov.items() if k != "tol"}
    gram = lanczos(
        lambda v: ops.m_t(ops.m(v)), run.random(run.batch, run.n), which="LA", tol=math.sqrt(run.tol), **settings
    )
    run.counts["jvp"] += gram.matvecs
    run.counts["vjp"] += gram.matvecs
    for b in range(run.batch):
        if bool(gram.converged[b, 0]):
            norm_M[b] = math.sqrt(max(float(gram.values[b, 0]), 0.0))
    return norm_M


def _real_view(vector: torch.Tensor) -> torch.Tensor:
    return (vector.real + vector.imag).detach() if vector.is_complex() else vector.detach()


def krylov_spectra(
    ops: JacobianOperators,
    eps: float,
    tol: float,
    options: ProbeOptions,
    random: Random,
    warm: WarmStart | None,
    notes: list[str],
) -> Spectra:
    """omega, alpha and rho matrix-free, with the independent-start, RR and invariant cross-checks."""
    batch, n = ops.z_star.shape
    warm_ok = warm is not None and warm.fits(batch, n, ops.z_star.device, ops.z_star.dtype)
    krylov = {"krylov_dim": options.krylov_dim, "tol": tol, "max_restarts": options.max_restarts}
    run = _Run(
        batch, n, tol, krylov, random, warm if warm_ok else None, {"jvp": 0, "vjp": 0},
        [[] for _ in range(batch)], [{} for _ in range(batch)], notes,
    )  # fmt: skip
    omega, omega_vector = _omega(ops, run, options)
    mu_alpha, mu_lead, lead_vectors = _alpha_and_lead(ops, run, eps)
    block_start = run.warm_vector("block")
    rho_arnoldi = [abs(1 + eps * m) for m in mu_lead]
    rr = confirm_rho(ops, rho_arnoldi, lead_vectors, options.block_size, block_start, tol, random)
    run.counts["jvp"] += rr.matvecs
    for b in range(batch):
        run.reasons[b] += rr.reasons[b]
    norm_M = _norm_M(ops, run)
    for b in range(batch):
        slack = math.sqrt(tol) * max(1.0, abs(mu_lead[b]), abs(mu_alpha[b]), abs(omega[b] or 0.0))
        run.reasons[b] += invariant_failures(omega[b], mu_alpha[b], mu_lead[b], norm_M[b], eps, slack)

    next_warm = WarmStart(
        omega=omega_vector.detach() if omega_vector is not None else None,
        arnoldi=_real_view(lead_vectors),
        block=rr.next_block,
    )
    return Spectra(
        omega=omega,
        mu_alpha=mu_alpha,
        mu_lead=mu_lead,
        rho_rr=rr.rho_rr,
        rr_block=rr.rr_block,
        rr2_misleading=rr.rr2_misleading,
        norm_M=norm_M,
        residuals=run.residuals,
        converged=[not any("converge" in r for r in run.reasons[b]) for b in range(batch)],
        reasons=run.reasons,
        matvecs=run.counts["jvp"] + run.counts["vjp"],
        matvecs_by_kind=run.counts,
        notes=[],
        warm=next_warm,
    )
