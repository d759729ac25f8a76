"""Your own model as an operator: an ``nn.Module`` or a function on its natural state, made flat.

docs/SPEC.md section 4 asks a factory for ``nc_force: [n] -> [n]``. A real model rarely looks like that: a conv DEQ
acts on ``[C, H, W]``, an ``nn.LSTMCell`` on a pair ``(h, c)``, and a trained layer is an ``nn.Module``.
This module turns any of those into the flat ``nc_force`` the probe needs:

* a :class:`StateLayout` holds the state's natural shape (one tensor, or a tuple of tensors) and maps
  it to and from the flat vector ``z`` ``[n]`` (``n`` the total number of elements);
* :func:`flat_force` wraps a callable or an ``nn.Module`` on that layout. A module is run by
  ``torch.func.functional_call`` with its parameters and buffers cast to the probe's dtype and device
  and detached, so the probe follows ``--dtype`` and never touches (or warns about) the user's
  ``requires_grad`` parameters;
* :func:`build_user_force` calls a plugin factory ``factory(params, options, **inputs)`` (the extra
  tensors of ``--input`` passed by name) and reports any failure whole, on one line.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from spectral_probe.errors import InputError, UsageError, raise_if_interrupt
from spectral_probe.validate import shown

__all__ = [
    "StateLayout",
    "UserForce",
    "build_user_force",
    "checked_state",
    "declared_size",
    "flat_force",
    "whole_message",
]

State = Tensor | tuple[Tensor, ...]


@dataclass(frozen=True)
class StateLayout:
    """The natural shape of one state: ``shapes[k]`` per tensor, ``is_tuple`` for a tuple state."""

    shapes: tuple[tuple[int, ...], ...]
    is_tuple: bool = False

    @property
    def sizes(self) -> list[int]:
        """The number of entries of each part of the state, in order."""
        return [math.prod(shape) for shape in self.shapes]

    @property
    def n(self) -> int:
        """The state size: every element of every tensor of the state."""
        return sum(self.sizes)

    @classmethod
    def of(cls, state: State) -> StateLayout:
        """The layout of an example state (a tensor, or a tuple/list of tensors)."""
        if isinstance(state, Tensor):
            return cls((tuple(state.shape),))
        return cls(tuple(tuple(t.shape) for t in state), is_tuple=True)

    @classmethod
    def parse(cls, spec: Any) -> StateLayout:
        """From a declared shape: ``[24, 8, 8]``, or a list of shapes ``[[64], [64]]`` for a tuple state.

        Raises ValueError for anything else (a string, a float, a dimension < 1, an empty list): the
        shape may come from a checkpoint's metadata.
        """
        if isinstance(spec, StateLayout):
            return spec
        size = _dimension(spec)
        if size is not None:
            return cls(((size,),))
        items = list(spec) if isinstance(spec, list | tuple) else []
        one_shape = bool(items) and all(_dimension(d) is not None for d in items)
        shapes = [items] if one_shape else items
        parsed = [
            tuple(_dimension(d) for d in shape) if isinstance(shape, list | tuple) and shape else (None,)
            for shape in shapes
        ]
        if not parsed or any(d is None for shape in parsed for d in shape):
            raise ValueError(
                f"state_shape must be a shape of positive integers ([24, 8, 8]) or a list of shapes "
                f"([[64], [64]]), got {shown(spec)}"
            )
        return cls(tuple(parsed), is_tuple=not one_shape)  # type: ignore[arg-type]

    def unflatten(self, z: Tensor) -> State:
        """The natural state of a flat ``z`` ``[n]`` (views, no copies)."""
        parts = [p.reshape(shape) for p, shape in zip(torch.split(z, self.sizes), self.shapes, strict=True)]
        return tuple(parts) if self.is_tuple else parts[0]

    def unflatten_copy(self, z: Tensor) -> State:
        """The natural state of ``z`` in new tensors, for a model to run on: one that writes into its input
        (``ReLU(inplace=True)`` first) would otherwise overwrite the caller's ``z_star`` (under ``--matvec
        fd``), and autograd refuses an in-place op on a view of ``torch.split``."""
        state = self.unflatten(z)
        return tuple(part.clone() for part in state) if isinstance(state, tuple) else state.clone()

    def flatten(self, state: State) -> Tensor:
        """The flat ``[n]`` vector of a natural state (the inverse of :meth:`unflatten`)."""
        if isinstance(state, Tensor):
            return state.reshape(-1)
        return torch.cat([t.reshape(-1) for t in state])

    def flatten_batch(self, states: State) -> Tensor:
        """``[B, n]`` from a batch of natural states (each tensor with a leading batch dimension)."""
        if isinstance(states, Tensor):
            return states.reshape(states.shape[0], -1)
        return torch.cat([t.reshape(t.shape[0], -1) for t in states], dim=-1)


def _dimension(value: Any) -> int | None:
    """``value`` as a dimension of a state shape (an integer >= 1), else ``None``."""
    if isinstance(value, bool):
        return None
    try:
        dimension = operator.index(value)
    except TypeError:
        return None
    return dimension if dimension >= 1 else None


@dataclass(frozen=True)
class UserForce:
    """A user's model made flat: ``nc_force`` ``[n] -> [n]`` on ``layout``."""

    nc_force: Callable[[Tensor], Tensor]
    layout: StateLayout | None  # None: the factory returned a flat function and declared no shape


