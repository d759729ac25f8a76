"""JacobianOperators and the finite-difference/adjoint referees, against dense jacrev Jacobians.

Contract tests in float64 on tiny models of every built-in family: each matvec is compared with the
Jacobian materialised by ``torch.func.jacrev``, batched over B = 3 fixed points with block dims.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spectral_probe.errors import InputError, OptionError
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.fdcheck import (
    adjoint_rel_err,
    central_difference_jvp,
    central_difference_step,
    determinism_error,
    fd_jvp_rel_err,
    random_directions,
)
from spectral_probe.operators import build_nc_force, resolve_operator

F64 = torch.float64
B = 3
C, EPS = 0.3, 0.7
# Tolerances scale with the dtype: exact matvecs to a few hundred ulps, central differences to
# about eps^(2/3) relative (times the operator's curvature).
TOL_EXACT = 1e3 * torch.finfo(F64).eps
TOL_FD = 1e2 * torch.finfo(F64).eps ** (2 / 3)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape: int, seed: int, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=_gen(seed), dtype=dtype)


def _model(name: str, dtype: torch.dtype = F64):
    """A tiny model of each family: (nc_force, n); the same parameters in every dtype."""
    if name == "conv":
        params = {
            "conv1_weight": 0.4 * _randn(3, 2, 3, 3, seed=1),
            "conv1_bias": _randn(3, seed=2),
            "conv2_weight": 0.4 * _randn(2, 3, 3, 3, seed=3),
            "b": _randn(2, 2, 3, seed=4),
        }
        options = {"activation": "softplus"}
        n = 12
    else:
        key = "A" if name == "linear" else "W"
        params = {key: _randn(5, 5, seed=1), "b": _randn(5, seed=2)}
        options = {} if name == "linear" else {"activation": "tanh" if name == "hopfield" else "sigmoid"}
        n = 5
    params = {key: value.to(dtype) for key, value in params.items()}
    factory, label = resolve_operator(name)
    return build_nc_force(factory, params, options, "test.safetensors", name=label), n


FAMILIES = ["linear", "hopfield", "rnn", "conv"]


def _reference(nc_force, z: torch.Tensor) -> torch.Tensor:
    return torch.func.vmap(torch.func.jacrev(nc_force))(z)


def _apply(mat: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``mat[b] @ v[b, ..., :]`` for ``v`` ``[B, *block, n]``."""
    flat = v.reshape(v.shape[0], -1, v.shape[-1])
    return torch.einsum("bij,bpj->bpi", mat, flat).reshape(v.shape)


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    scale = max(float(expected.abs().max()), 1.0)
    err = float((actual - expected).abs().max())
    assert err <= tol * scale, f"max error {err:.3e} > {tol * scale:.3e}"


# ----------------------------------------------------------------------------------------------
# Contract: every matvec against the dense Jacobian


@pytest.mark.parametrize("family", FAMILIES)
def test_autograd_matvecs_match_dense_jacobian(family: str) -> None:
    nc_force, n = _model(family)
    z = _randn(B, n, seed=10)
    ops = JacobianOperators(nc_force, z, c=C, eps=EPS)
    assert ops.has_vjp and ops.vectorized and (ops.batch, ops.n) == (B, n)
    j_nc = _reference(nc_force, z)
    eye = torch.eye(n, dtype=F64)
    j_f = j_nc - (1 + C) * eye
    m = eye + EPS * j_f
    for block in [(), (4,), (2, 3)]:
        v = _randn(B, *block, n, seed=11)
        _close(ops.jvp(v), _apply(j_nc, v), TOL_EXACT)
        _close(ops.vjp(v), _apply(j_nc.mT, v), TOL_EXACT)
        _close(ops.jf(v), _apply(j_f, v), TOL_EXACT)
        _close(ops.jf_t(v), _apply(j_f.mT, v), TOL_EXACT)
        _close(ops.sym(v), _apply((j_f + j_f.mT) / 2, v), TOL_EXACT)
        _close(ops.m(v), _apply(m, v), TOL_EXACT)
        _close(ops.m_t(v), _apply(m.mT, v), TOL_EXACT)
        assert ops.jvp(v).shape == v.shape
    dense = ops.dense_jacobian()
    assert dense.shape == (B, n, n)
    _close(dense, j_nc, TOL_EXACT)
    _close(ops.dense_jacobian(chunk_size=2), j_nc, TOL_EXACT)


