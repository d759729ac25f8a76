"""The built-in operator families: formulas, shape validation, dtype/device genericity, vmap."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as nnf

from spectral_probe.errors import InputError
from spectral_probe.operators import (
    build_nc_force,
    check_nc_force,
    operator_size,
    registered_operators,
    resolve_operator,
)

F64 = torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _build(name: str, params: dict, options: dict | None = None):
    factory, label = resolve_operator(name)
    return build_nc_force(factory, params, options or {}, "model.safetensors", name=label)


def conv_params(c: int = 2, hidden: int = 3, h: int = 3, w: int = 4, dtype=F64) -> dict:
    return {
        "conv1_weight": 0.3 * _randn(hidden, c, 3, 3, seed=1, dtype=dtype),
        "conv1_bias": _randn(hidden, seed=2, dtype=dtype),
        "conv2_weight": 0.3 * _randn(c, hidden, 3, 3, seed=3, dtype=dtype),
        "conv2_bias": _randn(c, seed=4, dtype=dtype),
        "b": _randn(c, h, w, seed=5, dtype=dtype),
    }


# ----------------------------------------------------------------------------------------------
# Formulas


def test_linear_formula_with_and_without_bias() -> None:
    a, b, z = _randn(4, 4, seed=1), _randn(4, seed=2), _randn(4, seed=3)
    assert torch.allclose(_build("linear", {"A": a, "b": b})(z), a @ z + b)
    assert torch.allclose(_build("linear", {"A": a})(z), a @ z)


@pytest.mark.parametrize(
    ("activation", "act"),
    [
        (None, torch.tanh),
        ("tanh", torch.tanh),
        ("sigmoid", torch.sigmoid),
        ("relu", torch.relu),
        ("softplus", nnf.softplus),
    ],
)
def test_hopfield_and_rnn_formulas(activation, act) -> None:
    w, b, z = _randn(5, 5, seed=1), _randn(5, seed=2), _randn(5, seed=3)
    options = {} if activation is None else {"activation": activation}
    assert torch.allclose(_build("hopfield", {"W": w, "b": b}, options)(z), w @ act(z) + b)
    assert torch.allclose(_build("rnn", {"W": w, "b": b}, options)(z), act(w @ z + b))
    assert torch.allclose(_build("rnn", {"W": w}, options)(z), act(w @ z))


def test_conv_formula_matches_conv2d_modules() -> None:
    params = conv_params()
    nc_force = _build("conv", params, {"activation": "tanh"})
    conv1 = torch.nn.Conv2d(2, 3, 3, padding=1).double()
    conv2 = torch.nn.Conv2d(3, 2, 3, padding=1).double()
    with torch.no_grad():
        conv1.weight.copy_(params["conv1_weight"])
        conv1.bias.copy_(params["conv1_bias"])
        conv2.weight.copy_(params["conv2_weight"])
        conv2.bias.copy_(params["conv2_bias"])
        z = _randn(2, 3, 4, seed=9)
        expected = conv2(torch.tanh(conv1(z.unsqueeze(0)))).squeeze(0) + params["b"]
    out = nc_force(z.reshape(-1))
    assert out.shape == (24,)
    assert torch.allclose(out, expected.reshape(-1))
    assert operator_size(nc_force) == 24


def test_conv_shape_from_options_or_flat_bias() -> None:
    params = conv_params()
    flat = dict(params, b=params["b"].reshape(-1))
    z = _randn(24, seed=7)
    reference = _build("conv", params)(z)
    assert torch.allclose(_build("conv", flat, {"height": 3, "width": 4})(z), reference)
    assert torch.allclose(_build("conv", flat, {"height": 3})(z), reference)
    assert torch.allclose(_build("conv", flat, {"width": "4", "channels": 2})(z), reference)
    no_bias = {k: v for k, v in params.items() if k != "b"}
    nc_force = _build("conv", no_bias, {"height": 3, "width": 4})
    assert operator_size(nc_force) == 24
    assert torch.allclose(nc_force(z), reference - params["b"].reshape(-1))


def test_conv_accepts_odd_kernels_other_than_three() -> None:
    params = {
        "conv1_weight": _randn(3, 2, 5, 5, seed=1),
        "conv2_weight": _randn(2, 3, 1, 1, seed=2),
    }
    nc_force = _build("conv", params, {"height": 4, "width": 4})
    assert nc_force(_randn(32, seed=3)).shape == (32,)


def test_operator_size_is_declared() -> None:
    assert operator_size(_build("linear", {"A": _randn(6, 6)})) == 6
    assert operator_size(_build("hopfield", {"W": _randn(3, 3)})) == 3
    assert operator_size(lambda z: z) is None


# ----------------------------------------------------------------------------------------------
# Validation: one InputError naming the file


@pytest.mark.parametrize(
    ("name", "params", "options", "message"),
    [
        ("linear", {}, {}, "missing parameter 'A'"),
        ("linear", {"A": _randn(3, 4)}, {}, "square matrix"),
        ("linear", {"A": _randn(3, 3), "b": _randn(4)}, {}, "'b' must have shape [3]"),
        ("linear", {"A": torch.ones(3, 3, dtype=torch.int64)}, {}, "floating"),
        ("linear", {"A": _randn(3, 3)}, {"activation": "tanh"}, "unknown option(s) activation"),
        ("hopfield", {"A": _randn(3, 3)}, {}, "missing parameter 'W'"),
        ("hopfield", {"W": _randn(3, 3)}, {"activation": "gelu"}, "unknown activation 'gelu'"),
        ("rnn", {"W": _randn(3, 3)}, {"activaton": "relu"}, "unknown option(s) activaton"),
        ("rnn", {"W": _randn(3)}, {}, "square matrix"),
        ("conv", {"conv1_weight": _randn(3, 2, 3, 3)}, {}, "missing parameter 'conv2_weight'"),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 4, 3, 3)},
            {"height": 2, "width": 2},
            "conv2_weight' must be [2, 3, k, k]",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 2, 2), "conv2_weight": _randn(2, 3, 2, 2)},
            {"height": 2, "width": 2},
            "odd kernel",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3), "conv2_weight": _randn(2, 3, 3, 3)},
            {"height": 2, "width": 2},
            "[out, in, k, k]",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3)},
            {},
            "needs options height and width",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3), "b": _randn(24)},
            {},
            "cannot tell H and W",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3), "b": _randn(3, 3, 4)},
            {},
            "'b' must be [2, H, W]",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3), "b": _randn(2, 3, 4)},
            {"height": 5},
            "option height = 5",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3)},
            {"height": 2, "width": 2, "channels": 3},
            "option channels = 3",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3)},
            {"height": -2, "width": 2},
            "positive integer",
        ),
        (
            "conv",
            {"conv1_weight": _randn(3, 2, 3, 3), "conv2_weight": _randn(2, 3, 3, 3), "conv1_bias": _randn(2)},
            {"height": 2, "width": 2},
            "'conv1_bias' must have shape [3]",
        ),
    ],
)
def test_bad_parameters_are_input_errors(name, params, options, message) -> None:
    with pytest.raises(InputError) as info:
        _build(name, params, options)
    assert info.value.path == "model.safetensors"
    assert message in str(info.value)
    assert f"operator '{name}'" in str(info.value)
    assert "\n" not in str(info.value)


def test_check_nc_force_catches_shape_mismatch_with_z_star() -> None:
    nc_force = _build("linear", {"A": _randn(4, 4)})
    with pytest.raises(InputError, match="model.safetensors: operator 'linear' failed on z_star"):
        check_nc_force(nc_force, _randn(5), "model.safetensors", name="linear")
    out = check_nc_force(nc_force, _randn(4), "model.safetensors", name="linear")
    assert out.shape == (4,)


# ----------------------------------------------------------------------------------------------
# Genericity: dtype, device, vmap, torch.func


def _families(dtype, device):
    w = _randn(5, 5, seed=1, dtype=dtype).to(device)
    b = _randn(5, seed=2, dtype=dtype).to(device)
    conv = {k: v.to(device) for k, v in conv_params(dtype=dtype).items()}
    return [
        ("linear", {"A": w, "b": b}, {}, 5),
        ("hopfield", {"W": w, "b": b}, {"activation": "softplus"}, 5),
        ("rnn", {"W": w, "b": b}, {"activation": "sigmoid"}, 5),
        ("conv", conv, {}, 24),
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_families_follow_dtype_and_device_and_vmap(dtype, device) -> None:
    for name, params, options, n in _families(dtype, device):
        nc_force = _build(name, params, options)
        z = _randn(3, 2, n, seed=11, dtype=dtype).to(device)
        batched = torch.func.vmap(torch.func.vmap(nc_force))(z)
        assert batched.dtype == dtype and batched.device.type == device, name
        looped = torch.stack([torch.stack([nc_force(zz) for zz in row]) for row in z])
        assert torch.allclose(batched, looped, rtol=1e-5, atol=1e-6), name
        jac = torch.func.vmap(torch.func.jacrev(nc_force))(z[:, 0])
        jac_fwd = torch.func.vmap(torch.func.jacfwd(nc_force))(z[:, 0])
        assert jac.shape == (3, n, n)
        assert torch.allclose(jac, jac_fwd, rtol=1e-5, atol=1e-6), name


def test_registered_operators_describe_builtins() -> None:
    infos = registered_operators()
    assert list(infos)[:4] == ["linear", "hopfield", "rnn", "conv"]
    for name in ("linear", "hopfield", "rnn", "conv"):
        info = infos[name]
        assert info.name == name and info.source == "built-in" and info.error is None
        assert "nc_force(z)" in info.summary
    assert set(infos["linear"].params) == {"A", "b"}
    assert "tanh (default)" in infos["hopfield"].options["activation"]
    assert {"conv1_weight", "conv2_weight", "b"} <= set(infos["conv"].params)
    assert {"channels", "height", "width", "activation"} == set(infos["conv"].options)
