"""What both Lanczos runs (:mod:`~spectral_probe.linalg.symmetric` and its block form
:mod:`~spectral_probe.linalg.symmetric_block`) share: the ``which`` vocabulary, the Ritz pairs of the
symmetric projected matrix ``H = V^T A V``, and the frozen answer of a run as an :class:`EigResult`."""

from __future__ import annotations

import torch

from spectral_probe.linalg.result import ConvergenceInfo, EigResult
from spectral_probe.linalg.threads import single_threaded

#: Largest or smallest ALGEBRAIC: never largest magnitude, which on an indefinite operator is the other end.
WHICH = ("LA", "SA")

# A true residual that disagrees with the Krylov estimate this many times stops the problem.
MAX_FAILED_CHECKS = 3


@single_threaded()
def ritz(t: torch.Tensor, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenpairs of the symmetric projected matrix, best (by ``which``) first.

    ``t`` holds ``V^T A V`` in its upper triangle (column j = coefficients of ``A v_j``); the lower
    triangle is mirrored from it so that ``eigh`` sees an exactly symmetric matrix.
    """
    sym = torch.triu(t) + torch.triu(t, diagonal=1).mT
    theta, y = torch.linalg.eigh(sym)  # ascending
    if which == "LA":
        theta, y = theta.flip(-1), y.flip(-1)
    return theta, y


def frozen_result(
    run, tol: float, estimates: torch.Tensor | None = None, floor: torch.Tensor | float = 0.0
) -> EigResult:
    """The :class:`EigResult` of a symmetric run's frozen answer (``run``: a Lanczos or block Lanczos
    state with ``out_vals``, ``out_vecs``, ``out_res``, ``bad``, ``norm_est`` and the counters); NaN where
    the operator returned non-finite numbers. ``floor`` ``[B]``: the rounding floor of the residuals, where
    the run keeps one (converged: ``residual <= max(tol * norm_estimate, floor)``)."""
    bad, batch, nev, n = run.bad, run.batch, run.nev, run.n
    limit = torch.maximum(tol * run.norm_est, torch.as_tensor(floor, dtype=run.norm_est.dtype, device=bad.device))
    converged = (run.out_res <= limit.unsqueeze(-1)) & ~bad.unsqueeze(-1)
    nan = float("nan")
    info = ConvergenceInfo(
        converged=converged.reshape(*batch, nev),
        residuals=torch.where(bad.unsqueeze(-1), nan, run.out_res).reshape(*batch, nev),
        matvecs=run.counter.count,
        iterations=run.restarts,
        tol=tol,
        norm_estimate=run.norm_est.reshape(batch),
        estimates=None if estimates is None else estimates.reshape(*batch, nev),
        breakdowns=run.breakdowns.reshape(batch),
        nonfinite=bad.reshape(batch),
        true_residual_retries=run.failed.reshape(batch),
        krylov_dim=run.m,
        true_checks=run.true_checks,
    )
    return EigResult(
        values=torch.where(bad.unsqueeze(-1), nan, run.out_vals).reshape(*batch, nev),
        vectors=torch.where(bad[..., None, None], nan, run.out_vecs).reshape(*batch, nev, n),
        info=info,
    )
