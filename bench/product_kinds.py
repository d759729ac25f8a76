"""Products counted and timed by KIND, outside the code being measured.

Not every product costs the same (issue 12): the Krylov ``J v`` is the transpose of the saved vjp
(:meth:`JacobianOperators.jvp`), ``J^T u`` is the vjp itself (:meth:`~JacobianOperators.vjp`), and the
checks also use the operator's forward-mode rule (:meth:`~JacobianOperators.jvp_forward`) and plain
force evaluations (:meth:`~JacobianOperators.force`, the central differences). :func:`counting` wraps
those four methods ON THE CLASS for the duration of a block, so every caller (the probe, our solvers,
SciPy's ``LinearOperator``) is counted the same way and the probe's own ``matvecs_by_kind`` can be
checked against an independent count. A product of a block ``[B, p, n]`` counts ``B * p`` vectors.
Calls made from inside another counted call (a forward rule that falls back to ``jvp``) count once,
under the outer kind.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from spectral_probe.jacobian import JacobianOperators

from .measure import median

#: Method of :class:`JacobianOperators` -> the kind it is reported as.
KINDS = {"jvp": "krylov_jv", "vjp": "vjp", "jvp_forward": "forward_jvp", "force": "force"}
#: What the report calls each kind.
KIND_LABELS = {
    "krylov_jv": "Krylov J v (transpose of the vjp)",
    "vjp": "vjp J^T u",
    "forward_jvp": "forward-mode jvp",
    "force": "force evaluation (finite differences)",
}


@dataclass
class Ledger:
    """Vectors pushed through each kind of product, and the wall seconds spent inside them."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS.values(), 0))
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(KINDS.values(), 0.0))
    depth: int = 0

    @property
    def products(self) -> int:
        """Operator applications of every kind, the checks' force evaluations included (as the probe's
        own ``matvecs`` counts them)."""
        return sum(self.counts.values())

    @property
    def product_seconds(self) -> float:
        return sum(self.seconds.values())

    def to_dict(self) -> dict[str, Any]:
        return {"counts": dict(self.counts), "seconds": dict(self.seconds), "products": self.products}


def _vectors(x: Tensor) -> int:
    """Vectors in a ``[B, *block, n]`` (or ``[..., n]``) tensor."""
    return math.prod(x.shape[:-1]) if x.ndim >= 2 else 1


def _wrap(method: Callable[..., Tensor], kind: str, ledger: Ledger) -> Callable[..., Tensor]:
    def counted(self: JacobianOperators, x: Tensor) -> Tensor:
        if ledger.depth:
            return method(self, x)
        ledger.depth += 1
        began = time.perf_counter()
        try:
            return method(self, x)
        finally:
            ledger.seconds[kind] += time.perf_counter() - began
            ledger.counts[kind] += _vectors(x)
            ledger.depth -= 1

    return counted


@contextlib.contextmanager
def counting(ledger: Ledger | None = None) -> Iterator[Ledger]:
    """Count (and time) every product of every :class:`JacobianOperators` made inside the block."""
    ledger = ledger if ledger is not None else Ledger()
    originals = {name: getattr(JacobianOperators, name) for name in KINDS}
    try:
        for name, kind in KINDS.items():
            setattr(JacobianOperators, name, _wrap(originals[name], kind, ledger))
        yield ledger
    finally:
        for name, method in originals.items():
            setattr(JacobianOperators, name, method)


def time_kinds(ops: JacobianOperators, reps: int, seed: int = 0) -> dict[str, float]:
    """Median seconds of ONE product of each kind applied alone to one vector (after a warm-up call)."""
    generator = torch.Generator(device="cpu").manual_seed(777 + seed)
    x = torch.randn(ops.z_star.shape, generator=generator, dtype=ops.dtype).to(ops.device)
    kinds = {"krylov_jv": ops.jvp, "vjp": ops.vjp, "forward_jvp": ops.jvp_forward}
    out = {}
    with torch.no_grad():
        for kind, apply in kinds.items():
            apply(x)
            samples = []
            for _ in range(max(1, reps)):
                began = time.perf_counter()
                apply(x)
                samples.append(time.perf_counter() - began)
            out[kind] = median(samples)
    return out


def modelled_seconds(counts: dict[str, int], per_product: dict[str, float]) -> float:
    """``sum_kind count * t_kind``: what the products alone would cost (force evaluations left out)."""
    return sum(counts.get(kind, 0) * seconds for kind, seconds in per_product.items())
