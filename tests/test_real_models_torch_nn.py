"""``torch.nn`` building blocks probed through the Python API, against the dense Jacobian of the user's OWN
module (``torch.func.jacrev``, run by the test with grad on, as a user would) at a fixed point found here by
dense Newton: rho, alpha and omega within ``1e-8 * max(1, ||J_F||_2)`` (c = 0, eps = 1).

Attention: ``nn.TransformerEncoderLayer`` and ``nn.MultiheadAttention`` in eval mode take torch's fused
inference fast path under ``no_grad`` (no derivative at all), and the CPU flash kernel of
``scaled_dot_product_attention`` has neither forward mode nor a double backward.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spectral_probe import leading_eigenvalue, probe
from spectral_probe.errors import InputError, UsageError

D = torch.float64


def dense_jacobian(step, z: torch.Tensor) -> torch.Tensor:
    flat = lambda v: step(v.reshape(z.shape)).reshape(-1)  # noqa: E731
    return torch.func.jacrev(flat)(z.reshape(-1)).detach()


def newton(step, z: torch.Tensor, iterations: int = 40) -> torch.Tensor:
    for _ in range(iterations):
        residual = (step(z) - z).detach().reshape(-1)
        jf = dense_jacobian(step, z) - torch.eye(z.numel(), dtype=z.dtype)
        z = (z.reshape(-1) - torch.linalg.solve(jf, residual)).reshape(z.shape).detach()
    assert float((step(z).detach() - z).norm()) < 1e-12
    return z


def truth(step, z: torch.Tensor) -> dict[str, float]:
    jf = dense_jacobian(step, z) - torch.eye(z.numel(), dtype=z.dtype)
    mu = torch.linalg.eigvals(jf)
    return {
        "rho": float((1 + mu).abs().max()),
        "alpha": float(mu.real.max()),
        "omega": float(torch.linalg.eigvalsh((jf + jf.T) / 2)[-1]),
        "scale": max(1.0, float(torch.linalg.matrix_norm(jf, 2))),
    }


def assert_matches(result, expected: dict[str, float]) -> None:
    for key in ("rho", "alpha", "omega"):
        assert abs(getattr(result, key) - expected[key]) <= 1e-8 * expected["scale"], (key, getattr(result, key))
    assert result.verdict in ("contractive", "stable"), (result.verdict, result.reason)


def attention_cell(kind: str):
    """A DEQ cell ``z -> 0.3 layer(z + x)`` on a state ``[L, E]``, in eval mode (dropout 0.1 is then off):
    ``(step, zero state, the module)``."""
    torch.manual_seed(0)
    length, embed = 5, 8
    x = torch.randn(length, embed, dtype=D)
    if kind == "transformer":
        layer = nn.TransformerEncoderLayer(embed, 2, dim_feedforward=16, dropout=0.1, batch_first=True)
        layer = layer.double().eval()
        return (lambda z: 0.3 * layer((z + x)[None])[0]), torch.zeros(length, embed, dtype=D), layer
    attention = nn.MultiheadAttention(embed, 2, batch_first=True).double().eval()

    def step(z: torch.Tensor) -> torch.Tensor:
        q = z[None]
        return torch.tanh(0.5 * attention(q, q, q, need_weights=False)[0][0] + x)

    return step, torch.zeros(length, embed, dtype=D), attention


@pytest.mark.parametrize("method", ["dense", "krylov"])
@pytest.mark.parametrize("kind", ["transformer", "mha"])
def test_attention_in_eval_mode_matches_jacrev(kind: str, method: str) -> None:
    step, zero, _ = attention_cell(kind)
    z_star = newton(step, zero)
    report = probe(step, z_star, method=method)
    assert_matches(report.results[0], truth(step, z_star))
    assert torch.backends.mha.get_fastpath_enabled()  # the user's setting is restored


def test_leading_eigenvalue_of_a_transformer_layer() -> None:
    step, zero, _ = attention_cell("transformer")
    z_star = newton(step, zero)
    rho = leading_eigenvalue(step, z_star, implicit=True)
    assert abs(float(rho) - truth(step, z_star)["rho"]) <= 1e-8


def test_dropout_in_train_mode_is_flagged_as_nondeterministic() -> None:
    """The same cell in train mode: each call draws another dropout mask, so no number is right; the
    probe says why (the force twice at z* differs) before the symptoms (residual, finite differences)."""
    step, zero, layer = attention_cell("transformer")
    z_star = newton(step, zero)
    layer.train()
    for method in ("dense", "krylov"):
        result = probe(step, z_star, method=method).results[0]
        assert result.verdict == "inconclusive"
        assert result.reason.startswith("nc_force is not deterministic"), result.reason
    layer.eval()
    assert probe(step, z_star).results[0].verdict in ("contractive", "stable")


class BatchNormCell(nn.Module):
    def __init__(self, n: int, x: torch.Tensor) -> None:
        super().__init__()
        self.linear, self.norm, self.x = nn.Linear(n, n), nn.BatchNorm1d(n), x
        with torch.no_grad():
            self.linear.weight.mul_(0.3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.3 * self.norm(self.linear(z)) + self.x)


def test_batchnorm_in_train_mode_leaves_the_users_running_statistics_alone() -> None:
    """Train-mode BatchNorm normalizes the state ``[B, n]`` by its own batch statistics (a deterministic
    function) and updates its running statistics in place on every call: the probe's calls must not."""
    torch.manual_seed(0)
    model = BatchNormCell(6, torch.randn(6, dtype=D)).double().train()
    z = torch.zeros(3, 6, dtype=D)
    with torch.no_grad():
        for _ in range(60):
            z = model(z)
    before = {name: b.clone() for name, b in model.named_buffers()}
    jac = torch.autograd.functional.jacobian(lambda v: model(v.reshape(z.shape)).reshape(-1), z.reshape(-1))
    for name, b in model.named_buffers():  # the referee's own call updated them: start again
        b.copy_(before[name])
    result = probe(model, z).results[0]
    for name, b in model.named_buffers():
        assert torch.equal(b, before[name]), name
    mu = torch.linalg.eigvals(jac - torch.eye(z.numel(), dtype=D))
    assert abs(result.rho - float((1 + mu).abs().max())) <= 1e-8 * max(1.0, float(torch.linalg.matrix_norm(jac, 2)))


