"""The ``--jsonl`` journal against hostile and broken use: nothing lost, nothing hangs, exit 2 named.

* an output path that is an input (or any existing file that is not a journal) is refused, unchanged;
* a FIFO or ``/dev/zero`` as the journal is refused at once (the read would never end);
* a journal line with hostile values (``"index": 1e12`` and the like) is ignored, never allocated from;
* a killed ``--jobs`` worker makes its checkpoint an error row, and the rest are probed;
* a full disk is exit 2 naming the journal, with every line written before kept (injected ENOSPC, and
  a real 8 KiB tmpfs where the machine lets a user namespace mount one).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import tracemalloc
import types
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from spectral_probe.audit import journal as journal_module
from spectral_probe.audit import run_audit
from spectral_probe.audit.journal import Journal
from spectral_probe.cli import app
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import InputError, OutputError
from spectral_probe.gate import evaluate
from spectral_probe.report import json_report
from spectral_probe.results import Report
from tests.test_audit import HOPF_FP, STABLE, Recorder, fake_probe, linear, write_fake

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def run(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    for k in range(4):
        write_fake(folder / f"step_{k}.safetensors", [STABLE if k < 3 else HOPF_FP])
    return folder


def cli(*args: str) -> Any:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def journal_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "a partial line was left behind"
    return [json.loads(line) for line in text.splitlines()]


# --------------------------------------------------------------------------------------------------
# Output paths that would damage a file


def test_a_journal_on_a_checkpoint_is_refused_and_the_checkpoint_kept(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target = run / "step_2.safetensors"
    before = target.read_bytes()
    result = cli("audit", "run", "--jsonl", "run/step_2.safetensors")
    assert result.exit_code == 2
    assert "run/step_2.safetensors" in result.output and "checkpoint" in result.output
    assert target.read_bytes() == before
    with pytest.raises(OutputError, match="checkpoint's name"):  # the library refuses it too
        run_audit("run", ProbeOptions(jsonl="run/step_2.safetensors"), probe_fn=fake_probe)
    assert target.read_bytes() == before


@pytest.mark.parametrize("link", [os.link, os.symlink])
def test_a_journal_that_is_an_input_under_another_name_is_refused(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, link: Any
) -> None:
    monkeypatch.chdir(tmp_path)
    target = run / "step_1.safetensors"
    before = target.read_bytes()
    link(target, tmp_path / "alias.jsonl")
    result = cli("audit", "run", "--jsonl", "alias.jsonl")
    assert result.exit_code == 2
    assert "alias.jsonl" in result.output and "checkpoint" in result.output
    with pytest.raises(OutputError, match="is the checkpoint run/step_1.safetensors"):
        run_audit("run", ProbeOptions(jsonl="alias.jsonl"), probe_fn=fake_probe)
    assert target.read_bytes() == before


@pytest.mark.parametrize(
    "content",
    [b"my notes\n", b'{\n  "version": 1,\n  "results": []\n}\n', b"\x08\x00\x00\x00\x00\x00\x00\x00{}", b"PK\x03\x04"],
    ids=["text", "json-report", "safetensors", "zip"],
)
def test_an_existing_file_that_is_no_journal_is_refused_unchanged(run: Path, tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "audit.log"
    target.write_bytes(content)
    for extra in ([], ["--resume"]):
        result = cli("audit", str(run), "--jsonl", str(target), *extra)
        assert result.exit_code == 2
        assert "not a spectral-probe journal" in result.output and str(target) in result.output
        assert target.read_bytes() == content


def test_an_empty_file_and_a_journal_cut_in_its_first_line_are_journals(run: Path, tmp_path: Path) -> None:
    for content in (b"", b'{"checkpoint": "run/step_0.saf'):
        target = tmp_path / "audit.jsonl"
        target.write_bytes(content)
        report = run_audit(str(run), ProbeOptions(jsonl=str(target), resume=True), probe_fn=fake_probe)
        assert len(report.results) == 4
        assert len(journal_lines(target)) == 4  # the cut line was removed, the four appended


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_journal_that_is_no_regular_file_is_refused_without_hanging(run: Path, tmp_path: Path, kind: str) -> None:
    target = {"fifo": "journal.jsonl", "dev-zero": "/dev/zero", "folder": "folder.jsonl"}[kind]
    if kind == "fifo":
        os.mkfifo(tmp_path / target)
    elif kind == "folder":
        (tmp_path / target).mkdir()
    elif not Path(target).exists():
        pytest.skip("no /dev/zero")
    for extra in ([], ["--resume"]):
        command = [sys.executable, "-m", "spectral_probe", "audit", "run", "--jsonl", target, *extra]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr
        assert "regular file" in done.stderr or "directory" in done.stderr
        assert target in done.stderr and "Traceback" not in done.stderr
    with pytest.raises(OutputError, match="regular file"):  # the library refuses it too, without blocking
        run_audit(str(run), ProbeOptions(jsonl=str(tmp_path / target), resume=True), probe_fn=fake_probe)


# --------------------------------------------------------------------------------------------------
# Hostile journal lines


def valid_line(run: Path, tmp_path: Path) -> dict[str, Any]:
    """A real line of the journal, as the audit wrote it, for step_0."""
    journal = tmp_path / "valid.jsonl"
    run_audit(str(run), ProbeOptions(jsonl=str(journal)), probe_fn=fake_probe)
    return next(e for e in journal_lines(journal) if e["checkpoint"].endswith("step_0.safetensors"))


HOSTILE_FIELDS: list[tuple[str, Any]] = [
    ("index", 1e12),
    ("index", 10**12),
    ("index", -1),
    ("index", True),
    ("index", 1),  # out of range for a checkpoint of one fixed point
    ("fixed_points", 10**12),
    ("fixed_points", 0),
    ("fixed_points", 2.0),
    ("rho", "abc"),
    ("rho", [1.0]),
    ("n", 0),
    ("n", 1e400),
    ("matvecs", -5),
    ("verdict", "fine"),
    ("checkpoint", 5),
    ("checkpoint", ""),
    ("sha256", "zz"),
    ("step", 0.5),
    ("notes", "not a list"),
    ("residuals", {"x": "y"}),
    ("residuals", [1, 2]),
    ("converged", "yes"),
    ("reason", {"deep": [[[]]]}),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE_FIELDS, ids=[f"{k}={v!r}"[:40] for k, v in HOSTILE_FIELDS])
def test_a_hostile_field_makes_the_line_ignored(run: Path, tmp_path: Path, key: str, value: Any) -> None:
    line = {**valid_line(run, tmp_path), key: value}
    journal = tmp_path / "audit.jsonl"
    journal.write_text(json.dumps(line) + "\n")
    probe = Recorder()
    report = run_audit(str(run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=probe)
    assert sorted(probe.calls) == [f"step_{k}.safetensors" for k in range(4)]  # nothing reused
    assert report.reproducibility["audit"]["resumed"] == 0


HOSTILE_LINES = [
    b"9" * 5000,  # beyond Python's digit limit for int()
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser's recursion
    b'{"checkpoint": "x", "index": 1e999999}',
    b'{"checkpoint": NaN}',
    b"\xff\xfe not utf-8",
    b'"a string"',
    b"{" + b" " * (17 << 20) + b"}",  # longer than MAX_LINE: skipped without being held
]


def test_hostile_lines_are_ignored_with_bounded_memory(run: Path, tmp_path: Path) -> None:
    good = valid_line(run, tmp_path)
    journal = tmp_path / "audit.jsonl"
    journal.write_bytes(b"\n".join(HOSTILE_LINES) + b"\n" + json.dumps(good).encode() + b"\n")
    tracemalloc.start()
    try:
        fingerprint = good["options_sha256"]
        records = Journal(journal).load(fingerprint)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(records) == 1  # only the good line
    assert peak < 64 << 20, f"peak {peak / 2**20:.1f} MiB reading a {journal.stat().st_size / 2**20:.0f} MiB journal"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


PROPERTY_KEYS = sorted({k for k, _ in HOSTILE_FIELDS} | {"alpha", "omega", "seconds", "matvecs_by_kind"})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(PROPERTY_KEYS), value=JSON_VALUES)
def test_any_field_value_either_is_ignored_or_gives_a_usable_record(
    run: Path, tmp_path: Path, key: str, value: Any
) -> None:
    """Property: loading never raises, and whatever it returns can be gated and written as JSON."""
    line = {**valid_line(run, tmp_path), key: value}
    journal = tmp_path / "prop.jsonl"
    journal.write_text(json.dumps(line) + "\n")
    records = Journal(journal).load(line["options_sha256"])
    results = tuple(r for record in records.values() for r in record.results.values())
    report = Report(results, (), evaluate(results, (), {"rho": 1.0}), {}, "audit")
    json.loads(json_report.format(report))  # no NaN, no unserializable value


@pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX")
def test_a_second_audit_on_a_journal_in_use_is_refused(run: Path, tmp_path: Path) -> None:
    """Two audits on one journal probed everything twice and doubled every line; the second is refused
    before it writes anything, and the journal is free again once the first has ended."""
    journal = tmp_path / "audit.jsonl"
    first = Journal(journal)
    first.open()  # an audit that is running
    try:
        with pytest.raises(OutputError, match="another audit is writing"):
            run_audit(str(run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=fake_probe)
        assert journal.read_bytes() == b""
    finally:
        first.close()
    report = run_audit(str(run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=fake_probe)
    assert report.results and journal.read_bytes().count(b"\n") == len(report.results) + len(report.errors)


# --------------------------------------------------------------------------------------------------
# A killed worker


def poisoned_probe(path: str, options: ProbeOptions, *, warm: Any = None, use_warm: bool = True) -> Any:
    """Module level for ``--jobs``: the checkpoint marked poison kills the worker that probes it."""
    if json.loads(Path(path).read_text()).get("poison"):
        os.kill(os.getpid(), signal.SIGKILL)
    return fake_probe(path, options, warm=warm, use_warm=use_warm)


def test_a_killed_worker_is_an_error_row_and_the_rest_are_probed(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    for k in range(6):
        write_fake(folder / f"step_{k}.safetensors", [STABLE])
    poison = folder / "step_2.safetensors"
    poison.write_text(json.dumps({"step": None, "fps": [STABLE], "poison": True}))
    journal = tmp_path / "audit.jsonl"
    report = run_audit(str(folder), ProbeOptions(jobs=2, jsonl=str(journal)), probe_fn=poisoned_probe)

    assert sorted(Path(r.checkpoint).name for r in report.results) == [f"step_{k}.safetensors" for k in (0, 1, 3, 4, 5)]
    assert [Path(e.checkpoint).name for e in report.errors] == ["step_2.safetensors"]
    assert "worker process died" in report.errors[0].error
    assert report.gate.exit_code == 2
    recorded = sorted(Path(e["checkpoint"]).name for e in journal_lines(journal))
    assert recorded == [f"step_{k}.safetensors" for k in range(6)]  # each exactly once


def test_resume_probes_again_a_checkpoint_whose_worker_died(tmp_path: Path) -> None:
    """A dead worker (the OOM killer) says nothing about the file: --resume (here with --jobs 1, where
    it fits) probes it again, where it reused the error row forever."""
    folder = tmp_path / "run"
    for k in range(4):
        write_fake(folder / f"step_{k}.safetensors", [STABLE])
    (folder / "step_1.safetensors").write_text(json.dumps({"step": None, "fps": [STABLE], "poison": True}))
    journal = tmp_path / "audit.jsonl"
    first = run_audit(str(folder), ProbeOptions(jobs=2, jsonl=str(journal)), probe_fn=poisoned_probe)
    assert [Path(e.checkpoint).name for e in first.errors] == ["step_1.safetensors"]

    recorder = Recorder()
    resumed = run_audit(str(folder), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=recorder)
    assert recorder.calls == ["step_1.safetensors"]
    assert resumed.errors == () and len(resumed.results) == 4
    assert resumed.reproducibility["audit"]["resumed"] == 3


# --------------------------------------------------------------------------------------------------
# A full disk


def test_a_full_disk_is_an_output_error_and_keeps_every_line_before(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "audit.jsonl"
    calls = {"n": 0}
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        calls["n"] += 1
        if calls["n"] == 3:  # the third line: half of it reaches the disk, then the disk is full
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(journal_module, "os", types.SimpleNamespace(**{**vars(os), "write": write}))
    with pytest.raises(OutputError, match="disk is full") as caught:
        run_audit(str(run), ProbeOptions(jsonl=str(journal), warm_start=False), probe_fn=fake_probe)
    assert str(journal) in str(caught.value)
    kept = journal_lines(journal)
    assert len(kept) == 2  # the two whole lines; the cut third removed

    monkeypatch.undo()
    report = run_audit(str(run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=fake_probe)
    assert report.reproducibility["audit"]["resumed"] == 2
    assert journal_lines(journal)[:2] == kept
    assert sorted(Path(e["checkpoint"]).name for e in journal_lines(journal)) == [
        f"step_{k}.safetensors" for k in range(4)
    ]


def can_mount_tmpfs() -> bool:
    if not shutil.which("unshare") or sys.platform != "linux":
        return False
    probe = subprocess.run(
        ["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=8k tmpfs /mnt"], capture_output=True, timeout=30
    )
    return probe.returncode == 0


@pytest.mark.skipif(not can_mount_tmpfs(), reason="no user namespace to mount a tmpfs in")
def test_a_real_full_tmpfs_is_exit_2_naming_the_journal(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    for k in range(10):
        linear(folder / f"step_{k}.safetensors", (0.1 * k) * torch.eye(4, dtype=torch.float64))
    disk, saved = tmp_path / "disk", tmp_path / "saved"
    disk.mkdir()
    saved.mkdir()
    journal = disk / "audit.jsonl"
    audit = f"{sys.executable} -m spectral_probe audit {folder} --jsonl {journal} --quiet"
    script = (
        f"mount -t tmpfs -o size=8k tmpfs {disk} && {audit} 2>{saved}/stderr; "
        f"echo $? > {saved}/rc; cp {journal} {saved}/audit.jsonl"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(["unshare", "-Urm", "sh", "-c", script], cwd=ROOT, env=env, timeout=300, check=True)
    stderr = (saved / "stderr").read_text()
    assert (saved / "rc").read_text().strip() == "2", stderr
    assert str(journal) in stderr and "disk is full" in stderr and "Traceback" not in stderr
    kept = journal_lines(saved / "audit.jsonl")
    assert 1 <= len(kept) < 10

    finish = subprocess.run(
        [
            sys.executable,
            "-m",
            "spectral_probe",
            "audit",
            str(folder),
            "--jsonl",
            str(saved / "audit.jsonl"),
            "--resume",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finish.returncode == 0, finish.stderr
    lines = journal_lines(saved / "audit.jsonl")
    assert lines[: len(kept)] == kept
    assert sorted(Path(e["checkpoint"]).name for e in lines) == sorted(f"step_{k}.safetensors" for k in range(10))


def test_an_interrupt_that_a_probe_swallows_still_stops_the_audit_with_nothing_of_it_journaled(tmp_path):
    # User code (or a library) may catch Ctrl-C's KeyboardInterrupt and turn it into another error: the
    # audit must not journal that checkpoint as done (an error row that --resume would keep) and go on.
    # Python's own Ctrl-C handler, as on a terminal (a background job starts with SIGINT ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _interrupt_swallowed_by_a_probe(tmp_path)
    finally:
        signal.signal(signal.SIGINT, previous)


def _interrupt_swallowed_by_a_probe(tmp_path):
    run = tmp_path / "run"
    for step in range(1, 5):
        write_fake(run / f"step_{step}.safetensors", [STABLE], step=step)
    journal = tmp_path / "audit.jsonl"
    probed = []

    def swallowing_probe(path: str, options: ProbeOptions, **kwargs: Any) -> Any:
        probed.append(path)
        if len(probed) == 2:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                signal.pthread_kill(threading.main_thread().ident, 0)  # let the handler run here
            except KeyboardInterrupt:
                raise InputError(path, "the operator failed (it was interrupted)") from None
        return fake_probe(path, options, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        run_audit(str(run), ProbeOptions(jsonl=str(journal), warm_start=False), probe_fn=swallowing_probe)
    assert len(probed) == 2 and len(journal_lines(journal)) == 1  # the first checkpoint only
    report = run_audit(str(run), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=fake_probe)
    assert report.reproducibility["audit"]["resumed"] == 1 and not report.errors and len(report.results) == 4


def test_resume_probes_again_a_checkpoint_refused_for_want_of_memory(tmp_path: Path) -> None:
    """Not enough memory (ResourceError) is the machine's problem, not the file's: the error row is kept
    for the report but --resume probes the checkpoint again, where a bad file's row is reused."""
    from spectral_probe.errors import ResourceError

    folder = tmp_path / "run"
    for k in range(3):
        write_fake(folder / f"step_{k}.safetensors", [STABLE])
    (folder / "bad.safetensors").write_text("not json")
    journal = tmp_path / "audit.jsonl"
    short = Recorder(fail_on="step_1.safetensors", exc=ResourceError("step_1", "needs 9 GiB of memory"))
    first = run_audit(str(folder), ProbeOptions(jsonl=str(journal)), probe_fn=short)
    assert sorted(Path(e.checkpoint).name for e in first.errors) == ["bad.safetensors", "step_1.safetensors"]

    recorder = Recorder()
    resumed = run_audit(str(folder), ProbeOptions(jsonl=str(journal), resume=True), probe_fn=recorder)
    assert recorder.calls == ["step_1.safetensors"]  # the corrupt file's error row is reused
    assert [Path(e.checkpoint).name for e in resumed.errors] == ["bad.safetensors"]
    assert len(resumed.results) == 3


