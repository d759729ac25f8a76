"""When a Krylov run looks at its Ritz values: where convergence is predicted (Krylov-Schur and block
Lanczos share it)."""

from __future__ import annotations

import math

__all__ = ["CheckSchedule"]


class CheckSchedule:
    """When to look at the Ritz values of a Krylov cycle before its basis is full.

    Waiting for ``m`` vectors before each convergence test (ARPACK's way) spends on average half a
    cycle's products after the wanted pair has converged. Testing after every step costs an ``m x m``
    eig per step (per problem of a batch), as much as a cheap product. So the test runs where
    convergence is predicted: the ratio ``estimate / (tol ||A||)`` of the last two tests gives a
    geometric rate per tick of the clock, and the next test is placed one tick short of the predicted
    crossing (at least one, at most ``STRIDE`` ahead), so a test is rarely wasted and the overshoot is
    rarely more than a step. The clock keeps counting across restarts: a problem's products in
    Krylov-Schur, the batch's block steps in block Lanczos.
    """

    STRIDE = 4

    def __init__(self, first: int) -> None:
        self.next = first
        self.last: tuple[int, float] | None = None

    def due(self, clock: int) -> bool:
        """Whether a test is scheduled at or before ``clock``."""
        return clock >= self.next

    def record(self, clock: int, ratio: float) -> None:
        """The test at ``clock`` found ``ratio``; place the next one."""
        jump = self.STRIDE
        if self.last is not None and 1.0 < ratio < self.last[1] and clock > self.last[0]:
            rate = (math.log(self.last[1]) - math.log(ratio)) / (clock - self.last[0])
            # Two ratios an ulp apart have equal logarithms (a huge ratio: ||A|| of 1e13, a stalled run):
            # no measured rate, the full stride.
            if rate > 0:
                jump = max(1, min(self.STRIDE, math.ceil(math.log(ratio) / rate) - 1))
        self.last = (clock, ratio)
        self.next = clock + jump
