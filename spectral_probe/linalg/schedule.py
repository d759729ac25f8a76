"""When a Krylov run looks at its Ritz values: where convergence is predicted (Krylov-Schur and block
Lanczos share it), and when a restarted run has stopped converging (:class:`StallWatch`)."""

from __future__ import annotations

import math

__all__ = ["STALL_WINDOW", "CheckSchedule", "StallWatch"]

#: Restarts without a halving of the test ratio after which a run may be called stalled.
STALL_WINDOW = 50


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


class StallWatch:
    """Whether a restarted run has stopped converging, from its test ratio ``estimate / (tol ||A||)`` at
    each restart.

    Stalled: the ratio has not halved in the last :data:`STALL_WINDOW` restarts, and even at one halving
    per window (faster than it went) the restarts left could not bring it to 1. A run on a defective or
    strongly non-normal operator (a Jordan block, Grcar) sits on the pseudospectrum's residual level
    for every restart it is given; one that converges slowly but steadily halves its ratio often enough,
    and one near the line (ratio below ``2^(left / window)``) keeps its restarts.
    """

    def __init__(self, window: int = STALL_WINDOW) -> None:
        # anchor: the ratio when the last halving was seen (the reference of the next), at restart since.
        self.window, self.anchor, self.since = window, math.inf, 0

    def stalled(self, restart: int, ratio: float, restarts_left: int) -> bool:
        """The ratio found at ``restart``; ``True`` where the run should stop (see the class docstring)."""
        if not math.isfinite(ratio):
            return False
        if ratio <= 0.5 * self.anchor:
            self.anchor, self.since = ratio, restart
            return False
        if restart - self.since < self.window or ratio <= 1.0:
            return False
        return self.window * math.log2(ratio) > restarts_left
