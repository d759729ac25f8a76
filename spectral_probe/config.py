"""One frozen options object, its defaults, and the precedence rule of docs/SPEC.md section 3.

Precedence: command line > config file (``--config``) > checkpoint metadata > built-in default.
Checkpoint metadata can only supply ``operator``, ``c``, ``eps`` and the operator ``options``; those
fields are ``None`` here when neither the command line nor the config file set them, and the probe
fills them per checkpoint (see :func:`spectral_probe.probe.probe_checkpoint`).

This module must not import torch (``spectral-probe --help`` imports it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from spectral_probe.errors import UsageError
from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.validate import (
    OPTION_SPECS,
    Spec,
    check_device_name,
    check_glob,
    check_option,
    option_label,
    shown,
    spec_for,
)

DEFAULT_C = 0.0
DEFAULT_EPS = 1.0

DTYPES = ("float64", "float32")
MATVECS = ("autograd", "fd")
METHODS = ("auto", "dense", "krylov")
#: The Krylov ``J v``: ``transpose`` of the vjp by double backward (default), or ``linearize``
#: (``torch.func.linearize``, :mod:`spectral_probe.linearized`), checked against it.
KRYLOV_JVS = ("transpose", "linearize")
OPTION_SPECS.update(dtype=Spec("choice", choices=DTYPES), matvec=Spec("choice", choices=MATVECS))
OPTION_SPECS.update(method=Spec("choice", choices=METHODS), krylov_jv=Spec("choice", choices=KRYLOV_JVS))
OPTION_SPECS.update(transient_horizon=Spec("int", 1, 100_000))


@dataclass(frozen=True)
class ProbeOptions:
    """Every option of ``scan`` and ``audit``; the defaults here are the only copy of the defaults."""

    # what to probe
    fixed_point: str | None = None
    key: str | None = None  # --key: the state dict inside a training checkpoint ({"model": ..., "step": ...})
    inputs: tuple[str, ...] = ()  # --input [NAME=]FILE: extra tensors passed to the operator factory by name
    operator: str | None = None
    operator_options: dict[str, Any] = field(default_factory=dict)
    c: float | None = None  # None: from metadata, else DEFAULT_C
    eps: float | None = None  # None: from metadata, else DEFAULT_EPS
    # numerics
    dtype: str = "float64"
    device: str = "cpu"
    seed: int = 0
    tol: float | None = None  # None: eps(dtype)^(2/3)
    matvec: str = "autograd"
    method: str = "auto"
    refine: bool = False
    band: float = 1e-6
    krylov_dim: int = DEFAULTS.krylov_dim  # the solvers' own default: one place (linalg/defaults.py)
    block_size: int = 2
    max_restarts: int = DEFAULTS.max_restarts
    fixed_point_tol: float = 1e-6
    fd_directions: int = 2  # also omega's two starts: their J v and J^T v are the block Lanczos's first products
    dense_max_n: int = 288  # --method auto: dense at n <= this (measured, see BENCHMARKS.md, method-auto)
    fd_dense_max_n: int = 2048  # --matvec fd: omega from a dense FD Jacobian up to this n
    krylov_jv: str = "transpose"  # the Krylov J v: transpose of the vjp, or linearize (spectral_probe.linearized)
    # analyses beyond omega/alpha/rho (spectral_probe.analysis; priced in BENCHMARKS.md)
    margins: bool = False  # eps_max with its rho probes (scan --plot turns it on; c_crit is always reported)
    transient: bool = False  # lower bounds on max_k ||M^k|| and sup_t ||exp(t J_F)||
    transient_horizon: int = 100  # K: steps searched (and T = K eps for the flow)
    modes: bool = False  # the leading modes and the units with the largest weight
    save_modes: str | None = None  # safetensors file (scan) or folder (audit) for the modes
    plot: str | None = None  # PNG: spectra (scan) or rho/alpha/omega over the run (audit)
    # gates
    max_rho: float | None = None
    max_alpha: float | None = None
    max_omega: float | None = None
    # outputs
    json: str | None = None
    markdown: str | None = None
    junit: str | None = None
    quiet: bool = False
    debug: bool = False
    # audit
    glob: str | None = None
    jobs: int = 1
    jsonl: str | None = None
    resume: bool = False
    warm_start: bool = True  # audit --jobs 1: seed each probe with the previous checkpoint's vectors
    shard: str | None = None  # audit --shard K/N: this part of a stable partition by file (docs/scaling.md)

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if value is None and "None" not in str(item.type):
                raise UsageError(f"{option_label(item.name, None)} needs a value, got None")
            checked = check_option(item.name, value, spec_for(item.name, item.type))
            if checked is not getattr(self, item.name):
                object.__setattr__(self, item.name, checked)  # a number given as a string (YAML 1e-8)
        check_glob(self.glob)
        check_device_name(self.device)

    @property
    def gates(self) -> dict[str, float]:
        """The gates that are set, by quantity name."""
        named = {"rho": self.max_rho, "alpha": self.max_alpha, "omega": self.max_omega}
        return {name: value for name, value in named.items() if value is not None}


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(ProbeOptions))


def defaults() -> dict[str, Any]:
    """The built-in defaults, by option name (used by the README test and ``--help``)."""
    return {f.name: getattr(ProbeOptions(), f.name) for f in dataclasses.fields(ProbeOptions)}


def merge_options(
    command_line: Mapping[str, Any], config_file: Mapping[str, Any], config_path: str | None = None
) -> ProbeOptions:
    """Build :class:`ProbeOptions` with command line > config file > default.

    ``command_line`` holds ``None`` for every option the user did not type. Every config value is
    checked (type, finiteness, range) with a message naming the key and ``config_path``; unknown keys
    in the config file are a usage error that names them.
    """
    where = config_path or "the config file"
    normalized = {str(key).replace("-", "_"): value for key, value in config_file.items()}
    if "options" in normalized:  # the config file may say `options:` as the metadata does
        normalized["operator_options"] = normalized.pop("options")
    unknown = sorted(set(normalized) - OPTION_NAMES)
    if unknown:
        raise UsageError(f"{where}: unknown option(s): {', '.join(shown(k) for k in unknown)}")
    annotations = {f.name: f.type for f in dataclasses.fields(ProbeOptions)}
    merged: dict[str, Any] = {  # `key:` with no value (null) in YAML leaves the option unset
        key: check_option(key, value, spec_for(key, annotations[key]), where)
        for key, value in normalized.items()
        if value is not None
    }
    for key, value in command_line.items():
        if value is not None:
            merged[key] = value
    if merged.get("operator_options") is None:
        merged.pop("operator_options", None)
    try:
        return ProbeOptions(**merged)
    except UsageError as exc:
        # The cross-field checks of __post_init__ (glob, device spelling): name the file when the
        # offending value came from it rather than from the command line.
        from_file = [
            key
            for key in ("glob", "device")
            if key in normalized and command_line.get(key) is None and f"--{key}" in str(exc)
        ]
        if from_file and config_path is not None:
            raise UsageError(f"{where}: {', '.join(from_file)}: {exc}") from None
        raise
