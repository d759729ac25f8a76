"""What needs a real process: a closed pipe, a worker's stdout, a hard 1 GB memory cap."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.catalogue import _conv_34gb, _linear, _zip_bomb

ROOT = Path(__file__).resolve().parents[2]
GIB = 1024**3


def _cli(*args: str, cap: int | None = None, stdout=subprocess.PIPE, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("GITHUB_STEP_SUMMARY", None)

    def limit() -> None:
        if cap is not None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return subprocess.Popen(
        [sys.executable, "-m", "spectral_probe", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=limit,
        **popen,
    )


def test_broken_pipe_on_json_stdout_is_exit_2(tmp_path: Path) -> None:
    """``scan x --json - | true``: the reader is gone before the report is written."""
    good = _linear(tmp_path / "good.safetensors")
    read_end, write_end = os.pipe()
    process = _cli("scan", str(good), "--json", "-", stdout=write_end)
    os.close(write_end)
    os.close(read_end)  # `true` exits at once
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stderr
    assert "--json -: standard output was closed before the report was written (broken pipe)" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr


def test_plugin_prints_in_workers_do_not_break_json(tmp_path: Path) -> None:
    """``audit --jobs 2 --json -`` with a plugin that prints, in the parent and in spawned workers."""
    run = tmp_path / "run"
    run.mkdir()
    for step in range(3):
        _linear(run / f"step_{step}.safetensors")
    plugin = tmp_path / "chatty.py"
    plugin.write_text(
        "import os\n\n\ndef factory(params, options):\n    A = params['A']\n    print('factory says hi')\n"
        "    os.write(1, b'raw bytes on fd 1\\n')\n    return lambda z: A @ z\n"
    )
    process = _cli("audit", str(run), "--jobs", "2", "--operator", f"{plugin}:factory", "--json", "-", "--quiet")
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    report = json.loads(stdout)
    assert len(report["results"]) == 3
    assert "factory says hi" in stderr and "raw bytes on fd 1" in stderr


@pytest.mark.parametrize("builder", [_conv_34gb, _zip_bomb], ids=["conv asking 34 GB", "zip bomb"])
def test_hostile_file_is_refused_under_a_1_gb_cap(tmp_path: Path, builder) -> None:
    """Under RLIMIT_AS = 1 GB (torch itself maps about 0.65 GB) the file is refused, exit 2, one line."""
    hostile = builder(tmp_path / ("hostile.safetensors" if builder is _conv_34gb else "hostile.pt"))
    process = _cli("scan", str(hostile), cap=GIB)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {hostile}:"), stderr
    assert ("refusing it before allocating" in stderr) or ("torch.save never compresses" in stderr)
