"""Measuring: medians of repeated runs, a matvec timed alone, peak memory, TRUE residuals, overhead.

Timing. The machine is shared, so absolute seconds drift; the report compares runs made in one
process, close in time, and always by medians (``statistics.median``) of ``reps`` repetitions.

Peak memory. ``tracemalloc`` does not see torch's tensors (they are allocated in C), so the peak is
the resident set: before a run the allocator's free memory is handed back (``malloc_trim``), the
kernel's high-water mark ``VmHWM`` is reset (``/proc/self/clear_refs`` = 5, Linux >= 4.0) and the peak
is ``VmHWM - VmRSS(before)`` after the run. Each problem runs in its own subprocess (:mod:`bench.worker`),
so the numbers are not polluted by the previous problem. Where ``clear_refs`` is not writable the
fallback is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the process peak, reset only per process).

Overhead ratio. ``wall / sum_kind(matvecs_kind * t_kind)`` with each ``t_kind`` the median time of that
matvec applied alone: 1.0 means the solver costs exactly its matvecs.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

T = TypeVar("T")

_LIBC: Any = None


def _libc() -> Any:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    return _LIBC


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Context manager: ``peak_mib`` is the resident memory the block added at its peak."""

    def __init__(self) -> None:
        self.peak_mib: float | None = None
        self.method = "VmHWM"
        self._base_kib = 0

    def __enter__(self) -> PeakMemory:
        gc.collect()
        libc = _libc()
        if libc:
            libc.malloc_trim(0)
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
                handle.write("5")
            base = _status_kib("VmRSS")
            if base is None:
                raise OSError("no VmRSS")
            self._base_kib = base
        except OSError:
            self.method = "ru_maxrss"
            self._base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        if self.method == "VmHWM":
            peak = _status_kib("VmHWM") or self._base_kib
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        self.peak_mib = max(0, peak - self._base_kib) / 1024


def rss_mib() -> float | None:
    value = _status_kib("VmRSS")
    return None if value is None else value / 1024


def median(values: list[float]) -> float:
    return float(statistics.median(values))


@dataclass
class Timed:
    """A callable's first result, its wall times (one per repetition) and the first run's peak memory."""

    result: Any
    times: list[float]
    peak_mib: float | None

    @property
    def median(self) -> float:
        return median(self.times)


def timed(fn: Callable[[], T], reps: int = 1, first: tuple[T, float, float | None] | None = None) -> Timed:
    """Run ``fn`` ``reps`` times (the first under :class:`PeakMemory`); ``first`` reuses a run already made."""
    times: list[float] = []
    if first is None:
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = fn()
            times.append(time.perf_counter() - start)
        peak = memory.peak_mib
    else:
        result, seconds, peak = first
        times.append(seconds)
    while len(times) < reps:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return Timed(result, times, peak)


def matvec_samples(apply: Callable[[Tensor], Tensor], x: Tensor, reps: int) -> list[float]:
    """Times of ``reps`` single applications of ``apply`` to ``x`` (after one warm-up call)."""
    with torch.no_grad():
        apply(x)
        times = []
        for _ in range(max(1, reps)):
            start = time.perf_counter()
            apply(x)
            times.append(time.perf_counter() - start)
    return times


def matvec_seconds(apply: Callable[[Tensor], Tensor], x: Tensor, reps: int) -> float:
    """Median time of ONE application of ``apply`` to ``x`` (after one warm-up call)."""
    return median(matvec_samples(apply, x, reps))


def relative_residual(apply: Callable[[Tensor], Tensor], value: complex, vector: Tensor, norm: float) -> float:
    """``||A v - lambda v|| / ||A||`` with ``A`` real (a complex ``v`` costs two matvecs), ``v`` ``[n]``."""
    vector = vector / torch.linalg.vector_norm(vector)
    n = vector.shape[-1]
    with torch.no_grad():
        if vector.is_complex():
            applied = torch.complex(apply(vector.real.reshape(1, n)), apply(vector.imag.reshape(1, n))).reshape(n)
            lam = torch.tensor(value, dtype=vector.dtype)
        else:
            applied = apply(vector.reshape(1, n)).reshape(n)
            lam = torch.tensor(value.real, dtype=vector.dtype)
        return float(torch.linalg.vector_norm(applied - lam * vector)) / norm


def overhead_ratio(wall: float, costs: dict[str, tuple[int, float]]) -> float | None:
    """``wall / sum(count * seconds)`` over the matvec kinds in ``costs`` (``kind -> (count, seconds)``)."""
    spent = sum(count * seconds for count, seconds in costs.values())
    return wall / spent if spent > 0 else None


def system_info() -> dict[str, Any]:
    """Machine and versions for the report header."""
    import platform

    import numpy
    import scipy

    import spectral_probe

    from .competitors import hessian_eigenthings_version

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    with contextlib.suppress(ValueError, OSError):
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory,
        "load_average": load,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "hessian_eigenthings": hessian_eigenthings_version(),
        "spectral_probe": getattr(spectral_probe, "__version__", "unknown"),
    }
