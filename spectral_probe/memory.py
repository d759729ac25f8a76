"""Sizes, checked before anything is allocated: the memory left on the host (cgroup limits included)
and on a CUDA device, and the probes and files that could not fit (docs/SPEC.md section 8.3).

No torch at import (the CUDA query imports it where a device is named).
"""

from __future__ import annotations

from typing import Any

from spectral_probe.errors import ResourceError
from spectral_probe.validate import MAX_INT


def human_bytes(size: float) -> str:
    """``34.4 GB`` (decimal units, as disks and ``free -g`` are read)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(size) < 1000 or unit == "PB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} PB"


def available_memory(device: str = "cpu") -> int:
    """Bytes this process can still allocate on ``device``: the tightest of RAM, cgroup and rlimits.

    On the CPU: ``MemAvailable`` of ``/proc/meminfo``, the cgroup's ``memory.max`` less its usage, and
    ``RLIMIT_AS`` / ``RLIMIT_DATA`` less what this process already maps. On CUDA: the free device memory.
    A source that cannot be read does not count (the allocation itself remains the last line).
    """
    if device != "cpu":
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    limits = [_meminfo("MemAvailable"), _cgroup_room()]
    try:
        import resource

        status = _proc_status()
        for limit_name, used_key in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
            soft, _ = resource.getrlimit(getattr(resource, limit_name))
            if soft != resource.RLIM_INFINITY and used_key in status:
                limits.append(max(0, soft - status[used_key]))
    except (ImportError, OSError, ValueError):
        pass
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else MAX_INT


def _proc_status() -> dict[str, int]:
    values: dict[str, int] = {}
    with open("/proc/self/status", encoding="ascii", errors="replace") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024
    return values


def _meminfo(key: str) -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room() -> int | None:
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as handle:
            limit = handle.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as handle:
            return max(0, int(limit) - int(handle.read().strip()))
    except (OSError, ValueError):
        return None


def check_fits(needed: int, what: str, path: object, device: str = "cpu") -> None:
    """Raise :class:`InputError` naming ``path`` when ``needed`` bytes cannot be allocated on ``device``."""
    room = available_memory(device)
    if needed > room:
        raise ResourceError(
            path,
            f"{what} needs at least {human_bytes(needed)} of memory, but only {human_bytes(room)} "
            f"is available{'' if device == 'cpu' else ' on ' + device}; refusing it before allocating",
        )


def is_allocation_failure(exc: BaseException) -> bool:
    """An allocation that failed (host or device): torch's OOM, MemoryError, or the allocator's message."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc)
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text)
    )


#: Host memory of one fixed point's result record (its checks, residuals, notes): 14 KB measured, 10 KB counted.
RECORD_BYTES = 10_000


def check_probe_fits(nc_force: Any, shape: tuple[int, ...], itemsize: int, options: Any, path: object) -> None:
    """Refuse a probe whose smallest possible footprint exceeds the memory left (before allocating it).

    A lower bound, so that nothing that fits is refused: for ``B`` fixed points of size ``n``, the
    autograd evaluation of ``nc_force`` keeps its input, output and declared ``workspace`` (elements
    per evaluation, e.g. the hidden activation of ``conv``) twice; the Krylov path stores a basis of
    ``min(krylov_dim, n) + 1`` vectors, the dense path the ``n x n`` Jacobian; and each result record.
    """
    batch, n = int(shape[0]), int(shape[-1])
    workspace = getattr(nc_force, "workspace", 0)
    workspace = workspace if isinstance(workspace, int) and workspace > 0 else 0
    dense = options.method == "dense" or (options.method == "auto" and n <= options.dense_max_n)
    stored = n * n if dense else n * (min(options.krylov_dim, n) + 1)
    needed = itemsize * batch * (2 * (2 * n + workspace) + stored)
    check_fits(needed, f"probing {batch} fixed point(s) of size n = {n}", path, options.device)
    check_fits(batch * RECORD_BYTES, f"the result records of {batch} fixed points", path)  # on the host
