"""Reading checkpoints, fixed points and YAML configs: the only module that opens files.

A checkpoint is a ``.safetensors`` file (or a ``.pt``/``.pth`` file of plain tensors, read with
``torch.load(..., weights_only=True)`` only: pickles are never executed). Its tensors are the
operator's parameters, except ``z_star``, the fixed point ``z*`` with ``F(z*) = 0`` (SPEC.md 1, 3).

Every problem with a file is raised as :class:`~spectral_probe.errors.InputError` naming the file and
what is wrong, in one line: exceptions from ``safetensors`` and ``torch`` are caught and rephrased,
so a user never sees their tracebacks (SPEC.md 7, exit code 2).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import torch
from torch import Tensor

from spectral_probe.errors import InputError

__all__ = [
    "Checkpoint",
    "FIXED_POINT_KEY",
    "METADATA_PREFIX",
    "SUFFIXES",
    "checkpoint_settings",
    "load_checkpoint",
    "load_fixed_point",
    "load_inputs",
    "load_yaml_config",
    "prepare_fixed_points",
    "to_probe",
]

FIXED_POINT_KEY = "z_star"
METADATA_PREFIX = "spectral_probe."
SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth")
SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES

# safetensors itself refuses headers above 100 MB; a larger length prefix means "not a safetensors file".
_MAX_SAFETENSORS_HEADER = 100_000_000
_HASH_CHUNK = 1 << 20
# A .pt checkpoint may carry metadata like a safetensors header, as a dict of str under this key.
_PT_METADATA_KEY = "__metadata__"
# torch.save writes a zip archive (since torch 1.6), or, in the legacy format, a pickled magic number.
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"


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


# --------------------------------------------------------------------------------------------------
# Checkpoints and fixed points


def load_checkpoint(path: str | os.PathLike[str], key: str | None = None) -> Checkpoint:
    """Read a ``.safetensors``, ``.pt`` or ``.pth`` checkpoint.

    ``key`` (``--key``) selects a nested state dict: ``model`` in a training checkpoint
    ``{"model": state_dict, "step": ...}`` (dots descend further: ``ema.model``); in a safetensors file,
    the tensors named ``model.*``, with that prefix removed.

    Raises :class:`InputError` (naming the file) for a missing file, a directory, an empty,
    truncated or corrupt file, an unknown suffix, a torch pickle that is not a flat dict of tensors,
    no tensors at all, or a non-finite value in any floating tensor (naming the tensor).
    """
    tensors, metadata, digest = _read_tensor_file(path, key)
    params = dict(tensors)
    z_star = params.pop(FIXED_POINT_KEY, None)
    return Checkpoint(path=str(path), params=params, metadata=metadata, z_star=z_star, sha256=digest)


def load_fixed_point(path: str | os.PathLike[str]) -> Tensor:
    """Read ``z*`` from a ``--fixed-point`` file: the tensor ``z_star``, or the file's only tensor.

    The shape is checked against the operator later, by :func:`prepare_fixed_points`.
    """
    tensors, _, _ = _read_tensor_file(path, bare_ok=True)
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
        raise InputError(path, f"z_star has shape {list(shape)}; expected {expected}")
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


# --------------------------------------------------------------------------------------------------
# Metadata and YAML


def checkpoint_settings(metadata: Mapping[str, str], path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Parse the ``spectral_probe.*`` keys of a checkpoint's metadata (SPEC.md 3).

    Returns a dict with only the keys present, among
    ``operator`` (str, a registered operator name), ``c`` (finite float, the damping in
    ``F(z) = nc_force(z) - (1 + c) z``), ``eps`` (finite float > 0, the Euler step in
    ``M = I + eps J_F``), ``options`` (dict, from a JSON object) and ``step`` (int >= 0, the training
    step, used to order an audit). Other keys are ignored; a malformed value raises
    :class:`InputError` naming the key.
    """
    settings: dict[str, Any] = {}

    def value(key: str) -> str | None:
        raw = metadata.get(METADATA_PREFIX + key)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise InputError(path, f"metadata '{METADATA_PREFIX}{key}' must be a string, got {type(raw).__name__}")
        return raw

    operator = value("operator")
    if operator is not None:
        if not operator.strip():
            raise InputError(path, f"metadata '{METADATA_PREFIX}operator' is empty")
        settings["operator"] = operator.strip()

    for key in ("c", "eps"):
        raw = value(key)
        if raw is None:
            continue
        try:
            number = float(raw)
        except ValueError:
            raise InputError(path, f"metadata '{METADATA_PREFIX}{key}' is not a number: {raw!r}") from None
        if not math.isfinite(number):
            raise InputError(path, f"metadata '{METADATA_PREFIX}{key}' is not finite: {raw!r}")
        if key == "eps" and number <= 0:
            raise InputError(path, f"metadata '{METADATA_PREFIX}eps' must be > 0, got {raw!r}")
        settings[key] = number

    raw = value("options")
    if raw is not None:
        try:
            options = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(path, f"metadata '{METADATA_PREFIX}options' is not valid JSON: {exc.msg}") from None
        if not isinstance(options, dict):
            raise InputError(
                path,
                f"metadata '{METADATA_PREFIX}options' must be a JSON object, got {type(options).__name__}",
            )
        settings["options"] = options

    raw = value("step")
    if raw is not None:
        try:
            step = int(raw.strip())
        except ValueError:
            raise InputError(path, f"metadata '{METADATA_PREFIX}step' is not an integer: {raw!r}") from None
        if step < 0:
            raise InputError(path, f"metadata '{METADATA_PREFIX}step' must be >= 0, got {raw!r}")
        settings["step"] = step
    return settings


