"""Row-wise helpers of the Krylov starts, shared by the probe, the warm starts, the monitor and the analyses.

* :func:`unit_rows`: ``x / ||x||_2`` along the last axis, the norm clamped at the dtype's smallest normal
  number so that a zero row stays zero instead of becoming NaN;
* :func:`real_start`: a REAL start vector from a (possibly complex) Ritz vector ``v``: ``Re v + Im v``,
  which lies in the real invariant plane ``span{Re v, Im v}`` of a complex-conjugate pair (detached).
"""

from __future__ import annotations

import torch


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """``x / max(||x||_2, tiny)`` along the last axis (``tiny = finfo(x.dtype).tiny``)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def real_start(vector: torch.Tensor) -> torch.Tensor:
    """``Re v + Im v`` of a complex ``v`` (in the real plane ``span{Re v, Im v}``), or ``v``; detached."""
    return (vector.real + vector.imag).detach() if vector.is_complex() else vector.detach()
