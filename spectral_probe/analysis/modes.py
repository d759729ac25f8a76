"""Modes: the leading eigenvectors of ``M`` and of ``Sym(J_F)``, and the units that carry them.

Symbols of docs/SPEC.md section 1. The leading eigenvectors of ``M = I + eps J_F`` (largest ``|lambda|``, the
direction that grows or decays slowest under the relaxation; complex for a pair) are those of ``J_F``,
computed by Krylov-Schur on ``J_F`` with the target ``largest |1 + eps mu|``; ``lambda = 1 + eps mu``
and ``||M v - lambda v|| = eps ||J_F v - mu v||``. The leading eigenvectors of ``Sym(J_F) = (J_F +
J_F^T) / 2`` (largest algebraic eigenvalues, the first being ``omega``) are the directions of fastest
instantaneous growth of ``||z - z*||``, by Lanczos (one jvp and one vjp a product).

A unit's weight in a mode ``v`` (unit 2-norm) is ``|v_i|^2``: the weights sum to 1.

The file written by :func:`save_modes` (safetensors, every tensor ``[B, k]`` or ``[B, k, n]``, the
fixed point first, best mode first; see ``docs/modes.md``):

``M.eigenvalues.real``, ``M.eigenvalues.imag``, ``M.eigenvectors.real``, ``M.eigenvectors.imag``,
``M.residuals`` (``||M v - lambda v||``, true, from matvecs), ``M.converged``; ``sym.eigenvalues``,
``sym.eigenvectors``, ``sym.residuals``, ``sym.converged``. The metadata holds the checkpoint, ``c``,
``eps`` and these definitions.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus
from spectral_probe.linalg.symmetric import lanczos

#: Modes of each operator computed and saved.
MODES = 4
#: Units named per mode in the table and the JSON.
TOP_UNITS = 3
MODES_FORMAT = "spectral-probe modes 1"


@dataclass(frozen=True)
class Modes:
    """The leading modes of ``M`` and ``Sym(J_F)`` at B fixed points (``k`` modes each, best first)."""

    m_values: Tensor  # [B, k] complex: eigenvalues of M
    m_vectors: Tensor  # [B, k, n] complex, unit rows
    m_residuals: Tensor  # [B, k]  ||M v - lambda v||
    m_converged: Tensor  # [B, k] bool
    sym_values: Tensor | None  # [B, k] real (None without a vjp)
    sym_vectors: Tensor | None  # [B, k, n]
    sym_residuals: Tensor | None
    sym_converged: Tensor | None
    matvecs: dict[str, int]


def leading_modes(
    ops: JacobianOperators,
    random: Callable[..., Tensor],
    *,
    count: int = MODES,
    tol: float,
    krylov_dim: int,
    max_restarts: int,
) -> Modes:
    """The ``count`` leading modes of ``M`` (Krylov-Schur) and of ``Sym(J_F)`` (Lanczos)."""
    count = min(count, ops.n)
    krylov = {"tol": tol, "krylov_dim": krylov_dim, "max_restarts": max_restarts}
    target = largest_modulus(1.0, ops.eps, name="lead")
    lead = krylov_schur(ops.krylov("jf"), random(ops.batch, ops.n), targets=(target,), nev=count, **krylov)["lead"]
    counts = {"jvp": lead.matvecs, "vjp": 0}
    sym = None
    if ops.has_vjp:
        sym = lanczos(ops.krylov("sym"), random(ops.batch, ops.n), which="LA", nev=count, **krylov)
        counts["jvp"] += sym.matvecs
        counts["vjp"] += sym.matvecs
    return Modes(
        m_values=1 + ops.eps * lead.values,
        m_vectors=lead.vectors,
        m_residuals=ops.eps * lead.residuals,
        m_converged=lead.converged,
        sym_values=None if sym is None else sym.values,
        sym_vectors=None if sym is None else sym.vectors,
        sym_residuals=None if sym is None else sym.residuals,
        sym_converged=None if sym is None else sym.converged,
        matvecs=counts,
    )


def top_units(vector: Tensor, count: int = TOP_UNITS) -> tuple[list[int], list[float]]:
    """The ``count`` units of largest weight ``|v_i|^2 / ||v||^2`` in ``vector`` ``[n]`` and their weights."""
    weight = vector.abs().to(torch.float64) ** 2
    weight = weight / weight.sum().clamp_min(torch.finfo(torch.float64).tiny)
    top = torch.topk(weight, min(count, weight.shape[-1]))
    return top.indices.tolist(), top.values.tolist()


def save_modes(path: str | os.PathLike[str], modes: Modes, metadata: dict[str, str]) -> None:
    """Write ``modes`` to the safetensors file ``path`` (the layout of the module docstring)."""
    from safetensors.torch import save_file

    tensors = {
        "M.eigenvalues.real": modes.m_values.real,
        "M.eigenvalues.imag": modes.m_values.imag,
        "M.eigenvectors.real": modes.m_vectors.real,
        "M.eigenvectors.imag": modes.m_vectors.imag,
        "M.residuals": modes.m_residuals,
        "M.converged": modes.m_converged,
    }
    if modes.sym_values is not None:
        tensors |= {
            "sym.eigenvalues": modes.sym_values,
            "sym.eigenvectors": modes.sym_vectors,
            "sym.residuals": modes.sym_residuals,
            "sym.converged": modes.sym_converged,
        }
    tensors = {key: value.detach().cpu().contiguous() for key, value in tensors.items()}
    info = {
        "format": MODES_FORMAT,
        "M": "eigenpairs of M = I + eps J_F, largest |lambda| first; residual ||M v - lambda v||",
        "sym": "eigenpairs of (J_F + J_F^T)/2, largest algebraic first (the first is omega)",
        **metadata,
    }
    save_file(tensors, os.fspath(path), metadata=info)
