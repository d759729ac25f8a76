"""Pictures on the samples (valid PNG files), the missing-extra message, and the JSON fields (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_checkpoints"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
NEW_FIELDS = (
    "c_crit", "c_margin", "eps_max", "eps_margin", "eps_max_confirmed", "eps_max_basis", "eigenvalues_jf",
    "transient", "max_power_norm", "max_power_k", "max_flow_norm", "max_flow_t", "lead_mode_units", "modes_file",
)  # fmt: skip


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == PNG_SIGNATURE


@pytest.mark.parametrize("name", ["stable_nonnormal.safetensors", "hopf.safetensors", "batched.safetensors"])
def test_scan_plot_on_samples(name: str, tmp_path: Path) -> None:
    out = tmp_path / "pictures" / f"{name}.png"
    code, _, output = run_cli("scan", SAMPLES / name, "--plot", out, "--quiet")
    assert code == 0, output
    assert_png(out)


#: The samples as a pretend training run that loses stability and regains it (crossings to mark).
RUN = ("contractive", "stable_nonnormal", "neimark_sacker", "hopf", "saddle", "closed_form_2d", "flip")


def test_audit_plot_on_the_samples(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for i, name in enumerate(RUN):
        (run_dir / f"ckpt_{i}.safetensors").write_bytes((SAMPLES / f"{name}.safetensors").read_bytes())
    out = tmp_path / "run.png"
    code, _, output = run_cli("audit", run_dir, "--plot", out, "--quiet")
    assert code == 0, output
    assert_png(out)


def test_plot_without_matplotlib_says_how_to_install(monkeypatch, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    code, _, output = run_cli("scan", SAMPLES / "flip.safetensors", "--plot", tmp_path / "x.png")
    assert code == 2
    assert "pip install 'spectral-probe[plot]'" in output and "Traceback" not in output
    assert not (tmp_path / "x.png").exists()


def test_help_and_plain_scans_never_import_matplotlib() -> None:
    code = (
        "import sys; from typer.testing import CliRunner; from spectral_probe.cli import app; "
        "r = CliRunner().invoke(app, ['scan', '--help']); assert r.exit_code == 0; "
        "r = CliRunner().invoke(app, ['scan', 'sample_checkpoints/flip.safetensors', '--quiet']); "
        "assert r.exit_code == 0, r.output; print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_json_fields_null_when_not_computed() -> None:
    code, report, output = run_cli("scan", SAMPLES / "flip.safetensors", "--json", "-")
    assert code == 0, output
    row = report["results"][0]
    assert all(key in row for key in NEW_FIELDS)
    assert row["c_crit"] == pytest.approx(row["alpha_nc"] - 1)
    for key in NEW_FIELDS[3:]:
        assert row[key] is None, key


def test_json_fields_when_computed() -> None:
    code, report, output = run_cli(
        "scan", SAMPLES / "closed_form_2d.safetensors", "--margins", "--transient", "--modes",
        "--transient-horizon", "30", "--json", "-",
    )  # fmt: skip
    assert code == 0, output
    row = report["results"][0]
    assert row["power_horizon"] == 30 and 1 <= row["max_power_k"] <= 30
    assert row["transient"] is True and row["max_power_norm"] > 1 > row["rho"]
    assert row["eps_max_confirmed"] is True and row["eps_max"] > row["eps"]
    assert set(row["matvecs_by_kind"]) >= {"margins", "transient", "modes"}
    assert row["matvecs"] >= sum(row["matvecs_by_kind"][k] for k in ("margins", "transient", "modes"))
    assert "margins / growth" in run_cli("scan", SAMPLES / "closed_form_2d.safetensors", "--transient")[2]