@pytest.mark.parametrize("family", FAMILIES)
def test_fd_matvecs_match_dense_jacobian(family: str) -> None:
    nc_force, n = _model(family)
    z = _randn(B, n, seed=20)
    ops = JacobianOperators(nc_force, z, c=C, eps=EPS, mode="fd")
    assert not ops.has_vjp
    j_nc = _reference(nc_force, z)
    j_f = j_nc - (1 + C) * torch.eye(n, dtype=F64)
    v = 10.0 * _randn(B, 2, 3, n, seed=21)  # the step adapts to ||v||
    _close(ops.jvp(v), _apply(j_nc, v), TOL_FD)
    _close(ops.jf(v), _apply(j_f, v), TOL_FD)
    _close(ops.m(v), v + EPS * _apply(j_f, v), TOL_FD)
    _close(ops.dense_jacobian(), j_nc, TOL_FD)
    for method in (ops.vjp, ops.jf_t, ops.sym, ops.m_t):
        with pytest.raises(OptionError, match="--matvec fd"):
            method(v)


def test_force_field_and_fixed_point_residual() -> None:
    nc_force, n = _model("linear")
    a = _randn(5, 5, seed=1)
    b = _randn(5, seed=2)
    # The exact fixed point of F(z) = A z + b - (1 + c) z.
    z_star = torch.linalg.solve((1 + C) * torch.eye(n, dtype=F64) - a, b)
    points = torch.stack([z_star, z_star + 1.0, z_star - 2.0])
    ops = JacobianOperators(nc_force, points, c=C, eps=EPS)
    _close(ops.force_at_star, points @ a.T + b, TOL_EXACT)
    assert float(ops.field_at_star[0].norm()) < TOL_EXACT
    assert float(ops.field_at_star[1].norm()) > 0.1
    zs = _randn(B, 2, 4, n, seed=3)
    _close(ops.force(zs), zs @ a.T + b, TOL_EXACT)
    _close(ops.field(zs), zs @ a.T + b - (1 + C) * zs, TOL_EXACT)


