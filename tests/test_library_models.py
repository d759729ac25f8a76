"""Models from public libraries through the CLI and the API: a torchdeq DEQ, a torchdiffeq flow map.

Skipped with a reason where torchdeq or torchdiffeq is not installed (CI installs both: the `test` extra).
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("torchdeq", reason="torchdeq is not installed (pip install '.[test]')")
pytest.importorskip("torchdiffeq", reason="torchdiffeq is not installed (pip install '.[test]')")

from spectral_probe import find_fixed_point, probe  # noqa: E402
from tests.cli.helpers import run_cli  # noqa: E402

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import library_models  # noqa: E402

PLUGIN = str(EXAMPLES / "library_models.py")


def spectrum(jac: torch.Tensor) -> tuple[float, float, float]:
    """(rho, alpha, scale) of J_F = J - I at c = 0, eps = 1, from dense torch.linalg."""
    jf = jac - torch.eye(jac.shape[0], dtype=jac.dtype)
    mu = torch.linalg.eigvals(jf)
    return float((1 + mu).abs().max()), float(mu.real.max()), max(1.0, float(torch.linalg.matrix_norm(jf, 2)))


def test_torchdeq_model_at_its_own_fixed_point(tmp_path: Path) -> None:
    model, x = library_models.train_torchdeq(steps=5)
    model64, x64 = copy.deepcopy(model).double(), x.double()
    z_star = model64(x64[None])[0].detach()  # torchdeq's Anderson solution
    step = lambda z: model64.f(z, x64)  # noqa: E731
    rho, alpha, scale = spectrum(torch.func.jacrev(step)(z_star).detach())
    result = probe(step, z_star).results[0]
    assert abs(result.rho - rho) <= 1e-8 * scale and abs(result.alpha - alpha) <= 1e-8 * scale
    assert result.verdict in ("contractive", "stable") and result.fixed_point_residual < 1e-10
    torch.save(model.state_dict(), tmp_path / "deq.pt")
    torch.save(x, tmp_path / "x.pt")
    code, report, output = run_cli(
        "scan", tmp_path / "deq.pt", "--operator", f"{PLUGIN}:torchdeq_layer", "--input", f"x={tmp_path / 'x.pt'}",
        "--json", "-", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    assert abs(report["results"][0]["rho"] - rho) <= 1e-8 * scale
    assert report["results"][0]["verdict"] == result.verdict


def test_torchdiffeq_flow_map_needs_no_vmap_and_no_torch_func(tmp_path: Path) -> None:
    field = library_models.train_field(steps=5)
    field64 = copy.deepcopy(field).double()
    equilibrium = find_fixed_point(
        lambda z: field64(torch.zeros(()), z) + z, torch.zeros(library_models.N, dtype=torch.float64)
    )
    flow = library_models.flow_map(field64)
    # At an equilibrium the flow's Jacobian is exp(T J_g), J_g by jacrev on the user's own field module.
    # (Autograd THROUGH the adaptive solver is not a referee here: at an equilibrium g = 0 drives
    # dopri5's step-size selection, and its derivative comes out wrong by several percent.)
    jac_g = torch.func.jacrev(lambda z: field64(torch.zeros(()), z))(equilibrium).detach()
    values, vectors = torch.linalg.eig(jac_g)
    flow_jac = (vectors @ torch.diag(torch.exp(library_models.HORIZON * values)) @ torch.linalg.inv(vectors)).real
    rho, alpha, scale = spectrum(flow_jac)
    result = probe(flow, equilibrium, matvec="fd").results[0]
    assert any("vmap" in note for note in result.notes)
    assert abs(result.rho - rho) <= 1e-6 * scale and abs(result.alpha - alpha) <= 1e-6 * scale
    torch.save(field.state_dict(), tmp_path / "field.pt")
    code, report, output = run_cli(
        "scan", tmp_path / "field.pt", "--operator", f"{PLUGIN}:torchdiffeq_flow", "--matvec", "fd",
        "--json", "-", "--quiet",
    )  # fmt: skip
    assert code == 0, output
    assert abs(report["results"][0]["rho"] - rho) <= 1e-6 * scale
    assert report["results"][0]["verdict"] == result.verdict
    # Without --matvec fd: autograd THROUGH dopri5 runs (no forward mode on the default path) and is
    # wrong here; the finite-difference referee catches it, and a gate never passes on it.
    code, report, output = run_cli(
        "scan", tmp_path / "field.pt", "--operator", f"{PLUGIN}:torchdiffeq_flow", "--json", "-", "--quiet"
    )
    assert code == 0, output
    (autograd,) = report["results"]
    assert autograd["verdict"] == "inconclusive" and "finite differences" in autograd["reason"]
    code, _, output = run_cli(
        "scan", tmp_path / "field.pt", "--operator", f"{PLUGIN}:torchdiffeq_flow", "--max-rho", "100"
    )
    assert code == 3, output
