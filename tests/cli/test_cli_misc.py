"""The command line around the numbers: help, start-up cost, config precedence, dtypes, .pt, refine."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from spectral_probe.cli import app
from tests.cli.helpers import run_cli, write_checkpoint

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _hopfield(tmp_path, name="h.safetensors", n=24, seed=0, **meta):
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(n, n, generator=gen, dtype=torch.float64) * 0.6 / n**0.5
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    b = z - w @ torch.tanh(z)
    return write_checkpoint(tmp_path / name, {"W": w, "b": b, "z_star": z}, **({"operator": "hopfield"} | meta))


def test_help_does_not_import_torch() -> None:
    code = (
        "import sys\nimport spectral_probe.cli as cli\nsys.argv = ['spectral-probe', '--help']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\nassert 'torch' not in sys.modules, 'torch imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "scan" in done.stdout and "audit" in done.stdout


@pytest.mark.parametrize("command", ["scan", "audit", "operators"])
def test_every_command_has_help_and_is_documented(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"])
    assert result.exit_code == 0 and len(result.output) > 100
    assert f"spectral-probe {command}" in README


def test_operators_lists_builtins() -> None:
    code, _, output = run_cli("operators")
    assert code == 0
    for name in ("linear", "hopfield", "rnn", "conv"):
        assert name in output


def test_json_on_stdout_is_pure_json(tmp_path) -> None:
    path = _hopfield(tmp_path)
    result = CliRunner().invoke(app, ["scan", str(path), "--json", "-"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)  # the table went to stderr
    assert report["version"] == 1 and report["gate"]["passed"] is True
    repro = report["reproducibility"]
    assert repro["torch_version"] == torch.__version__ and repro["seed"] == 0 and repro["dtype"] == "float64"
    assert len(report["results"][0]["sha256"]) == 64


def test_precedence_command_line_config_metadata(tmp_path) -> None:
    path = _hopfield(tmp_path, eps=0.75, c=0.1)
    config = tmp_path / "probe.yaml"
    config.write_text("eps: 0.5\nseed: 3\n")
    _, report, _ = run_cli("scan", path, "--json", "-")
    assert report["results"][0]["eps"] == 0.75 and report["results"][0]["c"] == pytest.approx(0.1)
    _, report, _ = run_cli("scan", path, "--config", config, "--json", "-")
    assert report["results"][0]["eps"] == 0.5 and report["reproducibility"]["seed"] == 3
    _, report, _ = run_cli("scan", path, "--config", config, "--eps", "0.25", "--json", "-")
    assert report["results"][0]["eps"] == 0.25


def test_gate_exit_codes(tmp_path) -> None:
    path = _hopfield(tmp_path)
    _, report, _ = run_cli("scan", path, "--json", "-")
    rho = report["results"][0]["rho"]
    assert run_cli("scan", path, "--max-rho", rho * 1.01)[0] == 0
    code, report, _ = run_cli("scan", path, "--max-rho", rho * 0.99, "--json", "-")
    assert code == 1 and report["gate"]["passed"] is False and len(report["gate"]["violations"]) == 1
    for output in ("--markdown", "--junit"):  # no output option changes the exit code
        assert run_cli("scan", path, "--max-rho", rho * 0.99, output, tmp_path / "out", "--quiet")[0] == 1


def test_float32_probe_and_float16_inputs(tmp_path) -> None:
    ref = _hopfield(tmp_path)
    _, truth, _ = run_cli("scan", ref, "--json", "-")
    code, report, output = run_cli("scan", ref, "--dtype", "float32", "--json", "-")
    assert code == 0, output
    for key in ("omega", "alpha", "rho"):
        assert report["results"][0][key] == pytest.approx(truth["results"][0][key], abs=1e-4)
    gen = torch.Generator().manual_seed(0)
    n = 16
    a = (torch.randn(n, n, generator=gen) * 0.2).half()
    half = write_checkpoint(tmp_path / "half.safetensors", {"A": a, "z_star": torch.zeros(n).half()}, operator="linear")
    code, report, output = run_cli("scan", half, "--json", "-")
    assert code == 0, output
    eigs = torch.linalg.eigvals(a.double() - torch.eye(n, dtype=torch.float64))
    assert report["results"][0]["alpha"] == pytest.approx(float(eigs.real.max()), abs=1e-10)


def test_torch_checkpoint_weights_only(tmp_path) -> None:
    n = 8
    path = tmp_path / "model.pt"
    torch.save({"A": -0.5 * torch.eye(n, dtype=torch.float64), "z_star": torch.zeros(n)}, path)
    code, report, output = run_cli("scan", path, "--operator", "linear", "--json", "-")
    assert code == 0, output
    assert report["results"][0]["alpha"] == pytest.approx(-1.5)
    assert report["results"][0]["verdict"] == "contractive"


def test_batched_fixed_points_from_a_separate_file(tmp_path) -> None:
    n = 6
    a = torch.diag(torch.tensor([0.5, -0.4, 0.2, 0.1, -0.3, 0.0], dtype=torch.float64))
    ckpt = write_checkpoint(tmp_path / "lin.safetensors", {"A": a}, operator="linear")
    z = tmp_path / "z.safetensors"
    write_checkpoint(z, {"z_star": torch.zeros(3, n, dtype=torch.float64)})
    code, report, output = run_cli("scan", ckpt, "--fixed-point", z, "--json", "-")
    assert code == 0, output
    assert [r["index"] for r in report["results"]] == [0, 1, 2]
    assert all(r["rho"] == pytest.approx(0.5) for r in report["results"])  # M = I + (A - I) = A


@pytest.mark.parametrize(("shape", "count"), [((2, 2, 1), 1), ((1, 4, 1, 1), 1), ((3, 2, 2), 3)])
def test_a_fixed_point_of_another_shape_with_n_elements_is_one_state(tmp_path, shape, count) -> None:
    # docs/SPEC.md section 3: a z_star of n elements is one fixed point (and [B, ...] B of them). A built-in
    # operator acts on [n]: z_star [2, 2, 1] reached `linear` unflattened ("Expected size for first two
    # dimensions of batch2 tensor to be: [2, 4] but got: [2, 2]").
    a = torch.diag(torch.tensor([0.5, -0.4, 0.2, 0.1], dtype=torch.float64))
    z_star = torch.zeros(shape, dtype=torch.float64)
    ckpt = write_checkpoint(tmp_path / "lin.safetensors", {"A": a, "z_star": z_star}, operator="linear")
    code, report, output = run_cli("scan", ckpt, "--json", "-")
    assert code == 0, output
    assert [(r["index"], r["n"]) for r in report["results"]] == [(i, 4) for i in range(count)]
    assert all(r["rho"] == pytest.approx(0.5) for r in report["results"])


def test_refine_polishes_an_inexact_fixed_point(tmp_path) -> None:
    gen = torch.Generator().manual_seed(5)
    n = 20
    w = torch.randn(n, n, generator=gen, dtype=torch.float64) * 0.5 / n**0.5
    z = torch.randn(n, generator=gen, dtype=torch.float64)
    b = z - w @ torch.tanh(z)
    noisy = z + 1e-4 * torch.randn(n, generator=gen, dtype=torch.float64)
    path = write_checkpoint(tmp_path / "r.safetensors", {"W": w, "b": b, "z_star": noisy}, operator="hopfield")
    _, report, _ = run_cli("scan", path, "--json", "-")
    (r,) = report["results"]
    assert r["verdict"] == "inconclusive" and "not a fixed point" in r["reason"]
    _, report, _ = run_cli("scan", path, "--refine", "--json", "-")
    (r,) = report["results"]
    assert r["verdict"] != "inconclusive", r["reason"]
    assert r["fixed_point_residual_before_refine"] > 1e-6 > 1e-12 > r["fixed_point_residual"]


def test_internal_error_is_exit_4_with_one_line(tmp_path, monkeypatch) -> None:
    import spectral_probe.scan as scan

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(scan, "probe_checkpoint", broken)
    path = _hopfield(tmp_path)
    code, _, output = run_cli("scan", path)
    assert code == 4
    assert "internal error" in output and "Traceback" not in output
    code, _, output = run_cli("scan", path, "--debug")
    assert code == 4 and "Traceback" in output


@pytest.mark.parametrize("flag", ["--eps", "--c", "--tol", "--band", "--max-rho"])
@pytest.mark.parametrize("text", ["1_0", " 1", "1e5\n", "0x10", "１"])
def test_a_number_option_is_read_as_the_metadata_is(tmp_path, flag: str, text: str) -> None:
    """typer's float() took ``--eps 1_0`` as 10 while the same string in a checkpoint's metadata is refused:
    one reading of a number for both (validate.PLAIN_NUMBER), exit 2 naming the option."""
    code, _, output = run_cli("scan", _hopfield(tmp_path), flag, text)
    assert code == 2, output
    assert flag in output and "is not a number" in output, output


@pytest.mark.parametrize(("flag", "text"), [("--eps", "0.5"), ("--eps", "+1"), ("--c", "-2"), ("--tol", "1E-9")])
def test_plain_numbers_still_read(tmp_path, flag: str, text: str) -> None:
    code, _, output = run_cli("scan", _hopfield(tmp_path), flag, text)
    assert code == 0, output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--seed", "1e23"), "Invalid value for '--seed'"),
        (("--c", "0x10"), "'0x10' is not a number"),
        (("--transient-horizon", "2.5"), "Invalid value for '--transient-horizon'"),
        (("--bogus",), "No such option: --bogus"),
    ],
)
def test_an_option_that_does_not_parse_is_one_line_exit_2(tmp_path, args, says) -> None:
    # click printed four lines (usage, a hint, a blank line, the error) where the contract promises one.
    code, _, output = run_cli("scan", tmp_path / "x.safetensors", *args)
    assert code == 2, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], output
    assert "(see spectral-probe scan --help)" in lines[0]


@pytest.mark.parametrize("name", ["two\nlines.safetensors", "red\x1b[31mX.safetensors"])
def test_control_characters_in_a_file_name_are_escaped_in_the_error_line(tmp_path, name: str) -> None:
    # Printed raw, a newline split the one-line error and an escape sequence reached the terminal.
    path = tmp_path / name
    path.write_bytes(b"x")
    code, _, output = run_cli("scan", path)
    assert code == 2
    (line,) = [line for line in output.splitlines() if line.strip()]
    assert "\x1b" not in line and ("two\\x0alines" in line or "red\\x1b[31mX" in line), line
