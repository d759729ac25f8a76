"""The verdict of docs/SPEC.md section 2 for one fixed point, decided with the error bound of the leading eigenvalue.

A verdict is a region of the table; its boundaries are ``rho = 1 +- b``, the sign of ``Re(mu_lead)``
(hopf against neimark-sacker), real against complex ``lead``, the sign of a real ``lead`` (saddle against
flip) and the sign of ``omega`` (contractive against stable). ``mu_lead`` is known only to
``+- X`` (``X = mu_lead_bound``, in the frame of ``J_F`` where it is computed; ``rho`` then to
``+- eps X``): where a boundary of the region lies inside that bound, the verdict is ``inconclusive``
("ill-conditioned: the eigenvalue is known only to +-X"), never a confident answer.

No torch here: the table is pure arithmetic (and ``--help`` imports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spectral_probe.results import Check, failed_reasons

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

REAL, COMPLEX, AMBIGUOUS = "real", "complex", "ambiguous"


def lead_kind(mu_imag: float, mu_bound: float, defective: bool = False) -> str:
    """THE complex rule, used by the verdict, the JSON flag ``lead_is_complex`` and the audit.

    ``complex`` iff ``|Im mu_lead| > X``: the disk of radius ``X`` about ``mu_lead`` then misses the real
    axis, so the true eigenvalue is not real. ``real`` iff ``Im mu_lead = 0`` and the eigenvalue is not
    part of a (nearly) defective cluster: a real matrix has conjugate pairs, so a disk symmetric about
    the real axis holding one eigenvalue, or a well-conditioned (semisimple) cluster of real ones, holds
    real ones. Otherwise ``ambiguous`` (a real pair about to meet, a pair about to split, a Jordan block
    that a perturbation splits into a ring: the arithmetic cannot tell).
    Judged on ``mu_lead``, not on ``lead = 1 + eps mu_lead``: a small step ``eps`` shrinks ``Im lead`` but
    not the evidence for a pair.
    """
    if abs(mu_imag) > mu_bound:
        return COMPLEX
    if mu_imag == 0.0 and not defective:
        return REAL
    return AMBIGUOUS


def lead_is_complex(mu_imag: float, mu_bound: float, defective: bool = False) -> bool | None:
    """``True``/``False`` by :func:`lead_kind`, ``None`` where it is ambiguous."""
    kind = lead_kind(mu_imag, mu_bound, defective)
    return None if kind == AMBIGUOUS else kind == COMPLEX


def roundoff_bound(lead_abs: float, eps: float, complex_tol: float) -> float:
    """The bound on ``mu_lead`` assumed where none was computed (old journal lines, :func:`classify`):
    ``complex_tol max(1, |lead|) / eps``, i.e. ``lead`` known to ``complex_tol`` of its size."""
    return complex_tol * max(1.0, lead_abs) / eps


#: The relative size below which an imaginary part counts as round-off in a record that carries no
#: error bound (journal lines written before the bounds existed).
RECORD_ROUNDOFF = 1e-8


def record_is_complex(record: dict) -> bool | None:
    """:func:`lead_is_complex` for a JSON result record or trajectory point (the audit reads these):
    the probe's own flag; else the rule on ``mu_lead`` and its bound; else on ``lead`` at round-off."""
    if record.get("lead_is_complex") is not None:
        return bool(record["lead_is_complex"])
    if record.get("mu_lead_imag") is not None and record.get("mu_lead_bound") is not None:
        return lead_is_complex(record["mu_lead_imag"], record["mu_lead_bound"], bool(record.get("lead_defective")))
    real, imag = record.get("lead_real"), record.get("lead_imag")
    if real is None or imag is None:
        return None
    return lead_is_complex(imag, roundoff_bound(math.hypot(real, imag), 1.0, RECORD_ROUNDOFF))


@dataclass(frozen=True)
class Lead:
    """The leading eigenvalue ``mu_lead`` of ``J_F`` (``Im >= 0``), ``lead = 1 + eps mu_lead``, and what
    is known of its error: ``|mu_true - mu_lead| <= mu_bound``, and whether it is (nearly) defective."""

    mu: complex
    eps: float
    mu_bound: float = 0.0
    defective: bool = False
    #: Other computed eigenvalues of ``J_F`` whose modulus in ``M`` is within the bounds of rho's.
    rivals: tuple[complex, ...] = ()

    @property
    def lead(self) -> complex:
        """The leading eigenvalue of ``M``: ``lead = 1 + eps mu_lead``."""
        return 1 + self.eps * self.mu

    @property
    def rho(self) -> float:
        """``rho = |lead|``."""
        return abs(self.lead)

    @property
    def rho_bound(self) -> float:
        """The error bound of rho: ``eps`` times mu_lead's bound."""
        return self.eps * self.mu_bound

    @property
    def finite(self) -> bool:
        """``mu_lead`` is finite (both parts)."""
        return math.isfinite(self.mu.real) and math.isfinite(self.mu.imag)


def _table(lead: Lead, omega: float | None, band: float) -> str:
    """The docs/SPEC.md section 2 table, on the computed values."""
    rho = lead.rho
    if rho < 1.0 - band:
        return CONTRACTIVE if omega is not None and math.isfinite(omega) and omega < 0 else STABLE
    if abs(rho - 1.0) <= band:
        return MARGINAL
    if lead_kind(lead.mu.imag, lead.mu_bound, lead.defective) == COMPLEX:
        return HOPF if lead.mu.real > 0 else NEIMARK_SACKER
    return SADDLE if lead.lead.real > 1.0 else FLIP


