"""Your own model, end to end: each example trained, saved as a state_dict, probed by the CLI and the API.

The truth is the dense float64 Jacobian of the user's OWN module (``torch.func.jacrev`` on the model's
step, not on the tool's operator code) at a fixed point found here by dense Newton, and the
eigenvalues of it by ``torch.linalg``: rho, alpha and omega must agree within 1e-8 normwise and the
verdict must be the one the dense spectrum gives.
"""

from __future__ import annotations

import copy
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch

from spectral_probe import find_fixed_point, probe
from spectral_probe.verdict import classify
from tests.cli.helpers import run_cli

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import models  # noqa: E402

PLUGINS = f"{EXAMPLES / 'plugins.py'}"
# Few training steps: the tests need a trained-looking model, not a good one.
TRAINERS = {
    "deq": lambda: models.train_deq(steps=10),
    "conv_deq": lambda: models.train_conv_deq(steps=3),
    "gru": lambda: models.train_gru(steps=10),
    "lstm": lambda: models.train_lstm(steps=10),
    "ode": lambda: models.train_ode(steps=20),
    "hopfield": lambda: models.train_hopfield(steps=5),
}


def user_step(name: str, model: torch.nn.Module, x: torch.Tensor):
    if name == "ode":
        return lambda z: model(torch.zeros((), dtype=torch.float64), z) + z
    if name == "hopfield":
        return lambda z: model.force(z, x)
    return lambda state: model.step(state, x)


def zero_state(name: str, x: torch.Tensor):
    if name == "lstm":
        return (torch.zeros(8, dtype=torch.float64), torch.zeros(8, dtype=torch.float64))
    sizes = {"deq": 12, "gru": 10, "ode": 8, "hopfield": 14}
    return torch.zeros(x.shape if name == "conv_deq" else sizes[name], dtype=torch.float64)


def flat(state) -> torch.Tensor:
    return state.reshape(-1) if isinstance(state, torch.Tensor) else torch.cat([t.reshape(-1) for t in state])


def dense_jacobian(step, state) -> torch.Tensor:
    """``d step / d state`` by jacrev on the user's function, blocks assembled into ``[n, n]``."""
    if isinstance(state, torch.Tensor):
        jac = torch.func.jacrev(step)(state)
        return jac.reshape(state.numel(), state.numel())
    parts = tuple(state)
    jac = torch.func.jacrev(lambda *s: tuple(step(tuple(s))), argnums=tuple(range(len(parts))))(*parts)
    rows = [
        torch.cat([jac[i][j].reshape(parts[i].numel(), parts[j].numel()) for j in range(len(parts))], 1)
        for i in range(len(parts))
    ]
    return torch.cat(rows, 0)


def newton(step, state, iterations: int = 60):
    """z* by dense Newton on F(z) = step(z) - z with the jacrev Jacobian (independent of the tool)."""
    shapes = [state.shape] if isinstance(state, torch.Tensor) else [t.shape for t in state]

    def unflat(z):
        parts = torch.split(z, [math.prod(s) for s in shapes])
        out = [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]
        return out[0] if isinstance(state, torch.Tensor) else tuple(out)

    z = flat(state)
    for _ in range(iterations):
        residual = flat(step(unflat(z))) - z
        jac = dense_jacobian(step, unflat(z)) - torch.eye(z.numel(), dtype=z.dtype)
        z = z - torch.linalg.solve(jac, residual)
    z = z.detach()
    assert float((flat(step(unflat(z))) - z).norm()) < 1e-12
    return unflat(z)


def truth(step, z_star) -> dict:
    jac = dense_jacobian(step, z_star).detach()
    jf = jac - torch.eye(jac.shape[0], dtype=jac.dtype)
    mu = torch.linalg.eigvals(jf)
    lead = 1 + mu[torch.argmax((1 + mu).abs())]
    omega = float(torch.linalg.eigvalsh((jf + jf.T) / 2)[-1])
    verdict, _ = classify(
        rho=float(lead.abs()),
        lead_real=float(lead.real),
        lead_imag=abs(float(lead.imag)),
        mu_lead_real=float(lead.real) - 1,
        omega=omega,
        band=1e-6,
        complex_tol=1e-5,
    )
    return {
        "rho": float(lead.abs()),
        "alpha": float(mu.real.max()),
        "omega": omega,
        "verdict": verdict,
        "scale": max(1.0, float(torch.linalg.matrix_norm(jf, 2))),
    }


