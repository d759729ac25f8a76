"""Accuracy of the eigensolvers against dense truth, and their matvecs against ARPACK, on the traps.

Run: ``python -m bench.solver_report`` (prints a Markdown table; ~1 minute on 2 cores).

Every problem is a dense matrix wrapped as a matvec, so the truth is ``numpy.linalg`` and ARPACK
(``scipy.sparse.linalg``) runs on the very same operator with a random start vector and a tolerance
that gives the same normwise residual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse.linalg as sla
import torch

from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.result import default_tol
from spectral_probe.linalg.subspace import block_rayleigh_ritz
from spectral_probe.linalg.symmetric import lanczos

EPS_M = 0.5  # the Euler step of M = I + eps A in the rho problems


def _orthogonal(n: int, rng: np.random.Generator) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return q


def indefinite_negative_dominant(n: int, rng: np.random.Generator) -> np.ndarray:
    """Symmetric, eigenvalues in [-10, 1]: power iteration would return -10, omega is 1."""
    q = _orthogonal(n, rng)
    values = np.concatenate([[-10.0], rng.uniform(-9, 0.9, n - 2), [1.0]])
    return q @ np.diag(values) @ q.T


def clustered_symmetric(n: int, rng: np.random.Generator) -> np.ndarray:
    """Symmetric with a cluster at the top: 1, 1 - 1e-3, 1 - 2e-3, then [-1, 0.5]."""
    q = _orthogonal(n, rng)
    values = np.concatenate([[1.0, 1 - 1e-3, 1 - 2e-3], rng.uniform(-1, 0.5, n - 3)])
    return q @ np.diag(values) @ q.T


def repeated_symmetric(n: int, rng: np.random.Generator) -> np.ndarray:
    """Symmetric with the top eigenvalue 2 repeated four times."""
    q = _orthogonal(n, rng)
    values = np.concatenate([[2.0] * 4, rng.uniform(-3, 1, n - 4)])
    return q @ np.diag(values) @ q.T


def low_rank_symmetric(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rank 3: the Krylov space breaks down after 3 steps."""
    u = rng.standard_normal((n, 3))
    return u @ np.diag([3.0, -5.0, 1.0]) @ u.T / n


def nonnormal_complex_pair(n: int, rng: np.random.Generator) -> np.ndarray:
    """Schur form with a leading pair -0.1 +- 2i, strong upper-triangular coupling."""
    t = np.triu(rng.standard_normal((n, n)), 1) * 0.5
    diag = -rng.uniform(0.5, 3, n)
    np.fill_diagonal(t, diag)
    t[0, 0] = t[1, 1] = -0.1
    t[0, 1], t[1, 0] = 2.0, -2.0
    q = _orthogonal(n, rng)
    return q @ t @ q.T


