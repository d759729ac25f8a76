"""``scan``: probe one checkpoint and assemble the :class:`Report` (verdicts, gate, reproducibility)."""

from __future__ import annotations

import dataclasses
import platform

import torch

from spectral_probe import __version__
from spectral_probe.config import ProbeOptions
from spectral_probe.gate import evaluate
from spectral_probe.probe import RR_MAX_SWEEPS, WIDER_BLOCKS, probe_checkpoint
from spectral_probe.results import CheckpointError, FixedPointResult, Report
from spectral_probe.tolerances import tolerances


def reproducibility(options: ProbeOptions) -> dict:
    """What a reader needs to reproduce the numbers: versions, dtype, device, seed, solver settings."""
    limits = tolerances(options.dtype, options.tol, options.band, options.fixed_point_tol, options.matvec)
    return {
        "tool": "spectral-probe",
        "tool_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "dtype": options.dtype,
        "device": options.device,
        "seed": options.seed,
        "matvec": options.matvec,
        "method": options.method,
        "solver": {
            "tol": limits.tol,
            "krylov_dim": options.krylov_dim,
            "max_restarts": options.max_restarts,
            "block_size": options.block_size,
            "wider_blocks": list(WIDER_BLOCKS),
            "rr_max_sweeps": RR_MAX_SWEEPS,
            "band": options.band,
            "dense_max_n": options.dense_max_n,
        },
        "options": {k: v for k, v in dataclasses.asdict(options).items() if k not in ("quiet", "debug")},
    }


def run_scan(path: str, options: ProbeOptions, *, progress: bool = False) -> Report:
    """Probe ``path``; an unreadable input becomes an error entry (exit 2), never an exception."""
    from spectral_probe.errors import SpectralProbeError

    results: tuple[FixedPointResult, ...] = ()
    errors: tuple[CheckpointError, ...] = ()
    try:
        if progress:
            from rich.console import Console
            from rich.text import Text

            with Console(stderr=True).status(Text(f"probing {path}")):
                probed = probe_checkpoint(path, options)
        else:
            probed = probe_checkpoint(path, options)
        results = probed.results
    except SpectralProbeError as exc:
        if options.debug:  # the CLI shows the traceback
            raise
        errors = (CheckpointError(checkpoint=path, error=str(exc)),)
    gate = evaluate(results, errors, options.gates)
    return Report(results=results, errors=errors, gate=gate, reproducibility=reproducibility(options))
