"""The Krylov ``J v`` by ``torch.func.linearize``: an opt-in route (``krylov_jv: linearize``) for models
whose double backward is slow.

The default Krylov ``J v`` is the transpose of the vjp (:mod:`spectral_probe.jacobian`): one backward
through the graph of ``g(w) = J^T w``, with no forward-mode AD, so the first scan imports nothing heavy.
For a convolution that product costs 3-5x a vjp (the double backward of a conv), while
``torch.func.linearize`` traces the forward once and replays only its tangent graph: about one vjp.
Measured on one CPU thread (BENCHMARKS.md has no row for it: it is off by default): a 16-channel 3x3
conv, n = 65,536, 17.0 ms against 3.3 ms; n = 262,144, 74.5 ms against 19.3 ms; a dense hopfield
n = 8,192, no gain (35 ms against 32 ms). The price: tracing imports ``torch._dynamo`` (about a second,
once per process) and keeps a second graph of the forward's constants in memory.

It is used only where it agrees with the transpose route on two random vectors and on the first of them
again (the two routes compute the same ``J_nc v``), and falls back otherwise, with a note. The repeat is
not for show: with torch 2.13, the linearization of a ``torch.nn.GRUCell`` (under ``no_grad``; with
grad on, tracing it fails) is right on its first call and wrong on every later one. The probe's own
referees (determinism, finite differences, adjoint) then check the route that was kept.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import Tensor

RowFn = Callable[..., Tensor]

#: ``||J v (linearized) - J v (transpose)|| <= AGREEMENT_ULPS u max(||J v||, tiny)`` to be used.
AGREEMENT_ULPS = 1000.0


def linearized_rows(
    force_rows: Callable[[Tensor], Tensor], z_star: Tensor, reference: RowFn | None
) -> tuple[RowFn | None, str]:
    """``v -> J_nc v`` (``[B, n] -> [B, n]``) by ``torch.func.linearize`` of ``force_rows`` at ``z_star``,
    checked against ``reference`` (the transpose route) on one random ``v``; ``(None, why)`` where it
    cannot be traced or disagrees."""
    z = z_star.detach().clone()
    if reference is None:
        return None, "J v by linearize needs the transpose route to check it against"
    try:
        # Under no_grad: a module's parameters that require grad would make the trace's in-place ops on
        # them an error (forward-mode tangents do not need grad mode). Tracing warns about its own
        # internals (constant folding, deprecated jit): nothing a user can act on.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, tangent = torch.func.linearize(force_rows, z)
            generator = torch.Generator(device=z.device).manual_seed(12345)
            first, second = (torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device) for _ in "ab")
            got = [tangent(first), tangent(second), tangent(first)]
        want = [reference(first).detach(), reference(second).detach()]
    except Exception as exc:  # a model that torch.func cannot trace: the transpose route stays
        return None, f"J v by linearize failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    worst = max(_relative_gap(g, w) for g, w in zip(got, [*want, want[0]], strict=True))
    if not worst <= AGREEMENT_ULPS * torch.finfo(z.dtype).eps:
        return None, f"J v by linearize disagrees with the transpose of the vjp (relative {worst:.1e})"

    def rows(v: Tensor, strict: bool = False) -> Tensor:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tangent(v)

    rows.loops_over_blocks = True  # type: ignore[attr-defined]  # a traced graph of one state batch
    return rows, ""


def _relative_gap(got: Tensor, want: Tensor) -> float:
    scale = torch.linalg.vector_norm(want).clamp_min(torch.finfo(want.dtype).tiny)
    return float(torch.linalg.vector_norm(got - want) / scale)
