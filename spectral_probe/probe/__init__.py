"""The probe: omega, alpha and rho at the fixed points of one checkpoint, cross-checked, with a verdict.

Layering: this package calls :mod:`spectral_probe.checkpoint` (files), :mod:`spectral_probe.operators`
(``nc_force``), :mod:`spectral_probe.jacobian` (matvecs) and :mod:`spectral_probe.linalg` (solvers).
It never prints and knows nothing of the command line.

Symbols (docs/SPEC.md section 1): ``F(z) = nc_force(z) - (1 + c) z``, ``J_F = J_nc - (1 + c) I``,
``M = I + eps J_F``, ``omega = lambda_max(Sym J_F)``, ``alpha = max Re lambda(J_F)``,
``rho = max |lambda(M)|``, ``lead`` that eigenvalue of ``M`` and ``mu_lead = (lead - 1) / eps``.

Modules, one job each:

* :mod:`.checkpoint_probe`: read one checkpoint and probe its fixed points.
* :mod:`.fixed_points`: the probe of ``B`` fixed points of one operator, and the result records.
* :mod:`.checks`: the cross-checks that need no eigensolver (determinism, autograd, adjoint, invariants).
* :mod:`.dense_path` and :mod:`.krylov_path`: the spectra, dense (LAPACK) or matrix-free (Krylov).
* :mod:`.rr_confirm`: rho confirmed by block Rayleigh-Ritz on ``M``.
* :mod:`.warm`: warm starts carried along a training run.
* :mod:`.refine`: the fixed-point residual and the Newton-Krylov polish of ``--refine``.
"""

import sys

from spectral_probe.callable_module import CallableModule
from spectral_probe.probe.checkpoint_probe import CheckpointProbe, probe_checkpoint
from spectral_probe.probe.fixed_points import probe_fixed_points
from spectral_probe.probe.refine import NEWTON_STEPS
from spectral_probe.probe.rr_confirm import RR_MAX_SWEEPS, WIDER_BLOCKS
from spectral_probe.probe.warm import WARM_RANDOM_WEIGHT, WarmStart

__all__ = [
    "NEWTON_STEPS",
    "RR_MAX_SWEEPS",
    "WARM_RANDOM_WEIGHT",
    "WIDER_BLOCKS",
    "CheckpointProbe",
    "WarmStart",
    "probe_checkpoint",
    "probe_fixed_points",
]

# `spectral_probe.probe(f, z_star, ...)` is the Python API (spectral_probe.api.probe) as well as this package.
sys.modules[__name__].__class__ = CallableModule
