"""Operator families: the non-conservative force ``nc_force: R^n -> R^n`` built from a checkpoint.

An operator family is a factory ``factory(params, options) -> nc_force`` (docs/SPEC.md section 4): ``params`` maps
tensor names to tensors, ``options`` is a dict, and ``nc_force`` maps ONE state ``[n]`` to ``[n]``
(the tool batches it with ``torch.func.vmap``). The dynamics probed are
``F(z) = nc_force(z) - (1 + c) z``.

Where a factory comes from (:func:`resolve_operator`):

* a registered name: the built-ins (:mod:`spectral_probe.operators.builtin`) and the entry points of
  the group ``spectral_probe.operators`` of installed packages. Entry points are discovered on each
  call (not at import) and loaded one at a time, so a broken plugin only breaks itself;
* ``package.module:factory`` or ``path/to/file.py:factory`` given on the command line.

An operator named by a checkpoint's metadata is looked up among registered names ONLY: opening a
checkpoint must never import code (``from_metadata=True``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spectral_probe.errors import InputError, raise_if_interrupt
from spectral_probe.operators.builtin import BUILTINS
from spectral_probe.user_model import declared_size
from spectral_probe.validate import path_stat

__all__ = [
    "ENTRY_POINT_GROUP",
    "NcForce",
    "OperatorFactory",
    "OperatorInfo",
    "build_nc_force",
    "check_nc_force",
    "operator_size",
    "registered_operators",
    "resolve_operator",
    "unknown_operator",
]

ENTRY_POINT_GROUP = "spectral_probe.operators"

NcForce = Callable[[Tensor], Tensor]
"""``nc_force``: one state ``z`` of shape ``[n]`` -> ``[n]``."""

OperatorFactory = Callable[[Mapping[str, Tensor], dict], NcForce]
"""``factory(params, options) -> nc_force``."""


@dataclass(frozen=True)
class OperatorInfo:
    """What ``spectral-probe operators`` lists about one registered family.

    name:    the name to pass to ``--operator`` or to store in ``spectral_probe.operator``.
    summary: one line, the formula of ``nc_force(z)``.
    params:  tensor name -> shape and meaning.
    options: option name -> meaning and allowed values.
    source:  ``built-in`` or ``entry point <module:attr> (<distribution> <version>)``.
    error:   why a plugin could not be loaded (``None`` when it loaded); such a plugin is listed
             but cannot be used.
    """

    name: str
    summary: str
    params: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    source: str = "built-in"
    error: str | None = None


# --------------------------------------------------------------------------------------------------
# Registry


def registered_operators() -> dict[str, OperatorInfo]:
    """Every registered family, built-ins first, then entry-point plugins sorted by name.

    Listing loads each plugin (its summary lives on the factory); a plugin that fails to load is
    listed with ``error`` set instead of breaking the listing. A plugin cannot shadow a built-in,
    and of two plugins with one name the first found wins.
    """
    infos = {name: _info(name, factory, "built-in") for name, factory in BUILTINS.items()}
    for name, entry_point in sorted(_plugin_entry_points().items()):
        source = _entry_point_source(entry_point)
        try:
            factory = _load_entry_point(entry_point)
        except InputError as exc:
            infos[name] = OperatorInfo(name, summary="(failed to load)", source=source, error=exc.problem)
            continue
        infos[name] = _info(name, factory, source)
    return infos


def unknown_operator(spec: object) -> str | None:
    """Why ``spec`` (an ``operator`` option) names no operator, or ``None``: the checks that need no import
    (empty, a plain name that is neither built in nor a registered plugin, or a ``file.py:factory`` whose
    file is missing). A ``module:factory`` spec is only checked where it is loaded."""
    if not isinstance(spec, str) or not spec.strip():
        return "empty operator name"
    spec = spec.strip()
    if spec in BUILTINS:
        return None
    if ":" in spec:
        target = spec.rsplit(":", 1)[0]
        if target.endswith(".py") and path_stat(target) is None:
            return (
                f"no such operator file '{target}' (a relative path is read from the working directory {os.getcwd()})"
            )
        return None
    plugins = _plugin_entry_points()
    return None if spec in plugins else _unknown_name(spec, plugins)


def _unknown_name(spec: str, plugins: Mapping[str, Any]) -> str:
    """The message for a plain name that is no registered operator, with the ones that are."""
    known = ", ".join([*BUILTINS, *sorted(plugins)])
    return (
        f"unknown operator '{spec}' (registered operators: {known}; "
        "or give package.module:factory or path/to/file.py:factory)"
    )


def resolve_operator(
    spec: str, *, from_metadata: bool = False, path: str | os.PathLike[str] | None = None
) -> tuple[OperatorFactory, str]:
    """The factory for ``spec`` and the name to report it under.

    ``spec`` is a registered name, ``package.module:factory`` or ``path/to/file.py:factory``. With
    ``from_metadata=True`` (the name came from a checkpoint's ``spectral_probe.operator``) only
    registered names are accepted and nothing is imported. ``path`` is the file named in errors (the
    checkpoint, for a name read from its metadata). Raises :class:`InputError` for an unknown name
    (listing the registered ones), a module path in metadata, or a plugin that cannot be loaded.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(path, "empty operator name")
    spec = spec.strip()
    if spec in BUILTINS:
        return BUILTINS[spec], spec
    plugins = _plugin_entry_points()
    if spec in plugins:
        try:
            return _load_entry_point(plugins[spec]), spec
        except InputError as exc:
            raise InputError(path, exc.problem) from None
    known = ", ".join([*BUILTINS, *sorted(plugins)])
    if from_metadata:
        if ":" in spec or "/" in spec or "\\" in spec or spec.endswith(".py"):
            raise InputError(
                path,
                f"the checkpoint metadata names the operator '{spec}', which is not a registered operator: "
                "a checkpoint never makes spectral-probe import a module; pass it with --operator "
                f"if you trust it (registered operators: {known})",
            )
        raise InputError(path, f"unknown operator '{spec}' in the checkpoint metadata (registered operators: {known})")
    if ":" not in spec:
        raise InputError(path, _unknown_name(spec, plugins))
    target, attr = spec.rsplit(":", 1)
    if not target or not attr:
        raise InputError(path, f"malformed operator '{spec}': expected MODULE:ATTR or FILE.py:ATTR")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _import_file(target)
    else:
        module = _import_module(target, spec)
    factory = _get_attr(module, attr, spec)
    return factory, spec


def build_nc_force(
    factory: OperatorFactory,
    params: Mapping[str, Tensor],
    options: Mapping[str, Any] | None,
    path: str | os.PathLike[str] | None,
    *,
    name: str = "",
) -> NcForce:
    """Call ``factory(params, options)`` and return its ``nc_force``.

    Any exception the factory raises (a missing parameter, a wrong shape, a bad option) becomes an
    :class:`InputError` naming ``path`` and the operator ``name``: a user fixes it in the file.
    """
    label = f"operator '{name}'" if name else "operator"
    try:
        nc_force = factory(params, dict(options or {}))
    except InputError as exc:
        raise InputError(path if exc.path is None else exc.path, exc.problem) from None
    except BaseException as exc:  # user code: any failure is a problem with the file it was given
        raise_if_interrupt(exc)
        raise InputError(path, f"{label}: {_message(exc)}") from None
    if not callable(nc_force):
        raise InputError(path, f"{label}: the factory returned {type(nc_force).__name__}, not a function")
    return nc_force


def operator_size(nc_force: NcForce) -> int | None:
    """The state size ``n`` an ``nc_force`` declares (attribute ``n``), or ``None`` if it does not.

    Built-in families declare it; a plugin may (``nc_force.n = n``). When it is ``None`` the size is
    the fixed point's, and :func:`check_nc_force` checks that ``nc_force`` keeps it.
    """
    return declared_size(nc_force)


def check_nc_force(nc_force: NcForce, z: Tensor, path: str | os.PathLike[str] | None, *, name: str = "") -> Tensor:
    """Evaluate ``nc_force`` on one state ``z`` ``[n]`` and check the result; returns ``nc_force(z)``.

    Checks the operator contract before any solver runs: the output is a tensor of shape ``[n]``, the
    dtype and device of ``z``, and finite. A failure (an exception inside the operator, typically a
    shape mismatch between ``z*`` and the parameters) is an :class:`InputError` naming ``path``.
    """
    label = f"operator '{name}'" if name else "operator"
    if z.ndim != 1:
        raise ValueError(f"check_nc_force takes one state [n], got shape {list(z.shape)}")
    try:
        with torch.no_grad():
            out = nc_force(z)
    except BaseException as exc:  # user code
        raise_if_interrupt(exc)
        raise InputError(path, f"{label} failed on z_star of shape {list(z.shape)}: {_message(exc)}") from None
    if not isinstance(out, Tensor):
        raise InputError(path, f"{label} returned {type(out).__name__}, expected a tensor")
    if tuple(out.shape) != tuple(z.shape):
        raise InputError(
            path, f"{label} maps a state of shape {list(z.shape)} to shape {list(out.shape)}; it must keep it"
        )
    if out.dtype != z.dtype or out.device != z.device:
        raise InputError(path, f"{label} returned {out.dtype} on {out.device} for a state {z.dtype} on {z.device}")
    if not bool(torch.isfinite(out).all()):
        raise InputError(path, f"{label} returned non-finite values at z_star")
    return out


# --------------------------------------------------------------------------------------------------
# Private helpers


def _info(name: str, factory: Callable, source: str) -> OperatorInfo:
    summary = getattr(factory, "summary", None)
    if not isinstance(summary, str) or not summary.strip():
        doc = (getattr(factory, "__doc__", None) or "").strip()
        summary = doc.splitlines()[0] if doc else "(no description)"
    params = getattr(factory, "params", None)
    options = getattr(factory, "options", None)
    return OperatorInfo(
        name=name,
        summary=summary,
        params=dict(params) if isinstance(params, Mapping) else {},
        options=dict(options) if isinstance(options, Mapping) else {},
        source=source,
    )


def _plugin_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    """Name -> entry point of the group; the first of duplicate names wins, built-ins are never shadowed."""
    try:
        found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # broken distribution metadata must not make the built-ins unusable
        return {}
    plugins: dict[str, importlib.metadata.EntryPoint] = {}
    for entry_point in found:
        if entry_point.name not in BUILTINS and entry_point.name not in plugins:
            plugins[entry_point.name] = entry_point
    return plugins


def _entry_point_source(entry_point: importlib.metadata.EntryPoint) -> str:
    dist = getattr(entry_point, "dist", None)
    where = f" ({dist.name} {dist.version})" if dist is not None else ""
    return f"entry point {entry_point.value}{where}"


def _load_entry_point(entry_point: importlib.metadata.EntryPoint) -> OperatorFactory:
    try:
        factory = entry_point.load()
    except Exception as exc:  # a plugin that raises on import only breaks itself
        raise InputError(
            None,
            f"operator plugin '{entry_point.name}' ({entry_point.value}) failed to load: {_message(exc)}",
        ) from None
    if not callable(factory):
        raise InputError(
            None,
            f"operator plugin '{entry_point.name}' ({entry_point.value}) is not a factory function "
            f"({type(factory).__name__})",
        )
    return factory


def _import_module(target: str, spec: str) -> Any:
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        missing = exc.name or target
        if not (target == missing or target.startswith(missing + ".")):
            # The plugin itself imports something that is not installed.
            raise InputError(None, f"operator '{spec}': importing '{target}' failed: {_message(exc)}") from None
    except BaseException as exc:  # user code runs on import
        raise_if_interrupt(exc)
        raise InputError(None, f"operator '{spec}': importing '{target}' failed: {_message(exc)}") from None
    # As `python -m` would, look in the working directory too (a console script does not).
    cwd = os.getcwd()
    if cwd in sys.path:
        raise InputError(
            None, f"operator '{spec}': no module named '{target}' (for a file, give path/to/file.py:factory)"
        )
    sys.path.append(cwd)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError:
        raise InputError(
            None, f"operator '{spec}': no module named '{target}' (for a file, give path/to/file.py:factory)"
        ) from None
    except Exception as exc:
        raise InputError(None, f"operator '{spec}': importing '{target}' failed: {_message(exc)}") from None
    finally:
        sys.path.remove(cwd)


def _import_file(target: str) -> Any:
    file = Path(target)
    info = path_stat(target)
    if info is None or not stat.S_ISREG(info.st_mode):
        raise InputError(target, "no such operator file")
    resolved = file.resolve()
    # One module per file, whatever the spelling of its path, so a second resolve reuses it.
    digest = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    module_name = f"spectral_probe_plugin_{resolved.stem}_{digest}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    module_spec = importlib.util.spec_from_file_location(module_name, resolved)
    if module_spec is None or module_spec.loader is None:
        raise InputError(target, "cannot be imported as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    # The plugin's folder is importable from it (its training code, models.py next to it), as for
    # `python plugin.py`; it stays on sys.path, since a factory may import lazily when called.
    folder = str(resolved.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    # Registered before running it, as a normal import does (dataclasses and pickling look it up).
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:  # user code runs on import
        del sys.modules[module_name]
        raise_if_interrupt(exc)
        raise InputError(target, f"importing the operator file failed: {_message(exc)}") from None
    return module


def _get_attr(module: Any, attr: str, spec: str) -> OperatorFactory:
    obj = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            where = module.__file__ if module.__name__.startswith("spectral_probe_plugin_") else module.__name__
            raise InputError(None, f"operator '{spec}': '{attr}' not found in {where}") from None
    if not callable(obj):
        raise InputError(None, f"operator '{spec}': '{attr}' is not a factory function ({type(obj).__name__})")
    return obj


def _message(exc: BaseException) -> str:
    """The whole message on one line (a strict load_state_dict lists every key on lines of its own);
    a KeyError's str() is the quoted key, so use its argument."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    line = "; ".join(part.strip() for part in text.strip().splitlines() if part.strip()).replace(":;", ":")
    prefix = "" if isinstance(exc, ValueError | KeyError) else f"{type(exc).__name__}: "
    return (prefix + line) if line else type(exc).__name__
