"""Whole-probe scenarios: batched fixed points, start-up times, and the ``--method auto`` crossover.

``batched`` and ``crossover`` run inside a :mod:`bench.worker` subprocess; ``startup`` starts its own
processes (a cold interpreter each time, as a user's shell does).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from .measure import median

REPO = Path(__file__).resolve().parent.parent


def _probe(nc_force: Any, z: torch.Tensor, method: str, c: float = 0.0, eps: float = 1.0) -> list[Any]:
    from spectral_probe.config import ProbeOptions
    from spectral_probe.probe import probe_fixed_points

    results, _ = probe_fixed_points(nc_force, z, c=c, eps=eps, options=ProbeOptions(method=method))
    return results


def _times(fn: Any, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


# --------------------------------------------------------------------------------------------------
# Batched


def batched(config: dict[str, Any]) -> dict[str, Any]:
    """One ``probe_fixed_points`` call on ``[B, n]`` (method krylov) against B calls on ``[1, n]``."""
    from spectral_probe.operators.builtin import hopfield

    from .operators import multi_fixed_point_hopfield

    n, count = int(config["n"]), int(config["count"])
    params, fixed_points = multi_fixed_point_hopfield(n, count, seed=int(config.get("seed", 0)))
    nc_force = hopfield(params, {"activation": "tanh"})
    together = _probe(nc_force, fixed_points, "krylov")  # warm-up, and the answers
    separate = [_probe(nc_force, fixed_points[b : b + 1], "krylov")[0] for b in range(count)]
    batched_times = _times(lambda: _probe(nc_force, fixed_points, "krylov"), int(config.get("reps_batched", 5)))

    def one_by_one() -> None:
        for b in range(count):
            _probe(nc_force, fixed_points[b : b + 1], "krylov")

    separate_times = _times(one_by_one, int(config.get("reps_separate", 3)))
    diffs = {
        key: max(abs(getattr(a, key) - getattr(s, key)) for a, s in zip(together, separate, strict=True))
        for key in ("omega", "alpha", "rho")
    }
    verdicts_batched = sorted({r.verdict for r in together})
    verdicts_separate = sorted({r.verdict for r in separate})
    return {
        "task": "batched",
        "n": n,
        "count": count,
        "batched_times": batched_times,
        "separate_times": separate_times,
        "batched_median_s": median(batched_times),
        "separate_median_s": median(separate_times),
        "speedup": median(separate_times) / median(batched_times),
        "max_abs_diff": diffs,
        "matvecs_batched": together[0].matvecs,
        "matvecs_separate_mean": sum(r.matvecs for r in separate) / count,
        "verdicts_batched": verdicts_batched,
        "verdicts_separate": verdicts_separate,
    }


# --------------------------------------------------------------------------------------------------
# --method auto crossover


def crossover(config: dict[str, Any]) -> dict[str, Any]:
    """Median probe times, dense vs krylov, per n; and what ``--method auto`` (``dense_max_n``) picks."""
    from spectral_probe.config import ProbeOptions

    from .operators import build, spec_for_size

    dense_max_n = ProbeOptions().dense_max_n
    reps = int(config.get("reps", 5))
    slow = float(config.get("slow_seconds", 10.0))
    rows = []
    for n in config["sizes"]:
        problem = build(spec_for_size(int(n)))
        row: dict[str, Any] = {"n": int(n)}
        for method in ("dense", "krylov"):
            start = time.perf_counter()
            first = _probe(problem.nc_force, problem.z_star, method)
            first_seconds = time.perf_counter() - start
            count = reps if first_seconds * reps <= slow * 5 else max(3, min(reps, int(slow * 5 / first_seconds)))
            times = _times(lambda m=method, p=problem: _probe(p.nc_force, p.z_star, m), count)
            row[method] = {
                "times": times,
                "median_s": median(times),
                "first_s": first_seconds,
                "verdict": first[0].verdict,
                "rho": first[0].rho,
                "matvecs": first[0].matvecs,
            }
        faster = min(row["dense"]["median_s"], row["krylov"]["median_s"])
        auto = "dense" if int(n) <= dense_max_n else "krylov"
        row["faster"] = "dense" if row["dense"]["median_s"] <= row["krylov"]["median_s"] else "krylov"
        row["auto"] = auto
        row["auto_ratio"] = row[auto]["median_s"] / faster
        row["auto_within_10pct"] = row["auto_ratio"] <= 1.10
        row["rho_agree"] = abs(row["dense"]["rho"] - row["krylov"]["rho"])
        rows.append(row)
    return {
        "task": "crossover",
        "dense_max_n": dense_max_n,
        "rows": rows,
        **crossover_summary(rows, dense_max_n),
    }


def crossover_summary(rows: list[dict[str, Any]], dense_max_n: int) -> dict[str, Any]:
    """The crossover n (log-interpolated where the time ratio crosses 1) and the recommended threshold."""
    crossing = None  # the first size where Krylov overtakes dense for good
    for low, high in zip(rows, rows[1:], strict=False):
        r_low = low["dense"]["median_s"] / low["krylov"]["median_s"]
        r_high = high["dense"]["median_s"] / high["krylov"]["median_s"]
        if r_low <= 1 < r_high:
            # log-log interpolation of the time ratio between the two sizes
            t = math.log(r_low) / (math.log(r_low) - math.log(r_high)) if r_low != r_high else 0.5
            crossing = round(math.exp(math.log(low["n"]) + t * (math.log(high["n"]) - math.log(low["n"]))))
            break
    dense_wins = [row["n"] for row in rows if row["faster"] == "dense"]
    # Largest n such that dense wins there and at every smaller size measured.
    recommended = 0
    for row in rows:
        if row["faster"] != "dense":
            break
        recommended = row["n"]
    return {
        "crossover_n": crossing,
        "dense_faster_at": dense_wins,
        "recommended_dense_max_n": recommended,
        "auto_within_10pct_everywhere": all(row["auto_within_10pct"] for row in rows),
    }


# --------------------------------------------------------------------------------------------------
# Start-up


def write_contractive_checkpoint(path: Path, n: int = 512, seed: int = 0) -> Path:
    """A contractive hopfield checkpoint (``||W|| ~ 0.8``) with ``z_star``, as ``scan`` reads it."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(4000 + seed)
    weight = 0.4 * torch.randn(n, n, generator=generator, dtype=torch.float64) / math.sqrt(n)
    z_star = 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    bias = z_star - weight @ torch.tanh(z_star)
    metadata = {"spectral_probe.operator": "hopfield", "spectral_probe.options": '{"activation": "tanh"}'}
    save_file({"W": weight, "b": bias, "z_star": z_star}, str(path), metadata=metadata)
    return path


