"""Margins: how far the damping ``c`` and the step ``eps`` can move before stability is lost.

Symbols of docs/SPEC.md section 1. ``J_F = J_nc - (1 + c) I``, so every eigenvalue of ``J_F`` moves left by the
same amount as ``c`` grows and ``alpha(c) = alpha_nc - (1 + c)``: the flow loses stability at

    c_crit = alpha_nc - 1,       margin  c - c_crit = -alpha   (> 0: stable).

For the Euler step, ``|1 + eps mu|^2 = 1 + 2 eps Re(mu) + eps^2 |mu|^2`` is below 1 exactly for
``0 < eps < -2 Re(mu) / |mu|^2`` (and for no ``eps > 0`` when ``Re(mu) >= 0``), so

    eps_max = min over the eigenvalues mu of J_F of  -2 Re(mu) / |mu|^2  =  -2 max Re(1 / mu),

and ``rho(M) < 1`` iff ``eps < eps_max``: each eigenvalue's stable steps form an interval
``(0, eps_mu)``, so the stable steps of ``M`` are their intersection ``(0, eps_max)``, and ``rho`` probed at
any step says on which side of ``eps_max`` that step lies.

Which eigenvalues the bound rests on. The minimizer is the RIGHTMOST eigenvalue of ``J_F^{-1}``: an
eigenvalue of large modulus (``|mu|^2`` in the denominator) or one close to the imaginary axis. Krylov
methods on ``J_F`` find the exterior ones (largest modulus) quickly, not necessarily an interior one
near the axis; ``eps_max`` from a computed SUBSET of the eigenvalues is therefore an UPPER bound on the
true one. Two things make it a statement:

* the computed set: the whole spectrum on the dense path (``--method dense``: then ``eps_max`` is exact
  to rounding), else the converged Ritz values of one Krylov-Schur run on ``J_F`` with two targets,
  largest ``Re(1/mu)`` (the minimizer's own score) and largest ``|mu|``, plus ``alpha`` and ``mu_lead``;
* the probes: ``rho`` at ``(1 - delta) eps_max`` and ``(1 + delta) eps_max`` (``delta = 0.01``), each
  by a Krylov-Schur run that targets the leading eigenvalue of ``I + eps' J_F``. Below 1 at the lower
  step proves ``eps_max_true > (1 - delta) eps_max`` (no eigenvalue was missed that matters by more than
  ``delta``); above 1 at the upper step confirms the crossing. If the lower probe finds rho >= 1, the
  eigenvalue it found is added to the set and ``eps_max`` recomputed (it can only decrease).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import Target, krylov_schur, largest_modulus

#: Relative distance of the two confirming probes from ``eps_max``.
PROBE_DELTA = 0.01
#: Rounds of "add the eigenvalue the lower probe found and recompute".
PROBE_ROUNDS = 3
#: Fixed points whose probes share one Krylov-Schur run (two targets each).
PROBES_PER_RUN = 4


def c_crit(alpha_nc: float | None) -> float | None:
    """``c_crit = alpha_nc - 1``: the damping at which the rightmost eigenvalue of ``J_F`` reaches 0."""
    return None if alpha_nc is None else alpha_nc - 1.0


def step_limit(mu: complex) -> float:
    """``-2 Re(mu) / |mu|^2`` for ``Re(mu) < 0`` (the largest stable step for that eigenvalue), else 0."""
    if not mu.real < 0:
        return 0.0
    return -2.0 * mu.real / abs(mu) ** 2


def eps_max_of(values: list[complex]) -> tuple[float, complex]:
    """``min step_limit(mu)`` over ``values`` and the eigenvalue attaining it (``values`` non-empty)."""
    limits = [step_limit(mu) for mu in values]
    best = min(range(len(values)), key=limits.__getitem__)
    return limits[best], values[best]


def _inverse_real(mu: Tensor) -> Tensor:
    """``Re(1 / mu) = Re(mu) / |mu|^2``: the largest is the eigenvalue that sets ``eps_max``."""
    return mu.real / (mu.abs() ** 2).clamp_min(torch.finfo(mu.real.dtype).tiny)


#: Krylov-Schur target for the eigenvalue that sets ``eps_max`` (rightmost eigenvalue of ``J_F^{-1}``).
STEP_TARGET = Target("max Re(1/mu)", _inverse_real)


@dataclass
class StepMargin:
    """``eps_max`` for one fixed point and what it rests on."""

    eps_max: float
    mu: complex
    eigenvalues: list[complex]
    basis: str
    rho_below: float | None = None
    rho_above: float | None = None
    confirmed: bool | None = None
    notes: list[str] = field(default_factory=list)


def candidate_eigenvalues(
    ops: JacobianOperators, x0: Tensor, *, nev: int, tol: float, krylov_dim: int, max_restarts: int
) -> tuple[list[list[complex]], int]:
    """Converged Ritz values of ``J_F`` for the targets largest ``Re(1/mu)`` and largest ``|mu|``.

    Returns the values per fixed point (each complex pair with both members) and the jvps spent.
    """
    runs = krylov_schur(
        ops.krylov("jf"),
        x0,
        targets=(STEP_TARGET, largest_modulus()),
        nev=min(nev, ops.n),
        tol=tol,
        krylov_dim=krylov_dim,
        max_restarts=max_restarts,
    )
    out: list[list[complex]] = [[] for _ in range(ops.batch)]
    for result in runs.values():
        values = result.values.to(torch.complex128).cpu()
        for b in range(ops.batch):
            for value, ok in zip(values[b].tolist(), result.converged[b].tolist(), strict=True):
                if ok:
                    out[b].extend(_with_conjugate(complex(value)))
    matvecs = next(iter(runs.values())).matvecs
    return [unique_eigenvalues(v) for v in out], matvecs


def dense_eigenvalues(ops: JacobianOperators) -> tuple[list[list[complex]], int]:
    """Every eigenvalue of ``J_F`` per fixed point, from the dense Jacobian (``n`` jvps)."""
    eye = torch.eye(ops.n, dtype=ops.dtype, device=ops.device)
    values = torch.linalg.eigvals(ops.dense_jacobian() - (1 + ops.c) * eye).to(torch.complex128).cpu()
    return [[complex(v) for v in row.tolist()] for row in values], ops.n


def step_margins(
    ops: JacobianOperators,
    eigenvalues: list[list[complex]],
    basis: str,
    random: Callable[..., Tensor],
    *,
    tol: float,
    krylov_dim: int,
    max_restarts: int,
) -> tuple[list[StepMargin], int]:
    """``eps_max`` per fixed point from ``eigenvalues``, confirmed by probing ``rho`` beside it.

    ``random(*shape)`` draws start vectors. Returns the margins and the jvps spent on the probes.
    """
    margins = []
    for values in eigenvalues:
        eps_max, mu = eps_max_of(values)
        margins.append(StepMargin(eps_max=eps_max, mu=mu, eigenvalues=list(values), basis=basis))
    matvecs = 0
    pending = [b for b, m in enumerate(margins) if m.eps_max > 0]
    for m in margins:
        if m.eps_max == 0:
            m.notes.append("no step is stable: J_F has an eigenvalue with Re(mu) >= 0")
    for _ in range(PROBE_ROUNDS):
        if not pending:
            break
        missed = []
        for start in range(0, len(pending), PROBES_PER_RUN):
            chunk = pending[start : start + PROBES_PER_RUN]
            used, lowered = _probe(
                ops, margins, chunk, random, tol=tol, krylov_dim=krylov_dim, max_restarts=max_restarts
            )
            matvecs += used
            missed += lowered
        pending = missed
    return margins, matvecs


def _probe(
    ops: JacobianOperators,
    margins: list[StepMargin],
    chunk: list[int],
    random: Callable[..., Tensor],
    *,
    tol: float,
    krylov_dim: int,
    max_restarts: int,
) -> tuple[int, list[int]]:
    """One Krylov-Schur run on ``J_F`` with the targets "leading eigenvalue of ``I + eps' J_F``".

    Returns the jvps spent and the fixed points whose ``eps_max`` the probe lowered (to probe again).
    """
    targets = []
    for b in chunk:
        for side, factor in (("below", 1 - PROBE_DELTA), ("above", 1 + PROBE_DELTA)):
            targets.append(largest_modulus(1.0, margins[b].eps_max * factor, name=f"{side}{b}"))
    runs = krylov_schur(
        ops.krylov("jf"),
        random(ops.batch, ops.n),
        targets=targets,
        nev=1,
        tol=tol,
        krylov_dim=max(krylov_dim, 4 * len(targets) + 2),
        max_restarts=max_restarts,
    )
    lowered = []
    for b in chunk:
        m = margins[b]
        below, above = runs[f"below{b}"], runs[f"above{b}"]
        mu_below = complex(below.values[b, 0].to(torch.complex128))
        mu_above = complex(above.values[b, 0].to(torch.complex128))
        if not (bool(below.converged[b, 0]) and bool(above.converged[b, 0])):
            m.confirmed = None
            m.notes.append("the rho probes beside eps_max did not converge")
            continue
        m.rho_below = abs(1 + (1 - PROBE_DELTA) * m.eps_max * mu_below)
        m.rho_above = abs(1 + (1 + PROBE_DELTA) * m.eps_max * mu_above)
        if m.rho_below >= 1:
            # An eigenvalue outside the computed set crosses first: take it in and try again.
            m.eigenvalues = unique_eigenvalues([*m.eigenvalues, *_with_conjugate(mu_below)])
            m.eps_max, m.mu = eps_max_of(m.eigenvalues)
            m.basis += " + eigenvalues found by the rho probes"
            m.confirmed = False
            m.notes.append(f"the probe at 0.99 eps_max found rho {m.rho_below:.6g}: eps_max lowered")
            lowered.append(b)
        else:
            m.confirmed = m.rho_above > 1
            if not m.confirmed:
                m.notes.append(f"rho at 1.01 eps_max is {m.rho_above:.6g} <= 1: the crossing was not seen")
    return next(iter(runs.values())).matvecs, lowered


def _with_conjugate(mu: complex) -> list[complex]:
    return [mu] if mu.imag == 0 else [mu, mu.conjugate()]


def unique_eigenvalues(values: list[complex]) -> list[complex]:
    """Drop repeats (the same eigenvalue found by two targets) to a relative ``1e-10``."""
    out: list[complex] = []
    for v in values:
        if not all(math.isfinite(x) for x in (v.real, v.imag)):
            continue
        if all(abs(v - w) > 1e-10 * max(1.0, abs(v)) for w in out):
            out.append(v)
    return out
