"""Operator weights from a designed Jacobian: Jacobian first, weights second, bias last."""

from __future__ import annotations

import math

import numpy as np

from .grid import VALUE_BITS, dyadic, exact_rows_dot, sigmoid, uniform, vmap_math


def hopfield_from_jacobian(
    rng: np.random.Generator, j_nc: np.ndarray, c: float, activation: str, dtype: type[np.floating]
) -> dict[str, np.ndarray]:
    """``W act(z) + b`` with ``W diag(act'(z*)) = J_nc`` and ``F(z*) = 0``.

    The activation values ``s = act(z*)`` are drawn on a dyadic grid so that ``act'(z*)`` (``1 - s^2`` for
    tanh, ``s (1 - s)`` for sigmoid) is exact; ``z* = act^-1(s)`` is rounded to ``dtype`` and the bias is
    solved from the STORED ``W`` and ``z*``: ``b = (1 + c) z* - W act(z*)`` (one rounding to ``dtype``).
    """
    n = j_nc.shape[0]
    if activation == "tanh":
        s = dyadic(uniform(rng, -0.85, 0.85, n), VALUE_BITS)
        deriv = 1.0 - s * s
        z = vmap_math(math.atanh, s)
        act = math.tanh
    elif activation == "sigmoid":
        s = dyadic(uniform(rng, 0.1, 0.9, n), VALUE_BITS)
        deriv = s * (1.0 - s)
        z = vmap_math(lambda v: math.log(v / (1.0 - v)), s)
        act = sigmoid
    else:
        raise ValueError(activation)
    w = (j_nc / deriv[None, :]).astype(dtype)
    z = z.astype(dtype)
    z64 = z.astype(np.float64)
    b = ((1.0 + c) * z64 - exact_rows_dot(w, vmap_math(act, z64))).astype(dtype)
    return {"W": w, "b": b, "z_star": z}


def rnn_from_jacobian(rng: np.random.Generator, j_nc: np.ndarray, c: float) -> dict[str, np.ndarray]:
    """``tanh(W z + b)`` with ``diag(1 - y^2) W = J_nc`` and ``b = u* - W z*``.

    ``y = tanh(u*) = (1 + c) z*`` is drawn on a dyadic grid, so ``1 - y^2`` is exact.
    """
    n = j_nc.shape[0]
    y = dyadic(uniform(rng, -0.8, 0.8, n), VALUE_BITS)
    z = y / (1.0 + c)  # exact for the dyadic c used here
    w = j_nc / (1.0 - y * y)[:, None]
    b = vmap_math(math.atanh, y) - exact_rows_dot(w, z)
    return {"W": w, "b": b, "z_star": z}


def linear_from_jacobian(rng: np.random.Generator, j_nc: np.ndarray, c: float) -> dict[str, np.ndarray]:
    """``A z + b`` with ``A = J_nc`` and ``b = (1 + c) z* - A z*``."""
    n = j_nc.shape[0]
    z = dyadic(uniform(rng, -1.0, 1.0, n), VALUE_BITS)
    b = (1.0 + c) * z - exact_rows_dot(j_nc, z)
    return {"A": j_nc.copy(), "b": b, "z_star": z}
