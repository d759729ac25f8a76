"""The built-in operator families (docs/SPEC.md section 4): ``linear``, ``hopfield``, ``rnn`` and ``conv``.

A family is a factory ``factory(params, options) -> nc_force`` where ``nc_force`` maps ONE state
``z`` of shape ``[n]`` to ``[n]``. The returned function uses only batchable torch ops (no ``.item()``,
no in-place updates of its input, no data-dependent Python control flow) so the Jacobian module can
``torch.func.vmap`` it over fixed points and vectors and differentiate it with ``torch.func``. It
creates no tensor of its own: device and dtype come from ``params`` and ``z``, so the same factory
serves float32/float64 on CPU and CUDA.

Factories validate shapes and options and raise ``ValueError`` with a one-line message;
:func:`spectral_probe.operators.build_nc_force` turns that into an ``InputError`` naming the file.
Each factory carries ``summary``, ``params`` and ``options`` attributes, shown by
``spectral-probe operators``. The returned ``nc_force`` carries ``n``, the state size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as nnf
from torch import Tensor

Activation = Callable[[Tensor], Tensor]

ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "softplus": nnf.softplus,
}
DEFAULT_ACTIVATION = "tanh"
_ACTIVATION_HELP = f"{DEFAULT_ACTIVATION} (default) | " + " | ".join(
    name for name in ACTIVATIONS if name != DEFAULT_ACTIVATION
)

BUILTINS: dict[str, Callable[[Mapping[str, Tensor], dict], Callable[[Tensor], Tensor]]] = {}


def _family(name: str, summary: str, params: dict[str, str], options: dict[str, str]) -> Callable:
    """Register a factory under ``name`` with the help text ``spectral-probe operators`` lists."""

    def register(factory: Callable) -> Callable:
        factory.summary = summary
        factory.params = params
        factory.options = options
        BUILTINS[name] = factory
        return factory

    return register


# --------------------------------------------------------------------------------------------------
# Validation helpers: one-line ValueErrors, the caller adds the file name.


def _check_options(options: Mapping[str, Any], allowed: tuple[str, ...], family: str) -> None:
    # A typo such as "activaton" would otherwise silently fall back to the default.
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) if allowed else "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for operator '{family}' (valid: {valid})")


def _activation(options: Mapping[str, Any]) -> Activation:
    name = options.get("activation", DEFAULT_ACTIVATION)
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (valid: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name.lower()]


def _int_option(options: Mapping[str, Any], key: str) -> int | None:
    value = options.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"option '{key}' must be a positive integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"option '{key}' must be a positive integer, got {value!r}")
    return value


def _tensor(params: Mapping[str, Tensor], key: str, *, required: bool = True) -> Tensor | None:
    if key not in params:
        if required:
            present = ", ".join(sorted(params)) or "none"
            raise ValueError(f"missing parameter '{key}' (tensors present: {present})")
        return None
    value = params[key]
    if not isinstance(value, Tensor):
        raise ValueError(f"parameter '{key}' must be a tensor, got {type(value).__name__}")
    if not value.is_floating_point():
        raise ValueError(f"parameter '{key}' must be a floating tensor, got dtype {value.dtype}")
    return value


def _square(params: Mapping[str, Tensor], key: str) -> Tensor:
    weight = _tensor(params, key)
    assert weight is not None
    if weight.ndim != 2 or weight.shape[0] != weight.shape[1] or weight.shape[0] == 0:
        raise ValueError(f"parameter '{key}' must be a square matrix [n, n], got shape {list(weight.shape)}")
    return weight


def _bias(params: Mapping[str, Tensor], n: int, key: str = "b") -> Tensor | None:
    bias = _tensor(params, key, required=False)
    if bias is not None and tuple(bias.shape) != (n,):
        raise ValueError(f"parameter '{key}' must have shape [{n}], got {list(bias.shape)}")
    return bias


def _with_size(nc_force: Callable[[Tensor], Tensor], n: int) -> Callable[[Tensor], Tensor]:
    nc_force.n = n  # read by operators.operator_size: lets the caller check z* before any call
    return nc_force


def _matrix_and_bias(params: Mapping[str, Tensor], key: str) -> tuple[Tensor, Tensor | None]:
    """The square matrix ``params[key]`` ``[n, n]`` and the optional bias ``params["b"]`` ``[n]``."""
    weight = _square(params, key)
    return weight, _bias(params, weight.shape[0])


def _activated(
    params: Mapping[str, Tensor], options: Mapping[str, Any], family: str
) -> tuple[Activation, Tensor, Tensor | None]:
    """``(act, W, b)`` of a family with one square matrix ``W`` and the option ``activation`` only."""
    _check_options(options, ("activation",), family)
    act = _activation(options)
    return (act, *_matrix_and_bias(params, "W"))


def _plus(out: Tensor, bias: Tensor | None) -> Tensor:
    """``out + bias``, or ``out`` where there is no bias."""
    return out if bias is None else out + bias


# --------------------------------------------------------------------------------------------------
# Families: @_family(name, summary, params, options), the help text of ``spectral-probe operators``

_BIAS_HELP = "[n] bias (optional, default 0)"
_ACTIVATION_ONLY = {"activation": _ACTIVATION_HELP}


@_family("linear", "nc_force(z) = A z + b", {"A": "[n, n] matrix", "b": _BIAS_HELP}, {})
def linear(params: Mapping[str, Tensor], options: dict) -> Callable[[Tensor], Tensor]:
    """``nc_force(z) = A z + b``; ``J_nc = A``."""
    _check_options(options, (), "linear")
    weight, bias = _matrix_and_bias(params, "A")

    def nc_force(z: Tensor) -> Tensor:
        return _plus(weight @ z, bias)

    return _with_size(nc_force, weight.shape[0])


@_family("hopfield", "nc_force(z) = W act(z) + b", {"W": "[n, n] coupling matrix", "b": _BIAS_HELP}, _ACTIVATION_ONLY)
def hopfield(params: Mapping[str, Tensor], options: dict) -> Callable[[Tensor], Tensor]:
    """``nc_force(z) = W act(z) + b``; ``J_nc = W diag(act'(z*))``."""
    act, weight, bias = _activated(params, options, "hopfield")
    return _with_size(lambda z: _plus(weight @ act(z), bias), weight.shape[0])


@_family("rnn", "nc_force(z) = act(W z + b)", {"W": "[n, n] recurrent matrix", "b": _BIAS_HELP}, _ACTIVATION_ONLY)
def rnn(params: Mapping[str, Tensor], options: dict) -> Callable[[Tensor], Tensor]:
    """``nc_force(z) = act(W z + b)``; ``J_nc = diag(act'(W z* + b)) W``."""
    act, weight, bias = _activated(params, options, "rnn")
    return _with_size(lambda z: act(_plus(weight @ z, bias)), weight.shape[0])


@_family(
    "conv",
    summary=(
        "nc_force(z) = conv2(act(conv1(z))) + b on a state [C, H, W] flattened to n = C*H*W "
        "(the cell of a convolutional deep equilibrium model; 'same' padding)"
    ),
    params={
        "conv1_weight": "[C_hidden, C, k, k] kernel, k odd",
        "conv1_bias": "[C_hidden] (optional)",
        "conv2_weight": "[C, C_hidden, k, k] kernel, k odd",
        "conv2_bias": "[C] (optional)",
        "b": "[C, H, W] or [n] injection (optional; as [C, H, W] it gives H and W)",
    },
    options={
        "channels": "C (optional: read from conv1_weight)",
        "height": "H (required unless b is [C, H, W] or width is given)",
        "width": "W (required unless b is [C, H, W] or height is given)",
        "activation": _ACTIVATION_HELP,
    },
)
def conv(params: Mapping[str, Tensor], options: dict) -> Callable[[Tensor], Tensor]:
    """``nc_force(z) = conv2(act(conv1(z))) + b`` with ``z`` viewed as ``[C, H, W]``, padding ``k // 2``."""
    _check_options(options, ("channels", "height", "width", "activation"), "conv")
    act = _activation(options)
    w1 = _tensor(params, "conv1_weight")
    w2 = _tensor(params, "conv2_weight")
    assert w1 is not None and w2 is not None
    for key, weight in (("conv1_weight", w1), ("conv2_weight", w2)):
        if weight.ndim != 4:
            raise ValueError(f"parameter '{key}' must be [out, in, k, k], got shape {list(weight.shape)}")
        if weight.shape[-1] % 2 == 0 or weight.shape[-2] % 2 == 0:
            # An even kernel has no 'same' padding: the state would change size.
            raise ValueError(f"parameter '{key}' must have an odd kernel size, got shape {list(weight.shape)}")
    hidden, channels = int(w1.shape[0]), int(w1.shape[1])
    if tuple(w2.shape[:2]) != (channels, hidden):
        raise ValueError(
            f"parameter 'conv2_weight' must be [{channels}, {hidden}, k, k] to match conv1_weight "
            f"{list(w1.shape)}, got {list(w2.shape)}"
        )
    declared = _int_option(options, "channels")
    if declared is not None and declared != channels:
        raise ValueError(f"option channels = {declared} but conv1_weight has {channels} input channels")
    b1 = _tensor(params, "conv1_bias", required=False)
    if b1 is not None and tuple(b1.shape) != (hidden,):
        raise ValueError(f"parameter 'conv1_bias' must have shape [{hidden}], got {list(b1.shape)}")
    b2 = _tensor(params, "conv2_bias", required=False)
    if b2 is not None and tuple(b2.shape) != (channels,):
        raise ValueError(f"parameter 'conv2_bias' must have shape [{channels}], got {list(b2.shape)}")

    height, width = _int_option(options, "height"), _int_option(options, "width")
    bias = _tensor(params, "b", required=False)
    if bias is not None and bias.ndim == 3:
        if bias.shape[0] != channels:
            raise ValueError(f"parameter 'b' must be [{channels}, H, W], got {list(bias.shape)}")
        for key, given, stored in (("height", height, bias.shape[1]), ("width", width, bias.shape[2])):
            if given is not None and given != stored:
                raise ValueError(f"option {key} = {given} but 'b' has shape {list(bias.shape)}")
        height, width = int(bias.shape[1]), int(bias.shape[2])
    elif bias is not None and bias.ndim == 1:
        pixels, rest = divmod(int(bias.shape[0]), channels)
        if rest or pixels == 0:
            raise ValueError(f"parameter 'b' has {bias.shape[0]} entries, not a multiple of C = {channels}")
        if height is None and width is not None and pixels % width == 0:
            height = pixels // width
        elif width is None and height is not None and pixels % height == 0:
            width = pixels // height
        if height is None or width is None or height * width != pixels:
            raise ValueError(
                f"cannot tell H and W from 'b' of shape {list(bias.shape)} (C = {channels}): give options "
                "height and width, or store b as [C, H, W]"
            )
    elif bias is not None:
        raise ValueError(f"parameter 'b' must be [C, H, W] or [n], got shape {list(bias.shape)}")
    if height is None or width is None:
        raise ValueError("the conv operator needs options height and width (or a bias 'b' of shape [C, H, W])")

    n = channels * height * width
    flat_bias = None if bias is None else bias.reshape(n)
    pad1 = (int(w1.shape[-2]) // 2, int(w1.shape[-1]) // 2)
    pad2 = (int(w2.shape[-2]) // 2, int(w2.shape[-1]) // 2)

    def nc_force(z: Tensor) -> Tensor:
        image = z.reshape(1, channels, height, width)
        hidden_state = act(nnf.conv2d(image, w1, b1, padding=pad1))
        out = nnf.conv2d(hidden_state, w2, b2, padding=pad2).reshape(n)
        return out if flat_bias is None else out + flat_bias

    # The hidden activation [C_hidden, H, W] is what one evaluation allocates: checked before any call.
    nc_force.workspace = hidden * height * width
    return _with_size(nc_force, n)