def test_float32_matches_float64_reference() -> None:
    nc_force64, n = _model("conv")
    nc_force32, _ = _model("conv", torch.float32)
    z = _randn(B, n, seed=30)
    j_nc = _reference(nc_force64, z)
    v = _randn(B, 4, n, seed=31)
    for mode in ("autograd", "fd"):
        ops = JacobianOperators(nc_force32, z.float(), mode=mode)
        out = ops.jvp(v.float())
        assert out.dtype == torch.float32
        _close(out.double(), _apply(j_nc, v), 1e-3 if mode == "fd" else 1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    nc_force, n = _model("conv")
    z = _randn(B, n, seed=40)
    v = _randn(B, 2, n, seed=41)
    cpu = JacobianOperators(nc_force, z)
    factory, _ = resolve_operator("conv")
    params = {
        "conv1_weight": 0.4 * _randn(3, 2, 3, 3, seed=1).cuda(),
        "conv1_bias": _randn(3, seed=2).cuda(),
        "conv2_weight": 0.4 * _randn(2, 3, 3, 3, seed=3).cuda(),
        "b": _randn(2, 2, 3, seed=4).cuda(),
    }
    gpu_force = build_nc_force(factory, params, {"activation": "softplus"}, "x")
    gpu = JacobianOperators(gpu_force, z.cuda())
    _close(gpu.jvp(v.cuda()).cpu(), cpu.jvp(v), TOL_EXACT)
    _close(gpu.vjp(v.cuda()).cpu(), cpu.vjp(v), TOL_EXACT)
    _close(gpu.dense_jacobian().cpu(), cpu.dense_jacobian(), TOL_EXACT)


def test_bad_arguments() -> None:
    nc_force, n = _model("linear")
    z = _randn(B, n, seed=1)
    with pytest.raises(OptionError, match="autograd, fd"):
        JacobianOperators(nc_force, z, mode="magic")
    with pytest.raises(ValueError, match=r"\[B, n\]"):
        JacobianOperators(nc_force, z[0])
    ops = JacobianOperators(nc_force, z)
    with pytest.raises(ValueError, match="jvp takes"):
        ops.jvp(_randn(B + 1, n, seed=2))
    with pytest.raises(InputError, match="test.safetensors: the operator failed at z_star"):
        JacobianOperators(nc_force, _randn(B, n + 1, seed=3), path="test.safetensors")


# ----------------------------------------------------------------------------------------------
# Black-box operators


def _numpy_tanh(weight: torch.Tensor):
    """A black-box operator: numpy inside, so neither vmap nor autograd can see through it."""

    def nc_force(z: torch.Tensor) -> torch.Tensor:
        out = np.tanh(weight.numpy() @ z.detach().numpy())
        return torch.from_numpy(out)

    return nc_force


def test_black_box_operator_works_in_fd_mode_only() -> None:
    weight = _randn(4, 4, seed=1)
    nc_force = _numpy_tanh(weight)
    z = _randn(B, 4, seed=2)
    ops = JacobianOperators(nc_force, z, mode="fd")
    assert not ops.vectorized and ops.notes
    j_nc = _reference(lambda x: torch.tanh(weight @ x), z)
    v = _randn(B, 2, 4, seed=3)
    _close(ops.jvp(v), _apply(j_nc, v), TOL_FD)
    _close(ops.dense_jacobian(), j_nc, TOL_FD)
    with pytest.raises(InputError, match="use --matvec fd"):
        JacobianOperators(nc_force, z, mode="autograd", path="bb.pt")


# ----------------------------------------------------------------------------------------------
# The referees catch silently wrong autograd rules


def _custom_matmul(weight: torch.Tensor, *, wrong_backward: bool = False, wrong_jvp: bool = False):
    """``nc_force(z) = tanh(W z)`` through a custom autograd.Function with optional wrong rules."""

    class MatMul(torch.autograd.Function):
        generate_vmap_rule = True

        @staticmethod
        def forward(x: torch.Tensor) -> torch.Tensor:
            return weight @ x

        @staticmethod
        def setup_context(ctx, inputs, output) -> None:
            pass

        @staticmethod
        def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
            # The bug: W g instead of W^T g, right only for a symmetric W.
            return (weight if wrong_backward else weight.mT) @ grad

        @staticmethod
        def jvp(ctx, tangent: torch.Tensor) -> torch.Tensor:
            # The bug: the transpose in forward mode.
            return (weight.mT if wrong_jvp else weight) @ tangent

    return lambda z: torch.tanh(MatMul.apply(z))


def _referee_scores(nc_force, n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    z = _randn(B, n, seed=50)
    ops = JacobianOperators(nc_force, z)
    gen = _gen(seed)
    directions = random_directions((B, 3, n), gen)
    u = random_directions((B, 2, n), gen)
    v = random_directions((B, 2, n), gen)
    # the checks referee the products the solvers use: ops.jvp (the Krylov matvec, the transpose of
    # the vjp by double backward) against central differences, and against the vjp
    fd_err = fd_jvp_rel_err(ops.force, ops.jvp, z, directions)
    return fd_err, adjoint_rel_err(ops.jvp, ops.vjp, u, v)


@pytest.mark.parametrize("family", FAMILIES)
def test_referees_pass_correct_operators(family: str) -> None:
    nc_force, n = _model(family)
    fd_err, adj_err = _referee_scores(nc_force, n)
    assert fd_err.shape == adj_err.shape == (B,)
    assert float(fd_err.max()) < TOL_FD
    assert float(adj_err.max()) < TOL_EXACT


def test_referees_catch_wrong_rules() -> None:
    weight = _randn(6, 6, seed=60)
    fd_err, adj_err = _referee_scores(_custom_matmul(weight), 6)
    assert float(fd_err.max()) < TOL_FD and float(adj_err.max()) < TOL_EXACT
    # A wrong backward rule: the Krylov J v is its transpose, so central differences catch it.
    fd_err, _ = _referee_scores(_custom_matmul(weight, wrong_backward=True), 6)
    assert float(fd_err.min()) > 1e-2
    # A wrong forward-mode rule is on no product the solvers use (the scan's numbers stay right) ...
    fd_err, adj_err = _referee_scores(_custom_matmul(weight, wrong_jvp=True), 6)
    assert float(fd_err.max()) < TOL_FD and float(adj_err.max()) < TOL_EXACT
    # ... and where forward mode is used (jvp_forward, the fallback J v) the same referee catches it.
    z = _randn(B, 6, seed=50)
    ops = JacobianOperators(_custom_matmul(weight, wrong_jvp=True), z)
    directions = random_directions((B, 3, 6), _gen(1))
    assert float(fd_jvp_rel_err(ops.force, ops.jvp_forward, z, directions).min()) > 1e-2


# ----------------------------------------------------------------------------------------------
# fdcheck helpers


def test_central_difference_step_scales() -> None:
    z = torch.tensor([[3.0, 4.0]], dtype=F64)  # ||z|| = 5
    v = torch.tensor([[[0.0, 2.0], [0.0, 0.5]]], dtype=F64)
    step = central_difference_step(z.unsqueeze(1), v)
    cube_root = torch.finfo(F64).eps ** (1 / 3)
    assert step.shape == (1, 2)
    assert torch.allclose(step, torch.tensor([[5 * cube_root / 2, 5 * cube_root / 0.5]], dtype=F64))
    small = central_difference_step(torch.zeros(2, dtype=F64), torch.tensor([1.0, 0.0], dtype=F64))
    assert torch.isclose(small, torch.tensor(cube_root, dtype=F64))


def test_central_difference_jvp_is_out_of_place_and_handles_zero() -> None:
    weight = _randn(3, 3, seed=70)

    def f(x: torch.Tensor) -> torch.Tensor:
        return torch.sin(x @ weight.T)

    z = _randn(2, 1, 3, seed=71)
    before = z.clone()
    v = torch.cat([_randn(2, 1, 3, seed=72), torch.zeros(2, 1, 3, dtype=F64)], dim=1)
    out = central_difference_jvp(f, z, v)
    assert torch.equal(z, before)
    assert torch.equal(out[:, 1], torch.zeros(2, 3, dtype=F64))
    exact = torch.func.jvp(f, (z[:, 0],), (v[:, 0],))[1]
    _close(out[:, 0], exact, TOL_FD)


def test_fd_jvp_rel_err_accepts_shared_directions() -> None:
    nc_force, n = _model("hopfield")
    z = _randn(B, n, seed=80)
    ops = JacobianOperators(nc_force, z)
    directions = random_directions((2, n), _gen(1))
    err = fd_jvp_rel_err(ops.force, ops.jvp, z, directions)
    assert err.shape == (B,) and float(err.max()) < TOL_FD


def test_adjoint_rel_err_is_zero_for_zero_jacobian() -> None:
    u = random_directions((B, n := 4), _gen(2))
    v = random_directions((B, n), _gen(3))
    zero = adjoint_rel_err(torch.zeros_like, torch.zeros_like, u, v)
    assert torch.equal(zero, torch.zeros(B, dtype=F64))


def test_random_directions_are_reproducible_unit_vectors() -> None:
    a = random_directions((B, 2, 7), _gen(5))
    b = random_directions((B, 2, 7), _gen(5))
    assert torch.equal(a, b)
    assert torch.allclose(a.norm(dim=-1), torch.ones(B, 2, dtype=F64))
    assert random_directions((2, 3), _gen(5), dtype=torch.float32).dtype == torch.float32


def test_determinism_error() -> None:
    nc_force, n = _model("rnn")
    ops = JacobianOperators(nc_force, _randn(B, n, seed=90))
    v = random_directions((B, 2, n), _gen(6))
    assert torch.equal(determinism_error(ops.jvp, v), torch.zeros(B, dtype=F64))
    noise = _gen(7)

    def flaky(x: torch.Tensor) -> torch.Tensor:  # a matvec with dropout left on, say
        return ops.jvp(x) * (1 + 0.1 * torch.rand(x.shape, generator=noise, dtype=F64))

    err = determinism_error(flaky, v)
    assert err.shape == (B,) and float(err.min()) > 1e-3


@pytest.mark.parametrize("mode", ["autograd", "fd"])
def test_restricted_operators_are_the_rows_of_the_batch(mode: str) -> None:
    # The linearization at a subset of the fixed points (a batch's ill-conditioned problems, refereed
    # alone) gives, row for row, the products of the whole batch; truth: torch.func.jacrev per row.
    n, batch = 9, 4
    g = torch.Generator().manual_seed(21)
    w = torch.randn(n, n, generator=g, dtype=torch.float64) / 3
    z = torch.randn(batch, n, generator=g, dtype=torch.float64)

    def nc_force(x: torch.Tensor) -> torch.Tensor:
        return w @ torch.tanh(x)

    ops = JacobianOperators(nc_force, z, c=0.2, eps=0.5, mode=mode)
    rows = [3, 1]
    sub = ops.restricted(rows)
    assert (sub.batch, sub.n, sub.c, sub.eps, sub.mode) == (2, n, 0.2, 0.5, mode)
    v = torch.randn(2, 3, n, generator=g, dtype=torch.float64)
    tol = 1e-6 if mode == "fd" else 1e-12
    for i, b in enumerate(rows):
        jac = torch.func.jacrev(nc_force)(z[b]) - 1.2 * torch.eye(n, dtype=torch.float64)
        torch.testing.assert_close(sub.jf(v)[i], v[i] @ jac.T, rtol=tol, atol=tol)
        if mode == "autograd":
            torch.testing.assert_close(sub.jf_t(v)[i], v[i] @ jac, rtol=tol, atol=tol)


@pytest.mark.parametrize("beta", [1.0, 8.0])
def test_a_saturated_layer_beside_the_shift_passes_its_referees(beta: float) -> None:
    # A modern Hopfield retrieval z <- X^T softmax(beta X z) at a stored pattern has J_nc ~ 1e-9 (beta 1)
    # to 1e-84 (beta 8) beside the -I of J_F: judged against ||J_nc v|| alone, the central differences'
    # round-off (u ||f|| / h ~ 4e-11) scored 0.1 and the most contractive state there is was inconclusive.
    from spectral_probe import probe

    torch.manual_seed(0)
    patterns = torch.randn(6, 16, dtype=F64)

    def retrieve(z: torch.Tensor) -> torch.Tensor:
        return patterns.T @ torch.softmax(beta * (patterns @ z), dim=0)

    z = patterns[int(torch.argmax(patterns @ patterns.mean(0)))].clone()
    for _ in range(100):
        z = retrieve(z)
    j_f = torch.func.jacrev(retrieve)(z) - torch.eye(16, dtype=F64)
    result = probe(retrieve, z).results[0]
    assert result.verdict == "contractive", result.reason
    assert result.fd_jvp_rel_err < 1e-8 and result.adjoint_rel_err < 1e-12
    assert result.alpha == pytest.approx(float(torch.linalg.eigvals(j_f).real.max()), abs=1e-12)


def test_the_shift_floor_still_fails_a_rule_wrong_at_the_shifted_scale() -> None:
    # A backward rule off by 1e-3 ||J_F|| where J_nc is 1e-6 I: judged at J_F's scale it is still a
    # failure (1e-3 >> the autograd tolerance 100 sqrt(u)), for central differences and for the adjoint
    # identity (a wrong forward-mode rule against the vjp).
    weight = 1e-6 * torch.eye(6, dtype=F64) + 1e-3 * _randn(6, 6, seed=61)
    z = _randn(B, 6, seed=51)
    ops = JacobianOperators(_custom_matmul(weight, wrong_backward=True), z)
    directions = random_directions((B, 3, 6), _gen(2))
    assert float(fd_jvp_rel_err(ops.force, ops.jvp, z, directions, shift=1.0).min()) > 1e-5
    forward = JacobianOperators(_custom_matmul(weight, wrong_jvp=True), z)  # forward mode against the vjp
    pair = directions[:, :2]
    assert float(adjoint_rel_err(forward.jvp_forward, forward.vjp, pair.flip(1), pair, shift=1.0).min()) > 1e-5
