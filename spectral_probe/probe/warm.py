"""Warm starts carried from one checkpoint to the next along a training run (``audit``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spectral_probe.linalg.vectors import unit_rows

#: Weight of the random part of a warm start, relative to the unit warm vector.
WARM_RANDOM_WEIGHT = 0.1


@dataclass
class WarmStart:
    """Start vectors carried from one checkpoint to the next along a training run (``audit``).

    Only the FIRST solve of each quantity is warm-started; the independent random starts that the
    cross-checks need stay random.
    """

    omega: torch.Tensor | None = None  # [B, n]
    arnoldi: torch.Tensor | None = None  # [B, n]
    matvecs_saved_hint: dict[str, int] = field(default_factory=dict)

    def fits(self, batch: int, n: int, device: torch.device, dtype: torch.dtype) -> bool:
        """The carried vectors match this checkpoint's batch, size, device and dtype."""
        ref = self.arnoldi if self.arnoldi is not None else self.omega
        return ref is not None and ref.shape == (batch, n) and ref.device == device and ref.dtype == dtype


def blend(warm: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
    """A warm start with a random part: the previous checkpoint's leading vector can be orthogonal to
    the new leading one (the eigenvectors swapped order), and a Krylov method started exactly there would
    converge to the old eigenvalue; the random part keeps every eigenvector in reach."""
    if warm is None:
        return noise
    noise = noise / torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
    return unit_rows(warm) + WARM_RANDOM_WEIGHT * noise
