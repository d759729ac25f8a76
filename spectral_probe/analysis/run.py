"""Run the requested analyses at the B fixed points of one probe and add their fields to the records.

The probe calls :func:`extend_results` once, after its own spectra; each analysis adds its matvecs to
``matvecs`` and to ``matvecs_by_kind`` under its own name (``transient``, ``margins``, ``modes``), so
their price is visible per result. Which analyses run (``ProbeOptions``):

* always: ``c_crit`` and ``c_margin`` (free: from ``alpha``);
* ``--margins`` (default off; ``scan --plot`` turns it on): ``eps_max`` with its two confirming rho
  probes and the eigenvalues it rests on (``eigenvalues_jf``, also what ``scan --plot`` draws);
* ``--transient`` (default off, the costly one: about ``4 p K`` matvecs for ``K`` steps and ``p``
  starts per sweep, several sweeps, and Taylor polynomials for the flow): the growth bounds;
* ``--modes`` or ``--save-modes PATH``: the leading modes, the units with the largest weight, the file.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

from torch import Tensor

from spectral_probe.analysis import margins as margins_
from spectral_probe.analysis import modes as modes_
from spectral_probe.analysis import transient as transient_
from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.results import FixedPointResult

Random = Callable[..., Tensor]
#: Independent random starts of the transient-growth power iterations.
TRANSIENT_STARTS = 2
#: Ritz values per target of the eps_max eigenvalue run.
MARGIN_NEV = 4


def extend_results(
    results: list[FixedPointResult],
    ops: JacobianOperators,
    options: ProbeOptions,
    random: Random,
    *,
    method: str,
    tol: float,
) -> list[FixedPointResult]:
    """``results`` with the fields of every requested analysis filled in (the others stay ``None``)."""
    started = time.perf_counter()
    fields: list[dict] = [{"c_crit": margins_.c_crit(r.alpha_nc)} for r in results]
    for r, f in zip(results, fields, strict=True):
        f["c_margin"] = None if f["c_crit"] is None else r.c - f["c_crit"]
    kinds: dict[str, int] = {}
    notes: list[list[str]] = [[] for _ in results]
    krylov = {"tol": tol, "krylov_dim": options.krylov_dim, "max_restarts": options.max_restarts}
    if options.margins:
        kinds["margins"] = _margins(ops, results, fields, notes, random, method, krylov)
    if options.transient:
        kinds["transient"] = _transient(ops, results, fields, notes, random, options, tol)
    if options.modes or options.save_modes:
        kinds["modes"] = _modes(ops, results, fields, random, options, krylov)
    extra = sum(kinds.values())
    seconds = (time.perf_counter() - started) / max(1, len(results))
    out = []
    for r, f, note in zip(results, fields, notes, strict=True):
        by_kind = {**r.matvecs_by_kind, **kinds}
        out.append(
            dataclasses.replace(
                r,
                **f,
                matvecs=r.matvecs + extra,
                matvecs_by_kind=by_kind,
                seconds=r.seconds + seconds,
                notes=(*r.notes, *note),
            )
        )
    return out


def _margins(ops, results, fields, notes, random, method, krylov) -> int:
    if method == "dense":
        eigenvalues, used = margins_.dense_eigenvalues(ops)
        basis = f"all {ops.n} eigenvalues of the dense J_F"
    else:
        eigenvalues, used = margins_.candidate_eigenvalues(ops, random(ops.batch, ops.n), nev=MARGIN_NEV, **krylov)
        for b, r in enumerate(results):  # the probe's own alpha and mu_lead are computed eigenvalues too
            for re, im in ((r.alpha, r.alpha_imag), (r.mu_lead_real, r.mu_lead_imag)):
                if re is not None and im is not None:
                    eigenvalues[b] = margins_.unique_eigenvalues([*eigenvalues[b], complex(re, im), complex(re, -im)])
        basis = "Ritz values of J_F (Krylov-Schur, targets max Re(1/mu) and max |mu|) with alpha and mu_lead"
    usable = [b for b, values in enumerate(eigenvalues) if values]
    step, probes = margins_.step_margins(ops, [eigenvalues[b] for b in usable], basis, random, **krylov)
    by_fixed_point = dict(zip(usable, step, strict=True))
    for b, (r, f) in enumerate(zip(results, fields, strict=True)):
        m = by_fixed_point.get(b)
        if m is None:
            notes[b].append("eps_max not computed: no eigenvalue of J_F converged")
            continue
        f |= {
            "eps_max": m.eps_max,
            "eps_margin": m.eps_max - r.eps,
            "eps_max_mu_real": m.mu.real,
            "eps_max_mu_imag": abs(m.mu.imag),
            "eps_max_confirmed": m.confirmed,
            "eps_max_rho_below": m.rho_below,
            "eps_max_rho_above": m.rho_above,
            "eps_max_basis": m.basis,
            "eigenvalues_jf": [[v.real, v.imag] for v in m.eigenvalues],
        }
        notes[b] += m.notes
    return used + probes


def _transient(ops, results, fields, notes, random, options, tol) -> int:
    if not ops.has_vjp:
        for note in notes:
            note.append("transient growth not computed: it needs J^T u (--matvec autograd)")
        return 0
    horizon = options.transient_horizon
    sqrt_tol = math.sqrt(tol)
    power = transient_.max_power_norm(ops, random(ops.batch, TRANSIENT_STARTS, ops.n), horizon=horizon, tol=sqrt_tol)
    norms, norm_used = transient_.operator_norm(ops.jf, ops.jf_t, random(ops.batch, ops.n), tol=sqrt_tol)
    known = [x for x in norms if x is not None]
    # The Taylor substeps need an upper estimate of ||J_F||_2: the Lanczos value (a lower bound that
    # converged to sqrt(tol)) with a margin, or the triangle bound from ||M||_2 if it did not converge.
    norm_jf = 1.05 * max(known) if len(known) == len(norms) else _triangle_bound(results, ops.eps)
    t_max = min(horizon * ops.eps, transient_.FLOW_BUDGET / max(norm_jf, 1e-300))
    if t_max < horizon * ops.eps:
        for note in notes:
            note.append(f"flow horizon shortened to t = {t_max:.4g} (T ||J_F|| <= {transient_.FLOW_BUDGET:g})")
    flow = transient_.max_flow_norm(
        ops, random(ops.batch, TRANSIENT_STARTS, ops.n), t_max=t_max, steps=horizon, norm_jf=norm_jf, tol=tol
    )
    for b, (r, f) in enumerate(zip(results, fields, strict=True)):
        f |= {
            "transient": transient_.is_transient(r.rho, power.value[b], ops.dtype),
            "max_power_norm": power.value[b],
            "max_power_k": int(power.at[b]),
            "power_horizon": horizon,
            "max_flow_norm": flow.value[b],
            "max_flow_t": flow.at[b],
            "flow_horizon": t_max,
        }
        if power.at_horizon[b]:
            notes[b].append(f"max_k ||M^k|| is attained at the horizon k = {horizon}: the growth may continue")
        if flow.at_horizon[b]:
            notes[b].append(f"sup_t ||exp(t J_F)|| is attained at the horizon t = {t_max:g}: it may continue")
    return sum(power.matvecs.values()) + sum(flow.matvecs.values()) + 2 * norm_used


def _triangle_bound(results: list[FixedPointResult], eps: float) -> float:
    """``||J_F||_2 = ||M - I||_2 / eps <= (||M||_2 + 1) / eps``."""
    norms = [r.norm_M_estimate for r in results if r.norm_M_estimate is not None]
    return (1.05 * max(norms, default=1.0) + 1) / eps


def _modes(ops, results, fields, random, options, krylov) -> int:
    found = modes_.leading_modes(ops, random, **krylov)
    for b, f in enumerate(fields):
        f["lead_mode_units"], f["lead_mode_weights"] = modes_.top_units(found.m_vectors[b, 0])
        if found.sym_vectors is not None:
            f["omega_mode_units"], f["omega_mode_weights"] = modes_.top_units(found.sym_vectors[b, 0])
    if options.save_modes:
        path = modes_path(options.save_modes, results[0].checkpoint)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        info = {"checkpoint": results[0].checkpoint, "c": repr(ops.c), "eps": repr(ops.eps)}
        modes_.save_modes(path, found, info)
        for f in fields:
            f["modes_file"] = str(path)
    return sum(found.matvecs.values())


def modes_path(target: str, checkpoint: str) -> str:
    """``target`` itself if it names a ``.safetensors`` file (``scan``), else ``target/<stem>.modes.safetensors``
    (a folder: ``audit`` writes one file per checkpoint)."""
    if target.endswith(".safetensors"):
        return target
    return os.path.join(target, f"{Path(checkpoint).stem}.modes.safetensors")
