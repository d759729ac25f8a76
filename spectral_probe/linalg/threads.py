"""Run small dense LAPACK calls on one thread.

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
