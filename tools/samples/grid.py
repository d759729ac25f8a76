"""The deterministic building blocks of the samples: dyadic grids, the mixing basis, exact products.

Everything here is exact in float64 or rounds once (``math.fsum``, libm), so no BLAS summation order
and no CPU-dispatched SIMD loop can change a bit of a sample (see :mod:`tools.samples`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Default verdict band of docs/SPEC.md section 2.
BAND = 1e-6
#: Every sample sits at least this far from each boundary of its verdict region (rho, omega, Re mu ...).
MARGIN = 0.05
#: Size cap per file.
MAX_BYTES = 2 * 1024 * 1024
#: ``lead`` counts as complex when ``|Im lead| > COMPLEX_TOL * max(1, rho)``; the samples have either an
#: exactly zero imaginary part or one of at least ``MARGIN``, so any sane rule agrees.
COMPLEX_TOL = 1e-8
#: Grid of the designed Schur matrices: entries are multiples of ``2**-GRID_BITS``.
GRID_BITS = 16
#: Grid of fixed-point coordinates and activation values.
VALUE_BITS = 12


def dyadic(x: np.ndarray | float, bits: int) -> np.ndarray:
    """Round to the grid ``2**-bits`` (exact: scaling by a power of two never rounds)."""
    scale = 2.0**bits
    return np.round(np.asarray(x, dtype=np.float64) * scale) / scale


def uniform(rng: np.random.Generator, low: float, high: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Uniform samples from ``Generator.random`` only (its stream is the simplest and most stable)."""
    return low + (high - low) * rng.random(size)


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random permutation as a stable argsort of uniforms (no reliance on ``Generator.permutation``)."""
    return np.argsort(rng.random(n), kind="stable")


def signs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random +-1 entries."""
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def hadamard(n: int) -> np.ndarray:
    """Sylvester Hadamard matrix of order ``n`` (a power of two): entries +-1, ``H H^T = n I``."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"n = {n} is not a power of two")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def mixing_basis(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer matrix ``G = H D1 P H D2`` with ``G G^T = n^2 I``: ``Q = G / n`` is a dense orthogonal basis.

    Entries are integers of size ~sqrt(n), so products with dyadic matrices are exact in float64.
    """
    h = hadamard(n)
    left = (h * signs(rng, n)[None, :])[:, permutation(rng, n)]
    g = left @ (h * signs(rng, n)[None, :])
    if not np.array_equal(g @ g.T, n * n * np.eye(n)):
        raise AssertionError("mixing basis is not orthogonal")
    return g


def exact_conjugation(g: np.ndarray, t: np.ndarray, g_scale_log2: int) -> np.ndarray:
    """``(g / 2**s) T (g / 2**s)^T`` computed exactly: every partial sum is an integer below 2**53.

    ``T`` must lie on the ``2**-GRID_BITS`` grid. The bound ``|g| |T| |g|^T < 2**52`` guarantees that
    every product and partial sum of both matrix products is an exactly representable integer, whatever
    order the BLAS adds them in.
    """
    t_int = np.round(t * 2.0**GRID_BITS)
    if not np.array_equal(t_int, t * 2.0**GRID_BITS):
        raise AssertionError("T is not on the dyadic grid")
    bound = np.abs(g) @ np.abs(t_int) @ np.abs(g).T
    if bound.max() >= 2.0**52 or (np.abs(g) @ np.abs(t_int)).max() >= 2.0**52:
        raise AssertionError("exactness bound violated: lower GRID_BITS")
    return (g @ t_int @ g.T) * 2.0 ** -(2 * g_scale_log2 + GRID_BITS)


@dataclass(frozen=True)
class Spectrum:
    """A designed spectrum for ``J_F``: real eigenvalues and complex pairs ``a +- i q`` (``q > 0``)."""

    reals: tuple[float, ...]
    pairs: tuple[tuple[float, float], ...]

    @property
    def size(self) -> int:
        return len(self.reals) + 2 * len(self.pairs)

    def eigenvalues(self) -> np.ndarray:
        """All eigenvalues, pairs as both conjugates."""
        vals = [complex(a, 0.0) for a in self.reals]
        for a, q in self.pairs:
            vals += [complex(a, q), complex(a, -q)]
        return np.array(vals)


def random_spectrum(
    rng: np.random.Generator,
    n: int,
    fixed_reals: tuple[float, ...],
    fixed_pairs: tuple[tuple[float, float], ...],
    real_range: tuple[float, float],
    pair_re_range: tuple[float, float],
    pair_im_range: tuple[float, float],
    n_pairs: int,
) -> Spectrum:
    """Designed eigenvalues (``fixed_*``) plus a random bulk, everything on the dyadic grid."""
    n_reals = n - len(fixed_reals) - 2 * (len(fixed_pairs) + n_pairs)
    if n_reals < 0:
        raise ValueError("too many eigenvalues for n")
    reals = np.concatenate([np.array(fixed_reals, dtype=float), uniform(rng, *real_range, n_reals)])
    pair_a = uniform(rng, *pair_re_range, n_pairs)
    pair_q = uniform(rng, *pair_im_range, n_pairs)
    pairs = [(float(a), float(q)) for a, q in fixed_pairs] + list(zip(pair_a, pair_q, strict=True))
    return Spectrum(
        reals=tuple(float(x) for x in dyadic(reals, GRID_BITS)),
        pairs=tuple((float(dyadic(a, GRID_BITS)), float(dyadic(q, GRID_BITS))) for a, q in pairs),
    )


def schur_blocks(rng: np.random.Generator, spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray]:
    """Place the spectrum's 1x1 and 2x2 blocks on a diagonal in random order.

    Returns the block-diagonal matrix and a mask of the strictly-upper entries outside every block (where
    coupling can go without changing the eigenvalues).
    """
    n = spectrum.size
    blocks: list[tuple[float, float]] = [(a, 0.0) for a in spectrum.reals] + list(spectrum.pairs)
    order = permutation(rng, len(blocks))
    t = np.zeros((n, n))
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)
    pos = 0
    for k in order:
        a, q = blocks[k]
        if q == 0.0:
            t[pos, pos] = a
            pos += 1
        else:
            t[pos : pos + 2, pos : pos + 2] = [[a, q], [-q, a]]
            mask[pos, pos + 1] = False
            pos += 2
    return t, mask


def coupling(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Uniform entries with standard deviation ``scale`` (variance of ``U(-s sqrt3, s sqrt3)`` is s^2)."""
    return uniform(rng, -math.sqrt(3.0) * scale, math.sqrt(3.0) * scale, shape)


def exact_rows_dot(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a @ x`` with each row summed by ``math.fsum``: one rounding, independent of the BLAS."""
    prod = np.asarray(a, dtype=np.float64) * np.asarray(x, dtype=np.float64)[None, :]
    return np.array([math.fsum(row) for row in prod])


def vmap_math(fn: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """Apply a scalar libm function elementwise (numpy's SIMD loops differ between CPUs)."""
    flat = [fn(float(v)) for v in np.asarray(x, dtype=np.float64).ravel()]
    return np.array(flat).reshape(np.shape(x))


def sigmoid(x: float) -> float:
    """``1 / (1 + exp(-x))`` by libm (the activation values of the sigmoid samples)."""
    return 1.0 / (1.0 + math.exp(-x))
