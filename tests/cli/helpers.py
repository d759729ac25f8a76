"""Shared helpers for the end-to-end CLI tests: write checkpoints, run the CLI, parse its JSON."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from spectral_probe.cli import app


def write_checkpoint(path: Path, tensors: dict[str, torch.Tensor], **metadata: object) -> Path:
    meta = {}
    for key, value in metadata.items():
        meta[f"spectral_probe.{key}"] = json.dumps(value) if isinstance(value, dict) else str(value)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def run_cli(*args: str):
    """Run the CLI in-process; returns (exit_code, parsed JSON or None, combined output)."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    parsed = None
    if "--json" in args and args[args.index("--json") + 1] == "-":
        text = result.stdout
        start = text.find("{")
        parsed = json.loads(text[start:]) if start >= 0 else None
    return result.exit_code, parsed, result.output