def module_call(module: nn.Module, dtype: torch.dtype, device: torch.device | str) -> Callable[..., Any]:
    """Call ``module`` with its floating parameters and buffers cast to ``dtype`` on ``device``, detached.

    The module itself is left as it is (a training loop keeps its float32 weights and their gradients).
    Buffers are copies even where no cast is needed: a forward that updates them in place (BatchNorm's
    running statistics in train mode) updates the probe's copy, never the user's module.
    """
    for name, t in [*module.named_parameters(), *module.named_buffers()]:
        if t.is_meta:
            raise InputError(None, f"the module's tensor {name!r} is on the meta device (no data): load its weights")
    cast = {name: _cast(t, dtype, device) for name, t in module.named_parameters()}
    cast.update({name: _cast(t, dtype, device).clone() for name, t in module.named_buffers()})

    def call(*args: Any) -> Any:
        return torch.func.functional_call(module, cast, args)

    return call


def _cast(t: Tensor, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    return t.detach().to(device=device, dtype=dtype) if t.is_floating_point() else t.detach().to(device)


def checked_state(z: Any, *, batched: bool = False) -> Tensor | tuple[Tensor, ...]:
    """A user's state as a tensor or a flat tuple of them, refused in one line (``UsageError``) where the
    probe cannot take it: not real floating, sparse, nested, empty, not finite, or (``batched``) parts
    without one shared leading batch dimension; and under ``torch.inference_mode()``, where nothing can be
    differentiated."""
    if torch.is_inference_mode_enabled():  # else autograd fails later, blamed on the operator
        raise UsageError("spectral_probe differentiates f, which torch.inference_mode() forbids: use torch.no_grad()")
    state = z if isinstance(z, Tensor) else tuple(z)
    parts = [state] if isinstance(state, Tensor) else list(state)
    if not parts or not all(isinstance(t, Tensor) and t.is_floating_point() for t in parts):
        raise UsageError("z_star must be a real floating tensor, or a flat tuple of them")
    if any(t.layout != torch.strided for t in parts):
        raise UsageError("z_star must be a dense tensor (to_dense() a sparse one)")
    if sum(t.numel() for t in parts) == 0:
        shapes = [tuple(t.shape) for t in parts]
        raise UsageError(f"z_star has no elements (shapes {shapes}): there is no state to probe")
    bad = sum(int((~torch.isfinite(t)).sum()) for t in parts)
    if bad:
        raise UsageError(f"z_star has {bad} non-finite value{'s' if bad > 1 else ''} (nan/inf)")
    if batched and (any(t.ndim == 0 for t in parts) or len({t.shape[0] for t in parts}) != 1):
        sizes = [tuple(t.shape) for t in parts]
        raise UsageError(f"batched=True takes states with one leading batch dimension shared by all parts, got {sizes}")
    return state


def flat_force(
    model: Callable[..., Any], layout: StateLayout, *, dtype: torch.dtype, device: torch.device | str
) -> Callable[[Tensor], Tensor]:
    """``nc_force(z) = flatten(model(unflatten(z)))`` for a callable or ``nn.Module`` on ``layout``."""
    call = module_call(model, dtype, device) if isinstance(model, nn.Module) else model

    def nc_force(z: Tensor) -> Tensor:
        out = call(layout.unflatten_copy(z))
        if layout.is_tuple and isinstance(out, list):
            out = tuple(out)
        return layout.flatten(out)

    nc_force.n = layout.n  # type: ignore[attr-defined]
    return nc_force


def declared_layout(model: object, options: Mapping[str, Any]) -> StateLayout | None:
    """The state shape a factory declares: attribute ``state_shape`` of what it returned, else the
    operator option ``state_shape``; ``None`` if neither is set."""
    spec = getattr(model, "state_shape", None)
    if spec is None:
        spec = options.get("state_shape")
    return None if spec is None else StateLayout.parse(spec)


def build_user_force(
    factory: Callable[..., Any],
    params: Mapping[str, Tensor],
    options: Mapping[str, Any],
    inputs: Mapping[str, Tensor],
    *,
    path: str | os.PathLike[str] | None,
    z_shape: Sequence[int] | None,
    dtype: torch.dtype,
    device: torch.device | str,
) -> UserForce:
    """Call ``factory(params, options, **inputs)`` and make what it returns a flat ``nc_force``.

    The state layout is the one declared (:func:`declared_layout`); else, for a stored ``z*`` of more
    than two dimensions, that shape as ONE state, unless the function declares its size ``n`` (as the
    built-in operators do: they act on ``[n]``, and ``z*`` is flattened); else the factory's function is
    taken to act on flat ``[n]`` states already (docs/SPEC.md sections 3, 4; ``[B, n]`` is then B fixed
    points). Raises :class:`InputError` naming ``path`` with the factory's whole error message.
    """
    try:
        # Modules the factory builds (nn.LSTMCell(...), then load_state_dict) follow --dtype and --device.
        with _default_dtype(dtype), torch.device(device):
            model = factory(params, dict(options), **inputs)
    except InputError as exc:
        raise InputError(path if exc.path is None else exc.path, exc.problem) from None
    except BaseException as exc:  # user code: show all of it (a strict load_state_dict lists every key)
        raise_if_interrupt(exc)
        raise InputError(path, f"the operator factory failed: {whole_message(exc)}") from None
    if not callable(model):
        raise InputError(path, f"the operator factory returned {type(model).__name__}, not a function or nn.Module")
    if isinstance(model, nn.Module):
        model.requires_grad_(False)  # built by the factory for the probe: nobody trains it
    try:
        layout = declared_layout(model, options)
    except ValueError as exc:
        raise InputError(path, f"the operator's {exc}") from None
    if layout is None and z_shape is not None and len(z_shape) > 2 and declared_size(model) is None:
        layout = StateLayout((tuple(int(d) for d in z_shape),))
    if layout is None:
        if isinstance(model, nn.Module):
            # A module on a flat state: still cast to the probe's dtype.
            return UserForce(module_call(model, dtype, device), None)
        return UserForce(model, None)
    return UserForce(flat_force(model, layout, dtype=dtype, device=device), layout)


def declared_size(model: object) -> int | None:
    """The flat state size ``n`` a function declares (attribute ``n``, a positive integer), or ``None``."""
    n = getattr(model, "n", None)
    return int(n) if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def whole_message(exc: BaseException) -> str:
    """The whole message of an exception on one logical line: ``Type: line; line; ...``."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    body = "; ".join(lines)
    body = body.replace(":;", ":")
    return f"{type(exc).__name__}: {body}" if body else type(exc).__name__
