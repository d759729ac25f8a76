"""The Krylov path: omega by block Lanczos, alpha and rho by Krylov-Schur, rho confirmed by block
Rayleigh-Ritz and bounded by ``||M||_2``, every quantity from two independent starts (matrix-free)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.known import KnownImages
from spectral_probe.linalg.norms import operator_norm
from spectral_probe.linalg.result import EigResult, Matvec, Shifted
from spectral_probe.linalg.symmetric import lanczos
from spectral_probe.linalg.vectors import real_start as _real_view
from spectral_probe.linalg.vectors import unit_rows as _unit
from spectral_probe.probe.bounds import (
    DEFECTIVE_CONDITION,
    EigenBound,
    RitzPair,
    krylov_bound,
    rho_bound,
    ritz_distances,
)
from spectral_probe.probe.checks import KnownProducts, fd_error_along, invariant_checks, judge
from spectral_probe.probe.rr_confirm import confirm_rho
from spectral_probe.probe.spectra import Spectra, leading
from spectral_probe.probe.warm import WarmStart, blend
from spectral_probe.results import Check
from spectral_probe.tolerances import Tolerances

Random = Callable[..., torch.Tensor]

#: The relative accuracy of ``kappa`` that the referee's left vectors must give before the error bounds
#: use them (:func:`_needs_sharper_left`): a tenth, a first-order bound known to 10%.
KAPPA_ACCURACY = 0.1


@dataclass
class _Run:
    """What the Krylov path collects for the B fixed points as it goes."""

    batch: int
    n: int
    tolerances: Tolerances
    krylov: dict
    random: Random
    warm: WarmStart | None
    counts: dict[str, int]
    checks: list[list[Check]]
    residuals: list[dict[str, float | None]]
    notes: list[str]
    known: KnownProducts | None
    operator_error: list[float]  # per fixed point: how far J_F itself is off (--matvec fd), else 0

    def warm_vector(self, name: str) -> torch.Tensor | None:
        return None if self.warm is None else getattr(self.warm, name)

    def seeds(self, count: int, *, sym: bool = False) -> list[torch.Tensor]:
        """``count`` independent random start vectors ``[B, n]``: the checks' directions where they have
        them (``sym``: those whose ``Sym(J) v`` is known), so that the solver's first products are free."""
        have = 0 if self.known is None else (self.known.jtv if sym else self.known.jv).shape[-2]
        if self.known is None or have < count:
            return [self.random(self.batch, self.n) for _ in range(count)]
        return [self.known.vectors[:, i] for i in range(count)]

    def reusing(
        self, matvec: Matvec, products: Callable[[KnownProducts], tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[Matvec, KnownImages | None]:
        """``matvec`` answering its first call from the checks' ``products(known)`` (:func:`_reusing`)."""
        return _reusing(matvec, None if self.known is None else products(self.known))


def _reusing(matvec: Matvec, known: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[Matvec, KnownImages | None]:
    """``matvec`` (a :class:`Shifted` one keeps its shift) answering its first call from the known
    products ``(vectors, images)`` where it can; the wrapper counts what it saved."""
    if known is None:
        return matvec, None
    inner = matvec.matvec if isinstance(matvec, Shifted) else matvec
    reuse = KnownImages(inner, *known)
    return (Shifted(reuse, matvec.shift) if isinstance(matvec, Shifted) else reuse), reuse


def _saved(reuse: KnownImages | None) -> int:
    return 0 if reuse is None else reuse.reused


def _check_tol(run: _Run) -> float:
    """The tolerance of a second start that only checks the first: the agreement rule ``sqrt(tol) ||A||``
    (never tighter than ``tol``). Its left vectors then give ``kappa`` to a relative ``sqrt(tol) kappa /
    gap``; where that is not small the referee goes on (:func:`_needs_sharper_left`)."""
    return max(run.tolerances.agreement, run.krylov["tol"])


def _omega(ops: JacobianOperators, run: _Run, options: ProbeOptions) -> tuple[list[float | None], torch.Tensor | None]:
    """omega: block Lanczos on Sym(J_F) for the largest ALGEBRAIC eigenvalue, from ONE block of two
    independent starts (the first warm where a warm start exists, the second random)."""
    batch, n = run.batch, run.n
    omega: list[float | None] = [None] * batch
    if ops.has_vjp:
        # One Krylov space of both starts instead of two runs compared: it misses the top eigenvector only
        # where both starts miss it (what the comparison caught, it finds and reports), in fewer products.
        first, second = run.seeds(2, sym=True)
        starts = torch.stack([blend(run.warm_vector("omega"), first), second], dim=-2)
        # A block basis holds the wanted pair and two blocks at least (a --krylov-dim below 5 is raised).
        settings = {**run.krylov, "krylov_dim": max(run.krylov["krylov_dim"], 1 + 2 * starts.shape[-2])}
        sym, reuse = run.reusing(ops.krylov("sym"), KnownProducts.sym_nc)
        result = lanczos(sym, starts, which="LA", block=True, **settings)
        run.counts["jvp"] += result.matvecs - _saved(reuse)
        run.counts["vjp"] += result.matvecs - _saved(reuse)
        for b, (value, residual, converged, _) in enumerate(zip(*leading(result), strict=True)):
            omega[b] = value.real
            run.residuals[b]["omega"] = residual
            run.checks[b].append(
                judge("converged:omega", "convergence", float(not converged), 0.0, "Lanczos for omega did not converge")
            )
        return omega, result.vectors[..., 0, :]
    if n <= options.fd_dense_max_n:
        eye = torch.eye(n, dtype=ops.z_star.dtype, device=ops.z_star.device)
        jf = ops.dense_jacobian() - (1 + ops.c) * eye
        run.counts["jvp"] += 2 * n
        run.notes.append("omega from a dense finite-difference Jacobian (--matvec fd)")
        return torch.linalg.eigvalsh((jf + jf.transpose(-1, -2)) / 2)[..., -1].tolist(), None
    run.notes.append(f"omega not computed: --matvec fd has no J^T u and n > {options.fd_dense_max_n}")
    return omega, None


@dataclass
class _Pair:
    """One target's leading Ritz pair from the J_F run and from the second run, for problem ``b``."""

    ritz: RitzPair
    converged: bool
    scale: float
    other_value: complex
    other_converged: bool

    @property
    def value(self) -> complex:
        return self.ritz.mu


def _pairs(right: EigResult, second: EigResult, b: int, residual_vector: torch.Tensor | None) -> _Pair:
    (v1, r1, c1, s1), (v2, r2, c2, s2) = ((x[b] for x in leading(r)) for r in (right, second))
    has_left = residual_vector is not None
    ritz = RitzPair(
        v1,
        right.vectors[b, 0],
        r1,
        v2,
        second.vectors[b, 0] if has_left else None,
        r2 if has_left else 0.0,
        residual_vector[b] if has_left else None,
        None if right.info.ritz_values is None else right.info.ritz_values[b].detach().cpu(),
    )
    return _Pair(ritz, c1, max(s1, s2), v2, c2)


def _residual_vectors(result: EigResult) -> torch.Tensor:
    """``r = J_F x - mu x`` of the leading Ritz pair, ``[B, n]`` complex, from the product ``J_F x`` that
    Krylov-Schur made for its true residual (``result.images``: no product)."""
    assert result.images is not None  # Krylov-Schur always returns them
    x = result.vectors[..., 0, :]
    return result.images[..., 0, :] - result.values[..., 0].unsqueeze(-1) * x


def _second_run(ops: JacobianOperators, run: _Run, targets: tuple, right: dict, noise: torch.Tensor) -> dict:
    """The second Krylov-Schur run: on ``J_F^T`` (vjp) where it exists, started from the right Ritz
    vectors blended with a fresh random part; it gives the left eigenvectors of the error bounds AND the
    second start of the cross-check (the same eigenvalues from another operator and another start).
    Under ``--matvec fd`` (no vjp) a second run on ``J_F`` from the random start."""
    if not ops.has_vjp:
        second = krylov_schur(ops.krylov("jf"), noise, targets=targets, **run.krylov)
        run.counts["jvp"] += next(iter(second.values())).matvecs
        return second
    warm = _warm_vector(right, targets)
    # To the accuracy its two uses need: the agreement rule (sqrt(tol), each run's value within its
    # residual times kappa) and kappa = 1 / |y^H x|, which a left vector known to a residual s gives to a
    # relative s kappa / gap (checked below). The reported values come from the J_F run.
    second = krylov_schur(
        ops.krylov("jf_t"), blend(warm, noise), targets=targets, **{**run.krylov, "tol": _check_tol(run)}
    )
    run.counts["vjp"] += next(iter(second.values())).matvecs
    ill = _needs_sharper_left(right, second, targets) if _check_tol(run) > run.krylov["tol"] else []
    # Where the J_F run itself did not converge the result is inconclusive whatever the referee says: a
    # sharper left vector would bound a value nobody may use (a Jordan block, Grcar: the refinement ran
    # to max_restarts a second time, 8,000 products).
    ill = [b for b in ill if all(bool(right[t.name].converged[b, 0]) for t in targets)]
    if ill:
        # An ill-conditioned eigenvalue (the looser run's value moves by ||s|| kappa, more than the
        # agreement and the bound can absorb, and the first-order picture itself is in doubt), or a left
        # vector too loose for kappa next to a close Ritz value. Then the referee runs on to the full
        # tolerance, from the left vectors it has (rare: kappa > 10 or a gap below sqrt(tol) kappa / 0.1),
        # for those fixed points alone (in a batch the others would follow it in lockstep for nothing).
        sub = ops if len(ill) == run.batch else ops.restricted(ill)
        if sub is not ops:
            run.counts["vjp"] += sub.setup_matvecs
        refined = krylov_schur(sub.krylov("jf_t"), _warm_vector(second, targets)[ill], targets=targets, **run.krylov)
        run.counts["vjp"] += next(iter(refined.values())).matvecs
        second = {name: second[name].with_rows(ill, refined[name]) for name in second}
    return second


def _warm_vector(result: dict, targets: tuple) -> torch.Tensor:
    """One real start vector per problem that holds both targets' leading vectors (one where they coincide)."""
    alpha_vector = _real_view(result[targets[0].name].vectors[..., 0, :])
    lead_vector = _real_view(result[targets[1].name].vectors[..., 0, :])
    same = torch.isclose(result[targets[0].name].values[..., 0], result[targets[1].name].values[..., 0])
    return torch.where(same.unsqueeze(-1), lead_vector, _unit(lead_vector) + _unit(alpha_vector))


def _needs_sharper_left(right: dict, left: dict, targets: tuple) -> list[int]:
    """The problems where some target's ``kappa = 1 / |w^T x|`` (left and right unit vectors) exceeds
    DEFECTIVE_CONDITION, or is known to worse than a relative KAPPA_ACCURACY: a left vector with residual
    ``s`` is off the true one by about ``s / gap`` (``gap``: the distance from ``mu`` to the nearest other
    Ritz value of the ``J_F`` run), which moves ``|w^T x|`` by up to ``s / gap`` of its unit vectors, so
    ``kappa`` by a relative ``s kappa / gap``."""
    sharper = torch.zeros(right[targets[0].name].values.shape[0], dtype=torch.bool)
    for t in targets:
        overlap = (left[t.name].vectors[..., 0, :] * right[t.name].vectors[..., 0, :]).sum(-1).abs().cpu()
        sharper |= ~(overlap * DEFECTIVE_CONDITION >= 1)  # NaN overlaps count as ill-conditioned
        drift = left[t.name].residuals[..., 0].cpu() / (overlap * _gaps(right[t.name]))
        sharper |= ~(drift <= KAPPA_ACCURACY)
    return sharper.nonzero().flatten().tolist()


def _gaps(result: EigResult) -> torch.Tensor:
    """``[B]``: the distance from each problem's leading Ritz value to the nearest other finite Ritz value
    of the run (infinite where the run kept no other)."""
    lead = result.values[..., 0]
    ritz = result.info.ritz_values
    if ritz is None or ritz.shape[-1] < 2:
        return torch.full(lead.shape, math.inf, dtype=torch.float64)
    return ritz_distances(ritz, lead)[..., 1]


def _agreement(name: str, first: float, second: float, allowed: float, what: str, known: float | None = None) -> Check:
    """``|first - second| <= allowed``; ``known``: the eigenvalue's error bound, named where it leaves no digit."""
    caveat = "" if known is None else f"; ill-conditioned: the eigenvalue is known only to ±{known:.2g}"
    return judge(
        name,
        "agreement",
        abs(first - second),
        allowed,
        what + " differs between random starts ({first:.8g} vs {second:.8g})" + caveat,
        first=first,
        second=second,
    )


def _judge_target(run: _Run, b: int, name: str, pair: _Pair, eps: float, operator_error: float) -> EigenBound:
    """The bound of one target's eigenvalue and its agreement with the second run, into ``run``.

    The two runs agree within round-off of the agreement rule, or within their first-order bounds
    (an ill-conditioned eigenvalue is known to neither run better). But a first-order bound as large as
    the operator's norm leaves no digit, and where the second start found an eigenvalue further right
    (alpha) or of larger modulus (rho) than the first it cannot excuse the difference: that is a missed
    eigenvalue until proven otherwise, and the condition number came from the second run's left vector,
    which then belongs to ANOTHER eigenvalue (biorthogonal to ``x``: ``y^H x ~ 0``, a huge "bound").
    """
    bound = krylov_bound(pair.ritz, pair.scale, run.tolerances, operator_error)
    round_off = run.tolerances.agreement * max(1.0, pair.scale)
    # Each run's value is within its own residual times kappa of the eigenvalue (the J_T run is looser).
    first_order = max(round_off, 2 * (bound.residual + pair.ritz.left_residual) * (bound.condition or 1.0))
    credible = bound.bound < max(1.0, pair.scale)
    caveat = None if credible else bound.bound
    if name == "alpha":
        first, other = pair.value.real, pair.other_value.real
        allowed = first_order if credible or other - first <= round_off else round_off
        run.checks[b].append(_agreement("agreement:alpha_starts", first, other, allowed, "alpha", caveat))
    else:
        first, other = abs(1 + eps * pair.value), abs(1 + eps * pair.other_value)
        allowed = first_order if credible or other - first <= eps * round_off else round_off
        run.checks[b].append(_agreement("agreement:rho_starts", first, other, eps * allowed, "rho", caveat))
    return bound


def _alpha_and_lead(
    ops: JacobianOperators, run: _Run, eps: float
) -> tuple[list[complex], list[complex], EigResult, list[EigenBound | None], list[EigenBound | None]]:
    """alpha and rho: one Krylov-Schur run on J_F serves both targets; the second run (on J_F^T) checks
    them and gives their left eigenvectors.

    Returns ``mu_alpha``, ``mu_lead`` (``Im >= 0``), the leading-modulus result of the first run, and the
    error bounds of both eigenvalues (``None`` where a run did not converge).
    """
    batch, n = run.batch, run.n
    targets = (rightmost(), largest_modulus(1.0, eps))
    first_start = blend(run.warm_vector("arnoldi"), run.seeds(1)[0])
    noise = run.random(batch, n)
    jf, reuse = run.reusing(ops.krylov("jf"), KnownProducts.jv_nc)
    right = krylov_schur(jf, first_start, targets=targets, **run.krylov)
    run.counts["jvp"] += next(iter(right.values())).matvecs - _saved(reuse)
    second = _second_run(ops, run, targets, right, noise)
    residuals = [_residual_vectors(right[t.name]) if ops.has_vjp else None for t in targets]
    errors = [run.operator_error] * 2
    if not ops.has_vjp:  # --matvec fd: the differences' error along each Ritz vector, where it moves mu
        measured = [fd_error_along(ops, right[t.name].vectors[..., 0, :], run.operator_error) for t in targets]
        errors = [error for error, _ in measured]
        run.counts["jvp"] += sum(products for _, products in measured)
    mu_alpha: list[complex] = []
    mu_lead: list[complex] = []
    bounds: tuple[list[EigenBound | None], list[EigenBound | None]] = ([], [])
    for b in range(batch):
        pairs = [_pairs(right[t.name], second[t.name], b, residuals[k]) for k, t in enumerate(targets)]
        mu_alpha.append(complex(pairs[0].value.real, abs(pairs[0].value.imag)))
        mu_lead.append(complex(pairs[1].value.real, abs(pairs[1].value.imag)))
        run.residuals[b]["alpha"] = pairs[0].ritz.residual
        run.residuals[b]["rho"] = eps * pairs[1].ritz.residual
        unconverged = sum(float(not p.converged) + float(not p.other_converged) for p in pairs)
        run.checks[b].append(
            judge("converged:arnoldi", "convergence", unconverged, 0.0, "Arnoldi for alpha/rho did not converge")
        )
        for name, pair, into, error in zip(("alpha", "rho"), pairs, bounds, errors, strict=True):
            into.append(_judge_target(run, b, name, pair, eps, error[b]) if unconverged == 0 else None)
    return mu_alpha, mu_lead, right[targets[1].name], bounds[0], bounds[1]


def _norm_M(ops: JacobianOperators, run: _Run, rho: list[float]) -> list[float | None]:
    """``||M||_2`` by Lanczos on ``M^T M`` for ``rho <= ||M||_2``, to the accuracy that inequality needs:
    the Ritz value is a lower bound that rises to ``||M||_2``, so a run stops once it passes rho (the
    inequality is then proven) and reports that lower bound; else it converges, and the check judges."""
    if not ops.has_vjp:
        return [None] * run.batch
    settings = {k: v for k, v in run.krylov.items() if k != "tol"}
    enough = torch.tensor(rho, dtype=ops.z_star.dtype, device=ops.z_star.device)
    m, reuse = run.reusing(ops.m, lambda known: known.forward_map(ops.eps, ops.c))
    norm_M, products = operator_norm(
        m, ops.m_t, run.seeds(1)[0], tol=run.tolerances.rayleigh_ritz_tol, enough=enough, **settings
    )
    run.counts["jvp"] += products - _saved(reuse)
    run.counts["vjp"] += products
    return norm_M


def krylov_spectra(
    ops: JacobianOperators,
    eps: float,
    tolerances: Tolerances,
    options: ProbeOptions,
    random: Random,
    warm: WarmStart | None,
    notes: list[str],
    known: KnownProducts | None = None,
    operator_error: list[float] | None = None,
) -> Spectra:
    """omega, alpha and rho matrix-free, with the independent-start, RR, invariant and bound records;
    ``known``: the products of the checks, which the solvers' first steps reuse; ``operator_error``: as
    in :func:`~spectral_probe.probe.dense_path.dense_spectra`."""
    batch, n = ops.z_star.shape
    warm_ok = warm is not None and warm.fits(batch, n, ops.z_star.device, ops.z_star.dtype)
    krylov = {"krylov_dim": options.krylov_dim, "tol": tolerances.tol, "max_restarts": options.max_restarts}
    run = _Run(
        batch, n, tolerances, krylov, random, warm if warm_ok else None, {"jvp": 0, "vjp": 0},
        [[] for _ in range(batch)], [{} for _ in range(batch)], notes, known, operator_error or [0.0] * batch,
    )  # fmt: skip
    omega, omega_vector = _omega(ops, run, options)
    mu_alpha, mu_lead, lead_result, alpha_bounds, lead_bounds = _alpha_and_lead(ops, run, eps)
    lead_vectors = lead_result.vectors[..., 0, :]
    if not ops.has_vjp:
        notes.append("--matvec fd: no J^T u, so no left eigenvector: the error bounds take condition number 1")
    rho_arnoldi = [abs(1 + eps * m) for m in mu_lead]
    rho_bounds = [0.0 if x is None else rho_bound(x, eps, r) for x, r in zip(lead_bounds, rho_arnoldi, strict=True)]
    rr = confirm_rho(ops, rho_arnoldi, rho_bounds, lead_result, eps, options.block_size, tolerances, random)
    run.counts["jvp"] += rr.matvecs
    norm_M = _norm_M(ops, run, rho_arnoldi)
    for b in range(batch):
        run.checks[b].append(rr.checks[b])
        slack = tolerances.agreement * max(1.0, abs(mu_lead[b]), abs(mu_alpha[b]), abs(omega[b] or 0.0))
        accuracy = tolerances.rayleigh_ritz_tol
        run.checks[b] += invariant_checks(omega[b], mu_alpha[b], mu_lead[b], norm_M[b], eps, slack, accuracy)

    next_warm = WarmStart(
        omega=omega_vector.detach() if omega_vector is not None else None,
        arnoldi=_real_view(lead_vectors),
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
        checks=run.checks,
        alpha_bounds=alpha_bounds,
        lead_bounds=lead_bounds,
        matvecs=run.counts["jvp"] + run.counts["vjp"],
        matvecs_by_kind=run.counts,
        notes=[],
        warm=next_warm,
        computed=None if lead_result.info.ritz_values is None else list(lead_result.info.ritz_values.detach().cpu()),
    )
