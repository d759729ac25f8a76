"""The ``spectral_probe.*`` metadata of a checkpoint and the ``--config`` YAML file (docs/SPEC.md section 3).

Every value is bounded before use: a value is quoted back only in part, the operator options (JSON in
the metadata, a mapping in YAML) are refused when they nest too deep or expand, through YAML aliases,
to too many values, and every number must be finite.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spectral_probe.errors import InputError, UsageError
from spectral_probe.validate import (
    MAX_INT,
    OPTION_SPECS,
    check_json_like,
    in_range,
    path_stat,
    plain_float,
    shown,
)

METADATA_PREFIX = "spectral_probe."
#: A --config file larger than this is not a config file.
MAX_CONFIG_BYTES = 1_000_000
#: Longest operator name accepted from metadata.
MAX_NAME = 256


def checkpoint_settings(metadata: Mapping[str, str], path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Parse the ``spectral_probe.*`` keys of a checkpoint's metadata (docs/SPEC.md section 3).

    Returns a dict with only the keys present, among
    ``operator`` (str, a registered operator name), ``c`` (finite float, the damping in
    ``F(z) = nc_force(z) - (1 + c) z``), ``eps`` (finite float > 0, the Euler step in
    ``M = I + eps J_F``), ``options`` (dict, from a JSON object) and ``step`` (int >= 0, the training
    step, used to order an audit). Other keys are ignored; a malformed value raises
    :class:`InputError` naming ``path`` and the key, quoting at most the start of the value.
    """
    settings: dict[str, Any] = {}

    def value(key: str) -> str | None:
        raw = metadata.get(METADATA_PREFIX + key)
        if raw is not None and not isinstance(raw, str):
            raise InputError(path, f"metadata '{METADATA_PREFIX}{key}' must be a string, got {type(raw).__name__}")
        return raw

    operator = value("operator")
    if operator is not None:
        if not operator.strip():
            raise InputError(path, f"metadata '{METADATA_PREFIX}operator' is empty")
        if len(operator) > MAX_NAME or "\x00" in operator:
            raise InputError(path, f"metadata '{METADATA_PREFIX}operator' is not an operator name: {shown(operator)}")
        settings["operator"] = operator.strip()
    for key in ("c", "eps"):
        raw = value(key)
        if raw is not None:
            settings[key] = _number(raw, key, path)
    raw = value("options")
    if raw is not None:
        settings["options"] = _options_json(raw, path)
    raw = value("step")
    if raw is not None:
        settings["step"] = _step(raw, path)
    return settings


def _number(raw: str, key: str, path: str | os.PathLike[str] | None) -> float:
    """A plain number, as ``--c``/``--eps`` from YAML take it: float() alone reads "1_0" as 10, " 1" as 1."""
    label = f"metadata '{METADATA_PREFIX}{key}'"
    number = plain_float(raw)
    if number is None:
        raise InputError(path, f"{label} is not a number: {shown(raw)} (write it as 0.5, -2 or 1e-3)")
    if not math.isfinite(number):  # nan, inf, 1e999
        raise InputError(path, f"{label} is not finite: {shown(raw)}")
    spec = OPTION_SPECS[key]  # the range --c and --eps have (docs/SPEC.md section 8.3)
    if not in_range(number, spec):
        bounds = spec.describe().removeprefix("a finite number ")
        raise InputError(path, f"{label} must be {bounds}, got {shown(raw)}")
    return number


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a finite number")