def _command_prefix() -> tuple[list[str], str]:
    """How to start the CLI: the installed console script if it runs THIS tree, else ``python -m``."""
    script = shutil.which("spectral-probe")
    if script:
        check = subprocess.run(
            [sys.executable, "-c", "import spectral_probe, sys; sys.stdout.write(spectral_probe.__file__)"],
            capture_output=True,
            text=True,
            env=_env(),
            cwd=str(REPO),
            check=False,
        )
        if check.returncode == 0 and Path(check.stdout).resolve().is_relative_to(REPO):
            return [script], "spectral-probe (console script)"
    return [sys.executable, "-m", "spectral_probe"], "python -m spectral_probe"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("GITHUB_STEP_SUMMARY", None)
    return env


def _process_times(command: list[str], reps: int) -> tuple[list[float], int, str]:
    times = []
    code = 0
    tail = ""
    for _ in range(reps):
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=str(REPO), check=False)
        times.append(time.perf_counter() - start)
        code = done.returncode
        tail = (done.stderr or done.stdout)[-300:]
    return times, code, tail


def startup(reps: int = 5, checkpoint: Path | None = None, tiny: bool = False) -> dict[str, Any]:
    """Wall time of whole processes: ``python -c 'import torch'``, ``--help``, and a full ``scan``."""
    prefix, how = _command_prefix()
    with tempfile.TemporaryDirectory() as tmp:
        sample = REPO / "sample_checkpoints" / "contractive.safetensors"
        if checkpoint is None:
            if sample.is_file() and not tiny:
                checkpoint, source = sample, "sample_checkpoints/contractive.safetensors"
            else:
                n = 32 if tiny else 512
                checkpoint = write_contractive_checkpoint(Path(tmp) / "contractive.safetensors", n=n)
                source = f"generated contractive hopfield checkpoint, n = {n}"
        else:
            source = str(checkpoint)
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "--help": [*prefix, "--help"],
            "scan": [*prefix, "scan", str(checkpoint), "--quiet", "--json", str(Path(tmp) / "scan.json")],
        }
        out: dict[str, Any] = {"task": "startup", "how": how, "checkpoint": source, "reps": reps}
        for name, command in commands.items():
            times, code, tail = _process_times(command, reps)
            out[name] = {"times": times, "median_s": median(times), "exit_code": code}
            if code != 0:
                out[name]["output_tail"] = tail
        scan_json = Path(tmp) / "scan.json"
        if scan_json.is_file():
            import json

            report = json.loads(scan_json.read_text())
            results = report.get("results", [])
            out["scan_n"] = results[0]["n"] if results else None
            out["scan_verdicts"] = sorted({r.get("verdict") for r in results})
            out["scan_method"] = sorted({r.get("method") for r in results})
    out["scan_beyond_torch_s"] = out["scan"]["median_s"] - out["import torch"]["median_s"]
    return out


TASKS = {"batched": batched, "crossover": crossover}
