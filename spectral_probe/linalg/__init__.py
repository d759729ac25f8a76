"""Matrix-free eigensolvers and a linear solver: matvec callables in, typed results out.

Pure torch; knows nothing about checkpoints, operators or the command line. The layers:

* :mod:`~spectral_probe.linalg.krylov`: the Krylov factorization ``A V = V H + r b^T`` (preallocated
  bases, expand / restart) and the ONE orthogonalization kernel (blocked CGS with the DGKS criterion);
* the algorithms on it: :func:`lanczos` (symmetric, ``A x = lambda x`` at an algebraic end, from one
  start or, ``block=True``, one Krylov space of a block of them),
  :func:`krylov_schur` (non-symmetric, several :class:`Target` s from one run), :func:`gmres`
  (``A x = b``), and :func:`block_rayleigh_ritz` (largest modulus by block subspace iteration);
* one result family: :class:`EigResult` / :class:`LinearSolveResult`, each with a
  :class:`ConvergenceInfo` (``converged``, TRUE ``residuals``, ``matvecs``, ``iterations``);
* every default in :data:`DEFAULTS` (:class:`SolverDefaults`); the dense path :func:`dense_spectrum`;
  the Jacobian referees of :mod:`~spectral_probe.linalg.fdcheck`.

Names are imported lazily (PEP 562), so ``import spectral_probe.linalg.defaults`` (the CLI's option
defaults) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConvergenceInfo": "result",
    "CountingMatvec": "result",
    "EigResult": "result",
    "GmresResult": "result",
    "LinearSolveResult": "result",
    "Matvec": "result",
    "Shifted": "result",
    "default_tol": "result",
    "DEFAULTS": "defaults",
    "SolverDefaults": "defaults",
    "KrylovFactorization": "krylov",
    "orthogonalize": "krylov",
    "lanczos": "symmetric",
    "operator_norm": "norms",
    "krylov_schur": "arnoldi",
    "Target": "targets",
    "as_target": "targets",
    "largest_modulus": "targets",
    "rightmost": "targets",
    "smallest_real": "targets",
    "block_rayleigh_ritz": "subspace",
    "gmres": "linear",
    "DenseSpectrum": "dense",
    "dense_spectrum": "dense",
    "adjoint_rel_err": "fdcheck",
    "central_difference_jvp": "fdcheck",
    "central_difference_step": "fdcheck",
    "determinism_error": "fdcheck",
    "fd_jvp_rel_err": "fdcheck",
    "random_directions": "fdcheck",
    "step_doubling_error": "fdcheck",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The public names of the package, imported from their module on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
