"""Every threshold the probe and the verdicts use, in one frozen object derived from the dtype and ``--tol``.

Symbols (docs/SPEC.md section 1): ``u`` is the machine epsilon of the probe dtype (``torch.finfo(dtype).eps``),
``tol`` the normwise residual tolerance of every eigensolver, ``||A||`` an estimate of the norm of the
operator a check is about. A threshold below is either a multiple of ``tol`` (what a converged solver
promises), of ``sqrt(tol)`` (agreement between two solves: two results each correct to a normwise
residual ``tol`` can differ by ``sqrt(tol) ||A||`` where eigenvalues nearly coalesce), or of ``u``
(round-off of one matvec).

This module must not import torch (``spectral-probe --help`` imports the verdict table).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

from spectral_probe.linalg.defaults import DEFAULTS

#: Machine epsilon by dtype name (``torch.finfo(dtype).eps``; a test keeps the two equal).
MACHINE_EPS = {"float64": 2.0**-52, "float32": 2.0**-23}
#: The smallest normal number by dtype name (``torch.finfo(dtype).tiny``): a square below it is 0.
SMALLEST_NORMAL = {"float64": 2.0**-1022, "float32": 2.0**-126}
#: ``tol = u ** DEFAULT_TOL_EXPONENT`` when ``--tol`` is not given (the solvers' own default, one home:
#: :data:`spectral_probe.linalg.defaults.DEFAULTS`): two thirds of the digits for the residual, the last
#: third left for the agreement checks.
DEFAULT_TOL_EXPONENT = DEFAULTS.tol_exponent
#: ``tol = u ** FD_TOL_EXPONENT`` by default under ``--matvec fd`` (:func:`default_tol`).
FD_TOL_EXPONENT = 0.5


def default_tol(dtype: str, matvec: str = "autograd") -> float:
    """The default ``--tol`` of a dtype: ``u ** (2/3)`` (3.7e-11 in float64, 2.4e-05 in float32); under
    ``--matvec fd`` ``u ** (1/2)``, above the central differences' own error (about ``u ** (2/3)`` of the
    force's scale), which no residual can go below."""
    return MACHINE_EPS[dtype] ** (FD_TOL_EXPONENT if matvec == "fd" else DEFAULT_TOL_EXPONENT)


class _Rule:
    """One derived threshold: ``value(tol, u)``, read as a property of :class:`Tolerances`; ``rule`` and
    ``what`` are its row of the README table (generated from these, so the two cannot disagree)."""

    def __init__(self, rule: str, what: str, value: Callable[[float, float], float]) -> None:
        self.rule, self.what, self.value = rule, what, value
        self.__doc__ = f"``{rule}``: {what}."

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, tolerances: None, owner: type | None = None) -> _Rule: ...
    @overload
    def __get__(self, tolerances: Tolerances, owner: type | None = None) -> float: ...
    def __get__(self, tolerances: Tolerances | None, owner: type | None = None) -> _Rule | float:
        return self if tolerances is None else self.value(tolerances.tol, tolerances.machine_eps)


@dataclass(frozen=True)
class Tolerances:
    """The thresholds of one probe. Each is documented where it is used; README "Cross-checks" lists them.

    ``tol``: every eigensolver stops at a TRUE residual ``||A v - lambda v|| <= tol ||A||``.
    ``band``: the marginal band ``b`` of the verdict (``abs(rho - 1) <= b``).
    ``fixed_point``: the largest relative ``||F(z*)||`` at which ``z*`` is taken as a fixed point.
    The derived thresholds below are :class:`_Rule` s of ``tol`` and ``u``.
    """

    dtype: str
    machine_eps: float
    tol: float
    band: float
    fixed_point: float

    # Two solves each correct to a residual tol can differ by sqrt(tol) ||A|| where eigenvalues nearly coalesce.
    agreement = _Rule("sqrt(tol)", "independent starts, invariants (times the scale)", lambda tol, u: math.sqrt(tol))
    # Rayleigh-Ritz and ||M||_2 only have to confirm to the agreement level, not to tol.
    rayleigh_ritz_tol = _Rule(
        "sqrt(tol)", "block Rayleigh-Ritz and the Lanczos run for ||M||_2 (residual)", lambda tol, u: math.sqrt(tol)
    )
    rayleigh_ritz_agreement = _Rule(
        "10 sqrt(tol)", "block Rayleigh-Ritz against Arnoldi (times max(1, norm))", lambda tol, u: 10 * math.sqrt(tol)
    )
    dense_residual = _Rule(
        "100 tol", "dense eigenpair residual (times max(1, norm) max(1, eps))", lambda tol, u: 100 * tol
    )
    # Central differences lose half the digits to the balance of truncation and round-off.
    autograd = _Rule(
        "100 sqrt(u)", "autograd against central differences, adjoint identity", lambda tol, u: 100 * math.sqrt(u)
    )
    determinism = _Rule("100 u", "the same matvec twice", lambda tol, u: 100 * u)
    # What "digits left" of an eigenvalue are counted against.
    digits = _Rule("-log10(u)", "decimal digits of the dtype", lambda tol, u: -math.log10(u))

    def residual_floor(self, scale: float) -> float:
        """The smallest residual an eigenpair can be trusted to: one ``u`` of the operator's norm
        (a computed residual below that is itself round-off)."""
        return self.machine_eps * max(scale, 0.0)


def tolerances(
    dtype: str, tol: float | None = None, band: float = 1e-6, fixed_point: float = 1e-6, matvec: str = "autograd"
) -> Tolerances:
    """The :class:`Tolerances` of a probe in ``dtype`` (``"float64"``/``"float32"``) at ``--tol`` ``tol``
    (``None``: :func:`default_tol` of ``dtype`` and ``--matvec``)."""
    if dtype not in MACHINE_EPS:
        raise ValueError(f"no tolerances for dtype {dtype!r}: use one of {', '.join(MACHINE_EPS)}")
    return Tolerances(
        dtype=dtype,
        machine_eps=MACHINE_EPS[dtype],
        tol=default_tol(dtype, matvec) if tol is None else float(tol),
        band=float(band),
        fixed_point=float(fixed_point),
    )


#: The rows of the README table, in its order (``rayleigh_ritz_tol`` and ``digits`` are not thresholds of a check).
_TABLE_RULES = (
    Tolerances.agreement,
    Tolerances.rayleigh_ritz_agreement,
    Tolerances.dense_residual,
    Tolerances.autograd,
    Tolerances.determinism,
)


def tolerances_markdown() -> str:
    """The README's table of every threshold at the default ``--tol``, float64 and float32 (a test
    keeps README.md equal to this)."""
    f64, f32 = tolerances("float64"), tolerances("float32")
    rows = [("`--tol` (every eigensolver's normwise residual)", "u^(2/3)", f64.tol, f32.tol)]
    fd64, fd32 = tolerances("float64", matvec="fd"), tolerances("float32", matvec="fd")
    rows.append(("`--tol` under `--matvec fd` (above the differences' own error)", "u^(1/2)", fd64.tol, fd32.tol))
    for rule in _TABLE_RULES:
        rows.append((rule.what, rule.rule, getattr(f64, rule.name), getattr(f32, rule.name)))
    rows.append(("residual floor of an error bound (times norm)", "u", f64.machine_eps, f32.machine_eps))
    lines = ["| threshold | rule | float64 | float32 |", "|---|---|---|---|"]
    lines += [f"| {what} | `{rule}` | {a:.2g} | {b:.2g} |" for what, rule, a, b in rows]
    return "\n".join(lines)
