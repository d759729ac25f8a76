"""The dense path: exact spectra of a materialized ``J_F`` by ``torch.linalg`` (small n only)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spectral_probe.linalg.threads import single_threaded


@dataclass(frozen=True)
class DenseSpectrum:
    """Spectral quantities of ``J_F`` (shape ``[*batch, n, n]``) and ``M = I + eps J_F``.

    omega:        ``lambda_max((J_F + J_F^T)/2)``, ``[*batch]``.
    mu_alpha:     the rightmost eigenvalue of ``J_F`` (complex, ``Im >= 0``), ``[*batch]``.
    mu_lead:      the eigenvalue of ``J_F`` whose image ``1 + eps mu`` has the largest modulus.
    norm_M:       ``||M||_2``.
    residuals:    true residuals ``||A v - lambda v||`` of the three eigenpairs, by name.
    norm_J:       ``||J_F||_2``, the scale of the normwise tolerance.
    """

    omega: torch.Tensor
    mu_alpha: torch.Tensor
    mu_lead: torch.Tensor
    norm_M: torch.Tensor
    norm_J: torch.Tensor
    residuals: dict[str, torch.Tensor]


def _pick(values: torch.Tensor, score: torch.Tensor) -> torch.Tensor:
    """Index of the best score; of a conjugate pair (scores equal to round-off) the member with ``Im >= 0``.

    Among near-ties the best score still wins: two distinct real eigenvalues a few ulps apart (Wilkinson's
    W21+ pair) are ties to the tolerance, and the rightmost of them is alpha."""
    top = score.amax(dim=-1, keepdim=True)
    ties = score >= top - 1e-12 * top.abs().clamp_min(1.0)
    upper = ties & (values.imag >= 0)
    candidates = torch.where(upper.any(dim=-1, keepdim=True), upper, ties)
    return torch.where(candidates, score, torch.full_like(score, -torch.inf)).argmax(dim=-1)


@single_threaded()
def dense_spectrum(
    jf: torch.Tensor, eps: float, eigen: tuple[torch.Tensor, torch.Tensor] | None = None
) -> DenseSpectrum:
    """Exact ``omega = lambda_max((J_F + J_F^T)/2)``, ``alpha = max Re mu(J_F)`` and the leading eigenvalue of
    ``M = I + eps J_F`` (largest ``|1 + eps mu|``) for a dense ``J_F [*batch, n, n]``, by ``eigh`` / ``eig``,
    with the true residuals of the three eigenpairs and ``||M||_2``, ``||J_F||_2``.

    ``eigen``: ``torch.linalg.eig(jf)`` where the caller already has it (the condition numbers of
    :func:`~spectral_probe.linalg.conditioning.eigen_conditions` need the same decomposition, the
    costliest call of the dense path).
    """
    n = jf.shape[-1]
    sym = (jf + jf.transpose(-1, -2)) / 2
    sym_values, sym_vectors = torch.linalg.eigh(sym)
    omega = sym_values[..., -1]
    omega_vec = sym_vectors[..., -1]
    omega_res = torch.linalg.vector_norm(
        (sym @ omega_vec.unsqueeze(-1)).squeeze(-1) - omega.unsqueeze(-1) * omega_vec, dim=-1
    )

    mu, vectors = torch.linalg.eig(jf) if eigen is None else eigen
    jf_c = jf.to(mu.dtype)
    i_alpha = _pick(mu, mu.real)
    i_lead = _pick(mu, (1 + eps * mu).abs())

    def gather(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        value = mu.gather(-1, index.unsqueeze(-1)).squeeze(-1)
        vec = vectors.gather(-1, index.view(*index.shape, 1, 1).expand(*vectors.shape[:-1], 1)).squeeze(-1)
        vec = vec / torch.linalg.vector_norm(vec, dim=-1, keepdim=True)
        return value, vec

    def residual(value: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        applied = (jf_c @ vec.unsqueeze(-1)).squeeze(-1)
        return torch.linalg.vector_norm(applied - value.unsqueeze(-1) * vec, dim=-1)

    mu_alpha, vec_alpha = gather(i_alpha)
    mu_lead, vec_lead = gather(i_lead)
    eye = torch.eye(n, dtype=jf.dtype, device=jf.device)
    norm_M = torch.linalg.matrix_norm(eye + eps * jf, ord=2)
    norm_J = torch.linalg.matrix_norm(jf, ord=2)
    return DenseSpectrum(
        omega=omega,
        mu_alpha=torch.complex(mu_alpha.real, mu_alpha.imag.abs()),
        mu_lead=torch.complex(mu_lead.real, mu_lead.imag.abs()),
        norm_M=norm_M,
        norm_J=norm_J,
        residuals={
            "omega": omega_res,
            "alpha": residual(mu_alpha, vec_alpha),
            "rho": eps * residual(mu_lead, vec_lead),
        },
    )
