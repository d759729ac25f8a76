"""Error bounds and condition numbers of the reported eigenvalues (alpha's ``mu`` and ``mu_lead``).

The bound is the standard one of numerical linear algebra: a computed pair ``(mu, x)`` with residual
``r = J_F x - mu x`` is an exact eigenpair of ``J_F - r x^H``, so the true eigenvalue lies within
``X_1 = ||r|| kappa`` of ``mu`` to first order, ``kappa = 1 / |y^H x|`` with ``y`` the unit left
eigenvector. The residual is floored at ``u ||J_F||`` (a computed residual below round-off means nothing).

Where the first-order disks of an ill-conditioned ``mu`` and of other computed eigenvalues chain
together, the bound cannot separate them: a cluster, a (nearly) defective eigenvalue. LAPACK spreads a
Jordan block of size ``k`` on a ring of radius about ``(u ||J||)^(1/k)``; the true eigenvalues lie in the
union of the chained disks (each connected component of the pseudospectrum keeps its count of
eigenvalues as the perturbation shrinks), so the bound is the extent of that union seen from ``mu``.
Every bound is capped by Elsner's theorem, ``|d lambda| <= ||E||^(1/n) (2 ||J||)^(1 - 1/n)`` for any
perturbation ``E`` (rigorous, and all that is left for an exact Jordan block, whose computed right
eigenvectors are parallel).

Dense path: every eigenvalue with its condition number (:func:`eigen_conditions`). Krylov path: the left
vector from a Krylov-Schur run on ``J_F^T`` (vjp only); there the bound is ``max(X_1, |mu - mu_T|)``
with ``mu_T`` that run's value; ``mu`` is called nearly defective where ``X_1 >= sqrt(||r|| ||J_F||)``
(half the digits of the residual lost, as for a double eigenvalue), and its cluster is the Ritz values
of the ``J_F`` run inside its bound (a Krylov space sees a Jordan ring as several Ritz values). Any
bound is at least the extent of the chain of first-order disks that touches ``mu``'s, each Ritz value
given ``mu``'s radius: a disk with another Ritz value in reach is not proven to hold one eigenvalue.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spectral_probe.linalg.conditioning import EigenConditions
from spectral_probe.tolerances import Tolerances

#: A cluster whose most ill-conditioned member has a condition number above this is called (nearly)
#: defective: a normal matrix's multiple eigenvalue has kappa = 1, and a cluster of overlapping disks
#: whose vectors are this far from orthogonal is, to the arithmetic, one Jordan block.
DEFECTIVE_CONDITION = 10.0
#: A Ritz value whose first-order error ``||r|| kappa`` is within this factor of ``sqrt(||r|| ||J||)`` is
#: treated as nearly defective (see :func:`krylov_bound`).
DEFECTIVE_SLACK = 0.1


@dataclass(frozen=True)
class EigenBound:
    """``|mu_true - mu| <= bound`` (frame of ``J_F``), what it came from, and the digits it leaves."""

    bound: float
    condition: float | None  # kappa = 1 / |y^H x|; None where no left vector exists (--matvec fd)
    residual: float
    cluster_size: int | None = 1  # computed eigenvalues (dense) or Ritz values (Krylov) inside the bound
    defective: bool = False
    digits: float = 0.0

    def describe(self) -> str | None:
        """A note for a (nearly) defective or ill-conditioned eigenvalue, or ``None``."""
        if not self.defective:
            return None
        cluster = "" if self.cluster_size is None else f"a cluster of {self.cluster_size} eigenvalues "
        return (
            f"nearly defective leading eigenvalue: {cluster}within ±{self.bound:.2g}"
            f" (condition number {self.condition:.2g}); about {self.digits:.0f} digits left"
        )


#: The round-off of forming ``rho = |1 + eps mu|`` in float64 from ``mu``: a product, a sum and a modulus.
RHO_ROUND_OFF = 4 * 2.0**-52


def rho_bound(lead: EigenBound, eps: float, rho: float) -> float:
    """``|rho_true - rho| <= eps X(mu_lead) + 4 u_64 max(1, rho)``: the eigenvalue's bound through the map
    ``mu -> |1 + eps mu|`` (Lipschitz constant ``eps``) plus the round-off of that map itself."""
    return eps * lead.bound + RHO_ROUND_OFF * max(1.0, rho)


def digits_left(bound: float, scale: float, tolerances: Tolerances) -> float:
    """Decimal digits of ``mu`` the bound leaves, normwise: ``-log10(bound / max(1, ||J_F||))``,
    between 0 and the dtype's ``-log10(u)``."""
    if not math.isfinite(bound):
        return 0.0
    ratio = bound / max(1.0, scale)
    if ratio <= 0:
        return tolerances.digits
    return min(max(-math.log10(ratio), 0.0), tolerances.digits)


