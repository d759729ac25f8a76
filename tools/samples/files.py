"""The sample files: a safetensors writer with a deterministic header, the metadata, the reader."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

_ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a ``.safetensors`` file byte-for-byte deterministically.

    Layout (the safetensors format): little-endian u64 header length, a JSON header padded with spaces to
    a multiple of 8, then the raw little-endian tensor bytes without holes. Metadata keys are sorted and
    tensors are ordered by (itemsize descending, name), which keeps every tensor aligned to its itemsize.
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    names = sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k))
    chunks: list[bytes] = []
    offset = 0
    for name in names:
        arr = np.ascontiguousarray(tensors[name])
        code = _ST_DTYPES[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


def probe_metadata(operator: str | None, c: float, eps: float, options: dict[str, Any]) -> dict[str, str]:
    """docs/SPEC.md section 3 metadata (all values are strings; options as a JSON object)."""
    md = {
        "spectral_probe.c": repr(float(c)),
        "spectral_probe.eps": repr(float(eps)),
        "spectral_probe.options": json.dumps(options, sort_keys=True),
    }
    if operator is not None:
        md["spectral_probe.operator"] = operator
    return md


def read_sample(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors (numpy) and metadata of a safetensors file."""
    with path.open("rb") as fh:
        (hlen,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(hlen))
    return load_file(str(path)), header.get("__metadata__", {})
