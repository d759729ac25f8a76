"""The "user's training code" of the examples: five small dynamical models and how each is trained.

Nothing here knows about spectral-probe. Each model has a ``step(state, x)`` (one application of its
dynamics at the input ``x``) whose fixed point ``state* = step(state*, x)`` the probe examines, and a
``train_<name>(steps, seed)`` that trains it for a few seconds on a toy task and returns
``(model, x)``: the trained model and the constant input it is probed at.

* ``DEQLayer``: ``z = tanh(W z + U x + b)`` (a deep equilibrium layer), trained through 30 unrolled
  iterations to regress a target from ``x``.
* ``ConvDEQ``: the same with convolutions, state ``[C, H, W]``, for the unflattened-``z*`` case.
* ``GRUModel`` and ``LSTMModel``: ``nn.GRUCell`` / ``nn.LSTMCell`` run at a constant input (the LSTM
  state is the pair ``(h, c)``), trained to predict a target from the state after 20 steps.
* ``ODEField``: an MLP vector field ``dz/dt = g(z)`` (a neural ODE), trained to match a stable linear
  field; its equilibrium is ``g(z*) = 0``, so ``nc_force(z) = g(z) + z`` for the probe (``c = 0``).
* ``HopfieldNet``: a continuous Hopfield / equilibrium-propagation network
  ``dz/dt = -z + W sigma(z) + U x + b`` with symmetric ``W``, trained (free phase, unrolled) to classify
  8 x 8 prototype "digits" with noise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DEQLayer(nn.Module):
    """``f(z, x) = tanh(W z + U x + b)``."""

    def __init__(self, n: int = 12, d: int = 6) -> None:
        super().__init__()
        self.W = nn.Linear(n, n, bias=False)
        self.U = nn.Linear(d, n)
        self.readout = nn.Linear(n, 1)
        with torch.no_grad():
            self.W.weight.mul_(0.5)

    def f(self, z: Tensor, x: Tensor) -> Tensor:
        return torch.tanh(self.W(z) + self.U(x))

    def step(self, z: Tensor, x: Tensor) -> Tensor:
        return self.f(z, x)


class ConvDEQ(nn.Module):
    """``f(z, x) = tanh(conv2(tanh(conv1(z))) + x)`` on a state ``[C, H, W]``."""

    def __init__(self, channels: int = 3, hidden: int = 4) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, hidden, 3, padding=1)
        self.conv2 = nn.Conv2d(hidden, channels, 3, padding=1)
        with torch.no_grad():
            self.conv2.weight.mul_(0.5)

    def step(self, z: Tensor, x: Tensor) -> Tensor:
        return torch.tanh(self.conv2(torch.tanh(self.conv1(z))) + x)


class GRUModel(nn.Module):
    def __init__(self, d: int = 4, hidden: int = 10) -> None:
        super().__init__()
        self.cell = nn.GRUCell(d, hidden)
        self.readout = nn.Linear(hidden, 1)

    def step(self, h: Tensor, x: Tensor) -> Tensor:
        return self.cell(x, h)


class LSTMModel(nn.Module):
    def __init__(self, d: int = 4, hidden: int = 8) -> None:
        super().__init__()
        self.cell = nn.LSTMCell(d, hidden)
        self.readout = nn.Linear(hidden, 1)

    def step(self, state: tuple[Tensor, Tensor], x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cell(x, state)


class ODEField(nn.Module):
    """``g(z) = net(z)``: the right-hand side of the neural ODE ``dz/dt = g(z)``."""

    def __init__(self, n: int = 8, hidden: int = 24) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n, hidden), nn.Tanh(), nn.Linear(hidden, n))

    def forward(self, t: Tensor, z: Tensor) -> Tensor:  # torchdiffeq's signature f(t, z)
        return self.net(z)


class HopfieldNet(nn.Module):
    """``dz/dt = -z + W sigma(z) + U x + b`` with ``W = (A + A^T) / 2`` (an energy-based network)."""

    def __init__(self, n: int = 14, d: int = 64) -> None:
        super().__init__()
        self.A = nn.Parameter(0.3 * torch.randn(n, n) / n**0.5)
        self.U = nn.Linear(d, n)

    def force(self, z: Tensor, x: Tensor) -> Tensor:
        """The non-conservative force ``W sigma(z) + U x + b`` (the probe's ``nc_force``)."""
        weights = 0.5 * (self.A + self.A.T)
        return torch.sigmoid(z) @ weights + self.U(x)


def _relax(step, state, x: Tensor, iterations: int):
    for _ in range(iterations):
        state = step(state, x)
    return state


def _fit(model: nn.Module, loss_fn, steps: int, lr: float = 1e-2) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn().backward()
        optimizer.step()


def train_deq(steps: int = 200, seed: int = 0) -> tuple[DEQLayer, Tensor]:
    torch.manual_seed(seed)
    model = DEQLayer()
    inputs = torch.randn(64, 6)
    target = torch.sin(inputs.sum(-1, keepdim=True))

    def loss() -> Tensor:
        z = _relax(model.f, torch.zeros(64, 12), inputs, 30)
        return ((model.readout(z) - target) ** 2).mean()

    _fit(model, loss, steps)
    return model, inputs[0]


def train_conv_deq(steps: int = 50, seed: int = 0) -> tuple[ConvDEQ, Tensor]:
    torch.manual_seed(seed)
    model = ConvDEQ()
    inputs = torch.randn(8, 3, 5, 5)

    def loss() -> Tensor:
        z = _relax(model.step, torch.zeros_like(inputs), inputs, 15)
        return ((z.mean(dim=(1, 2, 3)) - inputs.mean(dim=(1, 2, 3))) ** 2).mean()

    _fit(model, loss, steps)
    return model, inputs[0]


def train_gru(steps: int = 100, seed: int = 0) -> tuple[GRUModel, Tensor]:
    torch.manual_seed(seed)
    model = GRUModel()
    inputs = torch.randn(32, 4)
    target = inputs[:, :1] * inputs[:, 1:2]

    def loss() -> Tensor:
        h = _relax(model.step, torch.zeros(32, 10), inputs, 20)
        return ((model.readout(h) - target) ** 2).mean()

    _fit(model, loss, steps)
    return model, inputs[0]


def train_lstm(steps: int = 100, seed: int = 0) -> tuple[LSTMModel, Tensor]:
    torch.manual_seed(seed)
    model = LSTMModel()
    inputs = torch.randn(32, 4)
    target = torch.tanh(inputs.sum(-1, keepdim=True))

    def loss() -> Tensor:
        h, _ = _relax(model.step, (torch.zeros(32, 8), torch.zeros(32, 8)), inputs, 20)
        return ((model.readout(h) - target) ** 2).mean()

    _fit(model, loss, steps)
    return model, inputs[0]


def train_ode(steps: int = 200, seed: int = 0) -> tuple[ODEField, Tensor]:
    torch.manual_seed(seed)
    model = ODEField()
    stable = -torch.eye(8) + 0.8 * torch.randn(8, 8) / 8**0.5  # a non-normal, mostly stable field
    points = torch.randn(256, 8)

    def loss() -> Tensor:
        return ((model(torch.zeros(()), points) - points @ stable.T) ** 2).mean()

    _fit(model, loss, steps)
    return model, torch.zeros(0)


def digits(count: int = 64, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Ten 8 x 8 binary prototypes, with noise: a small stand-in for the sklearn digits set."""
    generator = torch.Generator().manual_seed(seed)
    prototypes = (torch.rand(10, 64, generator=generator) > 0.5).float()
    labels = torch.arange(count) % 10
    images = prototypes[labels] + 0.3 * torch.randn(count, 64, generator=generator)
    return images, labels


def train_hopfield(steps: int = 60, seed: int = 0) -> tuple[HopfieldNet, Tensor]:
    torch.manual_seed(seed)
    model = HopfieldNet()
    images, labels = digits()

    def loss() -> Tensor:
        z = torch.zeros(images.shape[0], 14)
        for _ in range(20):  # Euler relaxation of dz/dt = -z + force(z)
            z = z + 0.5 * (model.force(z, images) - z)
        return nn.functional.cross_entropy(z[:, :10], labels)

    _fit(model, loss, steps, lr=2e-2)
    return model, images[0]