def elsner_bound(residual: float, scale: float, multiplicity: int) -> float:
    """Elsner's bound ``||E||^(1/m) (2 ||J||)^(1 - 1/m)`` on how far a perturbation ``E`` can move an
    eigenvalue of multiplicity (Jordan size) up to ``m``: rigorous with ``m = n``, and the estimate of
    a defective cluster of ``m`` eigenvalues (where the first-order ``kappa`` is meaningless)."""
    m = max(multiplicity, 1)
    return residual ** (1.0 / m) * (2.0 * max(scale, residual)) ** (1.0 - 1.0 / m)


def _cluster(values: torch.Tensor, radius: torch.Tensor, index: int) -> list[int]:
    """Indices whose disks ``|z - values_j| <= radius_j`` connect (transitively) to the disk of ``index``."""
    distance = (values.unsqueeze(-1) - values.unsqueeze(-2)).abs()
    touching = distance <= radius.unsqueeze(-1) + radius.unsqueeze(-2)
    member = torch.zeros_like(radius, dtype=torch.bool)
    member[index] = True
    while True:
        grown = member | touching[member].any(dim=0)
        if bool((grown == member).all()):
            return member.nonzero().flatten().tolist()
        member = grown


def dense_bound(
    conditions: EigenConditions, b: int, mu: complex, scale: float, tolerances: Tolerances, operator_error: float = 0.0
) -> EigenBound:
    """The bound of the eigenvalue ``mu`` of problem ``b`` from every eigenvalue's residual and condition.

    A well-conditioned ``mu`` (``kappa <= DEFECTIVE_CONDITION``), or one whose first-order disk touches
    no other: ``X_1 = ||r|| kappa``. An ill-conditioned one whose disk chains to others' (a cluster): the
    extent of the chained disks seen from ``mu``, ``max_j (|mu - mu_j| + X_1j)`` (the true eigenvalues
    of a cluster lie in the union of its disks; on a Jordan ring ``X_1`` alone can fall short of the
    ring's radius). Both capped by Elsner's rigorous bound. ``operator_error``: how far the matrix is off
    the true ``J_F`` (``--matvec fd``), added to every residual, which it is of the true ``J_F``.
    """
    values = conditions.values[b].to(torch.complex128).cpu()
    condition = conditions.condition[b].to(torch.float64).cpu()
    residual = conditions.residuals[b].to(torch.float64).cpu().clamp_min(tolerances.residual_floor(scale))
    residual = residual + operator_error
    index = int((values - mu).abs().argmin())
    cap = elsner_bound(float(residual.max()), scale, values.shape[-1])
    radius = torch.nan_to_num(residual * condition, nan=cap, posinf=cap).clamp_max(cap)
    kappa, first_order = float(condition[index]), float(radius[index])
    members = _cluster(values, radius, index) if kappa > DEFECTIVE_CONDITION else [index]
    defective = len(members) > 1
    if defective:
        extent = max(float((values[index] - values[j]).abs() + radius[j]) for j in members)
        bound = min(max(first_order, extent), cap)
    else:
        bound = first_order
    return EigenBound(
        bound=bound,
        condition=kappa,
        residual=float(residual[index]),
        cluster_size=len(members) if defective else int(((values - values[index]).abs() <= bound).sum()),
        defective=defective,
        digits=digits_left(bound, scale, tolerances),
    )


