"""StabilityMonitor: the schedule of full and cheap calls, and the cheap numbers against dense truth."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spectral_probe import StabilityMonitor


def dense_truth(w: torch.Tensor, z: torch.Tensor) -> tuple[float, float]:
    jac = (w * (1 - torch.tanh(z) ** 2)).numpy()  # J_nc of W tanh(z)
    mu = np.linalg.eigvals(jac - np.eye(len(z)))
    return float(np.abs(1 + mu).max()), float(mu.real.max())


def test_monitor_schedule_warm_cheap_calls_and_truth() -> None:
    n = 40
    rng = np.random.default_rng(0)
    w0 = torch.tensor(rng.standard_normal((n, n)) * 0.7 / np.sqrt(n))
    direction = torch.tensor(rng.standard_normal((n, n)) / np.sqrt(n))
    monitor = StabilityMonitor(every=3)
    z = torch.zeros(n, dtype=torch.float64)  # W tanh(0) = 0: z* = 0 for every W
    records = []
    for step in range(6):
        w = w0 + 0.01 * step * direction
        record = monitor(lambda s, w=w: w @ torch.tanh(s), z)
        rho, alpha = dense_truth(w, z)
        assert record["converged"]
        assert abs(record["rho"] - rho) <= 1e-8 and abs(record["alpha"] - alpha) <= 1e-8
        records.append(record)
    assert [r["full"] for r in records] == [True, False, False, True, False, False]
    assert all(r["omega"] is not None for r in records if r["full"])
    assert all(r["omega"] is None for r in records if not r["full"])
    assert all(r["verdict"] in ("stable", "contractive") for r in records)
    cheap = [r["matvecs"] for r in records if not r["full"]]
    full = [r["matvecs"] for r in records if r["full"]]
    assert max(cheap) < min(full)
    json.dumps(records)  # a logger can take it as it is


def test_monitor_rejects_bad_period() -> None:
    with pytest.raises(ValueError):
        StabilityMonitor(every=0)


def test_cheap_call_checks_the_fixed_point_as_the_full_one_does() -> None:
    # z = 0 is not a fixed point of W tanh(z) + b: the full probe says inconclusive, and the cheap call
    # between (which said "stable" from rho alone) must say so too.
    rng = np.random.default_rng(1)
    w = torch.tensor(rng.standard_normal((8, 8)) * 0.3)
    b = torch.tensor(rng.standard_normal(8))
    monitor = StabilityMonitor(every=3)
    records = [monitor(lambda s: w @ torch.tanh(s) + b, torch.zeros(8, dtype=torch.float64)) for _ in range(2)]
    assert [r["full"] for r in records] == [True, False]
    assert [r["verdict"] for r in records] == ["inconclusive", "inconclusive"]
    ok = monitor(lambda s: w @ torch.tanh(s), torch.zeros(8, dtype=torch.float64))  # a true fixed point
    assert not ok["full"] and ok["verdict"] == "stable"


def test_training_loop_example_monitors_a_true_fixed_point() -> None:
    # The example once called the monitor after optimizer.step(), with the z* of the old weights: every
    # full probe said "inconclusive" (z* is not a fixed point).
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import training_loop

    history = training_loop.train(True, steps=3, every=1)
    assert [r["full"] for r in history] == [True, True, True]
    assert all(r["verdict"] in ("stable", "contractive") for r in history)
