"""One validation layer for every number, string, path and size that comes from outside.

A value from the command line, a ``--config`` YAML file, a checkpoint's metadata or the Python API is
checked here before anything uses it: its type (a YAML ``seed: "x"`` is not an integer, ``krylov_dim:
2.5`` is not one either), finiteness (``--band nan`` or ``--max-rho nan`` would make a verdict or a gate
silently wrong), its range, and its size (a 5,000-digit integer, a 1 MB string, an alias bomb). Every
error is a :class:`~spectral_probe.errors.UsageError` or :class:`~spectral_probe.errors.InputError`
(exit code 2, docs/SPEC.md section 7) that names the option, and the file it came from.

Memory sizes are checked against what the machine can hold before anything is allocated
(:func:`check_fits`); output paths are checked against the inputs of the run (:mod:`spectral_probe.outputs`).

No torch at import: ``spectral-probe --help`` imports :mod:`spectral_probe.config`, which imports this.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spectral_probe.errors import InputError, UsageError

#: Longest excerpt of a user's value quoted back in a message (a 1 MB metadata value is not echoed whole).
MAX_ECHO = 60
#: Longest string option (paths, names, globs) accepted.
MAX_STRING = 4096
#: Operator options (metadata JSON or YAML): at most this many values once aliases are expanded ...
MAX_OPTION_NODES = 10_000
#: ... and this deep.
MAX_OPTION_DEPTH = 32
#: Largest integer accepted anywhere an integer is read (seeds, steps, sizes): 2^63 - 1.
MAX_INT = 2**63 - 1
#: A number given as text (YAML, metadata): sign, digits, point, exponent; not float()'s "1_0", " 1", "inf".
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
#: The same, or the name of a non-finite number (read, so that a message can say "not finite").
_NUMBER_TEXT = re.compile(PLAIN_NUMBER.pattern + r"|[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def plain_float(text: str) -> float | None:
    """A number written as text (command line, YAML, metadata) by :data:`PLAIN_NUMBER`, or nan/inf; else None."""
    return float(text) if len(text) <= 64 and _NUMBER_TEXT.fullmatch(text) else None


def shown(value: object, limit: int = MAX_ECHO) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length noted."""
    if isinstance(value, int) and value.bit_length() > 4 * limit:  # repr of a huge int is slow, or refused
        return f"<an integer of about {int(value.bit_length() * 0.30103)} digits>"
    if isinstance(value, str) and len(value) > 10 * limit:
        text, full = repr(value[: 10 * limit]), len(value)  # repr of a huge string costs its length
    else:
        text = repr(value)
        full = len(text)
    if len(text) <= limit and full == len(text):
        return text
    return f"{text[: limit - 3]}... ({full} characters)"


@dataclass(frozen=True)
class Spec:
    """What one option accepts: its kind and range (``None`` is always accepted for an unset option)."""

    kind: str  # "float", "int", "bool", "str", "strings", "choice", "mapping"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        """What a valid value looks like, for the error message."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        nouns = {"float": "a finite number", "int": "an integer", "bool": "true or false", "str": "a string"}
        noun = {**nouns, "strings": "a list of strings"}.get(self.kind, "a mapping")
        if self.low is None and self.high is None:
            return noun
        left = "" if self.low is None else f"{'>' if self.low_open else '>='} {self._bound(self.low)}"
        right = "" if self.high is None else f"{'<' if self.high_open else '<='} {self._bound(self.high)}"
        return f"{noun} {' and '.join(p for p in (left, right) if p)}"

    def _bound(self, value: float) -> str:
        if self.kind != "int":
            return f"{value:g}"
        return "2^63 - 1" if value == MAX_INT else str(int(value))


