"""The dense float64 truth of a sample, from its STORED tensors (numpy only; independent of spectral_probe)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .files import read_sample
from .grid import BAND, COMPLEX_TOL, MARGIN


def _act_and_deriv(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if name == "tanh":
        t = np.tanh(x)
        return t, 1.0 - t * t
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
        return s, s * (1.0 - s)
    raise ValueError(f"unsupported activation {name!r}")


def force_and_jacobian(
    operator: str, params: dict[str, np.ndarray], options: dict[str, Any], z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``nc_force(z)`` and its dense Jacobian ``J_nc`` in float64 (``operator`` "plugin" = 2-layer net)."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    act = options.get("activation", "tanh")
    if operator == "linear":
        a = p["A"]
        return a @ z + p.get("b", 0.0), a
    if operator == "hopfield":
        w = p["W"]
        s, ds = _act_and_deriv(act, z)
        return w @ s + p.get("b", 0.0), w * ds[None, :]
    if operator == "rnn":
        w = p["W"]
        s, ds = _act_and_deriv(act, w @ z + p.get("b", 0.0))
        return s, ds[:, None] * w
    if operator == "plugin":  # sample_checkpoints/plugin/plugin_operator.py: W2 act(W1 z + b1) + b2
        s, ds = _act_and_deriv(act, p["W1"] @ z + p["b1"])
        return p["W2"] @ s + p["b2"], p["W2"] @ (ds[:, None] * p["W1"])
    raise ValueError(operator)


def _partner_excluded(values: np.ndarray, idx: int) -> np.ndarray:
    """Mask of all eigenvalues except ``values[idx]`` and (for a complex one) its conjugate partner."""
    keep = np.ones(values.size, dtype=bool)
    keep[idx] = False
    if values[idx].imag != 0.0:
        dist = np.abs(values - np.conj(values[idx]))
        dist[idx] = np.inf
        keep[int(np.argmin(dist))] = False
    return keep


def verdict(rho: float, lead: complex, mu_lead: complex, omega: float, band: float = BAND) -> str:
    """docs/SPEC.md section 2."""
    if rho < 1.0 - band:
        return "contractive" if omega < 0.0 else "stable"
    if abs(rho - 1.0) <= band:
        return "marginal"
    if abs(lead.imag) > COMPLEX_TOL * max(1.0, rho):
        return "hopf" if mu_lead.real > 0.0 else "neimark-sacker"
    return "saddle" if lead.real > 1.0 else "flip"


def spectral_numbers(lam: np.ndarray, eps: float) -> dict[str, Any]:
    """alpha, rho, lead, mu_lead and separations from the eigenvalues ``lam`` of ``J_F``.

    Conjugate pairs are reported by the member with ``im >= 0``. ``*_separation`` is how far the reported
    eigenvalue stands from the next one that is not its conjugate (in ``|.|`` for ``M``, in real part for
    ``J_F``): a Krylov solver can only be expected to agree on ``lead``/``alpha`` when it is not tiny.
    """
    lam = np.asarray(lam, dtype=np.complex128)
    ia = int(np.lexsort((-lam.imag, -lam.real))[0])  # rightmost, im >= 0 member of a pair
    rest = lam[_partner_excluded(lam, ia)].real
    m = 1.0 + eps * lam
    mod = np.abs(m)
    im_ = int(np.lexsort((-m.imag, -mod))[0])
    rest_mod = mod[_partner_excluded(m, im_)]
    rho = float(mod[im_])
    lead = complex(m[im_].real, abs(m[im_].imag))
    mu = (lead - 1.0) / eps
    return {
        "alpha": float(lam[ia].real),
        "alpha_imag": float(abs(lam[ia].imag)),
        "rho": rho,
        "lead_real": lead.real,
        "lead_imag": lead.imag,
        "mu_lead_real": mu.real,
        "mu_lead_imag": mu.imag,
        "lead_separation": float(rho - rest_mod.max()) if rest_mod.size else math.inf,
        "alpha_separation": float(lam[ia].real - rest.max()) if rest.size else math.inf,
    }


def dense_truth(j_f: np.ndarray, eps: float) -> dict[str, Any]:
    """omega, alpha, rho, lead ... and the verdict of ``J_F`` by dense float64 ``numpy.linalg``."""
    omega = float(np.linalg.eigvalsh(0.5 * (j_f + j_f.T))[-1])
    nums = spectral_numbers(np.linalg.eigvals(j_f), eps)
    lead = complex(nums["lead_real"], nums["lead_imag"])
    mu = complex(nums["mu_lead_real"], nums["mu_lead_imag"])
    return {
        "omega": omega,
        **nums,
        "gap": omega - nums["alpha"],
        "verdict": verdict(nums["rho"], lead, mu, omega),
    }


def truth_of_file(path: Path, operator: str) -> list[dict[str, Any]]:
    """Per fixed point (row of ``z_star``): dense truth and fixed-point residuals from the stored tensors.

    The residuals are evaluated in float64 from the stored (possibly float32) tensors, so for the float32
    samples they measure the rounding of the stored bias, the only error left by the construction.
    """
    tensors, md = read_sample(path)
    c = float(md.get("spectral_probe.c", "0"))
    eps = float(md.get("spectral_probe.eps", "1"))
    options = json.loads(md.get("spectral_probe.options", "{}"))
    params = {k: v for k, v in tensors.items() if k != "z_star"}
    zs = np.atleast_2d(tensors["z_star"].astype(np.float64))
    out = []
    for index, z in enumerate(zs):
        force, j_nc = force_and_jacobian(operator, params, options, z)
        resid = float(np.linalg.norm(force - (1.0 + c) * z))
        znorm = float(np.linalg.norm(z))
        scale = float(np.linalg.norm(force)) + (1.0 + c) * znorm
        row = {"index": index, **dense_truth(j_nc - (1.0 + c) * np.eye(z.size), eps)}
        row["residual_norm"] = resid  # ||F(z*)||_2
        row["residual_rel"] = resid / znorm if znorm > 0.0 else None  # ||F(z*)|| / ||z*||
        # normwise backward error ||F|| / (||nc_force(z*)|| + (1 + c) ||z*||)
        row["backward_error"] = resid / scale if scale > 0.0 else 0.0
        out.append(row)
    return out


def assert_region(row: dict[str, Any], expected: str, name: str) -> None:
    """The row gets ``expected`` with at least ``MARGIN`` to every boundary that decides it."""
    where = f"{name}[{row['index']}]"
    assert row["verdict"] == expected, (where, row["verdict"], expected)
    assert row["lead_imag"] == 0.0 or row["lead_imag"] >= MARGIN, (where, "lead neither real nor complex")
    rho, mu = row["rho"], row["mu_lead_real"]
    if expected in ("contractive", "stable"):
        assert rho <= 1.0 - MARGIN, (where, rho)
        assert (row["omega"] <= -MARGIN) if expected == "contractive" else (row["omega"] >= MARGIN), where
        return
    assert rho >= 1.0 + MARGIN and row["lead_separation"] >= MARGIN, (where, rho, row["lead_separation"])
    if expected == "hopf":
        assert mu >= MARGIN, (where, mu)
    elif expected == "neimark-sacker":
        assert mu <= -MARGIN and row["alpha"] <= -MARGIN, (where, mu)
    elif expected == "saddle":
        assert row["lead_real"] >= 1.0 + MARGIN, where
    elif expected == "flip":
        assert row["lead_real"] <= -1.0 - MARGIN, where
