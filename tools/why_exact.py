"""Why the exact eigenvalue derivative matters: a fixed-subspace Rayleigh-Ritz penalty is biased.

A training loop that penalizes rho often differentiates the Rayleigh-Ritz value ``max |eig(Q^T M Q)|`` of
a 2-D subspace ``Q`` found by a few sweeps of subspace iteration, with ``Q`` held fixed (detached). For a
normal ``M`` that is the derivative of rho; for a non-normal ``M`` it is not: the true derivative
``d lambda = y^H dM x / (y^H x)`` needs the LEFT eigenvector ``y``, which differs from the right one as
soon as ``M`` couples the leading pair to the rest.

This script builds ``M(theta) = M0 + theta E`` (30 x 30, block upper triangular, a leading complex
pair of modulus 0.97 coupled with strength ``kappa`` to a stable 28 x 28 block) and prints, at
``theta = 0``, for two couplings:

* the fixed-subspace Rayleigh-Ritz gradient (``Q`` = the exact leading invariant plane, held fixed),
* the true derivative of rho by central differences of dense ``numpy.linalg.eigvals``,
* the gradient of :func:`spectral_probe.leading_eigenvalue` (matrix-free, left + right eigenvectors).

Run: ``python -m tools.why_exact`` (about a second; seeded, so docs/your-model.md quotes it).
"""

from __future__ import annotations

import numpy as np
import torch

from spectral_probe.eigen_gradient import leading_eigenvalue

N = 30
STEP = 1e-6


def build(kappa: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    angle = 0.6
    pair = 0.97 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    rest = rng.standard_normal((N - 2, N - 2))
    rest *= 0.5 / np.abs(np.linalg.eigvals(rest)).max()
    m0 = np.zeros((N, N))
    m0[:2, :2] = pair
    m0[2:, 2:] = rest
    m0[:2, 2:] = kappa * rng.standard_normal((2, N - 2)) / np.sqrt(N - 2)
    direction = np.zeros((N, N))  # a parameter that shrinks the pair and feeds the rest back into it
    direction[:2, :2] = -0.5 * np.eye(2)
    direction[2:, :2] = 2.0 * rng.standard_normal((N - 2, 2)) / np.sqrt(N - 2)
    return m0, direction


def rho(m: np.ndarray) -> float:
    return float(np.abs(np.linalg.eigvals(m)).max())


def rayleigh_ritz_fixed(m0: np.ndarray, direction: np.ndarray) -> float:
    values, vectors = np.linalg.eig(m0)
    lead = vectors[:, np.argmax(np.abs(values))]
    basis, _ = np.linalg.qr(np.stack([lead.real, lead.imag], axis=1))

    def rr(theta: float) -> float:
        return rho(basis.T @ (m0 + theta * direction) @ basis)

    return (rr(STEP) - rr(-STEP)) / (2 * STEP)


def tool_gradient(m0: np.ndarray, direction: np.ndarray) -> float:
    theta = torch.zeros((), dtype=torch.float64, requires_grad=True)
    m0_t, e_t = torch.from_numpy(m0), torch.from_numpy(direction)

    def nc_force(z: torch.Tensor) -> torch.Tensor:  # M = I + eps J_F = J_nc at eps = 1, c = 0
        return (m0_t + theta * e_t) @ z

    value = leading_eigenvalue(nc_force, torch.zeros(N, dtype=torch.float64))
    (grad,) = torch.autograd.grad(value, theta)
    return float(grad)


def main() -> None:
    print(f"{'coupling':>9} {'rho':>7} {'fixed-subspace RR':>18} {'true (dense fd)':>16} {'leading_eigenvalue':>19}")
    for kappa in (1.0, 4.0, 16.0):
        m0, direction = build(kappa)
        true = (rho(m0 + STEP * direction) - rho(m0 - STEP * direction)) / (2 * STEP)
        print(
            f"{kappa:>9.1f} {rho(m0):>7.3f} {rayleigh_ritz_fixed(m0, direction):>18.4f} {true:>16.4f}"
            f" {tool_gradient(m0, direction):>19.4f}"
        )


if __name__ == "__main__":
    main()
