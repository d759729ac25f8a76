"""Writing reports: atomic writes, non-finite numbers as null, the exit code whatever the output option."""

from __future__ import annotations

import errno
import json
import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from spectral_probe.errors import OutputError
from spectral_probe.outputs import write_report
from spectral_probe.report import json_report
from spectral_probe.results import GateOutcome, Report
from tests.fuzz.catalogue import _linear, _save
from tests.fuzz.sandbox import assert_well_behaved


def test_a_failed_write_keeps_the_old_report(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "report.json"
    target.write_text("OLD")

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OutputError, match=r"--json .*report.json: cannot write the report \(No space left on device\)"):
        write_report(str(target), "NEW", "--json")
    assert target.read_text() == "OLD"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]  # no temporary file left


def test_a_write_keeps_the_mode_of_the_file(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("OLD")
    target.chmod(0o640)
    write_report(str(target), "NEW", "--markdown")
    assert target.read_text() == "NEW" and (target.stat().st_mode & 0o777) == 0o640


def test_non_finite_numbers_are_json_null() -> None:
    """A NaN or infinity anywhere (a gate, the trajectory, the reproducibility block) is written as null."""
    gate = GateOutcome(passed=True, violations=(), untrusted=(), gates={"rho": math.nan}, exit_code=0)
    report = Report(
        results=(),
        errors=(),
        gate=gate,
        reproducibility={"tol": math.inf, "nested": [1.0, -math.inf, {"x": math.nan}]},
        trajectory={"ranges": {"rho": [math.nan, 1.0]}},
    )
    parsed = json.loads(json_report.format(report))
    assert parsed["gate"]["gates"] == {"rho": None}
    assert parsed["reproducibility"] == {"tol": None, "nested": [1.0, None, {"x": None}]}
    assert parsed["trajectory"] == {"ranges": {"rho": [None, 1.0]}}


OUTPUTS = {
    "none": (),
    "json stdout": ("--json", "-"),
    "markdown stdout": ("--markdown", "-"),  # wrote nothing anywhere, exit 0
    "junit stdout": ("--junit", "-"),
    "json file": ("--json", "{tmp}/r.json"),
    "markdown": ("--markdown", "{tmp}/r.md"),
    "junit": ("--junit", "{tmp}/r.xml"),
    "all files": ("--json", "{tmp}/a.json", "--markdown", "{tmp}/a.md", "--junit", "{tmp}/a.xml"),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("parity")
    good = _linear(root / "good.safetensors")  # rho = 1 exactly: marginal
    stable = _save(
        root / "stable.safetensors",
        {"A": -0.5 * torch.eye(4, dtype=torch.float64), "z_star": torch.zeros(4, dtype=torch.float64)},
        operator="linear",
    )
    nan = _save(
        root / "nan.safetensors", {"A": torch.full((3, 3), math.nan), "z_star": torch.zeros(3)}, operator="linear"
    )
    return root, {
        "no gate": (str(stable),),
        "gate held": (str(stable), "--max-rho", "1.5"),
        "gate violated": (str(good), "--max-rho", "0.5"),
        "non-finite tensor": (str(nan),),
        "non-finite tensor under a gate": (str(nan), "--max-rho", "2"),
        "missing file": (str(root / "missing.safetensors"), "--max-rho", "2"),
        "bad option": (str(stable), "--band", "-1"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "no gate",
        "gate held",
        "gate violated",
        "non-finite tensor",
        "non-finite tensor under a gate",
        "missing file",
        "bad option",
    ],
)
def test_no_output_option_changes_the_exit_code(case: str, inputs, sandbox, tmp_path: Path) -> None:
    _, cases = inputs
    codes = {}
    for label, extra in OUTPUTS.items():
        args = ("scan", *cases[case], *(a.replace("{tmp}", str(tmp_path)) for a in extra))
        answer = sandbox.run(*args)
        assert_well_behaved(answer, args)
        codes[label] = answer["exit_code"]
        if case != "bad option":  # a usage error stops before any report
            if label == "json stdout":
                json.loads(answer["stdout"])  # one JSON document, whatever the checkpoint held
            elif label == "markdown stdout":
                assert answer["stdout"].startswith("## spectral-probe scan"), answer["stdout"][:200]
            elif label == "junit stdout":
                ET.fromstring(answer["stdout"])
    assert len(set(codes.values())) == 1, codes


def test_standard_output_takes_one_report_and_a_fifo_without_reader_is_refused(inputs, sandbox, tmp_path: Path) -> None:
    _, cases = inputs
    answer = sandbox.run("scan", *cases["no gate"], "--json", "-", "--junit", "-")
    assert answer["exit_code"] == 2 and "--junit -: --json - already writes to standard output" in answer["stderr"]
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)  # opened for writing with no reader, it blocked until the timeout
    answer = sandbox.run("scan", *cases["no gate"], "--json", str(fifo), timeout=30)
    assert_well_behaved(answer, ("--json", str(fifo)))
    assert answer["exit_code"] == 2 and "a FIFO that no process reads" in answer["stderr"]
