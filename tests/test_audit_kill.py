"""An audit killed mid-way (SIGINT, then SIGKILL) loses no finished line, and ``--resume`` completes it.

Real subprocesses of ``python -m spectral_probe audit``: the checkpoints are probed through a plugin
operator whose factory sleeps, so the audit is slow enough to be interrupted after its first line.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS = 6

SLOW_OPERATOR = """
import time

import pytest
import torch


def factory(params, options):
    time.sleep(0.25)  # a slow checkpoint: gives the test time to interrupt the audit
    w = params["W"]
    return lambda z: w @ torch.tanh(z)
"""


def make_run(root: Path) -> list[str]:
    root.mkdir()
    names = []
    for k in range(CHECKPOINTS):
        w = (0.1 * k) * torch.eye(4, dtype=torch.float64)
        name = f"step_{100 * k}.safetensors"
        save_file({"W": w, "z_star": torch.zeros(4, dtype=torch.float64)}, str(root / name))
        names.append(name)
    return names


def journal_lines(path: Path) -> list[dict]:
    """Every line must be whole JSON: a kill may stop the audit, never cut a line."""
    if not path.exists():
        return []
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a partial line was left behind"
    return [json.loads(line) for line in text.splitlines()]


def start(run: Path, journal: Path, operator: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "spectral_probe", "audit", str(run), "--jsonl", str(journal)]
    command += ["--operator", f"{operator}:factory", "--quiet", *extra]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_sigint_as_on_a_terminal,
    )


def _sigint_as_on_a_terminal() -> None:
    """A shell starts a background job (``pytest ... &``, some CI runners) with SIGINT ignored, the child
    inherits that, and Python installs no Ctrl-C handler for a signal ignored at start-up: the audit
    would never see the interrupt and run to the end (exit 0, the old flake of this test)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def kill_after_new_line(process: subprocess.Popen, journal: Path, seen: int, sig: int) -> int:
    """Send ``sig`` as soon as the journal holds more lines than ``seen``; return the exit code."""
    deadline = time.monotonic() + 60
    while len(journal_lines(journal)) <= seen:
        assert process.poll() is None, f"the audit ended before it could be interrupted: {process.communicate()}"
        assert time.monotonic() < deadline, "no journal line appeared"
        time.sleep(0.01)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert b"Traceback" not in stderr, stderr.decode()
    kill_after_new_line.stderr = stderr.decode(errors="replace")  # said by the asserts of the exit code
    return process.returncode


def test_sigint_then_sigkill_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    names = make_run(tmp_path / "run")
    operator = tmp_path / "slow_operator.py"
    operator.write_text(SLOW_OPERATOR)
    journal = tmp_path / "audit.jsonl"

    code = kill_after_new_line(start(tmp_path / "run", journal, operator), journal, 0, signal.SIGINT)
    assert code == 130, kill_after_new_line.stderr  # Ctrl-C: stopped cleanly, the CLI says so
    after_sigint = journal_lines(journal)
    assert 1 <= len(after_sigint) < CHECKPOINTS

    process = start(tmp_path / "run", journal, operator, "--resume")
    assert kill_after_new_line(process, journal, len(after_sigint), signal.SIGKILL) == -signal.SIGKILL
    after_sigkill = journal_lines(journal)
    assert len(after_sigint) < len(after_sigkill) < CHECKPOINTS
    assert after_sigkill[: len(after_sigint)] == after_sigint  # appended, never rewritten

    report_path = tmp_path / "report.json"
    finish = start(tmp_path / "run", journal, operator, "--resume", "--json", str(report_path))
    _, stderr = finish.communicate(timeout=120)
    assert finish.returncode == 0, stderr.decode()

    recorded = [Path(line["checkpoint"]).name for line in journal_lines(journal)]
    assert sorted(recorded) == sorted(names), "every checkpoint exactly once: none lost, none repeated"
    report = json.loads(report_path.read_text())
    assert [Path(r["checkpoint"]).name for r in report["results"]] == names  # natural order, whole folder
    assert report["reproducibility"]["audit"]["resumed"] == len(after_sigkill)


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan's zombie may wait for a PID 1 that does not reap)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")
def test_the_workers_end_when_the_audit_is_killed(tmp_path: Path) -> None:
    """kill -9 of an audit with --jobs 2 left its workers waiting forever, each holding torch (and a
    probe's memory): they hold their task queue's write end, so they never see it close."""
    make_run(tmp_path / "run")
    operator = tmp_path / "slow_operator.py"
    operator.write_text(SLOW_OPERATOR)
    journal = tmp_path / "audit.jsonl"
    process = start(tmp_path / "run", journal, operator, "--jobs", "2")
    deadline = time.monotonic() + 60
    while not journal_lines(journal):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.01)
    workers = _children(process.pid)
    assert workers
    process.kill()
    process.wait(timeout=60)  # not communicate(): orphans would hold its pipes open
    deadline = time.monotonic() + 10
    while any(map(_alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [pid for pid in workers if _alive(pid)]
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    process.stdout.close()
    process.stderr.close()
    assert not left, "workers outlived the audit they belong to"
