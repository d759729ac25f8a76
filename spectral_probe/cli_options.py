"""The options that ``scan`` and ``audit`` share, declared once (docs/SPEC.md section 5).

:func:`probe_options` appends them to a command's signature, where typer reads them, and hands them
to the command as one ``shared`` dict (option name -> value, ``None`` where the user typed nothing).
Their values are then checked by :class:`spectral_probe.config.ProbeOptions`. No torch here.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from spectral_probe.validate import plain_float

_NUMERICS = "numerics"
_GATES = "gates"
_OUTPUT = "output"
_BEYOND = "beyond omega, alpha, rho"
_FLAG = {"show_default": False}


def _option(flag: str, help: str, panel: str | None = None, **extra: Any) -> Any:  # noqa: A002 - typer's name
    return typer.Option(flag, help=help, rich_help_panel=panel, **extra)


def _plain_number(text: str) -> float:
    """A number written plainly (sign, ASCII digits, point, exponent), as the metadata and YAML are read:
    typer's own float() would take ``1_0`` as 10 and `` 1`` as 1. Range checks stay with ProbeOptions."""
    if isinstance(text, float):  # a default typer passes through
        return text
    number = plain_float(text)  # nan and inf come back: refused by name (not finite) where checked
    if number is None:
        raise typer.BadParameter(f"{text!r} is not a number (write it as 0.5, -2 or 1e-3)")
    return number


def _number(flag: str, help: str, panel: str | None = None) -> Any:  # noqa: A002 - typer's name
    return _option(flag, help, panel, parser=_plain_number)


#: (name, annotated type, default) of every shared option, in ``--help`` order.
SHARED_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("fixed_point", Annotated[Path | None, _option("--fixed-point", "File holding z_star [n] or [B, n].")], None),
    ("key", Annotated[str | None, _option("--key", "State dict inside a training checkpoint, e.g. model.")], None),
    (
        "input",
        Annotated[
            list[str] | None, _option("--input", "[NAME=]FILE: tensors for the operator factory, by name (repeatable).")
        ],
        None,
    ),
    (
        "operator",
        Annotated[str | None, _option("--operator", "Registered NAME, package.module:factory or file.py:factory.")],
        None,
    ),
    ("config", Annotated[Path | None, _option("--config", "YAML file with any of these options.")], None),
    ("c", Annotated[float | None, _number("--c", "Extra damping c (default 0).", _NUMERICS)], None),
    ("eps", Annotated[float | None, _number("--eps", "Euler step eps of M = I + eps J_F (default 1).")], None),
    ("dtype", Annotated[str | None, _option("--dtype", "float64 (default) or float32.", _NUMERICS)], None),
    ("device", Annotated[str | None, _option("--device", "cpu (default) or cuda.", _NUMERICS)], None),
    ("seed", Annotated[int | None, _option("--seed", "Seed of the random start vectors (default 0).")], None),
    ("tol", Annotated[float | None, _number("--tol", "Normwise residual tolerance (default eps^(2/3)).")], None),
    ("matvec", Annotated[str | None, _option("--matvec", "autograd (default) or fd.", _NUMERICS)], None),
    ("method", Annotated[str | None, _option("--method", "auto (default), dense or krylov.")], None),
    (
        "refine",
        Annotated[
            bool | None, _option("--refine/--no-refine", "Polish z* by Newton-Krylov first.", show_default=False)
        ],
        None,
    ),
    ("band", Annotated[float | None, _number("--band", "Marginal band b around rho = 1 (default 1e-6).")], None),
    ("max_rho", Annotated[float | None, _number("--max-rho", "Gate: fail when rho > R.", _GATES)], None),
    ("max_alpha", Annotated[float | None, _number("--max-alpha", "Gate: fail when alpha > A.", _GATES)], None),
    ("max_omega", Annotated[float | None, _number("--max-omega", "Gate: fail when omega > W.", _GATES)], None),
    ("json", Annotated[str | None, _option("--json", "Write the JSON report to PATH, or - for stdout.")], None),
    ("markdown", Annotated[Path | None, _option("--markdown", "Write a Markdown summary to PATH.")], None),
    ("junit", Annotated[Path | None, _option("--junit", "Write JUnit XML to PATH.", _OUTPUT)], None),
    *(
        (name, Annotated[kind, _option(flag, text, _BEYOND, **extra)], None)
        for name, kind, flag, text, extra in (
            ("margins", bool | None, "--margins/--no-margins", "eps_max with its rho probes (default off).", _FLAG),
            ("transient", bool | None, "--transient/--no-transient", "Growth bounds (default off: costly).", _FLAG),
            ("transient_horizon", int | None, "--transient-horizon", "Steps K searched (default 100).", {}),
            ("modes", bool | None, "--modes/--no-modes", "Leading modes: the units of largest weight.", _FLAG),
            ("save_modes", str | None, "--save-modes", "Write the modes: .safetensors (scan) or a folder.", {}),
            ("plot", str | None, "--plot", "PNG: spectra (scan), rho/alpha/omega over the run (audit).", {}),
        )
    ),
    ("quiet", Annotated[bool, _option("--quiet", "No table, no progress bar.", _OUTPUT)], False),
    ("debug", Annotated[bool, _option("--debug", "Show tracebacks on errors.", _OUTPUT)], False),
)

SHARED_NAMES = tuple(name for name, _, _ in SHARED_OPTIONS)
QuietOpt = SHARED_OPTIONS[SHARED_NAMES.index("quiet")][1]
DebugOpt = SHARED_OPTIONS[SHARED_NAMES.index("debug")][1]


def probe_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the shared options: typer sees them in its signature, it gets ``shared=dict``."""
    own = inspect.signature(command, eval_str=True)
    own_parameters = [p for p in own.parameters.values() if p.name != "shared"]
    shared_parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for name, annotation, default in SHARED_OPTIONS
    ]

    @functools.wraps(command)
    def with_shared(**kwargs: Any) -> None:
        shared = {name: kwargs.pop(name) for name in SHARED_NAMES}
        command(**kwargs, shared=shared)

    with_shared.__signature__ = own.replace(parameters=[*own_parameters, *shared_parameters])  # type: ignore[attr-defined]
    annotations = {k: v for k, v in command.__annotations__.items() if k != "shared"}
    with_shared.__annotations__ = {**annotations, **{name: ann for name, ann, _ in SHARED_OPTIONS}}
    return with_shared
