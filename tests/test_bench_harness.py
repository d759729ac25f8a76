"""The benchmark harness (``bench/``) runs end to end on a tiny size and records sane numbers.

``python -m bench.run --quick`` (n = 32 hopfield, a 2x8x8 conv, one repetition, every task in one
process) must write a BENCHMARKS-style report with every table, and its raw numbers must agree with
the dense truth, so the harness cannot rot while the solvers change.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytest.importorskip("scipy")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench")
    md, raw = out / "BENCHMARKS.md", out / "results.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--output", str(md), "--json", str(raw)],
        cwd=str(REPO),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return md.read_text(), json.loads(raw.read_text())


def _records(problem: dict) -> dict[str, dict]:
    return {r["solver"]: r for r in problem["records"]}


def test_report_has_every_section(quick_run: tuple[str, dict]) -> None:
    text, results = quick_run
    for heading in (
        "# Benchmarks",
        "## Targets",
        "## How it is measured",
        "### hopfield n=32",
        "### conv C=2 8x8 (n=128)",
        "## Structured start vector (v0 = ones)",
        "## Batched fixed points",
        "## Start-up",
        "## `--method auto`: dense vs Krylov",
    ):
        assert heading in text, heading
    assert "Do not edit by hand" in text
    # one results table per problem, and the targets table with a verdict on each line
    assert text.count("| solver | result | error |") == len(results["problems"]) == 2
    targets = text.split("## Targets")[1].split("## How it is measured")[0]
    rows = [line for line in targets.splitlines() if line.startswith("| ") and "target" not in line]
    assert len(rows) >= 8
    assert all(("met" in r) or ("MISSED" in r) or ("not measured" in r) for r in rows)


def test_numbers_are_sane(quick_run: tuple[str, dict]) -> None:
    _, results = quick_run
    for problem in results["problems"]:
        assert "error" not in problem, problem.get("error")
        ref = problem["reference"]
        assert ref["kind"] == "dense"
        records = _records(problem)
        for solver in (
            "ours: lanczos (LA)",
            "ARPACK eigsh (LA)",
            "ours: krylov_schur (LR + LM of M, one run)",
            "ARPACK eigs (LR) on J_F",
            "ARPACK eigs (LM) on M",
            "dense path (J + torch.linalg)",
            "spectral-probe probe_fixed_points (krylov, all checks)",
        ):
            rec = records[solver]
            assert "error" not in rec, rec
            assert rec["jvp"] > 0 and rec["median_s"] > 0 and rec["reps"] == 1
            for quantity, q in rec["quantities"].items():
                assert q["error"] is not None and q["error"] < 1e-6 * max(1.0, ref["norm_sym"]), (solver, quantity, q)
                assert not q["wrong"]
                assert q["rel_residual"] is not None and q["rel_residual"] < 1e-6, (solver, quantity, q)
        # omega solvers apply Sym(J_F): one jvp and one vjp per product
        assert records["ours: lanczos (LA)"]["jvp"] == records["ours: lanczos (LA)"]["vjp"]
        assert records["ARPACK eigs (LR) on J_F"]["vjp"] == 0
        # the residual target is checked, not assumed
        assert records["ours: lanczos (LA)"]["quantities"]["omega"]["residual_ok"]
        assert records["ARPACK eigsh (LA)"]["quantities"]["omega"]["residual_ok"]
        assert records["dense path (J + torch.linalg)"]["jvp"] == problem["spec"]["n"]
        if results["hessian_eigenthings"]:
            default = records["hessian-eigenthings lanczos (defaults)"]["quantities"]["omega"]
            # its default which='LM' returns the dominant NEGATIVE end of Sym(J_F): the wrong omega
            assert default["wrong"] and default["scalar"] < 0 < ref["omega"]
        else:
            assert not any(name.startswith("hessian-eigenthings") for name in records)


def test_scenarios_are_sane(quick_run: tuple[str, dict]) -> None:
    _, results = quick_run
    batched = results["batched"]
    assert "error" not in batched, batched.get("error")
    assert max(batched["max_abs_diff"].values()) < 1e-8
    assert batched["speedup"] > 0
    cross = results["crossover"]
    assert [row["n"] for row in cross["rows"]] == [16, 32]
    assert all(row["rho_agree"] < 1e-8 for row in cross["rows"])
    start = results["startup"]
    assert "error" not in start, start.get("error")
    assert start["--help"]["exit_code"] == 0 and start["scan"]["exit_code"] == 0
    assert start["scan_n"] == 32


def test_quick_run_stays_small(quick_run: tuple[str, dict]) -> None:
    # The harness test must stay cheap: bounded by its sizes and products, not by a wall clock (which
    # drifts with the load of a shared machine; speed is measured by `make bench`).
    _, results = quick_run
    for problem in results["problems"]:
        assert problem["spec"]["n"] <= 128
        for rec in problem["records"]:
            assert rec.get("reps", 1) == 1 and rec.get("jvp", 0) <= 2_000


def test_crossover_summary_and_sizes() -> None:
    from bench.operators import spec_for_size
    from bench.scenarios import crossover_summary

    def row(n: int, dense: float, krylov: float) -> dict:
        return {
            "n": n,
            "dense": {"median_s": dense},
            "krylov": {"median_s": krylov},
            "faster": "dense" if dense <= krylov else "krylov",
            "auto_within_10pct": True,
        }

    summary = crossover_summary([row(64, 1.0, 2.0), row(128, 1.0, 1.0), row(256, 4.0, 1.0)], 384)
    assert summary["recommended_dense_max_n"] == 128
    assert summary["crossover_n"] == 128
    assert spec_for_size(512).family == "hopfield"
    big = spec_for_size(1_048_576)
    assert (big.family, big.channels, big.side) == ("conv", 16, 256)