#: The range of each option of :class:`~spectral_probe.config.ProbeOptions` (docs/SPEC.md symbols in comments).
#: A field not listed here is checked by the kind of its type annotation (see :func:`spec_for`).
OPTION_SPECS: dict[str, Spec] = {
    "c": Spec("float", -1e12, 1e12),  # damping in F(z) = nc_force(z) - (1 + c) z
    "eps": Spec("float", 0.0, 1e12, low_open=True),  # Euler step of M = I + eps J_F
    "seed": Spec("int", 0, MAX_INT),
    "tol": Spec("float", 0.0, 1.0, low_open=True, high_open=True),
    "band": Spec("float", 0.0, 1.0, high_open=True),  # marginal band b around rho = 1
    "krylov_dim": Spec("int", 2, 100_000),
    "block_size": Spec("int", 1, 1024),
    "max_restarts": Spec("int", 0, 1_000_000),
    "fixed_point_tol": Spec("float", 0.0, 1e12, low_open=True),
    "fd_directions": Spec("int", 0, 10_000),
    "dense_max_n": Spec("int", 0, 1_000_000),
    "fd_dense_max_n": Spec("int", 0, 1_000_000),
    "jobs": Spec("int", 1, 4096),
    "max_rho": Spec("float", -1e300, 1e300),
    "max_alpha": Spec("float", -1e300, 1e300),
    "max_omega": Spec("float", -1e300, 1e300),
    "operator_options": Spec("mapping"),
    "inputs": Spec("strings"),  # --input [NAME=]FILE, repeatable
}

_KIND_OF_ANNOTATION = (("bool", "bool"), ("float", "float"), ("int", "int"), ("str", "str"), ("dict", "mapping"))


def spec_for(name: str, annotation: object) -> Spec:
    """The spec of option ``name``: from :data:`OPTION_SPECS`, else from its annotation's kind."""
    if name in OPTION_SPECS:
        return OPTION_SPECS[name]
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    for token, kind in _KIND_OF_ANNOTATION:
        if re.search(rf"\b{token}\b", text):
            return Spec(kind, *((-MAX_INT, MAX_INT) if kind == "int" else ()))
    return Spec("any")


def option_label(name: str, source: str | None) -> str:
    """How a message names an option: ``--max-rho`` on the command line, ``config.yaml: option 'max_rho'``."""
    return f"--{name.replace('_', '-')}" if source is None else f"{source}: option '{name}'"


def check_option(name: str, value: Any, spec: Spec, source: str | None = None) -> Any:
    """``value`` checked against ``spec`` (and converted where YAML is ambiguous); ``None`` passes.

    ``source`` is the config file the value came from (``None``: the command line or the API). A
    string in a float option is read as a number (PyYAML reads ``1e-8`` without a dot as a string).
    """
    if value is None:
        return None
    label = option_label(name, source)
    problem = f"{label} must be {spec.describe()}, got {shown(value)}"
    if spec.kind == "float":
        value = _as_float(value, problem)
    elif spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageError(problem)
    elif spec.kind == "bool":
        if not isinstance(value, bool):
            raise UsageError(problem)
    elif spec.kind in ("str", "choice"):
        check_string(value, label)
        if spec.kind == "choice" and value not in spec.choices:
            raise UsageError(problem)
    elif spec.kind == "strings":
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise UsageError(problem)
        return tuple(check_string(item, label) for item in value)
    elif spec.kind == "mapping":
        if not isinstance(value, Mapping):
            raise UsageError(f"{label} must be a mapping of option: value, got {shown(value)}")
        check_json_like(value, label)
        return dict(value)
    if spec.kind in ("float", "int") and not in_range(value, spec):
        raise UsageError(problem)
    return value


def check_string(value: Any, label: str) -> str:
    """A string of at most :data:`MAX_STRING` characters without NUL (a path or a name)."""
    if not isinstance(value, str):
        raise UsageError(f"{label} must be a string, got {shown(value)}")
    if len(value) > MAX_STRING:
        raise UsageError(f"{label} is {len(value)} characters long (at most {MAX_STRING})")
    if "\x00" in value:
        raise UsageError(f"{label} contains a NUL character")
    return value


