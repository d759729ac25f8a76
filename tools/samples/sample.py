"""The record of one generated sample file and what the manifest says about it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Sample:
    """One generated file and what the manifest says about it."""

    name: str
    operator: str | None  # registered name written to the metadata; None for the plugin
    truth_operator: str  # how the dense truth evaluates it
    c: float
    eps: float
    options: dict[str, Any]
    tensors: dict[str, np.ndarray]
    verdicts: list[str]
    description: str
    extra_checks: Callable[[list[dict[str, Any]]], None] | None = None
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    #: The eigenvalues of ``J_F`` built into the Schur form; the dense truth from the stored (rounded)
    #: tensors must reproduce them, which also shows that they are well conditioned.
    design_eigs: np.ndarray | None = None
