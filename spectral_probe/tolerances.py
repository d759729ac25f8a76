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
from dataclasses import dataclass

from spectral_probe.linalg.defaults import DEFAULTS

#: Machine epsilon by dtype name (``torch.finfo(dtype).eps``; a test keeps the two equal).
MACHINE_EPS = {"float64": 2.0**-52, "float32": 2.0**-23}
#: ``tol = u ** DEFAULT_TOL_EXPONENT`` when ``--tol`` is not given (the solvers' own default, one home:
#: :data:`spectral_probe.linalg.defaults.DEFAULTS`): two thirds of the digits for the residual, the last
#: third left for the agreement checks.
DEFAULT_TOL_EXPONENT = DEFAULTS.tol_exponent


def default_tol(dtype: str) -> float:
    """The default ``--tol`` of a dtype: ``u ** (2/3)`` (3.7e-11 in float64, 2.4e-05 in float32)."""
    return MACHINE_EPS[dtype] ** DEFAULT_TOL_EXPONENT


@dataclass(frozen=True)
class Tolerances:
    """The thresholds of one probe. Each is documented where it is used; README "Cross-checks" lists them.

    ``tol``: every eigensolver stops at a TRUE residual ``||A v - lambda v|| <= tol ||A||``.
    ``band``: the marginal band ``b`` of the verdict (``abs(rho - 1) <= b``).
    ``fixed_point``: the largest relative ``||F(z*)||`` at which ``z*`` is taken as a fixed point.
    """

    dtype: str
    machine_eps: float
    tol: float
    band: float
    fixed_point: float

    @property
    def agreement(self) -> float:
        """Independent starts agree, and the invariants hold, up to ``agreement * scale``."""
        return math.sqrt(self.tol)

    @property
    def rayleigh_ritz_tol(self) -> float:
        """Residual tolerance of block Rayleigh-Ritz and of the Lanczos run for ``||M||_2``."""
        return math.sqrt(self.tol)

    @property
    def rayleigh_ritz_agreement(self) -> float:
        """The RR rho equals the Arnoldi rho up to this times ``max(1, ||M||)``."""
        return 10 * math.sqrt(self.tol)

    @property
    def dense_residual(self) -> float:
        """A LAPACK eigenpair's residual is at most this times ``max(1, ||J_F||) max(1, eps)``."""
        return 100 * self.tol

    @property
    def autograd(self) -> float:
        """``fd_jvp_rel_err`` and ``adjoint_rel_err`` at most this: ``100 sqrt(u)`` (central differences
        lose half the digits to the balance of truncation and round-off)."""
        return 100 * math.sqrt(self.machine_eps)

    @property
    def determinism(self) -> float:
        """The same matvec twice differs by at most ``100 u`` relative."""
        return 100 * self.machine_eps

    @property
    def digits(self) -> float:
        """The decimal digits of the dtype, ``-log10(u)``: what ``digits`` left are counted against."""
        return -math.log10(self.machine_eps)

    def residual_floor(self, scale: float) -> float:
        """The smallest residual an eigenpair can be trusted to: one ``u`` of the operator's norm
        (a computed residual below that is itself round-off)."""
        return self.machine_eps * max(scale, 0.0)


def tolerances(dtype: str, tol: float | None = None, band: float = 1e-6, fixed_point: float = 1e-6) -> Tolerances:
    """The :class:`Tolerances` of a probe in ``dtype`` (``"float64"``/``"float32"``) at ``--tol`` ``tol``."""
    if dtype not in MACHINE_EPS:
        raise ValueError(f"no tolerances for dtype {dtype!r}: use one of {', '.join(MACHINE_EPS)}")
    return Tolerances(
        dtype=dtype,
        machine_eps=MACHINE_EPS[dtype],
        tol=default_tol(dtype) if tol is None else float(tol),
        band=float(band),
        fixed_point=float(fixed_point),
    )


def tolerances_markdown() -> str:
    """The README's table of every threshold at the default ``--tol``, float64 and float32 (a test
    keeps README.md equal to this)."""
    f64, f32 = tolerances("float64"), tolerances("float32")
    rows = [
        ("`--tol` (every eigensolver's normwise residual)", "u^(2/3)", f64.tol, f32.tol),
        ("independent starts, invariants (times the scale)", "sqrt(tol)", f64.agreement, f32.agreement),
        ("block Rayleigh-Ritz against Arnoldi (times max(1, norm))", "10 sqrt(tol)",
         f64.rayleigh_ritz_agreement, f32.rayleigh_ritz_agreement),
        ("dense eigenpair residual (times max(1, norm) max(1, eps))", "100 tol",
         f64.dense_residual, f32.dense_residual),
        ("autograd against central differences, adjoint identity", "100 sqrt(u)", f64.autograd, f32.autograd),
        ("the same matvec twice", "100 u", f64.determinism, f32.determinism),
        ("residual floor of an error bound (times norm)", "u", f64.machine_eps, f32.machine_eps),
    ]  # fmt: skip
    lines = ["| threshold | rule | float64 | float32 |", "|---|---|---|---|"]
    lines += [f"| {what} | `{rule}` | {a:.2g} | {b:.2g} |" for what, rule, a, b in rows]
    return "\n".join(lines)