def refused_cases():
    with torch.device("meta"):
        on_meta = nn.Linear(4, 4)
    zero = torch.zeros(4, dtype=D)
    pair = lambda s: (0.5 * s[0], 0.5 * s[1])  # noqa: E731
    return {
        "meta parameters": (on_meta, zero, {}, InputError, "meta device"),
        "sparse state": (lambda z: 0.5 * z, zero.to_sparse(), {}, UsageError, "dense"),
        "nested tuple state": (pair, (zero, (zero,)), {}, UsageError, "flat tuple"),
        "batch sizes differ": (pair, (torch.zeros(2, 4, dtype=D), torch.zeros(3, 4, dtype=D)), {"batched": True},
                               UsageError, "leading batch dimension"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(refused_cases()))
def test_unusable_models_and_states_are_refused_in_one_line(case: str) -> None:
    model, state, options, error, words = refused_cases()[case]
    with pytest.raises(error, match=words) as caught:
        probe(model, state, **options)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("case", ["sparse state", "nested tuple state"])
def test_leading_eigenvalue_refuses_the_states_probe_refuses(case: str) -> None:
    model, state, _, error, words = refused_cases()[case]
    with pytest.raises(error, match=words) as caught:
        leading_eigenvalue(model, state)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("matvec", ["autograd", "fd"])
def test_a_model_that_writes_into_its_input_is_probed_and_the_state_kept(matvec: str) -> None:
    # nn.ReLU(inplace=True) on the state itself: under --matvec fd it overwrote the caller's z_star (its
    # negative entries became 0, then "z* is not a fixed point"); under autograd it was refused (an in-place
    # op on a view of the tool's own reshaping). The truth is jacrev of the user's step on a copy, as the
    # user would run it.
    torch.manual_seed(0)
    n = 8
    step = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(n, n), nn.Tanh()).double()
    with torch.no_grad():
        step[1].weight.mul_(0.5)
    on_a_copy = lambda z: step(z.clone())  # noqa: E731
    z = newton(on_a_copy, torch.zeros(n, dtype=D))
    assert bool((z < 0).any())  # the ReLU has something to overwrite
    kept = z.clone()
    expected = truth(on_a_copy, z)
    result = probe(step, z, matvec=matvec).results[0]
    assert torch.equal(z, kept)
    assert abs(result.rho - expected["rho"]) <= (1e-8 if matvec == "autograd" else 1e-6) * expected["scale"]
    assert result.verdict == "contractive", result.reason
    if matvec == "autograd":
        assert_matches(result, expected)
        assert float(leading_eigenvalue(step, z)) == pytest.approx(expected["rho"], abs=1e-8)
        assert torch.equal(z, kept)
