"""Test matrices with KNOWN spectra, dense matvecs and SciPy ARPACK oracles, shared by the solver tests.

Every builder takes a seed and returns a float64 numpy array whose eigenvalues are known by
construction (the independent truth); ``dense_matvec`` turns a (batched) matrix into the matvec
convention of :mod:`spectral_probe.linalg` (operator on the LAST dim, any leading dims batched).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigs, eigsh


def random_orthogonal(n: int, seed: int) -> np.ndarray:
    """A Haar-random orthogonal ``n x n`` matrix (QR of a Gaussian, signs fixed)."""
    g = np.random.default_rng(seed).standard_normal((n, n))
    q, r = np.linalg.qr(g)
    return q * np.sign(np.diag(r))


def symmetric(eigenvalues: Sequence[float] | np.ndarray, seed: int) -> np.ndarray:
    """``Q diag(eigenvalues) Q^T`` with a random orthogonal ``Q``: a symmetric matrix of that spectrum."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    q = random_orthogonal(len(lam), seed)
    a = (q * lam) @ q.T
    return (a + a.T) / 2


def low_rank_symmetric(eigenvalues: Sequence[float], n: int, seed: int) -> np.ndarray:
    """``U diag(eigenvalues) U^T``, ``U`` ``n x r`` orthonormal: rank ``r``, the rest of the spectrum 0."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    u = random_orthogonal(n, seed)[:, : len(lam)]
    a = (u * lam) @ u.T
    return (a + a.T) / 2


def rotation_scaling(modulus: float, angle: float) -> np.ndarray:
    """The 2x2 block ``r [[cos t, -sin t], [sin t, cos t]]``, eigenvalues ``r exp(+-i t)``."""
    c, s = math.cos(angle), math.sin(angle)
    return modulus * np.array([[c, -s], [s, c]])


def block_spectrum(
    pairs: Sequence[tuple[float, float]],
    reals: Sequence[float] | np.ndarray,
    seed: int,
    coupling: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """A real matrix with complex pairs ``r exp(+-i t)`` (``pairs = [(r, t), ..]``) and real eigenvalues.

    Built as ``Q (D + coupling * N) Q^T``: ``D`` block-diagonal (rotation-scaling blocks, then the reals),
    ``N`` strictly block-upper-triangular Gaussian (non-normality without changing the spectrum),
    ``Q`` random orthogonal. ``coupling = 0`` gives a NORMAL matrix (eigenvalue error <= residual).
    Returns ``(matrix, eigenvalues)`` with the eigenvalues as a complex array.
    """
    reals = np.asarray(reals, dtype=np.float64)
    n = 2 * len(pairs) + len(reals)
    d = np.zeros((n, n))
    lam: list[complex] = []
    for i, (r, t) in enumerate(pairs):
        d[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = rotation_scaling(r, t)
        lam += [r * complex(math.cos(t), math.sin(t)), r * complex(math.cos(t), -math.sin(t))]
    k = 2 * len(pairs)
    d[k:, k:] = np.diag(reals)
    lam += [complex(x) for x in reals]
    if coupling:
        upper = np.triu(np.random.default_rng(seed + 1).standard_normal((n, n)), 1)
        for i in range(len(pairs)):  # keep the 2x2 diagonal blocks intact
            upper[2 * i, 2 * i + 1] = 0.0
        d = d + coupling * upper
    q = random_orthogonal(n, seed)
    return q @ d @ q.T, np.asarray(lam)


def dense_matvec(a: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float64) -> Callable:
    """``X -> A X`` on the last dim for ``A`` ``[n, n]`` or batched ``[*batch, n, n]``.

    ``X`` is ``[*batch, n]`` (one vector per problem) or ``[*batch, k, n]`` (a block per problem).
    """
    mat = a.to(dtype) if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a)).to(dtype)

    def matvec(x: torch.Tensor) -> torch.Tensor:
        m = mat.to(x.device)
        if x.ndim == m.ndim - 1:
            return (m @ x.unsqueeze(-1)).squeeze(-1)
        return x @ m.mT

    return matvec


class CountingOperator:
    """An independent matvec counter (numbers of VECTORS through the matvec, per problem)."""

    def __init__(self, matvec: Callable, batch_ndim: int) -> None:
        self.matvec = matvec
        self.batch_ndim = batch_ndim
        self.vectors = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.vectors += math.prod(x.shape[self.batch_ndim : -1])
        return self.matvec(x)


def arpack_eigsh(
    a: np.ndarray, k: int, which: str, seed: int, tol: float = 0.0, ncv: int | None = None
) -> tuple[np.ndarray, np.ndarray, int]:
    """ARPACK ``eigsh`` from a RANDOM start ``v0``: ``(values best first, vectors as rows, matvecs)``."""
    n = a.shape[0]
    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        return a @ x

    op = LinearOperator((n, n), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    w, v = eigsh(op, k=k, which=which, v0=v0, tol=tol, ncv=ncv)
    order = np.argsort(-w if which == "LA" else w)
    return w[order], v[:, order].T, count[0]


def arpack_eigs_lm(a: np.ndarray, k: int, seed: int, tol: float = 0.0) -> np.ndarray:
    """SciPy ARPACK ``eigs(which='LM')`` from a RANDOM start: the ``k`` largest-modulus eigenvalues."""
    n = a.shape[0]
    v0 = np.random.default_rng(seed).standard_normal(n)
    w = eigs(a, k=k, which="LM", v0=v0, tol=tol, return_eigenvectors=False)
    return w[np.argsort(-np.abs(w), kind="stable")]
