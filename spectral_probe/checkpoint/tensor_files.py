"""The tensor files: ``.safetensors`` (its header checked first) and ``.pt``/``.pth`` (``weights_only``,
:mod:`spectral_probe.checkpoint.torch_files`).

Every size is checked before it is allocated: the safetensors header (its length, nesting, dtypes,
shapes and offsets) against the file and the machine; a ``.pt`` zip archive's records against the
file; and each loaded tensor's element count against the bytes the file holds (a stride-0 view cannot
claim 10^12 elements).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
import struct
import sys
from pathlib import Path

import torch
from torch import Tensor

from spectral_probe.checkpoint.torch_files import read_torch
from spectral_probe.errors import InputError
from spectral_probe.memory import check_fits
from spectral_probe.validate import path_stat, shown

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth")
SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES

# safetensors itself refuses headers above 100 MB; a larger length prefix means "not a safetensors file".
_MAX_SAFETENSORS_HEADER = 100_000_000
_HASH_CHUNK = 1 << 20
#: The safetensors dtypes read, as torch dtypes; others (float8, uint16 ...) are refused by name.
_SAFETENSORS_DTYPES = {
    **{"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16},
    **{"I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8},
    **{"U8": torch.uint8, "BOOL": torch.bool},
}
_TORCH_DTYPES = (
    *(torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128),
    *(torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool),
)
_READABLE = "float16, bfloat16, float32 or float64 (or integer/bool index tensors)"
#: More dimensions than any checkpoint tensor has.
_MAX_NDIM = 64


def _check_regular_file(path: str | os.PathLike[str]) -> Path:
    info = path_stat(path)
    if info is None:
        raise InputError(path, "is a broken symbolic link" if os.path.islink(path) else "no such file")
    if stat.S_ISDIR(info.st_mode):
        raise InputError(path, "is a directory, not a checkpoint file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "is not a regular file")
    if info.st_size == 0:
        raise InputError(path, "file is empty")
    return Path(path)


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


def read_tensor_file(
    path: str | os.PathLike[str], key: str | None = None, *, bare_ok: bool = False
) -> tuple[dict[str, Tensor], dict[str, str], str]:
    """(tensors, metadata, sha256) of a checkpoint file, every problem as an InputError naming it.

    ``key`` picks a nested state dict (``--key``, see :func:`nested`); ``bare_ok`` accepts a bare tensor
    (``torch.save(z)``) as ``{"z_star": z}``, for fixed-point and ``--input`` files.
    """
    if isinstance(path, str) and not path:
        raise InputError(None, "empty file path")
    p = _check_regular_file(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(path, f"unsupported file type {shown(p.suffix)}: expected one of {', '.join(SUFFIXES)}")
    size = p.stat().st_size
    if suffix in SAFETENSORS_SUFFIXES:
        tensors, metadata, digest = _read_safetensors(p, path, size)
        if key:
            tensors = _prefixed(tensors, key, path)
    else:
        digest = _sha256(p, path)
        tensors, metadata = read_torch(p, path, size, key, bare_ok)
    if not tensors:
        raise InputError(path, "holds no tensors")
    for name, tensor in tensors.items():
        _check_tensor(name, tensor, path, size)
    return tensors, metadata, digest


def _check_tensor(name: str, tensor: Tensor, path: str | os.PathLike[str], file_size: int) -> None:
    label = f"tensor {shown(name)}"
    if tensor.layout != torch.strided:
        raise InputError(path, f"{label} has layout {tensor.layout}; only dense tensors are supported")
    if tensor.device.type != "cpu":
        raise InputError(path, f"{label} is on the {tensor.device.type} device: it holds no data to probe")
    if tensor.dtype not in _TORCH_DTYPES:
        raise InputError(
            path, f"{label} has dtype {tensor.dtype}, which spectral-probe does not read; store {_READABLE}"
        )
    if tensor.numel() * tensor.element_size() > file_size:
        # Only a view with zero strides can claim more elements than the file stores: refuse it before
        # anything (the finiteness check below, the cast to the probe dtype) materializes it.
        raise InputError(
            path, f"{label} claims {tensor.numel()} elements of shape {list(tensor.shape)}, more than the file holds"
        )
    if tensor.is_floating_point() or tensor.is_complex():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise InputError(path, f"{label} has {bad} non-finite value{'s' if bad > 1 else ''} (nan/inf)")


def _read_header(data: bytearray, path: str | os.PathLike[str]) -> tuple[dict, int, int]:
    """The safetensors header (a JSON object) of a file's bytes, where its tensor data starts, and its length."""
    # Checked ourselves first: safetensors' own errors ("invalid header length", "header too large")
    # do not tell a truncated file from a file of another format.
    size = len(data)
    if size < 8:
        raise InputError(path, f"not a safetensors file: only {size} bytes")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > _MAX_SAFETENSORS_HEADER:
        raise InputError(path, "not a safetensors file (corrupt header length)")
    if header_len > size - 8:
        raise InputError(path, f"truncated safetensors file: the header needs {header_len} bytes, {size - 8} are left")
    try:
        header = json.loads(data[8 : 8 + header_len].decode("utf-8"), object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:  # json keeps the last of two, safetensors refuses: neither is the file
        raise InputError(path, f"corrupt safetensors header: the key {shown(exc.args[0])} is given twice") from None
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError):
        raise InputError(path, "not a safetensors file (the header is not valid JSON)") from None
    except RecursionError:
        raise InputError(path, "corrupt safetensors header: nested too deeply") from None
    if not isinstance(header, dict):
        raise InputError(path, "not a safetensors file (the header is not a JSON object)")
    return header, 8 + header_len, size - 8 - header_len


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def _check_header(header: dict, data_len: int, path: str | os.PathLike[str]) -> int:
    """Check every entry's dtype, shape and offsets against each other and the file; the bytes they need."""
    metadata = header.get("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InputError(path, "corrupt safetensors header: '__metadata__' must map strings to strings")
    spans: list[tuple[int, int, str]] = []
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        label = f"tensor {shown(name)}"
        if not isinstance(entry, dict):
            raise InputError(path, f"corrupt safetensors header: bad entry for {label}")
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
            raise InputError(path, f"corrupt safetensors header: bad entry for {label}")
        if not (isinstance(shape, list) and len(shape) <= _MAX_NDIM and all(_is_count(d) for d in shape)):
            raise InputError(path, f"corrupt safetensors header: {label} has shape {shown(shape)}")
        if math.prod(max(d, 1) for d in shape) >= 2**63:  # torch counts the dimensions' product, 0s aside
            raise InputError(path, f"corrupt safetensors header: {label} has shape {shown(shape)}, beyond int64")
        if dtype not in _SAFETENSORS_DTYPES:
            raise InputError(
                path, f"{label} has dtype {shown(dtype)}, which spectral-probe does not read; store {_READABLE}"
            )
        start, end = offsets
        if end > data_len:
            raise InputError(
                path, f"truncated safetensors file: the tensor data needs {end} bytes, {data_len} are present"
            )
        if start > end or end - start != math.prod(shape) * _SAFETENSORS_DTYPES[dtype].itemsize:
            raise InputError(
                path,
                f"corrupt safetensors header: {label} of shape {shown(shape)} does not fit its {end - start} bytes",
            )
        spans.append((start, end, name))
    spans.sort()
    for (_, end, first), (start, _, second) in zip(spans, spans[1:], strict=False):
        if start < end:
            raise InputError(path, f"corrupt safetensors header: tensors {shown(first)} and {shown(second)} overlap")
        if start > end:
            raise InputError(
                path, f"corrupt safetensors header: {start - end} bytes between {shown(first)} and {shown(second)}"
            )
    covered = sum(end - start for start, end, _ in spans)
    if covered != data_len or (spans and spans[0][0] != 0):
        raise InputError(path, f"corrupt safetensors header: its tensors cover {covered} of the {data_len} data bytes")
    return covered


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _read_safetensors(
    p: Path, path: str | os.PathLike[str], size: int
) -> tuple[dict[str, Tensor], dict[str, str], str]:
    """(tensors, metadata, sha256) from ONE read of the file into memory.

    Not memory-mapped (what ``safe_open`` does): a checkpoint rewritten in place while it is probed (a
    training loop saving ``last.safetensors``) would change the tensors under the probe, or kill the
    process with SIGBUS once it shrinks. The sha256 is of the bytes probed.
    """
    check_fits(size, "loading its tensors", path)
    data = _read_all(p, path, size)
    digest = hashlib.sha256(data).hexdigest()
    header, start, data_len = _read_header(data, path)
    _check_header(header, data_len, path)
    tensors: dict[str, Tensor] = {}
    for name, entry in header.items():
        if name != "__metadata__":
            tensors[name] = _tensor_view(data, start + entry["data_offsets"][0], entry["dtype"], entry["shape"])
    return tensors, dict(header.get("__metadata__", {})), digest


def _read_all(p: Path, path: str | os.PathLike[str], size: int) -> bytearray:
    """The file's ``size`` bytes; an InputError if it is not that long any more (written meanwhile)."""
    data = bytearray(size)
    try:
        with p.open("rb") as handle:
            got = handle.readinto(data)
            longer = bool(handle.read(1))
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    if got != size or longer:
        raise InputError(path, f"the file changed while it was read ({size} bytes, then {'more' if longer else got})")
    return data


def _tensor_view(data: bytearray, offset: int, dtype: str, shape: list[int]) -> Tensor:
    """The tensor stored at ``data[offset:]`` (little-endian, as safetensors writes), copied if misaligned."""
    torch_dtype = _SAFETENSORS_DTYPES[dtype]
    count = math.prod(shape)
    if count == 0:
        return torch.empty(shape, dtype=torch_dtype)
    flat = torch.frombuffer(data, dtype=torch_dtype, count=count, offset=offset)
    if sys.byteorder != "little":
        flat = flat.view(torch.uint8).view(-1, flat.element_size()).flip(-1).view(torch_dtype).reshape(count)
    elif offset % flat.element_size():
        flat = flat.clone()
    return flat.reshape(shape)


def _prefixed(tensors: dict[str, Tensor], key: str, path: str | os.PathLike[str]) -> dict[str, Tensor]:
    prefix = key + "."
    picked = {name[len(prefix) :]: t for name, t in tensors.items() if name.startswith(prefix)}
    if not picked:
        raise InputError(path, f"--key {shown(key)}: no tensor named {shown(prefix + '*')}")
    return picked
