"""The default scan path: no torch._dynamo, no sympy, no forward-mode AD; the routes it falls back to;
and the set-up and check products counted in the probe's matvecs (issue 12, "fast start")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import spectral_probe.jacobian as jacobian_module
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import InputError
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.probe.checks import matvec_checks

ROOT = Path(__file__).resolve().parent.parent
F64 = torch.float64
HEAVY = ("torch._dynamo", "sympy", "torch._decomp.decompositions_for_jvp")
SCAN_THEN_MODULES = """
import json, sys
from spectral_probe.cli import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "modules": {m: m in sys.modules for m in %r}}))
"""


@pytest.mark.parametrize(
    ("sample", "method"),
    [("closed_form_2d.safetensors", "auto"), ("contractive.safetensors", "krylov"), ("hopf.safetensors", "dense")],
)
def test_a_fresh_scan_imports_neither_dynamo_nor_sympy(sample: str, method: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    path = ROOT / "sample_checkpoints" / sample
    command = [sys.executable, "-c", SCAN_THEN_MODULES % (HEAVY,), "scan", str(path), "--quiet", "--method", method]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    last = json.loads(done.stdout.strip().splitlines()[-1])
    assert last["code"] in (0, None), done.stderr
    assert last["modules"] == dict.fromkeys(HEAVY, False)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _closed_form_jacobian(a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``d/dz [A tanh(z)] = A diag(1 - tanh(z)^2)``, one per fixed point ``[B, n, n]``."""
    return a.unsqueeze(0) * (1 - torch.tanh(z) ** 2).unsqueeze(1)