def _options_json(raw: str, path: str | os.PathLike[str] | None) -> dict[str, Any]:
    label = f"metadata '{METADATA_PREFIX}options'"
    try:
        options = json.loads(raw, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise InputError(path, f"{label} is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(path, f"{label} is nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer of more than 4300 digits
        raise InputError(path, f"{label} is not valid JSON: {shown(str(exc), 100)}") from None
    if not isinstance(options, dict):
        raise InputError(path, f"{label} must be a JSON object, got {type(options).__name__}")
    try:
        check_json_like(options, label)
    except UsageError as exc:
        raise InputError(path, str(exc)) from None
    return options


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are all different: ``json`` keeps the last of two (a silent choice)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {shown(key)} is given twice")
        seen[key] = value
    return seen


def _step(raw: str, path: str | os.PathLike[str] | None) -> int:
    label = f"metadata '{METADATA_PREFIX}step'"
    # ASCII digits only: int() would read " 1", "1\n", "1_0" and "+1" too
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or int(raw) > MAX_INT:
        if raw[1:].isascii() and raw[1:].isdigit() and raw.startswith("-"):
            raise InputError(path, f"{label} must be >= 0, got {shown(raw)}")
        raise InputError(path, f"{label} is not an integer in 0 .. 2^63-1: {shown(raw)}")
    return int(raw)


def load_yaml_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``--config`` YAML file: a mapping of option name to value (docs/SPEC.md section 3).

    Top-level keys may be spelled like the command line (``max-rho``, even ``--max-rho``) or with
    underscores (``max_rho``); they are normalized to underscores. Nested mappings (operator
    ``options``) are kept as written. An empty file is an empty config. Raises :class:`InputError`
    for a missing, unreadable or oversized file, invalid YAML (with its line), a top level that is not
    a mapping, a non-string key, two spellings of one key, or a document that nests too deep or expands
    (through aliases) to too many values. The values' types are checked by
    :func:`spectral_probe.config.merge_options`, which names this file.
    """
    import yaml  # only the config path needs it: keep `import spectral_probe.checkpoint` light

    text = _read_text(path)
    try:
        data = yaml.load(text, Loader=_core_schema_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(path, f"invalid YAML{where}: {shown(problem, 120)}") from None
    except RecursionError:
        raise InputError(path, "invalid YAML: nested too deeply") from None
    except ValueError as exc:  # PyYAML's int() of a 5,000-digit literal
        raise InputError(path, f"invalid YAML: {shown(str(exc), 100)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(path, f"a config file must be a mapping of option: value, got a {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise InputError(path, f"config keys must be strings, got {shown(key)}")
    try:
        check_json_like(data, "option")  # before anything walks it: an alias bomb stops here
    except UsageError as exc:
        raise InputError(path, str(exc)) from None
    config: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, item in data.items():
        name = key.strip().lstrip("-").replace("-", "_")
        if not name:
            raise InputError(path, f"invalid config key {shown(key)}")
        if name in config:
            raise InputError(path, f"config option '{name}' is given twice (as '{spelled[name]}' and '{key}')")
        config[name] = item
        spelled[name] = key
    return config


#: YAML 1.2 core schema scalars (yaml.org/spec/1.2.2 section 10.3.2), decimal integers only: PyYAML
#: resolves YAML 1.1's, where ``010`` is 8, ``1:20`` is 80, ``1_0`` is 10 and ``yes`` is true.
_CORE_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_CORE_INT = re.compile(r"^[-+]?[0-9]+$")
_CORE_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_CORE_TAGS = {
    "tag:yaml.org,2002:bool": _CORE_BOOL,
    "tag:yaml.org,2002:int": _CORE_INT,
    "tag:yaml.org,2002:float": _CORE_FLOAT,
}


@functools.cache
def _core_schema_loader() -> type:
    """A ``yaml.SafeLoader`` that types plain scalars by the YAML 1.2 core schema (decimal integers):
    a number YAML 1.1 would read another way (octal ``010``, sexagesimal ``1:20``, ``1_0``, ``0x10``)
    is text, which the option check refuses, or, for ``010``, the decimal the user wrote."""
    import yaml

    class CoreSchemaLoader(yaml.SafeLoader):
        pass

    CoreSchemaLoader.yaml_implicit_resolvers = {
        first: [(tag, rule) for tag, rule in resolvers if tag not in _CORE_TAGS]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    for tag, rule in _CORE_TAGS.items():
        CoreSchemaLoader.add_implicit_resolver(tag, rule, list("-+0123456789.tTfF"))

    def construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
        text = loader.construct_scalar(node)
        if not _CORE_INT.match(text):  # an explicit `!!int 0x10`: Python's int() would take `1_0`
            raise yaml.constructor.ConstructorError(None, None, f"not a decimal integer: {text!r}", node.start_mark)
        return int(text, 10)

    CoreSchemaLoader.add_constructor("tag:yaml.org,2002:int", construct_int)

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:  # PyYAML keeps the last of two equal keys (a silent choice)
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`, whose keys the mapping may override
                continue
            key = loader.construct_object(key_node, deep=deep)
            if isinstance(key, str | int | float | bool):
                if key in seen:
                    problem = f"the key {shown(key)} is given twice"
                    raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
                seen.add(key)
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    CoreSchemaLoader.construct_mapping = construct_mapping  # type: ignore[method-assign]
    return CoreSchemaLoader


def _read_text(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    info = path_stat(path)
    if info is None:
        raise InputError(path, "no such file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "is not a regular file")
    try:
        size = info.st_size
        if size > MAX_CONFIG_BYTES:
            raise InputError(path, f"is {size} bytes; a config file holds at most {MAX_CONFIG_BYTES}")
        with p.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise InputError(path, f"cannot read file: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise InputError(path, f"holds more than {MAX_CONFIG_BYTES} bytes; not a config file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not a UTF-8 text file") from None
