"""The samples whose numbers are known in closed form: four exact fixed points of one net, and n = 2."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .grid import exact_conjugation, hadamard, permutation, random_spectrum, schur_blocks, signs
from .sample import Sample


def _r_of_gain(g: float) -> float:
    """The root ``r > 0`` of ``r / tanh(r) = g`` (``g > 1``) by bisection to the last bit."""
    lo, hi = 1e-12, 64.0
    while True:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            return lo if abs(lo / math.tanh(lo) - g) <= abs(hi / math.tanh(hi) - g) else hi
        if mid / math.tanh(mid) < g:
            lo = mid
        else:
            hi = mid


def batched() -> Sample:
    """hopfield/tanh n=64, b = 0, four exact fixed points ``[z1, -z1, z2, 0]`` (float64).

    ``W = U Lambda U^T`` with ``U = H diag(signs) P / 8`` orthogonal (its columns are +-1/8 vectors) and
    ``Lambda`` block diagonal: ``g1`` on ``u1``, ``g2`` on ``u2``, the pair ``p +- i q`` and a small bulk.
    With ``s_k = 8 u_k`` (entries +-1) and ``z_k = r_k s_k``: ``tanh(z_k) = tanh(r_k) s_k``, so
    ``W tanh(z_k) = g_k tanh(r_k) s_k = (1 + c) z_k`` iff ``r_k / tanh(r_k) = g_k / (1 + c)``; tanh is odd,
    so ``-z_k`` is a fixed point too, and so is 0. At ``z = r s`` (any sign pattern) ``act'(z) = d I`` with
    ``d = sech^2(r)``, hence ``J_F = d W - (1 + c) I`` whose eigenvalues are ``d lambda_k(W) - (1 + c)``;
    ``W`` is normal, so ``omega = d max_k Re lambda_k(W) - (1 + c)`` as well.
    """
    rng = np.random.default_rng(1007)
    n, c, eps = 64, 0.0, 0.5
    g1, g2, p, q = 1.5, 5.0, 1.25, 5.75
    bulk = random_spectrum(rng, n - 4, (), (), (-0.5, 0.3), (-0.4, 0.2), (0.05, 0.4), 10)
    lam = np.zeros((n, n))
    lam[0, 0], lam[1, 1] = g1, g2
    lam[2:4, 2:4] = [[p, q], [-q, p]]
    bulk_t, _ = schur_blocks(rng, bulk)  # block diagonal only: W stays normal
    lam[4:, 4:] = bulk_t
    u_int = (hadamard(n) * signs(rng, n)[None, :])[:, permutation(rng, n)]  # U = u_int / 8
    w = exact_conjugation(u_int, lam, 3)
    s1, s2 = u_int[:, 0], u_int[:, 1]
    if not (np.array_equal(w @ s1, g1 * s1) and np.array_equal(w @ s2, g2 * s2)):
        raise AssertionError("W s_k = g_k s_k must hold exactly")
    r1, r2 = _r_of_gain(g1 / (1.0 + c)), _r_of_gain(g2 / (1.0 + c))
    z = np.stack([r1 * s1, -r1 * s1, r2 * s2, np.zeros(n)])
    w_eigs = np.concatenate([[g1, g2, complex(p, q), complex(p, -q)], bulk.eigenvalues()])
    rows_d = [1.0 - math.tanh(r1) ** 2, 1.0 - math.tanh(r1) ** 2, 1.0 - math.tanh(r2) ** 2, 1.0]

    closed = []
    for d in rows_d:
        mu = d * w_eigs - (1.0 + c)
        m = np.abs(1.0 + eps * mu)
        closed.append(
            {
                "d": d,
                "omega": d * float(w_eigs.real.max()) - (1.0 + c),
                "alpha": float(mu.real.max()),
                "rho": float(m.max()),
            }
        )

    def checks(rows: list[dict[str, Any]]) -> None:
        for row, cf in zip(rows, closed, strict=True):
            for key in ("omega", "alpha", "rho"):
                assert abs(row[key] - cf[key]) <= 1e-9, (row["index"], key, row[key], cf[key])

    sample = Sample(
        "batched.safetensors",
        "hopfield",
        "hopfield",
        c,
        eps,
        {"activation": "tanh"},
        {"W": w, "z_star": z},
        ["saddle", "saddle", "contractive", "hopf"],
        "hopfield/tanh n=64 float64 with NO bias tensor (b = 0) and z_star of shape [4, 64]: rows "
        "[z1, -z1, z2, 0], each an exact fixed point. Row 0 and 1 (+-z1, same Jacobian): saddle (the g2 "
        "direction, lead = 1 + eps (d1 g2 - 1) real). Row 2 (z2, deep in saturation): contractive. Row 3 "
        "(the origin, J_F = W - I): hopf (the pair p +- iq of W).",
        checks,
    )
    sample.manifest_extra["closed_form"] = {
        "formula": (
            "W = U blockdiag(g1, g2, [[p, q], [-q, p]], bulk) U^T (normal); z_k = r_k s_k with "
            "r_k / tanh(r_k) = g_k / (1 + c); at row z = r s: J_F = d W - (1 + c) I, d = sech^2(r) (d = 1 at "
            "0); eigenvalues d lambda(W) - (1 + c); omega = d max Re lambda(W) - (1 + c); "
            "rho = max |1 + eps (d lambda(W) - (1 + c))|"
        ),
        "g1": g1,
        "g2": g2,
        "p": p,
        "q": q,
        "r1": r1,
        "r2": r2,
        "rows": closed,
    }
    return sample


def closed_form_2d() -> Sample:
    """hopfield/tanh n = 2 with eigenvalues in closed form.

    ``z* = (ln 2, 0)``: ``tanh(ln 2) = 3/5`` exactly, so ``act'(z*) = diag(16/25, 1)`` and with
    ``W = [[-1, -10], [1/2, -1]]``, ``c = 0``: ``J_F = [[-1.64, -10], [0.32, -2]]``, trace ``tau = -3.64``,
    determinant ``Delta = 6.48``, eigenvalues ``tau/2 +- i sqrt(Delta - tau^2/4) = -1.82 +- 1.7798i``;
    ``omega = tau/2 + sqrt(((a - d)/2)^2 + ((b + c')/2)^2) = -1.82 + sqrt(0.0324 + 23.4256) = +3.0234``;
    with ``eps = 1/4``: ``lead = 1 + eps mu = 0.545 + 0.44495i``, ``rho = 0.7036``: stable although
    ``omega > 0``. ``b = z* - W (3/5, 0) = (ln 2 + 3/5, -3/10)``.
    """
    c, eps = 0.0, 0.25
    w = np.array([[-1.0, -10.0], [0.5, -1.0]])
    z = np.array([math.log(2.0), 0.0])
    b = (1.0 + c) * z - w @ np.array([0.6, 0.0])
    d1 = 1.0 - 0.6**2
    a11, a12, a21, a22 = w[0, 0] * d1 - (1 + c), w[0, 1], w[1, 0] * d1, w[1, 1] - (1 + c)
    tau, delta = a11 + a22, a11 * a22 - a12 * a21
    im = math.sqrt(delta - tau * tau / 4.0)
    omega = tau / 2.0 + math.hypot((a11 - a22) / 2.0, (a12 + a21) / 2.0)
    lead = complex(1.0 + eps * tau / 2.0, eps * im)
    closed = {
        "formula": (
            "z* = (ln 2, 0), tanh(ln 2) = 3/5, act'(z*) = (16/25, 1); J_F = W diag(16/25, 1) - (1 + c) I = "
            "[[a, b], [c', d]]; tau = a + d, Delta = a d - b c'; lambda = tau/2 +- i sqrt(Delta - tau^2/4); "
            "omega = tau/2 + sqrt(((a - d)/2)^2 + ((b + c')/2)^2); lead = 1 + eps lambda (im >= 0), "
            "rho = |lead|"
        ),
        "J_F": [[a11, a12], [a21, a22]],
        "tau": tau,
        "Delta": delta,
        "omega": omega,
        "alpha": tau / 2.0,
        "alpha_imag": im,
        "rho": abs(lead),
        "lead_real": lead.real,
        "lead_imag": lead.imag,
    }

    def checks(rows: list[dict[str, Any]]) -> None:
        (r,) = rows
        for key in ("omega", "alpha", "alpha_imag", "rho", "lead_real", "lead_imag"):
            assert abs(r[key] - closed[key]) <= 1e-12, (key, r[key], closed[key])

    sample = Sample(
        "closed_form_2d.safetensors",
        "hopfield",
        "hopfield",
        c,
        eps,
        {"activation": "tanh"},
        {"W": w, "b": b, "z_star": z},
        ["stable"],
        "hopfield/tanh n=2 float64 with a closed-form spectrum (see closed_form): a stable spiral whose "
        "omega = +3.02 > 0 (non-normal W), rho = 0.704.",
        checks,
    )
    sample.manifest_extra["closed_form"] = closed
    return sample
