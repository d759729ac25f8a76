"""``python -m bench.run --output BENCHMARKS.md``: run the benchmark and write the report.

Every problem, the batched scenario and the crossover run in a :mod:`bench.worker` subprocess (one at
a time: the machine's cores are the resource being measured); the start-up times are whole processes.
``--quick`` runs a tiny version of everything (n = 32, one repetition) for the harness test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report, scenarios
from .markers import write_region
from .operators import ProblemSpec, conv_spec, spec_for_size

DEFAULT_SIZES = (512, 2048, 8192, 65_536, 1_048_576)
CROSSOVER_SIZES = (64, 128, 256, 384, 448, 480, 512, 544, 640, 768, 1024, 2048)
REPO = Path(__file__).resolve().parent.parent


def problem_config(spec: ProblemSpec, *, quick: bool, reps: int | None, he: bool) -> dict[str, Any]:
    """Repetitions and which competitors run, by size (the largest sizes run once, fewer variants)."""
    n = spec.n
    huge = n >= 1_000_000
    if quick:
        default_reps = 1
    elif n < 65_536:
        default_reps = 5
    else:
        default_reps = 3 if not huge else 1
    return {
        "task": "problem",
        "spec": spec.to_dict(),
        "reps": reps if reps is not None and not huge else default_reps,
        "budget": 1_000 if quick else (20_000 if n < 65_536 else (6_000 if not huge else 2_000)),
        # wall-clock guard per solver run (a matvec at n = 1M takes ~0.15-0.3 s on 2 busy cores)
        "max_seconds": 1_200 if huge else 300,
        "truth_max_n": 2048,
        "dense_max_n": 2048,
        "hessian_eigenthings": he,
        "variants": not huge and not quick,
        "structured": not huge,
    }


def run_inline(config: dict[str, Any], log: Any) -> dict[str, Any]:
    """Run one task in THIS process (``--inline``: faster, for the smoke test; memory readings less clean)."""
    from . import worker

    started = time.perf_counter()
    try:
        task = config.get("task", "problem")
        result = worker.run_problem(config) if task == "problem" else scenarios.TASKS[task](config)
    except Exception as exc:  # noqa: BLE001 (a failed task is reported, the run goes on)
        return {**config, "error": f"{type(exc).__name__}: {exc}"}
    result = json.loads(json.dumps(result, default=worker._jsonable))
    result["wall_seconds"] = time.perf_counter() - started
    print(f"  done in {result['wall_seconds']:.1f} s", file=log, flush=True)
    return result


def run_worker(config: dict[str, Any], timeout: float, log: Any, inline: bool = False) -> dict[str, Any]:
    """Run one task in a fresh interpreter; a crash or time-out comes back as ``{"error": ...}``."""
    import torch

    config = {**config, "threads": torch.get_num_threads()}
    if inline:
        return run_inline(config, log)
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path, out_path = Path(tmp) / "config.json", Path(tmp) / "result.json"
        cfg_path.write_text(json.dumps(config))
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        # SciPy's OpenBLAS (ARPACK's vector work) must not spin threads against torch's on 2 cores.
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        started = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.worker", str(cfg_path), str(out_path)],
                cwd=str(REPO),
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {**config, "error": f"timed out after {timeout:.0f} s"}
        seconds = time.perf_counter() - started
        if done.returncode != 0 or not out_path.is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            return {**config, "error": f"worker exit {done.returncode}: " + " | ".join(tail)}
        result = json.loads(out_path.read_text())
        result["wall_seconds"] = seconds
        print(f"  done in {seconds:.1f} s", file=log, flush=True)
        return result


def parse_sizes(text: str) -> list[ProblemSpec]:
    """``512,2048,65536`` or ``conv:C:side`` items."""
    specs = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        if item.startswith("conv:"):
            _, channels, side = item.split(":")
            specs.append(conv_spec(int(channels), int(side)))
        else:
            specs.append(spec_for_size(int(item.replace("_", ""))))
    return specs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="BENCHMARKS.md", help="Markdown report to write.")
    parser.add_argument("--json", default=None, help="Also write the raw results as JSON here.")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes, one repetition (the harness test).")
    parser.add_argument(
        "--sizes",
        default=None,
        help="Comma-separated n (hopfield below 65,536, conv above) "
        "or conv:C:side; default " + ",".join(map(str, DEFAULT_SIZES)),
    )
    parser.add_argument("--reps", type=int, default=None, help="Repetitions per timing (default 5; 1 at n >= 1M).")
    parser.add_argument("--crossover-sizes", default=None, help="Sizes of the --method auto crossover.")
    parser.add_argument("--no-hessian-eigenthings", action="store_true", help="Skip that competitor.")
    parser.add_argument("--skip", default="", help="Comma list of parts to skip: problems,batched,startup,crossover.")
    parser.add_argument(
        "--from-json", default=None, help="Only render --output from the raw results of an earlier --json run."
    )
    parser.add_argument("--inline", action="store_true", help="Run every task in this process (default with --quick).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's; 1 with --quick).")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds allowed to one worker task.")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        write_region(args.output, "bench", report.render(results), legacy_prefix="# Benchmarks")
        return 0
    log = sys.stderr
    started = time.perf_counter()
    inline = args.inline or args.quick
    threads = args.threads if args.threads is not None else (1 if args.quick else None)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    from .competitors import hessian_eigenthings_available
    from .measure import system_info

    he = not args.no_hessian_eigenthings and hessian_eigenthings_available()
    if args.sizes:
        specs = parse_sizes(args.sizes)
    elif args.quick:
        specs = [spec_for_size(32), conv_spec(2, 8)]
    else:
        specs = [spec_for_size(n) for n in DEFAULT_SIZES]
    if args.crossover_sizes:
        cross_sizes = [int(s) for s in args.crossover_sizes.split(",") if s.strip()]
    else:
        cross_sizes = [16, 32] if args.quick else list(CROSSOVER_SIZES)

    results: dict[str, Any] = {
        "system": system_info(),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python -m bench.run " + " ".join(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "hessian_eigenthings": he,
        "problems": [],
    }
    if "problems" not in skip:
        for spec in specs:
            print(f"[bench] {spec.label}", file=log, flush=True)
            config = problem_config(spec, quick=args.quick, reps=args.reps, he=he)
            results["problems"].append(run_worker(config, args.timeout, log, inline))
    if "batched" not in skip:
        print("[bench] batched fixed points", file=log, flush=True)
        config = {
            "task": "batched",
            "n": 32 if args.quick else 512,
            "count": 4 if args.quick else 64,
            "reps_batched": 1 if args.quick else 5,
            "reps_separate": 1 if args.quick else 3,
        }
        results["batched"] = run_worker(config, args.timeout, log, inline)
    if "crossover" not in skip:
        print("[bench] --method auto crossover", file=log, flush=True)
        config = {"task": "crossover", "sizes": cross_sizes, "reps": 1 if args.quick else (args.reps or 5)}
        results["crossover"] = run_worker(config, args.timeout, log, inline)
    if "startup" not in skip:
        print("[bench] start-up", file=log, flush=True)
        try:
            results["startup"] = scenarios.startup(reps=1 if args.quick else 5, tiny=args.quick)
        except Exception as exc:  # noqa: BLE001 (reported, not fatal)
            results["startup"] = {"error": f"{type(exc).__name__}: {exc}"}
    results["total_seconds"] = time.perf_counter() - started
    # Only this benchmark's marked region: other writers' sections of the file stay as they are.
    write_region(args.output, "bench", report.render(results), legacy_prefix="# Benchmarks")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    print(f"[bench] wrote {args.output} in {results['total_seconds']:.0f} s", file=log, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
