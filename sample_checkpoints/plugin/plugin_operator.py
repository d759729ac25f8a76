"""Example user plugin for ``spectral-probe``: a 2-layer tanh network as the non-conservative force.

    nc_force(z) = W2 act(W1 z + b1) + b2,        J_nc = W2 diag(act'(W1 z + b1)) W1

with ``W1`` [h, n], ``b1`` [h], ``W2`` [n, h], ``b2`` [n]. Use it with the sample checkpoint made for it
(whose metadata deliberately names no operator: a checkpoint never makes the tool import a module)::

    spectral-probe scan sample_checkpoints/plugin_example.safetensors \\
        --operator sample_checkpoints/plugin_operator.py:make_force

The factory follows docs/SPEC.md section 4: ``make_force(params, options)`` gets the checkpoint's tensors (name ->
tensor) and the operator options (a dict, here ``{"activation": "tanh"}``), and returns a function from a
1-D tensor ``[n]`` to a 1-D tensor ``[n]``. The tool batches it itself (``torch.vmap``), so the function
uses only out-of-place, vmap-friendly torch operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


def make_force(
    params: Mapping[str, torch.Tensor], options: Mapping[str, Any]
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Return ``nc_force(z) = W2 act(W1 z + b1) + b2`` built from ``params``."""
    missing = [k for k in ("W1", "b1", "W2", "b2") if k not in params]
    if missing:
        raise ValueError(f"the 2-layer plugin needs tensors W1, b1, W2, b2; missing {missing}")
    w1, b1, w2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    hidden, n = w1.shape
    if b1.shape != (hidden,) or w2.shape != (n, hidden) or b2.shape != (n,):
        raise ValueError(
            f"inconsistent shapes: W1 {tuple(w1.shape)}, b1 {tuple(b1.shape)}, "
            f"W2 {tuple(w2.shape)}, b2 {tuple(b2.shape)}"
        )
    name = str(options.get("activation", "tanh"))
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    act = _ACTIVATIONS[name]

    def nc_force(z: torch.Tensor) -> torch.Tensor:
        return w2 @ act(w1 @ z + b1) + b2

    return nc_force
