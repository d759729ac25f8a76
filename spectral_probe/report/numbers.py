"""Number formatting shared by the human-readable formats."""

from __future__ import annotations

import math


def fmt(value: float | None, digits: int = 6) -> str:
    """A compact significant-digit rendering; ``-`` for a value that was not computed."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def fmt_complex(real: float | None, imag: float | None, digits: int = 6) -> str:
    """``re ± i im`` (the conjugate pair), or just ``re`` for a real value."""
    if real is None:
        return "-"
    if imag is None or imag == 0.0:
        return fmt(real, digits)
    return f"{fmt(real, digits)} ± {fmt(imag, 3)}i"
