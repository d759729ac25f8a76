"""The reference of one benchmark problem: ``||A||_2`` of each quantity's operator and, when affordable, the
exact omega, alpha and lead from the dense Jacobian (uncounted matvecs; :mod:`bench.worker` checks against it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from spectral_probe.jacobian import JacobianOperators


def _gram_norm(apply: Callable[[torch.Tensor], torch.Tensor], apply_t: Callable, n: int, seed: int) -> float:
    """``||A||_2`` from ``eigsh(A^T A, which='LM')`` at a loose tolerance (uncounted matvecs)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    def matvec(x: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(1, n)
        return apply_t(apply(v)).reshape(n).numpy()

    start = np.random.default_rng(seed).standard_normal(n)
    value = eigsh(LinearOperator((n, n), matvec=matvec, dtype=np.float64), k=1, which="LM", v0=start, tol=1e-4)[0]
    return math.sqrt(float(value[0]))


def reference(ops: JacobianOperators, dense: bool, seed: int) -> dict[str, Any]:
    """Norms of ``Sym(J_F)``, ``J_F`` and ``M`` and, when ``dense``, the exact omega, alpha and lead."""
    n, eps = ops.n, ops.eps
    if dense:
        eye = torch.eye(n, dtype=ops.dtype)
        jf = ops.dense_jacobian()[0] - (1 + ops.c) * eye
        sym_values = torch.linalg.eigvalsh((jf + jf.T) / 2)
        mu = torch.linalg.eigvals(jf)
        i_alpha = int(torch.argmax(mu.real))
        i_lead = int(torch.argmax((1 + eps * mu).abs()))
        m = eye + eps * jf
        norm_jf = float(torch.linalg.eigvalsh(jf.T @ jf)[-1].clamp_min(0).sqrt())
        norm_m = float(torch.linalg.eigvalsh(m.T @ m)[-1].clamp_min(0).sqrt())
        alpha = complex(mu[i_alpha])
        lead = 1 + eps * complex(mu[i_lead])
        ordered = torch.sort(mu.real, descending=True).values
        moduli = torch.sort((1 + eps * mu).abs(), descending=True).values
        distinct = moduli[moduli < moduli[0] - 1e-9]
        return {
            "kind": "dense",
            "omega": float(sym_values[-1]),
            "omega_gap": float(sym_values[-1] - sym_values[-2]) if n > 1 else None,
            "sym_min": float(sym_values[0]),
            "alpha": [alpha.real, abs(alpha.imag)],
            "lead": [lead.real, abs(lead.imag)],
            "rho": abs(lead),
            "second_real": float(ordered[2]) if n > 2 else None,
            "second_modulus": float(distinct[0]) if distinct.numel() else None,
            "norm_sym": float(sym_values.abs().max()),
            "norm_jf": norm_jf,
            "norm_m": norm_m,
        }
    return {
        "kind": "none",
        "norm_sym": _gram_norm(ops.sym, ops.sym, n, seed + 1),
        "norm_jf": _gram_norm(ops.jf, ops.jf_t, n, seed + 2),
        "norm_m": _gram_norm(ops.m, ops.m_t, n, seed + 3),
    }


#: The norm each quantity's residual is relative to.
NORM_OF = {"omega": "norm_sym", "alpha": "norm_jf", "rho": "norm_m"}


def scalar(quantity: str, value: complex) -> float:
    """omega, alpha = Re(mu), rho = |lead| from a reported eigenvalue."""
    if quantity == "omega":
        return value.real
    if quantity == "alpha":
        return value.real
    return abs(value)
