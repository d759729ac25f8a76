"""Models built on public libraries: a torchdeq DEQ and a torchdiffeq neural-ODE flow map.

    PYTHONPATH=. python examples/library_models.py [OUT_DIR]

* ``TorchDEQModel``: ``z = tanh(W z + U x)`` solved by torchdeq's Anderson solver (``get_deq``). The
  probe takes torchdeq's own ``z*`` (API) or finds its own (CLI, factory ``torchdeq_layer``).
* ``flow_map``: ``z -> odeint(g, z, [0, T])[-1]`` with torchdiffeq's adaptive dopri5 solver. Its fixed
  points are the equilibria of ``g``, and ``rho = exp(T alpha_g)`` in exact arithmetic. odeint cannot be
  vmapped (the tool loops, with a note) and its autograd.Function has no torch.func support, so it is
  probed with ``--matvec fd`` (``matvec="fd"``): central differences of the map itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from torch import Tensor, nn
from torchdeq import get_deq
from torchdiffeq import odeint

import spectral_probe

N, D = 10, 4
HORIZON = 0.5


class TorchDEQModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.W = nn.Linear(N, N, bias=False)
        self.U = nn.Linear(D, N)
        with torch.no_grad():
            self.W.weight.mul_(0.5)
        self.deq = get_deq(f_solver="anderson", f_max_iter=200, f_tol=1e-13)

    def f(self, z: Tensor, x: Tensor) -> Tensor:
        return torch.tanh(self.W(z) + self.U(x))

    def forward(self, x: Tensor) -> Tensor:
        z0 = torch.zeros(x.shape[:-1] + (N,), dtype=x.dtype)
        solutions, _ = self.deq(lambda z: self.f(z, x), z0)
        return solutions[-1]


class Field(nn.Module):
    """``dz/dt = g(z) = net(z) - z``."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N, 16), nn.Tanh(), nn.Linear(16, N))

    def forward(self, t: Tensor, z: Tensor) -> Tensor:
        return self.net(z) - z


def flow_map(field: nn.Module, horizon: float = HORIZON):
    times = torch.tensor([0.0, horizon], dtype=next(field.parameters()).dtype)
    return lambda z: odeint(field, z, times, rtol=1e-10, atol=1e-10)[-1]


def torchdeq_layer(params, options, x):
    """CLI factory: the layer of a saved TorchDEQModel, at the input x."""
    model = TorchDEQModel()
    model.load_state_dict(params)
    step = lambda z: model.f(z, x)  # noqa: E731
    step.state_shape = (N,)
    return step


def torchdiffeq_flow(params, options):
    """CLI factory: the time-T flow map of a saved Field (probe it with --matvec fd)."""
    field = Field()
    field.load_state_dict(params)
    step = flow_map(field, float(options.get("horizon", HORIZON)))
    step.state_shape = (N,)
    return step


def train_torchdeq(steps: int = 50, seed: int = 0) -> tuple[TorchDEQModel, Tensor]:
    torch.manual_seed(seed)
    model = TorchDEQModel()
    inputs = torch.randn(32, D)
    target = torch.sin(inputs[:, :1])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((model(inputs).mean(-1, keepdim=True) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
    return model, inputs[0]


def train_field(steps: int = 50, seed: int = 0) -> Field:
    torch.manual_seed(seed)
    field = Field()
    points = torch.randn(128, N)
    rotation = torch.linalg.qr(torch.randn(N, N))[0]
    optimizer = torch.optim.Adam(field.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = ((field(torch.zeros(()), points) - (points @ rotation.T - points)) ** 2).mean()
        loss.backward()
        optimizer.step()
    return field


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model, x = train_torchdeq()
    torch.save(model.state_dict(), out / "torchdeq.pt")
    torch.save(x, out / "torchdeq_x.pt")
    model64, x64 = model.double(), x.double()
    z_star = model64(x64[None])[0].detach()  # torchdeq's own fixed point
    api = spectral_probe.probe(lambda z: model64.f(z, x64), z_star).results[0]
    cli = _cli(out / "torchdeq.pt", "torchdeq_layer", "--input", f"x={out / 'torchdeq_x.pt'}")
    print(f"torchdeq     API rho {api.rho:.10f} {api.verdict}   CLI rho {cli['rho']:.10f} {cli['verdict']}")

    field = train_field()
    torch.save(field.state_dict(), out / "torchdiffeq.pt")
    field64 = field.double()
    start = torch.zeros(N, dtype=torch.float64)
    equilibrium = spectral_probe.find_fixed_point(lambda z: field64(torch.zeros(()), z) + z, start)
    api = spectral_probe.probe(flow_map(field64), equilibrium, matvec="fd").results[0]
    cli = _cli(out / "torchdiffeq.pt", "torchdiffeq_flow", "--matvec", "fd")
    print(f"torchdiffeq  API rho {api.rho:.10f} {api.verdict}   CLI rho {cli['rho']:.10f} {cli['verdict']}")


def _cli(checkpoint: Path, factory: str, *extra: str) -> dict:
    command = [sys.executable, "-m", "spectral_probe", "scan", str(checkpoint), "--json", "-", "--quiet"]
    command += ["--operator", f"{Path(__file__).resolve()}:{factory}", *extra]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)["results"][0]


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("out/examples"))
