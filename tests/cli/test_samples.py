"""Each bundled sample's verdict and numbers through the CLI, against the numpy truth in expected.json."""

import json
from pathlib import Path

import pytest

from tests.cli.helpers import run_cli

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_checkpoints"
MANIFEST = json.loads((SAMPLES / "expected.json").read_text())["samples"]


@pytest.mark.parametrize("method", ["auto", "krylov"])
@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_sample_verdict(name: str, method: str, monkeypatch) -> None:
    entry = MANIFEST[name]
    monkeypatch.chdir(ROOT)  # the plugin argument is relative to the repository root
    extra = ("--operator", entry["operator_arg"]) if entry.get("operator_arg") else ()
    code, report, output = run_cli("scan", SAMPLES / name, *extra, "--method", method, "--json", "-")
    assert code == 0, output
    rows = report["results"]
    assert [r["verdict"] for r in rows] == entry["expected_verdicts"], [r["reason"] for r in rows]
    for got, truth in zip(rows, entry["results"], strict=True):
        assert got["index"] == truth["index"]
        for key in ("omega", "alpha", "rho"):
            assert got[key] == pytest.approx(truth[key], rel=1e-7, abs=1e-7), key
        assert got["converged"] is True
