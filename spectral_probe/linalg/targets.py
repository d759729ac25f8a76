"""Which Ritz values a Krylov-Schur run wants: a :class:`Target` scores complex ``mu`` (higher = wanted).

For the symbols of docs/SPEC.md, the spectral abscissa ``alpha = max Re mu(J_F)`` is :func:`rightmost`, and
the leading eigenvalue of ``M = I + eps J_F`` (``rho = |lead|``) is ``largest_modulus(shift=1,
scale=eps)``: ``M`` is a polynomial in ``J_F``, so the Ritz pairs ``mu`` of ``J_F`` give ``1 + eps mu``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = ["Target", "as_target", "checked_arguments", "largest_modulus", "rightmost", "smallest_real"]

Score = Callable[[torch.Tensor], torch.Tensor]


def _score_real(mu: torch.Tensor) -> torch.Tensor:
    return mu.real


def _score_minus_real(mu: torch.Tensor) -> torch.Tensor:
    return -mu.real


@dataclass(frozen=True)
class _ModulusScore:
    """``|shift + scale * mu|``: the modulus of the eigenvalue of ``shift I + scale A`` behind ``mu``."""

    shift: float
    scale: float

    def __call__(self, mu: torch.Tensor) -> torch.Tensor:
        return (self.shift + self.scale * mu).abs()


@dataclass(frozen=True)
class Target:
    """Which Ritz values are wanted: ``score(mu)`` (real, higher = more wanted) of complex ``mu``.

    ``name`` keys the result returned by :func:`krylov_schur`. Use the constructors :func:`rightmost`
    ("LR", the spectral abscissa alpha), :func:`largest_modulus` ("LM"; with ``shift=1, scale=eps``
    the leading eigenvalue of ``M = I + eps J_F``, i.e. rho) or :func:`smallest_real` ("SR").
    """

    name: str
    score: Score

    @classmethod
    def rightmost(cls) -> Target:
        """Largest real part first: ``score = Re(mu)``, name ``"LR"``."""
        return cls("LR", _score_real)

    @classmethod
    def largest_modulus(cls, shift: float = 0.0, scale: float = 1.0, name: str | None = None) -> Target:
        """Largest ``|shift + scale * mu|`` first.

        Name ``"LM"`` for the plain case (``shift=0, scale=1``), else ``"LM(shift=..,scale=..)"``
        unless ``name`` is given. ``largest_modulus(1.0, eps)`` targets the leading eigenvalue of
        ``M = I + eps J_F`` from a Krylov space of ``J_F``.
        """
        shift, scale = float(shift), float(scale)
        if not (math.isfinite(shift) and math.isfinite(scale)) or scale == 0.0:
            raise ValueError(f"largest_modulus needs a finite shift and a finite non-zero scale: {shift}, {scale}")
        if name is None:
            name = "LM" if (shift == 0.0 and scale == 1.0) else f"LM(shift={shift:g},scale={scale:g})"
        return cls(name, _ModulusScore(shift, scale))

    @classmethod
    def smallest_real(cls) -> Target:
        """Smallest real part first: ``score = -Re(mu)``, name ``"SR"``."""
        return cls("SR", _score_minus_real)


rightmost = Target.rightmost
largest_modulus = Target.largest_modulus
smallest_real = Target.smallest_real

_SHORTHANDS: dict[str, Callable[[], Target]] = {
    "LR": Target.rightmost,
    "LM": Target.largest_modulus,
    "SR": Target.smallest_real,
}


def as_target(target: Target | str) -> Target:
    """A :class:`Target`, or one of the shorthands ``"LR"``, ``"LM"``, ``"SR"``; else ``ValueError``."""
    if isinstance(target, Target):
        return target
    if isinstance(target, str) and target in _SHORTHANDS:
        return _SHORTHANDS[target]()
    valid = ", ".join(repr(k) for k in _SHORTHANDS)
    raise ValueError(f"unknown eigenvalue target {target!r}: use a Target or one of {valid}")


def checked_arguments(
    targets: Sequence[Target | str], x0: torch.Tensor, nev: int, max_restarts: int | None
) -> list[Target]:
    """Krylov-Schur's targets as :class:`Target` objects, after checking its arguments; ``ValueError``
    naming the bad argument."""
    target_list = [as_target(t) for t in targets]
    if not target_list:
        raise ValueError("krylov_schur needs at least one target")
    names = [t.name for t in target_list]
    if len(set(names)) != len(names):
        raise ValueError(f"target names must be unique, got {names}")
    if x0.ndim < 1:
        raise ValueError(f"x0 must have shape [*batch, n], got {tuple(x0.shape)}")
    if not x0.is_floating_point():
        raise ValueError(f"x0 must be a real floating-point tensor, got {x0.dtype}")
    n = int(x0.shape[-1])
    if n < 1 or math.prod(x0.shape[:-1]) < 1:
        raise ValueError(f"x0 must be non-empty, got shape {tuple(x0.shape)}")
    if not 1 <= nev <= n:
        raise ValueError(f"nev must be in [1, n={n}], got {nev}")
    if max_restarts is not None and max_restarts < 0:
        raise ValueError(f"max_restarts must be >= 0, got {max_restarts}")
    return target_list
