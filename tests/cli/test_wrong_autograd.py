"""A deliberately wrong autograd rule must be caught and turn the verdict inconclusive."""

import textwrap

import pytest
import torch

from tests.cli.helpers import run_cli, write_checkpoint

PLUGIN = textwrap.dedent(
    '''
    import torch

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

    def make(params, options):
        Tanh.BACKWARD_FACTOR = float(options.get("backward", 1.0))
        Tanh.FORWARD_FACTOR = float(options.get("forward", 1.0))
        w, b = params["W"], params["b"]
        return lambda z: w @ Tanh.apply(z) + b
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


@pytest.mark.parametrize(
    ("options", "caught_by"),
    [({}, None), ({"backward": 1.5}, "adjoint"), ({"forward": 0.5}, "finite differences")],
)
@pytest.mark.parametrize("method", ["dense", "krylov"])
def test_wrong_rule_is_caught(tmp_path, options, caught_by, method) -> None:
    ckpt, operator = _checkpoint(tmp_path, **options)
    code, report, output = run_cli("scan", ckpt, "--operator", operator, "--method", method, "--json", "-")
    assert code == 0, output  # no gate: probing everything is a success
    (r,) = report["results"]
    if caught_by is None:
        assert r["verdict"] != "inconclusive", r["reason"]
        return
    assert r["verdict"] == "inconclusive"
    assert caught_by in r["reason"]
    code, _, _ = run_cli("scan", ckpt, "--operator", operator, "--method", method, "--max-rho", "100")
    assert code == 3  # a gate never passes on a number it could not trust