def test_a_checkpoint_too_large_for_memory_is_a_resource_error(tmp_path: Path) -> None:
    from spectral_probe.errors import ResourceError
    from spectral_probe.memory import check_fits

    with pytest.raises(ResourceError, match="refusing it before allocating"):
        check_fits(1 << 62, "loading its tensors", tmp_path / "x.safetensors")


class _ScriptedPool:
    """A stand-in for the process pool that breaks on cue, run in this process: its first instance
    breaks while the parent is still submitting (the race a worker killed at once opens), later
    instances run every task at once."""

    instances = 0

    def __init__(self) -> None:
        from concurrent.futures import Future

        self.Future, self.submitted = Future, 0
        self.breaks = _ScriptedPool.instances == 0
        _ScriptedPool.instances += 1

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        self.submitted += 1
        future = self.Future()
        if self.breaks and self.submitted == 1:
            future.set_exception(BrokenProcessPool("a child process terminated abruptly"))
        elif self.breaks:
            raise BrokenProcessPool("a child process terminated abruptly")
        else:
            future.set_result(fn(*args))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_a_worker_dying_while_the_parent_still_submits_loses_nothing(tmp_path: Path, monkeypatch) -> None:
    """The pool can break between two submissions (a worker SIGKILLed at once): ``submit`` then raises
    BrokenProcessPool. That took the whole audit down (a flaky failure of the test above on a loaded CI
    machine); now the path not yet started goes back in line, the one in flight is probed again alone, and
    every checkpoint gets exactly one row."""
    import spectral_probe.audit.pool as pool

    _ScriptedPool.instances = 0
    monkeypatch.setattr(pool, "_executor", lambda workers, options: _ScriptedPool())
    folder = tmp_path / "run"
    for k in range(4):
        write_fake(folder / f"step_{k}.safetensors", [STABLE])
    journal = tmp_path / "audit.jsonl"
    report = run_audit(str(folder), ProbeOptions(jobs=2, jsonl=str(journal)), probe_fn=fake_probe)
    assert sorted(Path(r.checkpoint).name for r in report.results) == [f"step_{k}.safetensors" for k in range(4)]
    assert report.errors == ()
    recorded = sorted(Path(e["checkpoint"]).name for e in journal_lines(journal))
    assert recorded == [f"step_{k}.safetensors" for k in range(4)]
