"""A capped CLI sandbox: one subprocess under an address-space limit runs CLI invocations with a timeout.

Starting a Python process with torch costs seconds, so the fuzz suite keeps ONE server process: it
reads JSON requests (CLI arguments, environment, working directory, timeout) on stdin, runs each
through typer's CliRunner with ``signal.alarm`` as the timeout, and answers with the exit code, the
two output streams, the seconds taken and the process's peak RSS. The server runs under
``RLIMIT_AS`` = :data:`CAP_BYTES`, so an input that makes the tool allocate beyond it fails inside the
tool (which must report it as exit 2), never on the test machine. If the server dies, the client
says so and starts a fresh one.

Run as ``python -m tests.fuzz.sandbox`` (the server side).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

#: Address-space cap of the server: torch itself maps about 0.65 GB; everything a probe of the
#: catalogue's small checkpoints needs fits well below this. A hostile size must be refused under it.
CAP_BYTES = 1536 * 1024 * 1024
#: Peak resident memory the server may reach over the whole suite.
RSS_BUDGET_BYTES = 1024 * 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


def _serve() -> None:
    import resource
    import signal
    import time

    from typer.testing import CliRunner

    from spectral_probe.cli import app

    channel = os.fdopen(os.dup(1), "w", encoding="utf-8")
    home = os.getcwd()

    def on_alarm(*_: object) -> None:
        raise TimeoutError("sandbox timeout")

    signal.signal(signal.SIGALRM, on_alarm)
    for line in sys.stdin:
        request = json.loads(line)
        os.chdir(request.get("cwd") or home)
        started = time.perf_counter()
        signal.alarm(int(request.get("timeout", 60)))
        try:
            result = CliRunner().invoke(app, request["args"], env=request.get("env"))
        finally:
            signal.alarm(0)
        exception = result.exception
        answer = {
            "exit_code": result.exit_code,
            "stdout": result.stdout,
            "stderr": result.stderr,
            "exception": None if exception is None or isinstance(exception, SystemExit) else repr(exception),
            "timeout": isinstance(exception, TimeoutError),
            "seconds": time.perf_counter() - started,
            "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        channel.write(json.dumps(answer) + "\n")
        channel.flush()


def _limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CAP_BYTES, CAP_BYTES))


class Sandbox:
    """The client: ``run(args)`` -> the answer dict (see the module docstring)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "160"}
        env.pop("GITHUB_STEP_SUMMARY", None)
        env.pop("CI", None)
        return subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            env=env,
            preexec_fn=_limit,
        )

    def run(self, *args: str, env: dict[str, str] | None = None, cwd: str | None = None, timeout: int = 60) -> dict:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        request = {"args": [str(a) for a in args], "env": env or {}, "cwd": cwd, "timeout": timeout}
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(timeout=30)
            self.process = None
            raise AssertionError(f"the sandbox died (exit {code}) on {args}: a crash, or memory beyond the cap")
        return json.loads(line)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            self.process.wait(timeout=30)
        self.process = None


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file below ``folder`` (what must not change)."""
    files = {}
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def assert_well_behaved(answer: dict, args: tuple[str, ...], named: str | None = None) -> None:
    """Exit code in {0, 1, 2, 3}, no traceback, no hang, memory under the cap, the file named on errors."""
    text = answer["stdout"] + answer["stderr"]
    where = f"{args}: exit {answer['exit_code']}, output {text[-1500:]!r}"
    assert not answer["timeout"], f"hang (timeout) on {where}"
    assert answer["exception"] is None, f"uncaught {answer['exception']} on {where}"
    assert answer["exit_code"] in (0, 1, 2, 3), where
    assert "Traceback" not in text, where
    assert answer["maxrss"] < RSS_BUDGET_BYTES, f"peak RSS {answer['maxrss']} on {where}"
    if answer["exit_code"] == 2 and named is not None:
        assert named in text or named.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") in text, (
            f"the error does not name {named}: {where}"
        )


if __name__ == "__main__":
    _serve()
