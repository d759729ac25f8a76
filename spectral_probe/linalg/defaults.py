"""Every default of the solvers, in ONE frozen object (KrylovKit's ``KrylovDefaults``).

The solvers of :mod:`spectral_probe.linalg` take ``None`` for "the default" and read it here, and
:class:`spectral_probe.config.ProbeOptions` takes its ``--krylov-dim`` / ``--max-restarts`` defaults
from the same object, so a Krylov dimension is never 30 in one place and 40 in another.

This module imports nothing (not even torch): ``spectral-probe --help`` reads it through the config.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULTS", "SolverDefaults"]


@dataclass(frozen=True)
class SolverDefaults:
    """The built-in solver defaults (each solver's docstring says which it uses).

    krylov_dim:      basis size ``m`` of Lanczos and Krylov-Schur (40: measured for the probe, where the
                     Rayleigh-Ritz widening is warm-started from the Arnoldi vectors).
    max_restarts:    thick restarts allowed to Lanczos and Krylov-Schur before a partial result.
    block_max_iters: sweeps allowed to block Rayleigh-Ritz (``p`` matvecs each).
    gmres_restart:   Krylov dimension of one GMRES cycle.
    gmres_max_iters: Arnoldi steps allowed to GMRES in all (its matvecs, residual ones excepted).
    tol_exponent:    the default normwise tolerance is ``eps(dtype) ** tol_exponent``
                     (3.7e-11 in float64, 2.4e-05 in float32).
    """

    krylov_dim: int = 40
    max_restarts: int = 300
    block_max_iters: int = 500
    gmres_restart: int = 30
    gmres_max_iters: int = 300
    tol_exponent: float = 2.0 / 3.0


#: The one instance every solver and the probe's options read.
DEFAULTS = SolverDefaults()
