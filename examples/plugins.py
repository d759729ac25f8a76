"""Operator factories for the example models: the glue between ``spectral-probe scan`` and your code.

Each factory is what ``--operator examples/plugins.py:NAME`` calls, as
``NAME(params, options, **inputs)``: ``params`` is the saved ``state_dict`` (already in ``--dtype`` on
``--device``; modules built here follow ``--dtype`` too), ``inputs`` the tensors of ``--input`` by name.
It returns the model's step on its natural state, a function or an ``nn.Module``; the tool flattens.
``models`` is imported from this file's folder: a plugin's folder is importable from it.
"""

from __future__ import annotations

import torch
from models import ConvDEQ, DEQLayer, GRUModel, HopfieldNet, LSTMModel, ODEField
from torch import Tensor, nn


def deq(params, options, x):
    """The whole glue for a DEQ class with an ``f(z, x)`` method."""
    model = DEQLayer()
    model.load_state_dict(params)
    step = lambda z: model.f(z, x)  # noqa: E731
    step.state_shape = (model.W.in_features,)  # lets the tool find z* itself
    return step


def conv_deq(params, options, x):
    model = ConvDEQ()
    model.load_state_dict(params)

    def step(z: Tensor) -> Tensor:  # z: [C, H, W]
        return model.step(z, x)

    step.state_shape = tuple(x.shape)  # lets the tool find z* itself (no z_star file needed)
    return step


def gru(params, options, x):
    model = GRUModel()
    model.load_state_dict(params)

    def step(h: Tensor) -> Tensor:
        return model.step(h, x)

    step.state_shape = (model.cell.hidden_size,)
    return step


def lstm(params, options, x):
    model = LSTMModel()
    model.load_state_dict(params)

    def step(state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return model.step(state, x)

    hidden = model.cell.hidden_size
    step.state_shape = [(hidden,), (hidden,)]  # the state is the pair (h, c)
    return step


class ShiftedField(nn.Module):
    """``nc_force(z) = g(z) + z`` for a neural ODE ``dz/dt = g(z)``: then ``F = g`` (at ``c = 0``)."""

    def __init__(self, field: nn.Module, n: int) -> None:
        super().__init__()
        self.field = field
        self.state_shape = (n,)

    def forward(self, z: Tensor) -> Tensor:
        return self.field(torch.zeros(()), z) + z


def ode(params, options):
    field = ODEField()
    field.load_state_dict(params)
    return ShiftedField(field, field.net[0].in_features)  # an nn.Module works as well as a function


def hopfield(params, options, x):
    model = HopfieldNet()
    model.load_state_dict(params)

    def force(z: Tensor) -> Tensor:
        return model.force(z, x)

    force.state_shape = (model.A.shape[0],)
    return force
