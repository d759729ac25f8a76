"""Run small dense LAPACK calls, and products on thin blocks, on one thread.

On a shared machine an OpenMP-threaded ``eig``/``eigh`` of a small matrix can be 50x slower with two
threads than with one (its threads spin at barriers while another process holds a core; measured
20 s against 0.4 s for ``eig`` at n = 512 on 2 busy cores). The small projected problems of the Krylov
solvers and the dense path gain nothing from threads, so they run single-threaded; the matvecs keep
every thread.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def single_threaded() -> Iterator[None]:
    """Set torch's intra-op threads to 1 inside the block, and restore them after."""
    previous = torch.get_num_threads()
    if previous == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


#: Blocks up to this many elements run their dense products on one thread. A thin block gains little
#: from threads, and with two busy cores an OpenMP product can spin: ``x @ y.mT`` on two ``[1024, 2]``
#: blocks took 16,000 us with 2 threads against 7 us on one (torch 2.13 CPU). Above this size (an
#: ``n = 8,192`` basis of 32 vectors) the product is long enough for threads to pay.
SERIAL_MAX_ELEMENTS = 1 << 18


@contextmanager
def serial_if_small(block: torch.Tensor) -> Iterator[None]:
    """One thread inside the block when ``block`` is a small CPU tensor (see ``SERIAL_MAX_ELEMENTS``)."""
    if block.device.type != "cpu" or block.numel() > SERIAL_MAX_ELEMENTS:
        yield
        return
    with single_threaded():
        yield