def load_yaml_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``--config`` YAML file: a mapping of option name to value (SPEC.md 3).

    Top-level keys may be spelled like the command line (``max-rho``, even ``--max-rho``) or with
    underscores (``max_rho``); they are normalized to underscores. Nested mappings (operator
    ``options``) are kept as written. An empty file is an empty config. Raises :class:`InputError`
    for a missing or unreadable file, invalid YAML (with its line), a top level that is not a mapping,
    a non-string key, or two spellings of one key.
    """
    import yaml  # only the config path needs it: keep `import spectral_probe.checkpoint` light

    text = _read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(path, f"invalid YAML{where}: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, f"a config file must be a mapping of option: value, got a {type(data).__name__}")
    config: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, item in data.items():
        if not isinstance(key, str):
            raise InputError(path, f"config keys must be strings, got {key!r}")
        name = key.strip().lstrip("-").replace("-", "_")
        if not name:
            raise InputError(path, f"invalid config key {key!r}")
        if name in config:
            raise InputError(path, f"config option '{name}' is given twice (as '{spelled[name]}' and '{key}')")
        config[name] = item
        spelled[name] = key
    return config


# --------------------------------------------------------------------------------------------------
# File reading (private)


def _check_regular_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(path, "no such file")
    if p.is_dir():
        raise InputError(path, "is a directory, not a checkpoint file")
    if not p.is_file():
        raise InputError(path, "is not a regular file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise InputError(path, "file is empty")
    return p


def _read_text(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    if not p.exists():
        raise InputError(path, "no such file")
    if not p.is_file():
        raise InputError(path, "is not a regular file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of a file's bytes (how ``audit --resume`` recognizes an unchanged checkpoint)."""
    return _sha256(_check_regular_file(path), path)


