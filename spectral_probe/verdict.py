"""The verdict of docs/SPEC.md section 2 for one fixed point, from rho, lead, mu_lead and omega."""

from __future__ import annotations

import math

CONTRACTIVE = "contractive"
STABLE = "stable"
MARGINAL = "marginal"
HOPF = "hopf"
NEIMARK_SACKER = "neimark-sacker"
SADDLE = "saddle"
FLIP = "flip"
INCONCLUSIVE = "inconclusive"

VERDICTS = (CONTRACTIVE, STABLE, MARGINAL, HOPF, NEIMARK_SACKER, SADDLE, FLIP, INCONCLUSIVE)
UNSTABLE = frozenset({HOPF, NEIMARK_SACKER, SADDLE, FLIP})


def lead_is_complex(lead_real: float, lead_imag: float, complex_tol: float) -> bool:
    """``lead`` is complex iff ``|Im lead| > complex_tol * max(1, |lead|)``.

    ``complex_tol`` is ``sqrt(tol)``: an eigenvalue computed to a normwise residual ``tol`` can carry a
    spurious imaginary part up to about ``sqrt(tol)`` where two real eigenvalues nearly coalesce.
    """
    return abs(lead_imag) > complex_tol * max(1.0, math.hypot(lead_real, lead_imag))


def classify(
    *,
    rho: float | None,
    lead_real: float | None,
    lead_imag: float | None,
    mu_lead_real: float | None,
    omega: float | None,
    band: float,
    complex_tol: float,
    reasons: list[str] | tuple[str, ...] = (),
) -> tuple[str, str | None]:
    """Return ``(verdict, reason)``; any failed cross-check (``reasons``) makes it ``inconclusive``."""
    if reasons:
        return INCONCLUSIVE, "; ".join(reasons)
    values = (rho, lead_real, lead_imag, mu_lead_real)
    if any(v is None or not math.isfinite(v) for v in values):
        return INCONCLUSIVE, "a leading eigenvalue is not finite"
    assert rho is not None and lead_real is not None and lead_imag is not None
    assert mu_lead_real is not None
    if rho < 1.0 - band:
        if omega is not None and math.isfinite(omega) and omega < 0:
            return CONTRACTIVE, None
        return STABLE, None
    if abs(rho - 1.0) <= band:
        return MARGINAL, None
    if lead_is_complex(lead_real, lead_imag, complex_tol):
        return (HOPF, None) if mu_lead_real > 0 else (NEIMARK_SACKER, None)
    return (SADDLE, None) if lead_real > 1.0 else (FLIP, None)