def _boundary(name: str, distance: float, bound: float, what: str, known: float) -> Check:
    """A boundary of the verdict's region at ``distance`` from the computed value, against the bound."""
    return Check(
        name=f"boundary:{name}",
        kind="conditioning",
        value=distance,
        bound=bound,
        passed=distance > bound,
        reason=f"ill-conditioned: the eigenvalue is known only to ±{known:.2g} ({what} lies inside)",
    )


def boundary_checks(
    lead: Lead, omega: float | None, omega_bound: float, band: float, verdict: str | None = None
) -> list[Check]:
    """The boundaries of the region of ``verdict`` (default: the table's) against the error bounds."""
    verdict = verdict or _table(lead, omega, band)
    x, x_rho, rho = lead.mu_bound, lead.rho_bound, lead.rho
    if verdict in (STABLE, CONTRACTIVE):
        checks = [_boundary("rho_below_band", 1.0 - band - rho, x_rho, "rho = 1 - band", x)]
        if verdict == CONTRACTIVE and omega is not None:
            checks.append(_boundary("omega_sign", -omega, omega_bound, "omega = 0", omega_bound))
        return checks
    if verdict == MARGINAL:
        return [_boundary("rho_in_band", band - abs(rho - 1.0), x_rho, "a band edge rho = 1 +- band", x)]
    checks = [_boundary("rho_above_band", rho - 1.0 - band, x_rho, "rho = 1 + band", x)]
    others = sorted({_table(Lead(r, lead.eps, x), omega, band) for r in lead.rivals} - {verdict})
    if others:  # two eigenvalues of two kinds tie for the lead within the bounds: which crossed?
        reason = f"ill-conditioned: an eigenvalue of another kind ({', '.join(others)}) is as far out as the"
        reason += f" lead, within ±{x_rho:.2g} of rho (which one leads?)"
        checks.append(Check("boundary:leading_kind", "conditioning", float(len(others)), 0.0, False, reason))
    kind = lead_kind(lead.mu.imag, x, lead.defective)
    if kind == AMBIGUOUS:
        checks.append(
            Check(
                name="boundary:real_or_complex",
                kind="conditioning",
                value=abs(lead.mu.imag),
                bound=x,
                passed=False,
                reason=f"ill-conditioned: the eigenvalue is known only to ±{x:.2g} (real or complex pair?"
                f" Im(mu_lead) = {lead.mu.imag:.2g} lies inside)",
            )
        )
    elif kind == COMPLEX:
        checks.append(_boundary("mu_real_sign", abs(lead.mu.real), x, "Re(mu_lead) = 0", x))
    else:
        checks.append(_boundary("lead_sign", abs(lead.lead.real), x_rho, "lead = 0", x))
    return checks


def decide(
    lead: Lead,
    omega: float | None,
    band: float,
    checks: tuple[Check, ...] | list[Check] = (),
    *,
    omega_bound: float = 0.0,
    boundaries: bool = True,
) -> tuple[str, str | None, tuple[Check, ...]]:
    """``(verdict, reason, every check)``: the cross-checks ``checks``, the finiteness of the lead and,
    with ``boundaries``, the verdict's boundaries against the bounds; any failure is ``inconclusive``.

    The boundaries are judged only when every other check passed: a bound means nothing for an
    eigenvalue that a failed cross-check already put in doubt.
    """
    all_checks = list(checks)
    if not lead.finite:
        all_checks.append(Check("finite:lead", "finite", None, None, False, "a leading eigenvalue is not finite"))
    elif boundaries and all(c.passed for c in all_checks):
        all_checks += boundary_checks(lead, omega, omega_bound, band)
    reasons = failed_reasons(all_checks)
    if reasons:
        return INCONCLUSIVE, "; ".join(reasons), tuple(all_checks)
    return _table(lead, omega, band), None, tuple(all_checks)


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
    """The table from ``lead`` alone, where no error bound was computed (fakes, old records).

    The complex rule is :func:`lead_kind` with the bound :func:`roundoff_bound` (in the frame ``eps = 1``:
    the rule compares ``Im`` with a bound, so it is the same in every frame); the boundaries are taken as
    exact, and an ambiguous lead counts as real. Any ``reasons`` make it ``inconclusive``. ``rho`` and
    ``mu_lead_real`` must be ``|lead|`` and ``(lead_real - 1) / eps``.
    """
    if reasons:
        return INCONCLUSIVE, "; ".join(reasons)
    values = (rho, lead_real, lead_imag, mu_lead_real)
    if any(v is None or not math.isfinite(v) for v in values):
        return INCONCLUSIVE, "a leading eigenvalue is not finite"
    assert lead_real is not None and lead_imag is not None
    bound = roundoff_bound(math.hypot(lead_real, lead_imag), 1.0, complex_tol)
    lead = Lead(complex(lead_real - 1.0, abs(lead_imag)), 1.0, bound)
    verdict, reason, _ = decide(lead, omega, band, boundaries=False)
    return verdict, reason
