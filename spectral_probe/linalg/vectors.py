"""Row-wise helpers of the Krylov starts, shared by the probe, the warm starts, the monitor and the analyses.

* :func:`unit_rows`: ``x / ||x||_2`` along the last axis, the norm clamped at the dtype's smallest normal
  number so that a zero row stays zero instead of becoming NaN;
* :func:`real_start`: a REAL start vector from a (possibly complex) Ritz vector ``v``: ``Re v + Im v``,
  which lies in the real invariant plane ``span{Re v, Im v}`` of a complex-conjugate pair (detached);
* :func:`gaussian_like`: standard normal rows of ``like``'s dtype and device from a generator on any device.
"""

from __future__ import annotations

import torch


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """``x / max(||x||_2, tiny)`` along the last axis (``tiny = finfo(x.dtype).tiny``)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def real_start(vector: torch.Tensor) -> torch.Tensor:
    """``Re v + Im v`` of a complex ``v`` (in the real plane ``span{Re v, Im v}``), or ``v``; detached."""
    return (vector.real + vector.imag).detach() if vector.is_complex() else vector.detach()


def gaussian_like(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal numbers of ``shape`` in ``like``'s dtype and on its device, drawn from ``generator``."""
    if generator is None:
        return torch.randn(shape, dtype=like.dtype, device=like.device)
    # Draw on the generator's own device so a CPU generator also serves CUDA problems.
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=generator.device).to(like.device)
