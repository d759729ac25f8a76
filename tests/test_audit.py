"""``audit``: discovery, order, journal and resume, jobs, trajectory, and the CI reports.

The first part drives :func:`spectral_probe.audit.run_audit` with a fake probe (a JSON file per
"checkpoint") so the audit's own logic is tested apart from the solvers; the end-to-end part runs the
real probe through the CLI on small generated checkpoints.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math
import os
import re
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from safetensors.torch import save_file
from typer.testing import CliRunner

from spectral_probe.audit import (
    _Outcome,
    build_trajectory,
    find_checkpoints,
    natural_key,
    run_audit,
    sparkline,
)
from spectral_probe.checkpoint import load_yaml_config
from spectral_probe.cli import app
from spectral_probe.config import OPTION_NAMES, ProbeOptions, merge_options
from spectral_probe.errors import InputError, UsageError
from spectral_probe.exitcodes import ExitCode
from spectral_probe.gate import evaluate
from spectral_probe.report import junit, markdown
from spectral_probe.report.table import render
from spectral_probe.results import CheckpointError, FixedPointResult, Report
from spectral_probe.verdict import classify

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"

# --------------------------------------------------------------------------------------------------
# A fake probe: a "checkpoint" is a JSON file {"step": int|None, "fps": [[lead_real, lead_imag, omega]]}.


def fake_result(
    path: str, index: int, fp: list[float], step: int | None, sha: str | None, notes: tuple[str, ...] = ()
) -> FixedPointResult:
    """A self-consistent result with eps = 1: rho = |lead|, mu = lead - 1, the verdict from docs/SPEC.md section 2."""
    lead_real, lead_imag, omega = fp
    rho = math.hypot(lead_real, lead_imag)
    mu = lead_real - 1.0
    verdict, reason = classify(
        rho=rho,
        lead_real=lead_real,
        lead_imag=lead_imag,
        mu_lead_real=mu,
        omega=omega,
        band=1e-6,
        complex_tol=1e-6,
    )
    return FixedPointResult(
        checkpoint=path,
        index=index,
        n=4,
        c=0.0,
        eps=1.0,
        omega=omega,
        alpha=mu,
        alpha_imag=abs(lead_imag),
        rho=rho,
        lead_real=lead_real,
        lead_imag=abs(lead_imag),
        mu_lead_real=mu,
        mu_lead_imag=abs(lead_imag),
        gap=omega - mu,
        omega_nc=omega + 1,
        alpha_nc=mu + 1,
        fd_jvp_rel_err=1e-10,
        adjoint_rel_err=1e-12,
        fixed_point_residual=0.0,
        converged=True,
        method="dense",
        matvecs=4,
        seconds=0.01,
        verdict=verdict,
        reason=reason,
        lead_is_complex=abs(lead_imag) > 1e-6,
        sha256=sha,
        step=step,
        notes=notes,
    )


def fake_probe(path: str, options: ProbeOptions, *, warm: Any = None, use_warm: bool = True) -> Any:
    """Module level, so ``--jobs 2`` workers can unpickle it. ``notes`` records the warm start seen."""
    data = Path(path).read_bytes()
    try:
        spec = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, "corrupt fake checkpoint") from None
    sha = hashlib.sha256(data).hexdigest()
    seen = (f"warm={warm if use_warm else None}",)
    results = tuple(fake_result(path, i, fp, spec.get("step"), sha, seen) for i, fp in enumerate(spec["fps"]))
    if spec.get("inconclusive_when_warm") and use_warm and warm is not None:
        results = tuple(dataclass_replace_verdict(r, "inconclusive") for r in results)
    return types.SimpleNamespace(path=path, sha256=sha, results=results, warm=Path(path).name)


def write_fake(path: Path, fps: list[list[float]], step: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"step": step, "fps": fps}))
    return path


STABLE = [0.5, 0.0, -0.5]  # contractive
HOPF_FP = [1.1, 0.3, 0.4]  # a complex pair outside the unit circle, Re(mu) > 0


class Recorder:
    """An in-process probe (``--jobs 1`` needs no pickling) that remembers what it probed."""

    def __init__(self, fail_on: str | None = None, exc: BaseException | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on, self.exc = fail_on, exc

    def __call__(self, path: str, options: ProbeOptions, *, warm: Any = None, use_warm: bool = True) -> Any:
        if self.fail_on and path.endswith(self.fail_on):
            assert self.exc is not None
            raise self.exc
        self.calls.append(Path(path).name)
        return fake_probe(path, options, warm=warm, use_warm=use_warm)


def lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text.endswith("\n"), "the journal must end with a whole line"
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def fake_run(tmp_path: Path) -> Path:
    """Five checkpoints (one with two fixed points) and a corrupt file, names in natural order."""
    run = tmp_path / "run"
    write_fake(run / "step_900.safetensors", [STABLE])
    write_fake(run / "step_1000.safetensors", [STABLE, [0.9, 0.0, 0.2]])
    write_fake(run / "step_50.pt", [STABLE])
    write_fake(run / "nested" / "step_2000.pth", [HOPF_FP])
    (run / "step_1500.safetensors").write_bytes(b"\x00\x01 not a checkpoint")
    (run / "notes.txt").write_text("ignored")
    return run


# --------------------------------------------------------------------------------------------------
# Discovery and order


def test_natural_key_orders_digit_runs_as_numbers() -> None:
    names = ["step_1000", "step_900", "Step_95", "step_10_b", "step_10_a", "step_007", "step_7"]
    assert sorted(names, key=natural_key) == [
        "step_007",
        "step_7",
        "step_10_a",
        "step_10_b",
        "Step_95",
        "step_900",
        "step_1000",
    ]


def test_find_checkpoints_default_patterns_at_any_depth_in_natural_order(fake_run: Path) -> None:
    found = [Path(p).relative_to(fake_run).as_posix() for p in find_checkpoints(fake_run)]
    assert found == [
        "nested/step_2000.pth",
        "step_50.pt",
        "step_900.safetensors",
        "step_1000.safetensors",
        "step_1500.safetensors",
    ]


def test_the_default_patterns_take_the_suffixes_in_any_case_as_scan_does(tmp_path: Path) -> None:
    # scan reads STEP_1.PT; audit skipped it (a case-sensitive glob), so it dropped out of the run unseen.
    for name in ("a.SAFETENSORS", "b.Pt", "c.pth", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [Path(p).name for p in find_checkpoints(tmp_path)] == ["a.SAFETENSORS", "b.Pt", "c.pth"]


def test_glob_without_a_slash_matches_names_at_any_depth(fake_run: Path) -> None:
    assert [Path(p).name for p in find_checkpoints(fake_run, "step_2*")] == ["step_2000.pth"]
    assert find_checkpoints(fake_run, "*/*.pth") == [str(fake_run / "nested" / "step_2000.pth")]
    assert len(find_checkpoints(fake_run, "**/*.safetensors")) == 3


def test_an_empty_folder_is_a_usage_error_never_a_pass(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("no checkpoints here")
    with pytest.raises(UsageError, match="no checkpoint matches"):
        run_audit(str(tmp_path), ProbeOptions(), probe_fn=fake_probe)
    with pytest.raises(UsageError, match="no such directory"):
        find_checkpoints(tmp_path / "missing")
    result = CliRunner().invoke(app, ["audit", str(tmp_path)])
    assert result.exit_code == 2
    assert "no checkpoint matches" in result.output and "Traceback" not in result.output


def test_files_that_cannot_be_read_are_error_rows_not_skipped(tmp_path: Path) -> None:
    """A FIFO, a broken symlink or a symlink loop under a checkpoint's name was left out of the audit
    without a word (discovery kept regular files only): a checkpoint dropped unnoticed. A folder under
    such a name is still no checkpoint."""
    run = tmp_path / "run"
    run.mkdir()
    os.mkfifo(run / "b_fifo.safetensors")
    os.symlink(tmp_path / "deleted.safetensors", run / "c_broken.safetensors")
    os.symlink(run / "d_loop.safetensors", run / "e_loop.safetensors")
    os.symlink(run / "e_loop.safetensors", run / "d_loop.safetensors")
    (run / "f_folder.safetensors").mkdir()
    (run / "f_folder.safetensors" / "notes.txt").write_text("not a checkpoint")
    result = CliRunner().invoke(app, ["audit", str(run), "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = {Path(e["checkpoint"]).name: e["error"] for e in json.loads((tmp_path / "r.json").read_text())["errors"]}
    assert sorted(errors) == ["b_fifo.safetensors", "c_broken.safetensors", "d_loop.safetensors", "e_loop.safetensors"]
    assert errors["b_fifo.safetensors"].endswith("is not a regular file")
    assert errors["c_broken.safetensors"].endswith("is a broken symbolic link")
    assert errors["d_loop.safetensors"].endswith("Too many levels of symbolic links")


# --------------------------------------------------------------------------------------------------
# The audit with a fake probe


def test_rows_error_row_journal_and_warm_chain(fake_run: Path, tmp_path: Path) -> None:
    journal = tmp_path / "out" / "audit.jsonl"
    report = run_audit(str(fake_run), ProbeOptions(jsonl=str(journal)), probe_fn=fake_probe)

    assert report.command == "audit"
    rows = [(Path(r.checkpoint).name, r.index, r.verdict) for r in report.results]
    assert rows == [
        ("step_2000.pth", 0, "hopf"),
        ("step_50.pt", 0, "contractive"),
        ("step_900.safetensors", 0, "contractive"),
        ("step_1000.safetensors", 0, "contractive"),
        ("step_1000.safetensors", 1, "stable"),
    ]
    assert [Path(e.checkpoint).name for e in report.errors] == ["step_1500.safetensors"]
    assert "corrupt fake checkpoint" in report.errors[0].error
    assert report.gate.exit_code == 2  # an unreadable input, no gate: docs/SPEC.md section 7
    assert report.reproducibility["audit"]["checkpoints"] == 5

    written = lines(journal)
    assert len(written) == 6  # five fixed points and one error, one line each
    assert sorted((Path(d["checkpoint"]).name, d.get("index")) for d in written) == sorted(
        [(Path(r.checkpoint).name, r.index) for r in report.results] + [("step_1500.safetensors", None)]
    )
    error_line = next(d for d in written if "error" in d)
    corrupt = fake_run / "step_1500.safetensors"
    assert error_line["sha256"] == hashlib.sha256(corrupt.read_bytes()).hexdigest()
    assert all(d["sha256"] for d in written)

    # Warm starts run along the sequence; an unreadable checkpoint passes the previous one on.
    warm = {Path(r.checkpoint).name: r.notes[0] for r in report.results}
    assert warm["step_2000.pth"] == "warm=None"
    assert warm["step_50.pt"] == "warm=step_2000.pth"
    assert warm["step_1000.safetensors"] == "warm=step_900.safetensors"


def test_a_warm_start_never_makes_a_result_inconclusive(tmp_path: Path) -> None:
    write_fake(tmp_path / "step_1.safetensors", [STABLE])
    (tmp_path / "step_2.safetensors").write_text(json.dumps({"fps": [STABLE], "inconclusive_when_warm": True}))
    write_fake(tmp_path / "step_3.safetensors", [STABLE])
    probe = Recorder()
    report = run_audit(str(tmp_path), ProbeOptions(), probe_fn=probe)
    assert probe.calls == [
        "step_1.safetensors",
        "step_2.safetensors",
        "step_2.safetensors",
        "step_3.safetensors",
    ]
    assert [r.verdict for r in report.results] == ["contractive"] * 3
    assert report.results[1].notes[0] == "warm=None" and "probed again" in report.results[1].notes[-1]
    assert report.results[2].notes[0] == "warm=step_2.safetensors"  # the cold probe's vectors go on
    retries = report.reproducibility["audit"]["warm_start_retries"]
    assert [Path(r["checkpoint"]).name for r in retries] == ["step_2.safetensors"]


def test_no_warm_start_option_turns_warm_starts_off(fake_run: Path) -> None:
    report = run_audit(str(fake_run), ProbeOptions(warm_start=False), probe_fn=fake_probe)
    assert {r.notes[0] for r in report.results} == {"warm=None"}
    assert report.reproducibility["audit"]["warm_start"] is False


def test_metadata_step_wins_over_names(tmp_path: Path) -> None:
    write_fake(tmp_path / "a_last.safetensors", [STABLE], step=300)
    write_fake(tmp_path / "b_first.safetensors", [STABLE], step=100)
    write_fake(tmp_path / "c_middle.safetensors", [HOPF_FP], step=200)
    report = run_audit(str(tmp_path), ProbeOptions(), probe_fn=fake_probe)
    assert [r.step for r in report.results] == [100, 200, 300]
    assert report.trajectory is not None and report.trajectory["x"] == "step"


def test_resume_skips_recorded_checkpoints_and_reprobes_a_changed_file(fake_run: Path, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    first = run_audit(str(fake_run), ProbeOptions(jsonl=str(journal)), probe_fn=fake_probe)
    # A writer killed mid-line (should not happen, but a resume must survive it).
    with journal.open("a") as handle:
        handle.write('{"checkpoint": "half a li')
    write_fake(fake_run / "step_900.safetensors", [HOPF_FP])  # changed since: probe it again

    probe = Recorder()
    resumed = run_audit(str(fake_run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=probe)
    assert probe.calls == ["step_900.safetensors"]
    assert resumed.reproducibility["audit"]["resumed"] == 4
    # The whole folder is in the report: the reloaded results and the fresh one.
    assert len(resumed.results) == len(first.results) and len(resumed.errors) == 1
    changed = [r for r in resumed.results if r.checkpoint.endswith("step_900.safetensors")]
    assert [r.verdict for r in changed] == ["hopf"]
    unchanged = {(r.checkpoint, r.index): r for r in first.results}
    for r in resumed.results:
        if not r.checkpoint.endswith("step_900.safetensors"):
            assert r == unchanged[(r.checkpoint, r.index)]
    written = lines(journal)  # the partial line is gone, the new line follows the old ones
    assert len(written) == 7
    assert resumed.gate == evaluate(resumed.results, resumed.errors, {})


def test_resume_reprobes_everything_when_a_file_an_option_names_has_changed(fake_run: Path, tmp_path: Path) -> None:
    # The fingerprint hashed the --fixed-point path, not its bytes: a rewritten z* reloaded old answers.
    journal, fixed_point = tmp_path / "audit.jsonl", tmp_path / "z.safetensors"
    save_file({"z_star": torch.zeros(3, dtype=torch.float64)}, str(fixed_point))
    options = ProbeOptions(jsonl=str(journal), fixed_point=str(fixed_point))
    run_audit(str(fake_run), options, probe_fn=fake_probe)
    unchanged = Recorder()
    run_audit(str(fake_run), dataclasses.replace(options, resume=True), probe_fn=unchanged)
    assert unchanged.calls == []
    save_file({"z_star": torch.ones(3, dtype=torch.float64)}, str(fixed_point))
    changed = Recorder()
    run_audit(str(fake_run), dataclasses.replace(options, resume=True), probe_fn=changed)
    assert len(changed.calls) == len(find_checkpoints(str(fake_run)))


def test_resume_from_another_working_directory_finds_every_line(
    fake_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal keeps the paths as written (relative to where the audit ran): from elsewhere nothing matched,
    # every checkpoint was probed again and journaled under a second name.
    journal = tmp_path / "audit.jsonl"
    monkeypatch.chdir(fake_run.parent)
    run_audit(fake_run.name, ProbeOptions(jsonl=str(journal)), probe_fn=fake_probe)
    monkeypatch.chdir(tmp_path.parent)
    probe = Recorder()
    resumed = run_audit(
        str(Path(tmp_path.name) / fake_run.relative_to(tmp_path)),
        ProbeOptions(jsonl=str(journal), resume=True),
        probe_fn=probe,
    )
    assert probe.calls == [] and resumed.reproducibility["audit"]["resumed"] == len(find_checkpoints(str(fake_run)))


def test_resume_reprobes_a_checkpoint_cut_between_its_fixed_points(fake_run: Path, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    run_audit(str(fake_run), ProbeOptions(jsonl=str(journal)), probe_fn=fake_probe)
    kept = [line for line in journal.read_text().splitlines() if not ("step_1000" in line and '"index": 1' in line)]
    journal.write_text("\n".join(kept) + "\n")
    probe = Recorder()
    report = run_audit(str(fake_run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=probe)
    assert probe.calls == ["step_1000.safetensors"]
    assert sum(r.checkpoint.endswith("step_1000.safetensors") for r in report.results) == 2


def test_resume_follows_the_numeric_options_not_the_gates(fake_run: Path, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    run_audit(str(fake_run), ProbeOptions(jsonl=str(journal)), probe_fn=fake_probe)
    probe = Recorder()
    gated = ProbeOptions(jsonl=str(journal), resume=True, max_rho=1.0, jobs=3, warm_start=False)
    assert run_audit(str(fake_run), gated, probe_fn=probe).gate.exit_code == 2
    assert probe.calls == []
    run_audit(str(fake_run), ProbeOptions(jsonl=str(journal), resume=True, c=0.5), probe_fn=probe)
    assert len(probe.calls) == 5  # another --c is another question: everything is probed again


def test_resume_needs_a_journal(fake_run: Path) -> None:
    with pytest.raises(UsageError, match="--jsonl"):
        run_audit(str(fake_run), ProbeOptions(resume=True), probe_fn=fake_probe)


def test_ctrl_c_keeps_every_finished_line_and_propagates(fake_run: Path, tmp_path: Path) -> None:
    journal = tmp_path / "audit.jsonl"
    probe = Recorder(fail_on="step_900.safetensors", exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_audit(str(fake_run), ProbeOptions(jsonl=str(journal)), probe_fn=probe)
    assert probe.calls == ["step_2000.pth", "step_50.pt"]
    assert [Path(d["checkpoint"]).name for d in lines(journal)] == ["step_2000.pth", "step_50.pt"]


def test_a_bug_met_on_one_file_is_an_error_row_and_exit_4_and_the_audit_goes_on(fake_run: Path, tmp_path: Path) -> None:
    # It ended the audit (exit 4) at that file: the checkpoints after it were never probed, nor journaled.
    journal = tmp_path / "audit.jsonl"
    probe = Recorder(fail_on="step_900.safetensors", exc=RuntimeError("boom"))
    report = run_audit(str(fake_run), ProbeOptions(jsonl=str(journal)), probe_fn=probe)
    everything = len(find_checkpoints(str(fake_run)))
    assert len(probe.calls) == everything - 1  # every other checkpoint, those after it included
    (error,) = [e for e in report.errors if e.internal]  # beside the fake run's own bad files
    assert error.checkpoint.endswith("step_900.safetensors")
    assert "internal error (RuntimeError: boom); please report it" in error.error
    assert report.gate.exit_code == ExitCode.INTERNAL_ERROR
    assert len({d["checkpoint"] for d in lines(journal)}) == everything
    again = Recorder()  # --resume probes it again (after a fix), and only it
    run_audit(str(fake_run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=again)
    assert again.calls == ["step_900.safetensors"]


def test_progress_bar_goes_to_stderr(fake_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_audit(str(fake_run), ProbeOptions(), probe_fn=fake_probe, progress=True)
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------------
# The trajectory view


def outcomes(points: list[tuple[int, list[float]]]) -> list[_Outcome]:
    made = []
    for step, fp in points:
        path = f"runs/step_{step}.safetensors"
        made.append(_Outcome(path, "0" * 64, results=(fake_result(path, 0, fp, step, "0" * 64),)))
    return made


@pytest.mark.parametrize(
    ("crossing", "kind"),
    [
        ([1.02, 0.3, 0.1], "hopf"),  # complex pair, Re(mu) > 0
        ([0.98, 0.3, 0.1], "neimark-sacker"),  # complex pair, |lead| > 1 but Re(mu) < 0
        ([1.05, 0.0, 0.1], "saddle"),  # real, through +1
        ([-1.05, 0.0, 0.1], "flip"),  # real, through -1
    ],
)
def test_bifurcation_type_from_the_crossing_eigenvalue(crossing: list[float], kind: str) -> None:
    trajectory = build_trajectory(
        outcomes([(800, [0.9, 0.2, -0.1]), (900, [0.97, 0.2, -0.1]), (1000, crossing), (1100, crossing)]),
        "runs",
    )
    assert trajectory is not None
    bifurcation = trajectory["bifurcation"]
    assert bifurcation["type"] == kind
    assert (bifurcation["step_before"], bifurcation["step_after"]) == (900, 1000)
    assert bifurcation["summary"].startswith(f"{kind} between step_900 and step_1000 (rho 0.9")
    assert bifurcation["unstable_count_change"] == [0, 2 if kind in ("hopf", "neimark-sacker") else 1]
    assert 900 <= bifurcation["estimated_step"] <= 1000
    json.dumps(trajectory, allow_nan=False)  # it goes into the JSON report as is


def test_trajectory_needs_three_checkpoints_and_skips_inconclusive() -> None:
    assert build_trajectory(outcomes([(1, STABLE), (2, HOPF_FP)]), "runs") is None
    made = outcomes([(1, STABLE), (2, [0.99, 0.0, 0.1]), (3, HOPF_FP)])
    untrusted = dataclass_replace_verdict(made[1].results[0], "inconclusive")
    made[1] = _Outcome(made[1].path, made[1].sha256, results=(untrusted,))
    trajectory = build_trajectory(made, "runs")
    assert trajectory is not None
    assert trajectory["bifurcation"]["before"] == "step_1"  # the untrusted checkpoint is no witness
    assert [p["verdict"] for p in trajectory["series"]] == ["contractive", "inconclusive", "hopf"]
    assert trajectory["sparklines"]["rho"][0] == "▁" and trajectory["sparklines"]["rho"][-1] == "█"


def dataclass_replace_verdict(result: FixedPointResult, verdict: str) -> FixedPointResult:
    import dataclasses

    return dataclasses.replace(result, verdict=verdict, reason="a solver did not converge")


def test_sparkline_scales_and_buckets_to_the_worst() -> None:
    assert sparkline([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]) == "▁▂▃▄▅▆▇█"
    assert sparkline([1.0, None, float("nan"), 1.0]) == "▄  ▄"
    assert sparkline([0.0, 9.0, 0.0, 0.0, 0.0, 1.0], width=3) == "█▁▂"


# --------------------------------------------------------------------------------------------------
# Reports for CI, on a fixed report


def fixed_report() -> Report:
    made = outcomes([(100, STABLE), (200, [0.95, 0.1, 0.3]), (300, HOPF_FP)])
    inconclusive = dataclass_replace_verdict(fake_result("runs/step_400.safetensors", 0, STABLE, 400, None), "x")
    inconclusive = dataclass_replace_verdict(inconclusive, "inconclusive")
    results = tuple(r for o in made for r in o.results) + (inconclusive,)
    errors = (CheckpointError("runs/step_500.safetensors", "runs/step_500.safetensors: file is empty"),)
    return Report(
        results=results,
        errors=errors,
        gate=evaluate(results, errors, {"rho": 1.0}),
        reproducibility={},
        command="audit",
        trajectory=build_trajectory(made, "runs"),
    )


def test_junit_counts_one_case_per_fixed_point_and_error() -> None:
    suite = ET.fromstring(junit.format(fixed_report()))
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("5", "1", "2")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases][:2] == [
        "runs/step_100.safetensors[0]",
        "runs/step_200.safetensors[0]",
    ]
    assert [bool(c.findall("failure")) for c in cases] == [False, False, True, False, False]
    assert [bool(c.findall("error")) for c in cases] == [False, False, False, True, True]


def test_markdown_matches_the_golden_file() -> None:
    text = markdown.format(fixed_report())
    golden = GOLDEN / "audit.md"
    if os.environ.get("SPECTRAL_PROBE_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_terminal_view_shows_the_trajectory() -> None:
    console = Console(record=True, width=120)
    render(fixed_report(), console)
    text = console.export_text()
    assert "trajectory over 3 checkpoints (step 100 -> 300)" in text
    assert "bifurcation: hopf between step_200 and step_300" in text
    assert re.search(r"rho\s+[▁-█]{3}", text)


def test_terminal_view_of_a_run_that_stays_stable() -> None:
    made = outcomes([(1, STABLE), (2, [0.6, 0.1, -0.2]), (3, [0.7, 0.0, -0.1])])
    results = tuple(r for o in made for r in o.results)
    report = Report(results, (), evaluate(results, (), {}), {}, "audit", build_trajectory(made, "runs"))
    console = Console(record=True, width=100)
    render(report, console)
    assert "no loss of stability along the run" in console.export_text()


# --------------------------------------------------------------------------------------------------
# Config for CI


def test_example_config_loads_and_holds_every_option() -> None:
    config = load_yaml_config(ROOT / "examples" / "spectral-probe.yaml")
    options = merge_options({}, config)
    assert isinstance(options, ProbeOptions)
    named = {"operator_options" if key == "options" else key for key in config}
    assert named == set(OPTION_NAMES), "examples/spectral-probe.yaml must document every option"


def test_the_config_in_docs_is_the_example() -> None:
    docs = (ROOT / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n# spectral-probe.yaml\n(.*?)```", docs, re.S)
    assert block is not None
    assert block.group(1) == (ROOT / "examples" / "spectral-probe.yaml").read_text()


# --------------------------------------------------------------------------------------------------
# End to end: the real probe on small generated checkpoints


def linear(path: Path, a: torch.Tensor) -> Path:
    save_file(
        {"A": a.contiguous(), "z_star": torch.zeros(a.shape[0], dtype=torch.float64)},
        str(path),
        {"spectral_probe.operator": "linear"},
    )
    return path


def mixed_folder(root: Path) -> Path:
    """Checkpoints with known verdicts, one with two fixed points, and a corrupt file."""
    n = 6
    root.mkdir(parents=True, exist_ok=True)
    eye = torch.eye(n, dtype=torch.float64)
    linear(root / "a_contractive.safetensors", 0.5 * eye)
    shear = 0.5 * eye
    shear[0, 1] = 2.0  # non-normal: omega > 0 although every eigenvalue is stable
    linear(root / "b_stable.safetensors", shear)
    linear(root / "c_saddle.safetensors", torch.diag(torch.tensor([2.0, 0.5, 0.5, 0.5, 0.5, 0.5])).double())
    linear(root / "d_flip.safetensors", torch.diag(torch.tensor([-1.5, 0.5, 0.5, 0.5, 0.5, 0.5])).double())
    spiral = 0.5 * eye
    spiral[:2, :2] = torch.tensor([[1.2, 0.5], [-0.5, 1.2]], dtype=torch.float64)
    linear(root / "e_hopf.safetensors", spiral)
    # hopfield W = w I: z* = 0 (a saddle) and z* = z0 with z0 = w tanh(z0) (stable), as [2, n].
    w, z0 = 2.0, 2.0
    for _ in range(100):  # Newton on g(z) = w tanh(z) - z
        z0 -= (w * math.tanh(z0) - z0) / (w / math.cosh(z0) ** 2 - 1)
    torch.save(
        {
            "W": w * eye,
            "z_star": torch.stack([torch.zeros(n, dtype=torch.float64), torch.full((n,), z0, dtype=torch.float64)]),
            "__metadata__": {"spectral_probe.operator": "hopfield"},
        },
        root / "f_two_fixed_points.pt",
    )
    (root / "g_corrupt.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{trunc")
    return root


EXPECTED = [
    ("a_contractive.safetensors", 0, "contractive"),
    ("b_stable.safetensors", 0, "stable"),
    ("c_saddle.safetensors", 0, "saddle"),
    ("d_flip.safetensors", 0, "flip"),
    ("e_hopf.safetensors", 0, "hopf"),
    ("f_two_fixed_points.pt", 0, "saddle"),
    ("f_two_fixed_points.pt", 1, "contractive"),
]


def test_cli_audit_of_a_mixed_folder(tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "ckpts")
    out = tmp_path / "out"
    args = ["audit", str(folder), "--jsonl", str(out / "a.jsonl"), "--json", str(out / "r.json")]
    args += ["--junit", str(out / "r.xml"), "--markdown", str(out / "r.md"), "--max-rho", "1.0"]
    out.mkdir()
    summary = out / "step_summary.md"
    result = CliRunner().invoke(app, args, env={"GITHUB_STEP_SUMMARY": str(summary), "CI": "true"})
    assert result.exit_code == 2, result.output  # a corrupt file wins over the violations: 4, 2, 3, 1
    assert "Traceback" not in result.output

    report = json.loads((out / "r.json").read_text())
    rows = [(Path(r["checkpoint"]).name, r["index"], r["verdict"]) for r in report["results"]]
    assert rows == EXPECTED
    assert [Path(e["checkpoint"]).name for e in report["errors"]] == ["g_corrupt.safetensors"]
    assert "g_corrupt.safetensors" in report["errors"][0]["error"]

    journal = lines(out / "a.jsonl")
    assert sorted((Path(d["checkpoint"]).name, d.get("index"), d.get("verdict", "error")) for d in journal) == sorted(
        EXPECTED + [("g_corrupt.safetensors", None, "error")]
    )

    suite = ET.parse(out / "r.xml").getroot()
    # violations: c_saddle, d_flip, e_hopf and the saddle of f; errors: the corrupt file.
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("8", "4", "1")
    assert "g_corrupt.safetensors" in (out / "r.md").read_text()
    assert summary.read_text() == (out / "r.md").read_text()  # the step summary is the Markdown report


def test_jobs_2_gives_the_results_of_jobs_1(tmp_path: Path) -> None:
    folder = mixed_folder(tmp_path / "ckpts")
    one = run_audit(str(folder), ProbeOptions())
    two = run_audit(str(folder), ProbeOptions(jobs=2, jsonl=str(tmp_path / "two.jsonl")))
    assert [(r.checkpoint, r.index, r.verdict) for r in two.results] == [
        (r.checkpoint, r.index, r.verdict) for r in one.results
    ]
    for a, b in zip(one.results, two.results, strict=True):
        for key in ("omega", "alpha", "rho", "lead_real", "lead_imag", "mu_lead_real"):
            assert getattr(b, key) == pytest.approx(getattr(a, key), rel=1e-6, abs=1e-12), key
    assert two.errors == one.errors and two.gate == one.gate
    assert len(lines(tmp_path / "two.jsonl")) == len(one.results) + len(one.errors)


def load_generator() -> types.ModuleType:
    return importlib.import_module("tools.make_trajectory")


def test_generated_run_names_the_hopf_step(tmp_path: Path) -> None:
    info = load_generator().main(tmp_path / "run", steps=6, hopf_at=300, n=16)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["audit", str(tmp_path / "run"), "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "bifurcation: hopf between step_200 and step_300" in result.output
    trajectory = json.loads(out.read_text())["trajectory"]
    assert [p["step"] for p in trajectory["series"]] == info["steps"]
    bifurcation = trajectory["bifurcation"]
    assert bifurcation["type"] == "hopf"
    assert bifurcation["step_after"] == info["hopf_at"] == 300
    assert bifurcation["summary"].startswith("hopf between step_200 and step_300 (rho 0.995")
