"""Saved modes reload and satisfy the eigen-equation to the reported residual (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from spectral_probe.checkpoint import checkpoint_settings, load_checkpoint, to_probe
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.operators import build_nc_force, resolve_operator
from tests.cli.helpers import run_cli

SAMPLES = Path(__file__).resolve().parents[2] / "sample_checkpoints"


def dense_jf(path: Path, dtype=torch.float64) -> tuple[torch.Tensor, float, float]:
    """The sample's J_F [B, n, n] from the dense Jacobian in float64 (an independent dense truth)."""
    ckpt = load_checkpoint(str(path))
    settings = checkpoint_settings(ckpt.metadata)
    factory, _ = resolve_operator(settings["operator"], from_metadata=True, path=str(path))
    params = to_probe(ckpt.params, dtype, torch.device("cpu"))
    nc_force = build_nc_force(factory, params, settings["options"], str(path))
    z = ckpt.z_star.to(dtype).reshape(-1, ckpt.z_star.shape[-1])
    c, eps = float(settings.get("c", 0.0)), float(settings.get("eps", 1.0))
    ops = JacobianOperators(nc_force, z, c=c, eps=eps)
    return ops.dense_jacobian() - (1 + c) * torch.eye(z.shape[-1], dtype=dtype), c, eps


@pytest.mark.parametrize("name", ["hopf.safetensors", "batched.safetensors", "flip.safetensors"])
def test_saved_modes_satisfy_the_eigen_equation(name: str, tmp_path: Path) -> None:
    out = tmp_path / "modes.safetensors"
    code, report, output = run_cli("scan", SAMPLES / name, "--method", "krylov", "--save-modes", out, "--json", "-")
    assert code == 0, output
    modes = load_file(out)
    with safe_open(out, "pt") as handle:
        metadata = handle.metadata()
    assert metadata["format"] == "spectral-probe modes 1" and float(metadata["eps"]) > 0
    jf, _, eps = dense_jf(SAMPLES / name)
    n = jf.shape[-1]
    m = (torch.eye(n, dtype=torch.float64) + eps * jf).to(torch.complex128)
    lam = torch.complex(modes["M.eigenvalues.real"], modes["M.eigenvalues.imag"]).to(torch.complex128)
    vec = torch.complex(modes["M.eigenvectors.real"], modes["M.eigenvectors.imag"]).to(torch.complex128)
    assert vec.shape == (jf.shape[0], lam.shape[1], n)
    scale = float(torch.linalg.matrix_norm(m, ord=2).max())
    rounding = 100 * torch.finfo(modes["M.residuals"].dtype).eps * scale
    residual = torch.linalg.vector_norm(torch.einsum("bij,bkj->bki", m, vec) - lam[..., None] * vec, dim=-1)
    assert bool(modes["M.converged"].all())
    assert bool((residual <= modes["M.residuals"].to(torch.float64) * (1 + 1e-6) + rounding).all()), residual
    # the leading eigenvalue of M has the reported rho, and the named units carry the weight
    for b, row in enumerate(report["results"]):
        assert float(lam[b, 0].abs()) == pytest.approx(row["rho"], rel=1e-8)
        weights = vec[b, 0].abs() ** 2
        assert row["lead_mode_units"] == torch.topk(weights, 3).indices.tolist()
        assert row["modes_file"] == str(out)
    sym = (jf + jf.transpose(-1, -2)) / 2
    s_val, s_vec = modes["sym.eigenvalues"].to(torch.float64), modes["sym.eigenvectors"].to(torch.float64)
    s_res = torch.linalg.vector_norm(torch.einsum("bij,bkj->bki", sym, s_vec) - s_val[..., None] * s_vec, dim=-1)
    assert bool((s_res <= modes["sym.residuals"].to(torch.float64) * (1 + 1e-6) + rounding).all())
    assert torch.allclose(s_val[:, 0], torch.linalg.eigvalsh(sym)[:, -1], atol=1e-8)


def test_audit_writes_one_modes_file_per_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("flip.safetensors", "saddle.safetensors"):
        (run_dir / name).write_bytes((SAMPLES / name).read_bytes())
    code, _, output = run_cli("audit", run_dir, "--save-modes", tmp_path / "modes", "--quiet")
    assert code == 0, output
    assert sorted(p.name for p in (tmp_path / "modes").iterdir()) == [
        "flip.modes.safetensors",
        "saddle.modes.safetensors",
    ]
    code, _, output = run_cli("audit", run_dir, "--save-modes", tmp_path / "one.safetensors", "--quiet")
    assert code == 2 and "folder" in output