def assert_matches(result, expected: dict) -> None:
    get = result.get if isinstance(result, dict) else lambda key: getattr(result, key)
    for key in ("rho", "alpha", "omega"):
        assert abs(get(key) - expected[key]) <= 1e-8 * expected["scale"], (key, get(key), expected[key])
    assert get("verdict") == expected["verdict"]


@pytest.fixture(scope="module")
def trained():
    out = {}
    for name, train in TRAINERS.items():
        model, x = train()
        model64 = copy.deepcopy(model).double()
        x64 = x.double()
        step = user_step(name, model64, x64)
        z_star = newton(step, zero_state(name, x64))
        out[name] = (model, x, step, z_star, truth(step, z_star))
    return out


@pytest.mark.parametrize("name", list(TRAINERS))
def test_cli_finds_z_star_and_matches_jacrev(tmp_path: Path, trained, name: str) -> None:
    model, x, _, _, expected = trained[name]
    ckpt = tmp_path / f"{name}.pt"
    torch.save({"model": model.state_dict(), "step": 7}, ckpt)  # a training checkpoint: --key model
    args = ["scan", ckpt, "--key", "model", "--operator", f"{PLUGINS}:{name}", "--json", "-", "--quiet"]
    if x.numel():
        torch.save(x, tmp_path / "x.pt")  # a bare tensor
        args += ["--input", f"x={tmp_path / 'x.pt'}"]
    code, report, output = run_cli(*args)
    assert code == 0, output
    result = report["results"][0]
    assert any("z* found by the tool" in note for note in result["notes"]), result["notes"]
    assert_matches(result, expected)


@pytest.mark.parametrize("name", ["conv_deq", "lstm", "gru"])
def test_cli_with_a_bare_tensor_fixed_point_in_its_natural_shape(tmp_path: Path, trained, name: str) -> None:
    model, x, _, z_star, expected = trained[name]
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.save(x, tmp_path / "x.pt")
    torch.save(flat(z_star) if name == "lstm" else z_star, tmp_path / "z.pt")  # [3, 5, 5] for the conv DEQ
    code, report, output = run_cli(
        "scan", tmp_path / "model.pt", "--operator", f"{PLUGINS}:{name}", "--input", f"x={tmp_path / 'x.pt'}",
        "--fixed-point", tmp_path / "z.pt", "--method", "krylov", "--json", "-", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    assert_matches(report["results"][0], expected)


@pytest.mark.parametrize("name", list(TRAINERS))
def test_api_matches_jacrev(trained, name: str) -> None:
    _, _, step, z_star, expected = trained[name]
    report = probe(step, z_star)
    assert_matches(report.results[0], expected)
    assert report.to_dict()["results"][0]["rho"] == report.results[0].rho
    start = tuple(torch.zeros_like(t) for t in z_star) if isinstance(z_star, tuple) else torch.zeros_like(z_star)
    found = find_fixed_point(step, start)
    assert float((flat(found) - flat(z_star)).norm()) <= 1e-8 * max(1.0, float(flat(z_star).norm()))


def test_lstm_cannot_be_vmapped_and_the_loop_says_so(tmp_path: Path, trained) -> None:
    report = probe(trained["lstm"][2], trained["lstm"][3], method="krylov")
    assert any("vmap" in note for note in report.results[0].notes)
    assert report.results[0].verdict == trained["lstm"][4]["verdict"]


@pytest.mark.parametrize("name", ["gru", "deq"])
def test_no_warnings_from_the_tool_on_requires_grad_modules(tmp_path: Path, trained, name: str) -> None:
    model, x, step, z_star, _ = trained[name]
    assert any(p.requires_grad for p in model.parameters())
    torch.save(model.state_dict(), tmp_path / "model.pt")
    torch.save(x, tmp_path / "x.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        probe(step, z_star, method="krylov")
        code, _, output = run_cli(
            "scan", tmp_path / "model.pt", "--operator", f"{PLUGINS}:{name}", "--input", f"x={tmp_path / 'x.pt'}",
            "--quiet",
        )  # fmt: skip
    assert code == 0, output
    assert [str(w.message) for w in caught] == []
