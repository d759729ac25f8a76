"""The user-plugin sample: a 2-layer net that only ``--operator`` names (its metadata names no operator)."""

from __future__ import annotations

import math

import numpy as np

from .grid import GRID_BITS, VALUE_BITS, coupling, dyadic, exact_rows_dot, uniform, vmap_math
from .sample import Sample

#: ``--operator`` argument for the plugin sample, relative to the repository root.
PLUGIN_ARG = "sample_checkpoints/plugin/plugin_operator.py:make_force"
#: Gain of the plugin net's second layer: the window where its verdict is ``stable`` with margins
#: (omega >= 0.05 needs a gain >= 0.98, rho <= 0.95 needs a gain <= 1.15).
PLUGIN_GAIN = 1.05


def plugin_example() -> Sample:
    """A user-plugin sample: ``nc_force(z) = W2 tanh(W1 z + b1) + b2`` (n = 32, hidden = 64, float64).

    ``J_nc = W2 diag(1 - tanh(u*)^2) W1`` with ``u* = W1 z* + b1``; ``b2 = (1 + c) z* - W2 tanh(u*)``. The
    weights are random (a small generic 2-layer net); the gain of ``W2`` puts the verdict at ``stable``
    (omega > 0 from the non-normal product, alpha < 0, rho < 1).
    """
    rng = np.random.default_rng(1008)
    n, h, c, eps = 32, 64, 0.0, 1.0
    w1 = dyadic(coupling(rng, (h, n), 1.0 / math.sqrt(n)), GRID_BITS)
    b1 = dyadic(uniform(rng, -0.5, 0.5, h), GRID_BITS)
    w2 = dyadic(coupling(rng, (n, h), PLUGIN_GAIN / math.sqrt(h)), GRID_BITS)
    z = dyadic(uniform(rng, -1.0, 1.0, n), VALUE_BITS)
    u = w1 @ z + b1  # exact: few-bit dyadic operands
    b2 = (1.0 + c) * z - exact_rows_dot(w2, vmap_math(math.tanh, u))
    return Sample(
        "plugin/plugin_example.safetensors",
        None,
        "plugin",
        c,
        eps,
        {"activation": "tanh"},
        {"W1": w1, "b1": b1, "W2": w2, "b2": b2, "z_star": z},
        ["stable"],
        "A 2-layer tanh net nc_force(z) = W2 tanh(W1 z + b1) + b2 (n = 32, hidden = 64, float64) for the "
        f"user plugin sample_checkpoints/plugin/plugin_operator.py. Its metadata names no operator: pass "
        f"--operator {PLUGIN_ARG}.",
        manifest_extra={"operator_arg": PLUGIN_ARG},
    )
