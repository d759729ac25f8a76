"""The front door ``spectral_probe.linalg`` exports functions, whatever was imported before.

A submodule named like a function it defines (once ``linalg/lanczos.py`` and ``linalg/gmres.py``) is
bound on the package when first imported and then shadows the lazily exported function; no module
may share a name with an export.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import spectral_probe.linalg as linalg


def test_no_submodule_shares_a_name_with_an_export() -> None:
    submodules = {info.name for info in pkgutil.iter_modules(linalg.__path__)}
    assert submodules.isdisjoint(linalg.__all__), submodules & set(linalg.__all__)


def test_exports_are_the_objects_after_every_submodule_is_imported() -> None:
    for info in pkgutil.iter_modules(linalg.__path__):
        importlib.import_module(f"{linalg.__name__}.{info.name}")
    for name in linalg.__all__:
        exported = getattr(linalg, name)
        assert not inspect.ismodule(exported), name
    from spectral_probe.linalg import gmres, lanczos

    assert callable(gmres) and callable(lanczos)
