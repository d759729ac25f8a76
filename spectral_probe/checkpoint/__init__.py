"""Reading checkpoints, fixed points and YAML configs: the only package that opens files.

A checkpoint is a ``.safetensors`` file (or a ``.pt``/``.pth`` file of plain tensors, read with
``torch.load(..., weights_only=True)`` only: pickles are never executed). Its tensors are the
operator's parameters, except ``z_star``, the fixed point ``z*`` with ``F(z*) = 0`` (docs/SPEC.md section 1, 3).

Every problem with a file is raised as :class:`~spectral_probe.errors.InputError` naming the file and
what is wrong, in one line: exceptions from ``safetensors`` and ``torch`` are caught and rephrased,
so a user never sees their tracebacks (docs/SPEC.md section 7, exit code 2). Every size a file declares is
checked against the file and the machine before it is allocated (see :mod:`.tensor_files`).

Modules: :mod:`.tensor_files` reads the tensor files, :mod:`.settings` the metadata and the YAML.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor

from spectral_probe.checkpoint.settings import METADATA_PREFIX, checkpoint_settings, load_yaml_config
from spectral_probe.checkpoint.tensor_files import SUFFIXES, file_sha256, read_tensor_file
from spectral_probe.errors import InputError

__all__ = [
    "Checkpoint",
    "FIXED_POINT_KEY",
    "METADATA_PREFIX",
    "SUFFIXES",
    "checkpoint_settings",
    "file_sha256",
    "load_checkpoint",
    "load_fixed_point",
    "load_inputs",
    "load_yaml_config",
    "prepare_fixed_points",
    "to_probe",
]

FIXED_POINT_KEY = "z_star"


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint file, read and validated.

    path:     the file as given.
    params:   the operator's parameters, name -> tensor (on the CPU, in the stored dtype), ``z_star``
              removed. Every floating tensor is finite.
    metadata: the safetensors ``__metadata__`` (str -> str; ``{}`` if absent). See
              :func:`checkpoint_settings` for the ``spectral_probe.*`` keys.
    z_star:   the fixed point stored in the checkpoint (``[n]`` or ``[B, n]``), or ``None``.
    sha256:   hex SHA-256 of the file's bytes (identifies the checkpoint in reports and ``--resume``).
    """

    path: str
    params: dict[str, Tensor]
    metadata: dict[str, str]
    z_star: Tensor | None
    sha256: str


def load_checkpoint(path: str | os.PathLike[str], key: str | None = None) -> Checkpoint:
    """Read a ``.safetensors``, ``.pt`` or ``.pth`` checkpoint.

    ``key`` (``--key``) selects a nested state dict: ``model`` in a training checkpoint
    ``{"model": state_dict, "step": ...}`` (dots descend further: ``ema.model``); in a safetensors file,
    the tensors named ``model.*``, with that prefix removed.

    Raises :class:`InputError` (naming the file) for a missing file, a directory, an empty,
    truncated or corrupt file, an unknown suffix, a torch pickle that is not a flat dict of tensors,
    no tensors at all, or a non-finite value in any floating tensor (naming the tensor).
    """
    tensors, metadata, digest = read_tensor_file(path, key)
    params = dict(tensors)
    z_star = params.pop(FIXED_POINT_KEY, None)
    return Checkpoint(path=str(path), params=params, metadata=metadata, z_star=z_star, sha256=digest)


def load_fixed_point(path: str | os.PathLike[str]) -> Tensor:
    """Read ``z*`` from a ``--fixed-point`` file: the tensor ``z_star``, or the file's only tensor.

    The shape is checked against the operator later, by :func:`prepare_fixed_points`.
    """
    tensors, _, _ = read_tensor_file(path, bare_ok=True)  # torch.save(z) works too
    if FIXED_POINT_KEY in tensors:
        return tensors[FIXED_POINT_KEY]
    if len(tensors) == 1:
        return next(iter(tensors.values()))
    names = ", ".join(sorted(tensors))
    raise InputError(
        path,
        f"a fixed-point file must hold a tensor named '{FIXED_POINT_KEY}' or exactly one tensor; "
        f"found {len(tensors)}: {names}",
    )


