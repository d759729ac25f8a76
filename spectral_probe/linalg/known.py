"""A matvec that already knows ``A`` on a few vectors, so that a solver's first products are free.

The math
--------
``A`` is linear: once ``A d_1 .. A d_k`` are known (a caller's checks made them on random directions),
``A x`` of any ``x`` in ``span{d_i}`` is the same combination of the known images. The directions are
orthonormalized once, ``Q = T D`` by Gram-Schmidt, with the same row operations on the images
(``A Q = T (A D)``); a row ``x`` of a call is answered from them where its component outside
``span(Q)`` is at round-off, ``||x - Q^T Q x|| <= 64 u ||x||``: the answer ``(Q x)^T (A Q)`` then differs
from a product by the rounding of a product (``u ||A|| ||x||``). Solvers normalize and orthogonalize
their starts, so a start vector that IS a known direction, or a block of them, arrives in that span to
round-off, and their first product is free.

Only the first ``uses`` calls are looked at (each a cheap Gram-Schmidt of its rows against ``k``
vectors); after them every call goes straight to the matvec.
"""

from __future__ import annotations

import torch

from spectral_probe.linalg.krylov import orthogonalize
from spectral_probe.linalg.result import Matvec

__all__ = ["KnownImages"]

#: A row is in the known span where its part outside it is below this many units of round-off.
IN_SPAN_ROUND_OFF = 64.0


class KnownImages:
    """``x -> A x`` that answers rows in ``span(inputs)`` from ``images = A inputs`` (no product).

    ``inputs`` and ``images`` are ``[*batch, k, n]`` (``k`` known vectors per problem); a call takes
    ``[*batch, n]`` or ``[*batch, p, n]`` like the wrapped ``matvec``. A row is reused only where it lies
    in the span for EVERY problem of the batch (the rest are one call of ``matvec``). ``reused`` counts the
    vectors answered without a product, per problem, for a caller that subtracts them from a count.
    """

    def __init__(self, matvec: Matvec, inputs: torch.Tensor, images: torch.Tensor, *, uses: int = 1) -> None:
        self.matvec, self.uses, self.reused = matvec, uses, 0
        self.basis, self.basis_images = _orthonormal(inputs, images)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.uses <= 0 or self.basis.shape[-2] == 0:
            return self.matvec(x)
        self.uses -= 1
        single = x.ndim == self.basis.ndim - 1
        rows = x.unsqueeze(-2) if single else x
        answers: list[torch.Tensor | None] = []
        for i in range(rows.shape[-2]):
            o = orthogonalize(self.basis, rows[..., i, :])
            inside = bool((o.norm <= IN_SPAN_ROUND_OFF * _unit_round_off(x) * o.input_norm).all())
            answers.append((o.coefficients.unsqueeze(-2) @ self.basis_images).squeeze(-2) if inside else None)
        missing = [i for i, a in enumerate(answers) if a is None]
        if missing:
            computed = self.matvec(rows[..., missing, :])
            for slot, i in enumerate(missing):
                answers[i] = computed[..., slot, :]
        self.reused += rows.shape[-2] - len(missing)
        out = torch.stack(answers, dim=-2)  # type: ignore[arg-type]  # every slot is filled now
        return out.squeeze(-2) if single else out


def _unit_round_off(x: torch.Tensor) -> float:
    return float(torch.finfo(x.dtype).eps)


def _orthonormal(inputs: torch.Tensor, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gram-Schmidt of the rows of ``inputs`` with the same operations on ``images``; a row numerically
    in the span of the earlier ones (for some problem) is dropped."""
    basis, basis_images = inputs[..., :0, :], images[..., :0, :]
    for i in range(inputs.shape[-2]):
        o = orthogonalize(basis, inputs[..., i, :])
        if not bool((o.norm > IN_SPAN_ROUND_OFF * _unit_round_off(inputs) * o.input_norm).all()):
            continue
        scale = o.norm.unsqueeze(-1)
        image = images[..., i, :] - (o.coefficients.unsqueeze(-2) @ basis_images).squeeze(-2)
        basis = torch.cat([basis, (o.vector / scale).unsqueeze(-2)], dim=-2)
        basis_images = torch.cat([basis_images, (image / scale).unsqueeze(-2)], dim=-2)
    return basis, basis_images