def _sha256(p: Path, path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    try:
        with p.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    return digest.hexdigest()


def _read_tensor_file(
    path: str | os.PathLike[str], key: str | None = None, *, bare_ok: bool = False
) -> tuple[dict[str, Tensor], dict[str, str], str]:
    """(tensors, metadata, sha256) of a checkpoint file, every problem as an InputError."""
    if isinstance(path, str) and not path:
        raise InputError(None, "empty file path")
    p = _check_regular_file(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(path, f"unsupported file type '{p.suffix}': expected one of {', '.join(SUFFIXES)}")
    digest = _sha256(p, path)
    if suffix in SAFETENSORS_SUFFIXES:
        tensors, metadata = _read_safetensors(p, path)
        if key:
            tensors = _prefixed(tensors, key, path)
    else:
        tensors, metadata = _read_torch(p, path, key, bare_ok=bare_ok)
    if not tensors:
        raise InputError(path, "holds no tensors")
    for name, tensor in tensors.items():
        _check_tensor(name, tensor, path)
    return tensors, metadata, digest


def _check_tensor(name: str, tensor: Tensor, path: str | os.PathLike[str]) -> None:
    if tensor.layout != torch.strided:
        raise InputError(path, f"tensor '{name}' has layout {tensor.layout}; only dense tensors are supported")
    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise InputError(path, f"tensor '{name}' has {bad} non-finite value{'s' if bad > 1 else ''} (nan/inf)")


def _read_safetensors(p: Path, path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    # Check the header ourselves first: safetensors' own errors ("invalid header length",
    # "header too large") do not tell a truncated file from a file of another format.
    size = p.stat().st_size
    try:
        with p.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise InputError(path, f"not a safetensors file: only {size} bytes")
            (header_len,) = struct.unpack("<Q", prefix)
            if header_len > _MAX_SAFETENSORS_HEADER:
                raise InputError(path, "not a safetensors file (corrupt header length)")
            if header_len > size - 8:
                raise InputError(
                    path,
                    f"truncated safetensors file: the header needs {header_len} bytes, {size - 8} are left",
                )
            header_bytes = handle.read(header_len)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(path, "not a safetensors file (the header is not valid JSON)") from None
    if not isinstance(header, dict):
        raise InputError(path, "not a safetensors file (the header is not a JSON object)")
    data_len = size - 8 - header_len
    data_end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(o, int) for o in offsets)):
            raise InputError(path, f"corrupt safetensors header: bad entry for tensor '{name}'")
        data_end = max(data_end, offsets[1])
    if data_end > data_len:
        raise InputError(
            path,
            f"truncated safetensors file: the tensor data needs {data_end} bytes, {data_len} are present",
        )

    from safetensors import safe_open  # imported here: `spectral-probe --help` must not load it

    tensors: dict[str, Tensor] = {}
    try:
        with safe_open(str(p), framework="pt", device="cpu") as handle:
            raw_metadata = handle.metadata() or {}
            for name in handle.keys():  # noqa: SIM118 - safe_open handles are not iterable
                tensors[name] = handle.get_tensor(name)
    except InputError:
        raise
    except Exception as exc:  # safetensors raises its own SafetensorError, and others on odd files
        raise InputError(path, f"corrupt safetensors file: {_first_line(exc)}") from None
    metadata = {str(k): str(v) for k, v in raw_metadata.items()}
    return tensors, metadata


def _read_torch(
    p: Path, path: str | os.PathLike[str], key: str | None = None, *, bare_ok: bool = False
) -> tuple[dict[str, Tensor], dict[str, str]]:
    refused = (
        "not a plain tensor checkpoint: it holds Python objects that weights_only loading refuses "
        "(spectral-probe never unpickles arbitrary objects); save a dict of tensors, or a .safetensors file"
    )
    try:
        with p.open("rb") as handle:
            magic = handle.read(len(_LEGACY_TORCH_MAGIC))
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    if not (magic.startswith(_ZIP_MAGIC) or magic == _LEGACY_TORCH_MAGIC):
        # Without this, random bytes reach the unpickler and read as "refused", not as corrupt.
        raise InputError(path, "not a torch checkpoint (corrupt, or not written by torch.save)")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the error below says enough.
            warnings.simplefilter("ignore")
            # weights_only=True is the whole point: an arbitrary pickle can run code when loaded.
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(path, refused) from None
    except Exception as exc:  # a truncated zip archive, random bytes, an old format ...
        raise InputError(path, f"cannot read torch checkpoint (truncated or corrupt): {_first_line(exc)}") from None
    if isinstance(obj, Tensor) and bare_ok:  # torch.save(z): a fixed point or an --input, not a checkpoint
        return {FIXED_POINT_KEY: obj.detach()}, {}
    if not isinstance(obj, dict):
        raise InputError(path, f"not a plain tensor checkpoint: expected a dict of name -> tensor, got {_kind(obj)}")
    if key:
        obj = _nested(obj, key, path)
    tensors: dict[str, Tensor] = {}
    metadata: dict[str, str] = {}
    for key, item in obj.items():
        if key == _PT_METADATA_KEY and isinstance(item, dict):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in item.items()):
                raise InputError(path, f"'{_PT_METADATA_KEY}' must map strings to strings")
            metadata = dict(item)
            continue
        if not isinstance(key, str):
            raise InputError(path, f"not a plain tensor checkpoint: key {key!r} is not a string")
        if not isinstance(item, Tensor):
            raise InputError(
                path,
                f"not a plain tensor checkpoint: '{key}' holds {_kind(item)}, expected a tensor" + _key_hint(obj),
            )
        # nn.Parameter loads as a Parameter; keep plain, gradient-free tensors.
        tensors[key] = item.detach()
    return tensors, metadata