def load_inputs(specs: list[str] | tuple[str, ...]) -> dict[str, Tensor]:
    """The extra tensors of ``--input``, by name, for the operator factory (a DEQ's ``x``, say).

    ``NAME=FILE`` names the file's only tensor (or its tensor ``NAME``); a bare ``FILE`` contributes
    every tensor under its own name (a bare tensor saved with ``torch.save`` is named by the file's stem).
    """
    inputs: dict[str, Tensor] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            name, file = "", spec
        tensors, _, _ = read_tensor_file(file, bare_ok=True)
        if set(tensors) == {FIXED_POINT_KEY} and not name:
            tensors = {os.path.splitext(os.path.basename(file))[0]: tensors[FIXED_POINT_KEY]}
        if name:
            if name in tensors:
                tensors = {name: tensors[name]}
            elif len(tensors) == 1:
                tensors = {name: next(iter(tensors.values()))}
            else:
                raise InputError(file, f"--input {spec}: no tensor '{name}' among {', '.join(sorted(tensors))}")
        for tensor_name, tensor in tensors.items():
            if tensor_name in inputs:
                raise InputError(file, f"--input: the tensor name '{tensor_name}' is given twice")
            inputs[tensor_name] = tensor
    return inputs


def prepare_fixed_points(z_star: Tensor, n_expected: int | None, path: str | os.PathLike[str] | None) -> Tensor:
    """Bring ``z*`` to the batch layout ``[B, n]`` used by the probe, and check it.

    Accepted shapes: ``[n]`` (one fixed point) and ``[B, n]`` (B fixed points, each probed). A state
    stored unflattened (``[C, H, W]`` or ``[B, C, H, W]`` for the ``conv`` operator, say) is accepted
    when ``n_expected`` is known and its trailing dimensions multiply to ``n_expected``. ``n_expected``
    is the operator's state size ``n`` (``None`` when the operator does not declare it: the caller then
    checks ``nc_force(z*)`` instead). Raises :class:`InputError` for another shape, an empty batch, a
    non-real dtype or a non-finite value. The dtype is kept: promotion is :func:`to_probe`'s job.
    """
    if not isinstance(z_star, Tensor):
        raise InputError(path, f"the fixed point must be a tensor, got {type(z_star).__name__}")
    if not z_star.is_floating_point():
        raise InputError(path, f"the fixed point z_star must be a real floating tensor, got dtype {z_star.dtype}")
    shape = tuple(z_star.shape)
    expected = f"[{n_expected}] or [B, {n_expected}]" if n_expected is not None else "[n] or [B, n]"
    if z_star.ndim == 1:
        batched = z_star.unsqueeze(0)
    elif z_star.ndim == 2:
        batched = z_star
    elif z_star.ndim > 2 and n_expected is not None and math.prod(shape) == n_expected:
        batched = z_star.reshape(1, n_expected)
    elif z_star.ndim > 2 and n_expected is not None and math.prod(shape[1:]) == n_expected:
        batched = z_star.reshape(shape[0], n_expected)
    else:
        more = f" (or {n_expected} elements in any shape, [B, ...] for B states)" if n_expected is not None else ""
        raise InputError(path, f"z_star has shape {list(shape)}; expected {expected}{more}")
    if n_expected is not None and batched.shape[-1] != n_expected:
        raise InputError(
            path,
            f"z_star has shape {list(shape)} but the operator acts on states of size n = {n_expected}; "
            f"expected {expected}",
        )
    if batched.shape[0] == 0 or batched.shape[-1] == 0:
        raise InputError(path, f"z_star is empty (shape {list(shape)})")
    bad = ~torch.isfinite(batched)
    if bool(bad.any()):
        rows = torch.nonzero(bad.any(dim=-1)).flatten().tolist()
        where = f" (fixed points {rows[:5]}{'...' if len(rows) > 5 else ''})" if batched.shape[0] > 1 else ""
        raise InputError(path, f"z_star has {int(bad.sum())} non-finite values (nan/inf){where}")
    return batched


@overload
def to_probe(tensors: Tensor, dtype: torch.dtype, device: torch.device | str) -> Tensor: ...
@overload
def to_probe(tensors: Mapping[str, Tensor], dtype: torch.dtype, device: torch.device | str) -> dict[str, Tensor]: ...


def to_probe(
    tensors: Tensor | Mapping[str, Tensor], dtype: torch.dtype, device: torch.device | str
) -> Tensor | dict[str, Tensor]:
    """Move tensors to the probe's ``device`` and cast real floating ones to the probe's ``dtype``.

    float16/bfloat16/float32 checkpoints are probed in float32 or float64 (``--dtype``): eigenvalue
    solvers need more precision than storage does. Integer, bool and complex tensors keep their dtype
    (an operator may use an integer index tensor); only the device changes. The result is detached
    and never aliases a tensor the caller might modify in place.
    """
    if isinstance(tensors, Tensor):
        return _to_probe_one(tensors, dtype, device)
    return {name: _to_probe_one(t, dtype, device) for name, t in tensors.items()}


def _to_probe_one(t: Tensor, dtype: torch.dtype, device: torch.device | str) -> Tensor:
    t = t.detach()
    if t.is_floating_point():
        return t.to(device=device, dtype=dtype, copy=True)
    return t.to(device=device, copy=True)