def _apply(j: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bij,bkj->bki", j, v)


@pytest.mark.parametrize("route", ["torch.autograd.grad", "torch.func.grad"])
def test_a_force_that_is_a_gradient(route: str) -> None:
    """``nc_force = -grad E``, by ``torch.autograd.grad`` (create_graph; vmap cannot run it, so the
    products loop) or by ``torch.func.grad``: J v by double backward of a gradient, J^T u, and the plain
    forward-mode route (jvp_forward) on the same force, all equal to minus the closed-form Hessian."""
    n = 6
    s = torch.randn(n, n, generator=_gen(1), dtype=F64)
    sym = 0.5 * (s + s.mT)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ sym @ x + torch.log(torch.cosh(x)).sum()

    def by_autograd(z: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            x = z if z.requires_grad else z.clone().requires_grad_(True)
            (gradient,) = torch.autograd.grad(energy(x), x, create_graph=True)
        return -gradient

    nc_force = by_autograd if route == "torch.autograd.grad" else (lambda z: -torch.func.grad(energy)(z))
    z = torch.randn(2, n, generator=_gen(2), dtype=F64)
    ops = JacobianOperators(nc_force, z)
    assert ops.vectorized == (route == "torch.func.grad")
    truth = -(sym.unsqueeze(0) + torch.diag_embed(1 - torch.tanh(z) ** 2))
    v = torch.randn(2, 3, n, generator=_gen(3), dtype=F64)
    for product in (ops.jvp, ops.vjp, ops.jvp_forward):
        torch.testing.assert_close(product(v), _apply(truth, v), rtol=1e-12, atol=1e-12)


class _NoForwardRule(torch.autograd.Function):
    """``A x`` with a backward and no jvp: forward-mode AD cannot run it."""

    @staticmethod
    def forward(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return x @ a.mT

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (a,) = ctx.saved_tensors
        return grad @ a, None


def test_an_op_without_a_forward_rule_runs_on_the_default_path() -> None:
    n = 5
    a = torch.randn(n, n, generator=_gen(4), dtype=F64)
    z = torch.randn(2, n, generator=_gen(5), dtype=F64)
    ops = JacobianOperators(lambda x: _NoForwardRule.apply(torch.tanh(x), a), z)
    v = torch.randn(2, 2, n, generator=_gen(6), dtype=F64)
    truth = _closed_form_jacobian(a, z)
    torch.testing.assert_close(ops.jvp(v), _apply(truth, v), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.vjp(v), _apply(truth.mT, v), rtol=1e-12, atol=1e-12)
    assert not any("forward mode" in note for note in ops.notes)
    checks = matvec_checks(ops, ProbeOptions(), lambda *shape: torch.randn(*shape, generator=_gen(7), dtype=F64))
    assert float(checks.fd_err.max()) < 1e-6 and float(checks.adj_err.max()) < 1e-12
    with pytest.raises(InputError, match="forward-mode"):
        ops.jvp_forward(v)  # the forward route, asked for, says what is missing


class _OnceNoForward(_NoForwardRule):
    """The same op, its backward not differentiable either: no route to J v."""

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        (a,) = ctx.saved_tensors
        return grad @ a, None


def test_no_route_to_j_v_names_the_fd_mode() -> None:
    n = 4
    a = torch.randn(n, n, generator=_gen(8), dtype=F64)
    z = torch.randn(1, n, generator=_gen(9), dtype=F64)
    with pytest.raises(InputError, match="--matvec fd"):
        JacobianOperators(lambda x: _OnceNoForward.apply(torch.tanh(x), a), z, path="x.safetensors")


class _OnceWithForward(_OnceNoForward):
    """A backward that cannot be differentiated, and a forward rule: J v falls back to forward mode."""

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        ctx.save_for_backward(inputs[1])
        ctx.save_for_forward(inputs[1])

    @staticmethod
    def jvp(ctx, tangent: torch.Tensor, _):
        (a,) = ctx.saved_tensors
        return tangent @ a.mT


def test_a_backward_that_cannot_be_differentiated_falls_back_to_forward_mode() -> None:
    n = 5
    a = torch.randn(n, n, generator=_gen(13), dtype=F64)
    z = torch.randn(2, n, generator=_gen(14), dtype=F64)
    ops = JacobianOperators(lambda x: _OnceWithForward.apply(torch.tanh(x), a), z)
    assert any("J v by forward mode" in note for note in ops.notes)
    v = torch.randn(2, 3, n, generator=_gen(15), dtype=F64)
    truth = _closed_form_jacobian(a, z)
    torch.testing.assert_close(ops.jvp(v), _apply(truth, v), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ops.vjp(v), _apply(truth.mT, v), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("fd_directions", [0, 1, 2, 5])
def test_set_up_and_check_products_are_counted(monkeypatch, fd_directions: int) -> None:
    """Every product made while setting up and checking, counted at the row functions (one call on
    ``[B, n]`` is one product per fixed point; the force on ``k B`` states is k), is in ``matvecs``."""
    calls = {"products": 0}
    pairing = jacobian_module._gradient_of_pairing
    force_rows = JacobianOperators._force_rows

    def counted_pairing(out, wrt):
        rows = pairing(out, wrt)

        def counted(u, **kwargs):
            calls["products"] += 1
            return rows(u, **kwargs)

        counted.loops_over_blocks = True
        return counted

    def counted_force(self, rows):
        calls["products"] += rows.shape[0] // self.batch
        return force_rows(self, rows)

    def counted_setup_force(self):
        calls["products"] += 1  # nc_force(z*), vmapped or looped
        return setup_force(self)

    setup_force = JacobianOperators._setup_force
    monkeypatch.setattr(JacobianOperators, "_setup_force", counted_setup_force)
    monkeypatch.setattr(jacobian_module, "_gradient_of_pairing", counted_pairing)
    monkeypatch.setattr(JacobianOperators, "_force_rows", counted_force)
    n, batch = 7, 2
    a = 0.5 * torch.randn(n, n, generator=_gen(10), dtype=F64)
    z = torch.randn(batch, n, generator=_gen(11), dtype=F64)
    ops = JacobianOperators(lambda x: a @ torch.tanh(x) + 1.0, z)
    options = ProbeOptions(fd_directions=fd_directions)
    checks = matvec_checks(ops, options, lambda *shape: torch.randn(*shape, generator=_gen(12), dtype=F64))
    assert checks.matvecs == calls["products"]
    assert checks.matvecs >= 2 * fd_directions + 2  # not vacuous: the central differences are in it
