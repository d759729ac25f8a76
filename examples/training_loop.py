"""A training loop that monitors stability every step and holds rho under a target with a penalty.

    PYTHONPATH=. python examples/training_loop.py

A DEQ layer ``z = tanh(W z + U x)`` is trained to amplify its input (a task that pulls the relaxation's
rho towards 1 and beyond). Each step:

* ``StabilityMonitor`` logs rho, alpha, omega and the verdict: a full cross-checked probe every 10
  steps, a cheap warm-started one between;
* with the penalty on, ``leading_eigenvalue(f, z*, implicit=True)`` is rho with its exact derivative
  (the z* shift included), and ``loss += weight * relu(rho - target)^2``.

The run without the penalty ends above the target; the run with it stays under it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn

import spectral_probe

N, D = 12, 4
TARGET = 0.8


class DEQ(nn.Module):
    def __init__(self, n: int = N) -> None:
        super().__init__()
        self.n = n
        self.W = nn.Linear(n, n, bias=False)
        self.U = nn.Linear(D, n)
        with torch.no_grad():
            self.W.weight.mul_(0.3)

    def f(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.W(z) + self.U(x))

    def solve(self, x: torch.Tensor, iterations: int = 40) -> torch.Tensor:
        z = torch.zeros(x.shape[:-1] + (self.n,), dtype=x.dtype)
        for _ in range(iterations):
            z = self.f(z, x)
        return z


def train(
    penalty: bool,
    steps: int = 150,
    seed: int = 0,
    weight: float = 50.0,
    every: int = 10,
    n: int = N,
    on_step: Callable[[Callable, torch.Tensor], dict] | None = None,
) -> list[dict]:
    """Train, and return the monitor's record of every step (plus the loss, and ``on_step``'s dict)."""
    torch.manual_seed(seed)
    model = DEQ(n).double()
    inputs = torch.randn(32, D, dtype=torch.float64)
    targets = 3.0 * inputs[:, :1]  # |target| beyond tanh's range: the layer must amplify (rho -> 1)
    probe_x = inputs[0]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    monitor = spectral_probe.StabilityMonitor(every=every)
    history = []
    z_previous = torch.zeros(n, dtype=torch.float64)
    for _ in range(steps):
        optimizer.zero_grad()
        z = model.solve(inputs)
        loss = ((z.sum(-1, keepdim=True) / 4 - targets) ** 2).mean()
        # Warm-started from the last step's z* (the weights moved little); zeros at the first step.
        z_star = spectral_probe.find_fixed_point(lambda s: model.f(s, probe_x), z_previous).detach()
        z_previous = z_star
        if penalty:
            rho = spectral_probe.leading_eigenvalue(lambda s: model.f(s, probe_x), z_star, implicit=True)
            loss = loss + weight * torch.relu(rho - TARGET) ** 2
        loss.backward()
        # Before optimizer.step(): z_star is the fixed point of these weights, not of the stepped ones.
        began = time.perf_counter()
        record = monitor(lambda s: model.f(s, probe_x), z_star.detach())
        record["seconds"] = time.perf_counter() - began
        extra = on_step(lambda s: model.f(s, probe_x), z_star.detach()) if on_step is not None else {}
        optimizer.step()
        history.append({**record, "loss": float(loss.detach()), **extra})
    return history


def main() -> None:
    for penalty in (False, True):
        history = train(penalty)
        peak = max(r["rho"] for r in history[len(history) // 2 :])
        last = history[-1]
        print(
            f"penalty={penalty!s:5}  final rho {last['rho']:.4f}  max rho (second half) {peak:.4f}  "
            f"loss {last['loss']:.4f}  verdict {last['verdict']}"
        )


if __name__ == "__main__":
    main()