def hidden_rightmost(n: int, rng: np.random.Generator) -> np.ndarray:
    """Rightmost eigenvalue 0.05 (real) hidden behind a large complex cloud of modulus ~5."""
    values = []
    for _ in range((n - 1) // 2):
        angle = rng.uniform(0.6 * np.pi, 1.4 * np.pi)
        radius = rng.uniform(3, 5)
        values.append(radius * np.exp(1j * angle))
    blocks = np.zeros((n, n))
    for k, mu in enumerate(values):
        i = 2 * k
        blocks[i : i + 2, i : i + 2] = [[mu.real, mu.imag], [-mu.imag, mu.real]]
    blocks[n - 1, n - 1] = 0.05
    q = _orthogonal(n, rng)
    return q @ blocks @ q.T


@dataclass
class Row:
    problem: str
    quantity: str
    n: int
    ours: float
    truth: float
    residual: float
    matvecs: int
    arpack: float
    arpack_matvecs: int


def _counted(a: np.ndarray) -> tuple[sla.LinearOperator, list[int]]:
    count = [0]

    def mv(x: np.ndarray) -> np.ndarray:
        count[0] += 1
        return a @ x

    return sla.LinearOperator(a.shape, matvec=mv, dtype=a.dtype), count


def _torch_matvec(a: np.ndarray) -> Callable[[torch.Tensor], torch.Tensor]:
    at = torch.from_numpy(a)
    return lambda x: x @ at.T


SYMMETRIC = (
    ("indefinite, negative end dominant", indefinite_negative_dominant),
    ("clustered top", clustered_symmetric),
    ("repeated top (x4)", repeated_symmetric),
    ("rank 3 (breakdown)", low_rank_symmetric),
)
NONSYMMETRIC = (("non-normal, complex pair", nonnormal_complex_pair), ("hidden rightmost", hidden_rightmost))


def _symmetric_row(name: str, a: np.ndarray, x0: torch.Tensor, v0: np.ndarray, tol: float) -> Row:
    """omega: our Lanczos (LA) against ``eigvalsh`` and ARPACK ``eigsh`` (LA) from ``v0``."""
    n = a.shape[0]
    ours = lanczos(_torch_matvec(a), x0, which="LA", tol=tol)
    op, count = _counted(a)
    arpack = sla.eigsh(op, k=1, which="LA", v0=v0, tol=tol)[0][0]
    return Row(
        name,
        "omega (Lanczos LA)",
        n,
        float(ours.values[0, 0]),
        np.linalg.eigvalsh(a)[-1],
        float(ours.residuals[0, 0]),
        ours.matvecs,
        float(arpack),
        count[0],
    )


def _nonsymmetric_rows(
    name: str, a: np.ndarray, x0: torch.Tensor, v0: np.ndarray, tol: float, rng: np.random.Generator
) -> list[Row]:
    """alpha and rho: one Krylov-Schur run, the 2-D Rayleigh-Ritz on ``M``, ARPACK ``eigs`` (LR, LM)."""
    n = a.shape[0]
    mu = np.linalg.eigvals(a)
    alpha = mu.real.max()
    rho = np.abs(1 + EPS_M * mu).max()
    both = krylov_schur(_torch_matvec(a), x0, targets=(rightmost(), largest_modulus(1.0, EPS_M)), tol=tol)
    lr, lm = both["LR"], both[next(k for k in both if k != "LR")]
    op, count = _counted(a)
    arpack_alpha = sla.eigs(op, k=1, which="LR", v0=v0, tol=tol)[0][0].real
    lr_count = count[0]
    m = np.eye(n) + EPS_M * a
    op_m, count_m = _counted(m)
    arpack_rho = abs(sla.eigs(op_m, k=1, which="LM", v0=v0, tol=tol)[0][0])
    lead = abs(1 + EPS_M * complex(lm.values[0, 0]))
    rows = [
        Row(
            name,
            "alpha (Krylov-Schur LR)",
            n,
            float(lr.values[0, 0].real),
            alpha,
            float(lr.residuals[0, 0]),
            lr.matvecs,
            arpack_alpha,
            lr_count,
        ),
        Row(
            name,
            "rho (same run, max abs(1 + eps mu))",
            n,
            lead,
            rho,
            EPS_M * float(lm.residuals[0, 0]),
            0,
            arpack_rho,
            count_m[0],
        ),
    ]
    rr = block_rayleigh_ritz(_torch_matvec(m), torch.from_numpy(rng.standard_normal((1, 2, n))), tol=tol)
    rows.append(
        Row(
            name,
            "rho (2-D Rayleigh-Ritz on M)",
            n,
            float(rr.values[0, 0].abs()),
            rho,
            float(rr.residuals[0, 0]),
            rr.matvecs,
            float("nan"),
            0,
        )
    )
    op, count = _counted(a)
    structured = sla.eigs(op, k=1, which="LR", v0=np.ones(n), tol=tol)[0][0].real
    rows.append(
        Row(name, "alpha: ARPACK with v0 = ones", n, float("nan"), alpha, float("nan"), 0, structured, count[0])
    )
    return rows


def run(n: int = 200, seed: int = 0) -> list[Row]:
    """Every row of the report: the symmetric traps (omega), then the non-symmetric ones (alpha, rho)."""
    rng = np.random.default_rng(seed)
    tol = default_tol(torch.float64)
    x0 = torch.from_numpy(rng.standard_normal((1, n)))
    v0 = rng.standard_normal(n)
    rows = [_symmetric_row(name, build(n, rng), x0, v0, tol) for name, build in SYMMETRIC]
    for name, build in NONSYMMETRIC:
        rows += _nonsymmetric_rows(name, build(n, rng), x0, v0, tol, rng)
    return rows


def markdown(rows: list[Row]) -> str:
    lines = [
        "| problem | quantity | n | error vs dense (ours) | true residual | matvecs (ours) "
        "| error vs dense (ARPACK) | matvecs (ARPACK) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ours = "-" if np.isnan(r.ours) else f"{abs(r.ours - r.truth) / max(1, abs(r.truth)):.1e}"
        arpack = "-" if np.isnan(r.arpack) else f"{abs(r.arpack - r.truth) / max(1, abs(r.truth)):.1e}"
        residual = "-" if np.isnan(r.residual) else f"{r.residual:.1e}"
        mv = "(shared)" if r.matvecs == 0 and not np.isnan(r.ours) else (str(r.matvecs) if r.matvecs else "-")
        lines.append(
            f"| {r.problem} | {r.quantity} | {r.n} | {ours} | {residual} | {mv} | {arpack} "
            f"| {r.arpack_matvecs or '-'} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(markdown(run()))
