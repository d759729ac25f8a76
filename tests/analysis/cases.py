"""Small non-normal test systems with dense truths (torch.linalg), shared by the analysis tests."""

from __future__ import annotations

import torch

from spectral_probe.jacobian import JacobianOperators

DTYPE = torch.float64


def linear_ops(jf: torch.Tensor, *, c: float = 0.0, eps: float = 1.0) -> JacobianOperators:
    """The JacobianOperators of ``nc_force(z) = (J_F + (1 + c) I) z`` at ``z* = 0``: its ``J_F`` is ``jf``."""
    n = jf.shape[-1]
    a = jf + (1 + c) * torch.eye(n, dtype=jf.dtype)
    return JacobianOperators(lambda z: a @ z, torch.zeros(1, n, dtype=jf.dtype), c=c, eps=eps)


def shear(n: int, decay: float, coupling: float, seed: int, noise: float = 0.01) -> torch.Tensor:
    """``J_F = -decay I + coupling * (superdiagonal) + noise * (strictly upper random)``: eigenvalues all
    ``-decay`` (exactly: triangular), strongly non-normal for ``coupling >> decay``."""
    g = torch.Generator().manual_seed(seed)
    upper = torch.triu(torch.randn(n, n, generator=g, dtype=DTYPE), 2)
    return -decay * torch.eye(n, dtype=DTYPE) + coupling * torch.diag(torch.ones(n - 1, dtype=DTYPE), 1) + noise * upper


def rotated_shear(n: int, seed: int) -> torch.Tensor:
    """A non-triangular non-normal ``J_F``: a shear with complex pairs, in a random orthogonal basis."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DTYPE))
    t = shear(n, 0.3, 1.5, seed)
    for i in range(0, n - 1, 2):  # rotation blocks: complex pairs -0.3 +- 0.5i
        t[i, i + 1] += 0.5
        t[i + 1, i] -= 0.5
    return q @ t @ q.T


def dense_max_power(m: torch.Tensor, horizon: int) -> tuple[float, int]:
    norms = [float(torch.linalg.matrix_norm(torch.linalg.matrix_power(m, k), ord=2)) for k in range(1, horizon + 1)]
    best = max(range(horizon), key=norms.__getitem__)
    return norms[best], best + 1


def dense_flow_norms(jf: torch.Tensor, times: list[float]) -> list[float]:
    return [float(torch.linalg.matrix_norm(torch.linalg.matrix_exp(t * jf), ord=2)) for t in times]
