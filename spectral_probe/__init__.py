"""spectral-probe: matrix-free stability of the fixed points of dynamical neural models.

Importing this package must stay cheap (no torch): ``spectral-probe --help`` depends on it. The Python
API is re-exported lazily (the first use of ``spectral_probe.probe`` imports torch):

* ``probe(f, z_star, ...)`` (:func:`spectral_probe.api.probe`; ``spectral_probe.probe`` is also the
  engine's module, made callable): omega, alpha, rho, the checks and the verdict of your
  callable or ``nn.Module`` at ``z*``, as a :class:`Report`;
* :func:`find_fixed_point`: ``z*`` by Anderson acceleration and Newton-Krylov;
* :class:`StabilityMonitor` (``spectral_probe.monitor``): warm-started probing inside a training loop;
* :func:`leading_eigenvalue`, :func:`leading_eigenpair`, :class:`NonSimpleEigenvalue`
  (``spectral_probe.eigen_gradient``): rho or alpha with its exact derivative, for a penalty.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "find_fixed_point": "spectral_probe.api",
    "StabilityMonitor": "spectral_probe.monitor",
    "leading_eigenvalue": "spectral_probe.eigen_gradient",
    "leading_eigenpair": "spectral_probe.eigen_gradient",
    "NonSimpleEigenvalue": "spectral_probe.eigen_gradient",
    "LeadingEigenpair": "spectral_probe.eigen_gradient",
    "Report": "spectral_probe.results",
    "FixedPointResult": "spectral_probe.results",
}

__all__ = ["__version__", "probe", *_API]


def __getattr__(name: str) -> Any:
    import importlib

    if name == "probe":
        # The engine's module, made callable: spectral_probe.probe(f, z_star) runs spectral_probe.api.probe.
        return importlib.import_module("spectral_probe.probe")
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'spectral_probe' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
