"""Sparklines: a series of numbers as a line of Unicode block heights (the trajectory view)."""

from __future__ import annotations

import math
from collections.abc import Sequence

#: The eight block heights of a sparkline, lowest first.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float | None], width: int | None = None) -> str:
    """Unicode blocks scaled between the finite min and max; a blank where a value is missing.

    A value ``v`` gets block ``round((v - min) / (max - min) * 7)``; a flat series gets the middle one.
    With ``width`` below ``len(values)`` each character covers a bucket and shows its largest value
    (the worst, for rho, alpha and omega), so a spike is never averaged away.
    """
    if width is not None and 0 < width < len(values):
        buckets = []
        for i in range(width):
            chunk = [v for v in values[i * len(values) // width : (i + 1) * len(values) // width] if _finite(v)]
            buckets.append(max(chunk) if chunk else None)
        values = buckets
    finite = [v for v in values if _finite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    flat = span <= 1e-12 * max(1.0, abs(high))
    chars = []
    for v in values:
        if not _finite(v):
            chars.append(" ")
        elif flat:
            chars.append(SPARK_BLOCKS[len(SPARK_BLOCKS) // 2 - 1])
        else:
            chars.append(SPARK_BLOCKS[round((v - low) / span * (len(SPARK_BLOCKS) - 1))])
    return "".join(chars)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
