"""A deliberately wrong autograd rule must be caught and turn the verdict inconclusive."""

import textwrap

import numpy as np
import pytest
import torch

from tests.cli.helpers import run_cli, write_checkpoint

PLUGIN = textwrap.dedent(
    '''
    import torch
    from torch.autograd.function import once_differentiable

    class Tanh(torch.autograd.Function):
        """tanh whose backward (vjp) or forward-mode (jvp) rule is off by a factor."""
        generate_vmap_rule = True
        BACKWARD_FACTOR = 1.0
        FORWARD_FACTOR = 1.0

        @staticmethod
        def forward(x):
            return torch.tanh(x)

        @staticmethod
        def setup_context(ctx, inputs, output):
            ctx.save_for_backward(output)
            ctx.save_for_forward(output)

        @staticmethod
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * (1 - y * y) * Tanh.BACKWARD_FACTOR

        @staticmethod
        def jvp(ctx, tangent):
            (y,) = ctx.saved_tensors
            return tangent * (1 - y * y) * Tanh.FORWARD_FACTOR

    class TanhOnce(Tanh):
        """The same rules, but the backward cannot be differentiated: J v falls back to forward mode."""

        @staticmethod
        @once_differentiable
        def backward(ctx, grad):
            (y,) = ctx.saved_tensors
            return grad * (1 - y * y) * Tanh.BACKWARD_FACTOR

    def make(params, options):
        Tanh.BACKWARD_FACTOR = float(options.get("backward", 1.0))
        Tanh.FORWARD_FACTOR = float(options.get("forward", 1.0))
        act = TanhOnce if options.get("once") else Tanh
        w, b = params["W"], params["b"]
        return lambda z: w @ act.apply(z) + b
    '''
)


def _checkpoint(tmp_path, **options):
    gen = torch.Generator().manual_seed(1)
    n = 10
    w = torch.randn(n, n, generator=gen, dtype=torch.float64) * 0.3
    z = torch.randn(n, generator=gen, dtype=torch.float64) * 0.5
    b = z - w @ torch.tanh(z)
    plugin = tmp_path / "bad_rule.py"
    plugin.write_text(PLUGIN)
    ckpt = write_checkpoint(tmp_path / "m.safetensors", {"W": w, "b": b, "z_star": z}, options=options)
    return ckpt, f"{plugin}:make"


def _true_rho(ckpt) -> float:
    """rho of M = I + eps J_F from the stored tensors by numpy (c = 0, eps = 1: the defaults)."""
    from safetensors.numpy import load_file

    t = load_file(str(ckpt))
    j_nc = t["W"] * (1 - np.tanh(t["z_star"]) ** 2)[None, :]
    return float(np.abs(np.linalg.eigvals(j_nc)).max())  # M = I + (J_nc - I) = J_nc


@pytest.mark.parametrize(
    ("options", "caught_by"),
    [
        ({}, None),
        # the Krylov J v is the transpose of the vjp: a wrong backward rule is wrong in both products
        ({"backward": 1.5}, "finite differences"),
        # a wrong forward-mode rule is on no product of the default path: the numbers stay right
        ({"forward": 0.5}, None),
        # a backward that cannot be differentiated: J v by forward mode, refereed the same way
        ({"once": 1}, None),
        ({"once": 1, "forward": 0.5}, "finite differences"),
        ({"once": 1, "backward": 1.5}, "adjoint"),
    ],
)
@pytest.mark.parametrize("method", ["dense", "krylov"])
def test_wrong_rule_is_caught(tmp_path, options, caught_by, method) -> None:
    ckpt, operator = _checkpoint(tmp_path, **options)
    code, report, output = run_cli("scan", ckpt, "--operator", operator, "--method", method, "--json", "-")
    assert code == 0, output  # no gate: probing everything is a success
    (r,) = report["results"]
    assert any("forward mode" in note for note in r["notes"]) == bool(options.get("once"))
    if caught_by is None:
        assert r["verdict"] != "inconclusive", r["reason"]
        assert r["rho"] == pytest.approx(_true_rho(ckpt), rel=1e-8)
        return
    assert r["verdict"] == "inconclusive"
    assert caught_by in r["reason"]
    code, _, _ = run_cli("scan", ckpt, "--operator", operator, "--method", method, "--max-rho", "100")
    assert code == 3  # a gate never passes on a number it could not trust