def _nested(obj: dict, key: str, path: str | os.PathLike[str]) -> dict:
    """``obj[a][b]`` for ``key = "a.b"``: the state dict inside a training checkpoint (``--key``)."""
    node: Any = obj
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            keys = ", ".join(repr(k) for k in node) if isinstance(node, dict) else _kind(node)
            raise InputError(path, f"--key {key}: no entry '{part}' (found {keys})")
        node = node[part]
    if isinstance(node, Tensor):
        return {FIXED_POINT_KEY: node}
    if not isinstance(node, dict):
        raise InputError(path, f"--key {key} holds {_kind(node)}, expected a dict of tensors")
    return node


def _key_hint(obj: dict) -> str:
    nested = [repr(k) for k, v in obj.items() if isinstance(v, dict) and k != _PT_METADATA_KEY]
    pick = f"; pick one with --key, one of {', '.join(nested)}" if nested else ""
    return f" (nested state dicts are not unpacked{pick})"


def _prefixed(tensors: dict[str, Tensor], key: str, path: str | os.PathLike[str]) -> dict[str, Tensor]:
    prefix = key + "."
    picked = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
    if not picked:
        raise InputError(path, f"--key {key}: no tensor named '{prefix}*'")
    return picked


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
        tensors, _, _ = _read_tensor_file(file, bare_ok=True)
        if set(tensors) == {FIXED_POINT_KEY} and not name:
            tensors = {Path(file).stem: tensors[FIXED_POINT_KEY]}
        if name:
            if name in tensors:
                tensors = {name: tensors[name]}
            elif len(tensors) == 1:
                tensors = {name: next(iter(tensors.values()))}
            else:
                raise InputError(file, f"--input {spec}: no tensor '{name}' among {', '.join(sorted(tensors))}")
        for key, tensor in tensors.items():
            if key in inputs:
                raise InputError(file, f"--input: the tensor name '{key}' is given twice")
            inputs[key] = tensor
    return inputs


def _kind(obj: object) -> str:
    return f"a {type(obj).__name__}"


def _first_line(exc: BaseException) -> str:
    """The first sentence of a library's message: torch appends paragraphs of advice to it."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    cut = line.find(". ", 40)
    if cut > 0:
        line = line[:cut]
    return line if len(line) <= 200 else line[:197] + "..."