def path_stat(path: str | os.PathLike[str]) -> os.stat_result | None:
    """``os.stat`` of a path from outside; ``None`` where nothing is there (missing, or below a file).

    A path that cannot be looked at (a name too long, a symlink loop, no permission) is an
    :class:`InputError` naming it: ``Path.exists()`` raises the first as a bare OSError and calls the
    loop "missing".
    """
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InputError(path, f"cannot read it: {exc.strerror or exc}") from None
    except ValueError:  # a NUL in the name
        raise InputError(path, "is not a valid file name") from None


def _as_float(value: Any, problem: str) -> float:
    if isinstance(value, str):
        value = plain_float(value)  # None (refused below) where it is not a plain number
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(problem)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        raise UsageError(problem) from None
    if not math.isfinite(number):
        raise UsageError(problem)
    return number


def in_range(value: float, spec: Spec) -> bool:
    """Whether a number lies in the range of ``spec`` (its open and closed ends)."""
    if spec.low is not None and (value < spec.low or (spec.low_open and value == spec.low)):
        return False
    return not (spec.high is not None and (value > spec.high or (spec.high_open and value == spec.high)))


def check_json_like(value: Any, label: str) -> None:
    """A JSON-like tree (str keys; str, finite numbers, bool, None leaves), bounded in size and depth.

    The size counts every value as often as it is reached, so a YAML alias bomb (a few lines whose
    aliases expand to billions of values) is refused after :data:`MAX_OPTION_NODES` steps.
    """
    budget = [MAX_OPTION_NODES]

    def visit(item: Any, depth: int, where: str) -> None:
        at = f"{label} '{where}'" if where else label
        budget[0] -= 1
        if budget[0] < 0:
            raise UsageError(f"{label}: more than {MAX_OPTION_NODES} values (aliases expanded); refusing it")
        if depth > MAX_OPTION_DEPTH:
            raise UsageError(f"{at}: nested deeper than {MAX_OPTION_DEPTH} levels")
        if isinstance(item, Mapping):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise UsageError(f"{at}: keys must be strings, got {shown(key)}")
                check_string(key, at)
                visit(sub, depth + 1, f"{where}.{shown(key)[1:-1]}" if where else shown(key)[1:-1])
        elif isinstance(item, list | tuple):
            for index, sub in enumerate(item):
                visit(sub, depth + 1, f"{where}[{index}]")
        elif isinstance(item, str):
            check_string(item, at)
        elif isinstance(item, float) and not math.isfinite(item):
            raise UsageError(f"{at}: must be a finite number, got {item!r}")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > MAX_INT:
            raise UsageError(f"{at}: integer {shown(item)} is out of range")
        elif not (item is None or isinstance(item, bool | int | float)):
            raise UsageError(f"{at}: unsupported value {shown(item)} of type {type(item).__name__}")

    visit(value, 0, "")


_DEVICE = re.compile(r"^(cpu|cuda(:\d{1,4})?)$")


def check_device_name(device: str) -> None:
    """``cpu``, ``cuda`` or ``cuda:N`` (spelling only: :func:`check_device` asks the machine)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise UsageError(f"--device must be cpu, cuda or cuda:N, not {shown(device)}")


def check_device(device: str) -> None:
    """:func:`check_device_name`, and a CUDA device must exist on this machine (imports torch)."""
    check_device_name(device)
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is available on this machine (use --device cpu)")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def check_glob(pattern: str | None) -> None:
    """An ``audit --glob`` pattern: relative to DIR and staying below it."""
    if pattern is None:
        return
    check_string(pattern, "--glob")
    if not pattern.strip():
        raise UsageError("--glob must not be empty")
    if os.path.isabs(pattern) or pattern.startswith("~"):
        raise UsageError(f"--glob {shown(pattern)}: the pattern must be relative to DIR, not an absolute path")
    if ".." in re.split(r"[/\\]", pattern):
        raise UsageError(f"--glob {shown(pattern)}: the pattern must stay below DIR (no '..')")
