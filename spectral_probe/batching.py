"""Apply a one-state function to a batch of states: ``torch.func.vmap``, or a loop where vmap cannot.

``nc_force`` maps one state ``[n]`` to ``[n]`` (docs/SPEC.md section 4). The tool batches it with ``vmap``; an
operator that vmap cannot run (``nn.LSTMCell``: no batching rule for ``aten::lstm_cell``; an ODE solver
with data-dependent step control; numpy inside; in-place updates of captured tensors) is applied row by
row instead, with the same numbers, and a note says so. Pure torch.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

__all__ = ["LOOP_NOTE", "differentiable_kernels", "map_rows", "one_line", "torch_quiet"]

#: The note a result carries when its operator was applied by a loop instead of vmap.
LOOP_NOTE = "nc_force is not vmap-compatible ({why}); it is applied state by state in a loop"


def map_rows(fn: Callable[[Tensor], Tensor], rows: Tensor, *, vectorized: bool = True) -> tuple[Tensor, str | None]:
    """``stack([fn(r) for r in rows])`` for ``rows`` ``[B, n]``, by vmap when it runs, else by the loop.

    Returns ``(out, note)``: ``note`` is ``None`` when vmap ran, else the :data:`LOOP_NOTE` with vmap's
    reason. ``vectorized=False`` skips the vmap attempt (the caller already knows it fails). An error of
    ``fn`` itself (it also fails in the loop) propagates.
    """
    if vectorized:
        try:
            return torch.func.vmap(fn)(rows), None
        except Exception as exc:  # no batching rule, .item(), numpy: fall back to the loop below
            note = LOOP_NOTE.format(why=one_line(exc))
    else:
        note = LOOP_NOTE.format(why="vmap failed before")
    return torch.stack([fn(row) for row in rows]), note


def one_line(exc: BaseException, limit: int = 200) -> str:
    """``Type: first line`` of an exception, at most ``limit`` characters (for notes, not for errors)."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def torch_quiet() -> Iterator[None]:
    """Silence the warnings torch emits on a user's model while it is probed, which the tool
    already handles: vmap's "performance drop" for an op without a batching rule (the result is right;
    the JSON notes say how it was batched), and ``float()`` of a tensor that requires grad (the probe
    reads numbers, it never differentiates them). Also runs the model on :func:`differentiable_kernels`."""
    with warnings.catch_warnings(), differentiable_kernels():
        warnings.filterwarnings("ignore", message="There is a performance drop", category=UserWarning)
        warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad=True", category=UserWarning)
        # forward-mode rules of some recurrent cells are scripted inside torch, which warns on every use
        warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=DeprecationWarning)
        yield


@contextlib.contextmanager
def differentiable_kernels() -> Iterator[None]:
    """Attention by kernels that have every derivative the probe takes. ``nn.TransformerEncoderLayer`` and
    ``nn.MultiheadAttention`` in eval mode take a fused inference fast path where no input requires grad
    (under the probe's ``no_grad``, in forward mode): it has no derivative at all; the flash kernel of
    ``scaled_dot_product_attention`` has no forward mode and no double backward. The math kernel computes
    the same function (to rounding) with all of them, so the probe matches ``jacrev`` of the user's model."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel(SDPBackend.MATH):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
