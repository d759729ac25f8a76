"""``.pt``/``.pth`` checkpoints: a ``torch.save`` zip archive, checked against the file, then loaded with
``weights_only`` (never an arbitrary unpickle), down to a dict of plain tensors (docs/SPEC.md section 3).

The archive's records must be stored uncompressed (a record that inflates, a zip bomb, is refused unread)
and pass their CRC-32 (a corrupt record is refused, not probed); the legacy non-zip format of torch < 1.6
is refused unread, since torch allocates the storage sizes its pickle declares before they can be checked.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor

from spectral_probe.errors import InputError
from spectral_probe.memory import check_fits
from spectral_probe.validate import shown

# A .pt checkpoint may carry metadata like a safetensors header, as a dict of str under this key.
_PT_METADATA_KEY = "__metadata__"
# torch.save writes a zip archive (since torch 1.6), or a pickled magic number: the legacy format, refused, as
# torch allocates its storages at the sizes its pickle declares (10^11 floats, say) before anything checks them.
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19"
_LEGACY = "a legacy torch checkpoint (written before torch 1.6), not read: its sizes cannot be checked before "
_LEGACY += "torch allocates them; re-save it with a current torch (torch.save writes zip) or as .safetensors"
#: More records than any torch.save archive has.
_MAX_ZIP_RECORDS = 100_000


def _check_zip(p: Path, path: str | os.PathLike[str], size: int) -> None:
    """``torch.save`` stores records uncompressed: one that inflates (a zip bomb) is refused unread."""
    try:
        with zipfile.ZipFile(p) as archive:
            records = archive.infolist()
            _check_records(records, path, size)
            corrupt = archive.testzip()  # reads every record once: torch.load checks no CRC-32
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise InputError(path, f"cannot read torch checkpoint (truncated or corrupt): {_first_line(exc)}") from None
    if corrupt is not None:
        raise InputError(path, f"corrupt torch checkpoint: zip record {shown(corrupt)} fails its CRC-32 check")


def _check_records(records: list[zipfile.ZipInfo], path: str | os.PathLike[str], size: int) -> None:
    if len(records) > _MAX_ZIP_RECORDS:
        raise InputError(path, f"not a torch checkpoint: its zip archive has {len(records)} records")
    for record in records:
        if record.compress_type != zipfile.ZIP_STORED or record.file_size > size:
            raise InputError(
                path,
                f"not a torch checkpoint: zip record {shown(record.filename)} is compressed "
                f"({record.compress_size} bytes that inflate to {record.file_size}); torch.save never compresses",
            )
    total = sum(record.file_size for record in records)
    if total > size:
        raise InputError(path, f"not a torch checkpoint: its zip records claim {total} bytes in a {size}-byte file")


def read_torch(
    p: Path, path: str | os.PathLike[str], size: int, key: str | None = None, bare_ok: bool = False
) -> tuple[dict[str, Tensor], dict[str, str]]:
    """The tensors and metadata of the ``.pt`` file ``p`` (``path`` as the user named it), ``key`` and
    ``bare_ok`` as in :func:`~spectral_probe.checkpoint.tensor_files.read_tensor_file`. The top level's
    ``__metadata__`` holds for the state dict that ``--key`` picks, as a safetensors header does."""
    refused = (
        "not a plain tensor checkpoint: it holds Python objects that weights_only loading refuses "
        "(spectral-probe never unpickles arbitrary objects); save a dict of tensors, or a .safetensors file"
    )
    try:
        with p.open("rb") as handle:
            magic = handle.read(len(_LEGACY_TORCH_MAGIC))
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    if magic == _LEGACY_TORCH_MAGIC:
        raise InputError(path, _LEGACY)
    if not magic.startswith(_ZIP_MAGIC):
        # Without this, random bytes reach the unpickler and read as "refused", not as corrupt.
        raise InputError(path, "not a torch checkpoint (corrupt, or not written by torch.save)")
    _check_zip(p, path, size)
    check_fits(size, "loading its tensors", path)
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it did not write; the error below says enough.
            warnings.simplefilter("ignore")
            # weights_only=True is the whole point: an arbitrary pickle can run code when loaded.
            obj = torch.load(p.open("rb"), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise InputError(path, refused) from None
    except Exception as exc:  # a truncated zip archive, random bytes, an old format ...
        raise InputError(path, f"cannot read torch checkpoint (truncated or corrupt): {_first_line(exc)}") from None
    if isinstance(obj, Tensor) and bare_ok:  # torch.save(z): a fixed point or an --input, not a checkpoint
        return {"z_star": obj.detach()}, {}
    if key and isinstance(obj, dict):
        top = {_PT_METADATA_KEY: obj[_PT_METADATA_KEY]} if _PT_METADATA_KEY in obj else {}
        tensors, metadata = _plain_tensors(nested(obj, key, path), path)
        return tensors, metadata or _plain_tensors(top, path)[1]
    return _plain_tensors(obj, path)


def _plain_tensors(obj: object, path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, str]]:
    if not isinstance(obj, dict):
        raise InputError(path, f"not a plain tensor checkpoint: expected a dict of name -> tensor, got {_kind(obj)}")
    tensors: dict[str, Tensor] = {}
    metadata: dict[str, str] = {}
    for key, item in obj.items():
        if key == _PT_METADATA_KEY and isinstance(item, dict):
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in item.items()):
                raise InputError(path, f"'{_PT_METADATA_KEY}' must map strings to strings")
            metadata = dict(item)
            continue
        if not isinstance(key, str):
            raise InputError(path, f"not a plain tensor checkpoint: key {shown(key)} is not a string")
        if not isinstance(item, Tensor):
            raise InputError(
                path,
                f"not a plain tensor checkpoint: {shown(key)} holds {_kind(item)}, expected a tensor" + _key_hint(obj),
            )
        # nn.Parameter loads as a Parameter; keep plain, gradient-free tensors.
        tensors[key] = item.detach()
    return tensors, metadata


def nested(obj: dict, key: str, path: str | os.PathLike[str]) -> dict:
    """``obj[a][b]`` for ``key = "a.b"``: the state dict inside a training checkpoint (``--key``)."""
    node: object = obj
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            found = ", ".join(shown(k) for k in node) if isinstance(node, dict) else _kind(node)
            raise InputError(path, f"--key {shown(key)}: no entry {shown(part)} (found {found})")
        node = node[part]
    if isinstance(node, Tensor):
        return {"z_star": node}
    if not isinstance(node, dict):
        raise InputError(path, f"--key {shown(key)} holds {_kind(node)}, expected a dict of tensors")
    return node


def _key_hint(obj: dict) -> str:
    dicts = [shown(k) for k, v in obj.items() if isinstance(v, dict) and k != _PT_METADATA_KEY]
    pick = f"; pick one with --key, one of {', '.join(dicts)}" if dicts else ""
    return f" (nested state dicts are not unpacked{pick})"


def _kind(obj: object) -> str:
    return f"a {type(obj).__name__}"


def _first_line(exc: BaseException) -> str:
    """The first sentence of a library's message: torch appends paragraphs of advice to it."""
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # torch's C++ checks start "[enforce fail at inline_container.cc:180] . ": the reason comes after.
    line = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", line) or line
    cut = line.find(". ", 40)
    if cut > 0:
        line = line[:cut]
    return line if len(line) <= 200 else line[:197] + "..."