@dataclass(frozen=True)
class RitzPair:
    """A Ritz pair ``(mu, x)`` of ``J_F`` (unit ``x``), its TRUE residual norm, and, where the vjp exists,
    the residual vector ``r = J_F x - mu x`` and the left pair of the ``J_F^T`` run: unit ``w`` with
    ``J_F^T w = mu_left w`` (so ``y = conj(w)``, ``y^H x = w^T x``) and its residual norm."""

    mu: complex
    vector: torch.Tensor
    residual: float
    mu_left: complex | None = None
    left: torch.Tensor | None = None
    left_residual: float = 0.0
    residual_vector: torch.Tensor | None = None
    ritz_values: torch.Tensor | None = None  # every Ritz value of the J_F run (mu among them), on the CPU


def _finite_ritz(pair: RitzPair) -> torch.Tensor:
    """The finite Ritz values of the ``J_F`` run, complex128 (none where the run reported none)."""
    if pair.ritz_values is None:
        return torch.zeros(0, dtype=torch.complex128)
    return pair.ritz_values[torch.isfinite(pair.ritz_values)].to(torch.complex128)


def ritz_distances(ritz_values: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """``[*, m]``: the distances from ``mu [*]`` to the Ritz values ``[*, m]`` of its run, sorted, complex128 on
    the CPU, a non-finite Ritz value at ``+inf``; the first is ``mu``'s own (0), the second the gap."""
    values = ritz_values.detach().cpu().to(torch.complex128)
    distance = (values - mu.detach().cpu().to(torch.complex128).unsqueeze(-1)).abs()
    return torch.where(torch.isfinite(distance), distance, math.inf).sort(dim=-1).values


def _distances(pair: RitzPair) -> torch.Tensor:
    """Sorted distances from ``mu`` to the OTHER finite Ritz values of the ``J_F`` run (``mu`` itself,
    the nearest, dropped)."""
    if pair.ritz_values is None:
        return torch.zeros(0, dtype=torch.float64)
    others = ritz_distances(pair.ritz_values, torch.tensor(complex(pair.mu)))[1:]
    return others[torch.isfinite(others)]


def krylov_bound(pair: RitzPair, scale: float, tolerances: Tolerances, operator_error: float = 0.0) -> EigenBound:
    """The bound of a Ritz value from its residual, its left vector and the second run.

    First order ``X_1 = ||r|| kappa``. Where ``mu`` is not nearly defective, the two-sided Rayleigh
    quotient ``theta = w^T J_F x / w^T x = mu + w^T r / w^T x`` is second-order accurate
    (``|lambda - theta| <~ ||r|| ||s|| kappa / gap``, ``s`` the left residual: ``w`` is off the true left
    vector by about ``||s|| / gap``, ``gap`` the distance to the nearest other Ritz value), so
    ``|lambda - mu| <~ |w^T r| kappa + ||r|| ||s|| kappa / gap``: a near-normal eigenvalue (``w^T r ~ 0``) is
    not given the first-order bound it beats by orders; the round-off of ``theta``, ``u ||J_F|| kappa``, is
    added. Never below the spread of the two runs; never above Elsner's rigorous bound.

    A nearly defective ``mu`` is a member of a Jordan ring of some size ``m`` that one Ritz pair cannot
    tell: the Ritz values of the run inside Elsner's rigorous radius are that ring as far as the Krylov
    space saw it, and ``max(X_1, elsner(||r||, m))`` with ``m`` their count (at least 2) bounds it (``X_1``
    alone, from a right and a left vector that are both nearly the same, can fall short of the ring).
    ``operator_error``: how far the operator is off the true ``J_F`` (``--matvec fd``), a residual of it.
    """
    n = pair.vector.shape[-1]
    floor = tolerances.residual_floor(scale)
    # Additive: the computed residual is itself off by round-off of the size of the floor.
    residual = pair.residual + floor + operator_error
    spread = 0.0 if pair.mu_left is None else abs(pair.mu - pair.mu_left)
    distances = _distances(pair)
    if pair.left is None:  # no J^T u (--matvec fd): condition number 1 assumed, the two runs' spread kept
        bound = max(residual, spread)
        cluster = 1 + int((distances <= bound).sum())
        return EigenBound(bound, None, residual, cluster, digits=digits_left(bound, scale, tolerances))
    overlap = abs(complex((pair.left * pair.vector).sum()))
    condition = math.inf if overlap == 0 else 1.0 / overlap
    # The J_F^T run is a referee to a looser tolerance than the J_F run (it checks; it does not report):
    # its value is within ||s|| kappa of the eigenvalue to first order, so the part of the spread that
    # its extra looseness explains, (||s|| - ||r||) kappa, says nothing about mu and is discounted.
    looser = max(pair.left_residual - pair.residual, 0.0)
    spread = max(spread - looser * condition, 0.0) if math.isfinite(condition) else spread
    first_order = residual * condition
    # Half the residual's digits lost or more, to within one digit (kappa^2 ||r|| >= ||J|| / 100): to this
    # arithmetic the eigenvalue is as sensitive as a double, defective one (whose error is
    # sqrt(||r|| ||J||)). The digit of slack: an exact Jordan block rounded to a residual at the floor
    # has kappa^2 ||r|| ~ ||J|| itself, on either side of the line by the luck of the rounding.
    defective = first_order >= DEFECTIVE_SLACK * math.sqrt(residual * max(1.0, scale))
    cap = elsner_bound(residual, scale, n)
    estimate = first_order
    if defective:
        # Every Ritz value within the rigorous radius, not the smallest ring they agree with: a non-normal
        # Toeplitz matrix's Ritz values trace its pseudospectrum at spacings wider than that ring, with the
        # eigenvalue inside the curve (toeplitz5 in float32: 0.26 from mu, the smallest ring 0.05).
        ring = max(2, 1 + int((distances <= cap).sum()))
        estimate = max(first_order, elsner_bound(residual, scale, ring))
    elif pair.residual_vector is not None and math.isfinite(condition):
        projected = abs(complex((pair.left * pair.residual_vector).sum()))
        gap = max(float(distances[0]) if distances.numel() else 1.0, floor)
        second_order = (projected + residual * (pair.left_residual + floor) / gap) * condition
        # Plus, not max: theta itself carries the round-off of w^T J_F x, u ||J_F|| kappa.
        estimate = min(first_order, second_order + floor * condition)
    bound = min(max(estimate, _chained_extent(pair, first_order), spread), cap)
    cluster = 1 + int((distances <= bound).sum())
    return EigenBound(bound, condition, residual, cluster, defective, digits_left(bound, scale, tolerances))


def _chained_extent(pair: RitzPair, radius: float) -> float:
    """How far the chain of first-order disks that touches ``mu``'s reaches, each Ritz value of the run
    given ``mu``'s radius ``||r|| kappa`` (the others' own are unknown): 0 where no other Ritz value is
    within ``2 radius``.

    The first-order bound counts on ``mu``'s disk holding one eigenvalue, which is proven only where the
    disk is apart from the others (each connected union of disks holds as many eigenvalues as it has
    centres). Where another Ritz value sits in it, the disk may not be apart, and the eigenvalue is known
    only to lie in the union: a cluster whose condition number the computed vectors cannot resolve (a
    companion matrix of clustered roots in float32: kappa estimated 3, true 1e8, the Ritz values a ring).
    """
    values = _finite_ritz(pair)
    if values.numel() < 2 or not math.isfinite(radius) or radius <= 0:
        return 0.0
    index = int((values - complex(pair.mu)).abs().argmin())
    members = _cluster(values, torch.full(values.shape, radius, dtype=torch.float64), index)
    if len(members) < 2:
        return 0.0
    return max(float((values[index] - values[j]).abs()) for j in members) + radius
