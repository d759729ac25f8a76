"""``spectral_probe.probe(f, z_star)``: the API function has the name of the probe's own module.

``spectral_probe.probe`` is the module of the engine (``from spectral_probe.probe import ...``,
``import spectral_probe.probe as m`` keep working), and also the Python API's entry point
(:func:`spectral_probe.api.probe`): the module's class is switched to :class:`CallableModule`, whose
call forwards to the API. No torch at import.
"""

from __future__ import annotations

import types
from typing import Any


class CallableModule(types.ModuleType):
    """A module that, called, runs :func:`spectral_probe.api.probe` (see its docstring)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from spectral_probe.api import probe

        return probe(*args, **kwargs)
