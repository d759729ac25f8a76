"""``||A||_2`` of an operator known by ``v -> A v`` and ``u -> A^T u``: Lanczos on ``A^T A``.

The Ritz value of ``A^T A`` is a Rayleigh quotient, so ``sqrt(theta)`` is a lower bound of ``||A||_2``
that rises to it (Cauchy interlacing, kept by the thick restart). A caller that only needs an
inequality ``x <= ||A||_2`` can stop as soon as the bound passes ``x``: it is then proven.
"""

from __future__ import annotations

import math

import torch

from spectral_probe.linalg.defaults import DEFAULTS
from spectral_probe.linalg.result import Matvec
from spectral_probe.linalg.symmetric import _Lanczos, _validate

__all__ = ["operator_norm"]


class _LowerBound(_Lanczos):
    """Lanczos on ``A^T A`` whose problems stop once their leading Ritz value reaches ``stop_above``."""

    stop_above: torch.Tensor | None = None
    reached: torch.Tensor  # [B] bool, set by operator_norm

    def stop_early(self, theta: torch.Tensor, y: torch.Tensor) -> bool:
        """Freeze the problems whose leading Ritz value (a Rayleigh quotient: at most ``lambda_max``) is
        at least ``stop_above``: their Ritz pairs are the answer, a proven lower bound, not converged."""
        if self.stop_above is None:
            return False
        reached = ~self.done & (theta[..., 0] >= self.stop_above)
        if bool(reached.any()):
            x = y[..., :, : self.nev].mT @ self.fact.basis(self.s)
            self.out_vals.copy_(torch.where(reached.unsqueeze(-1), theta[..., : self.nev], self.out_vals))
            self.out_vecs.copy_(torch.where(reached[..., None, None], x, self.out_vecs))
            self.reached |= reached
            self.done |= reached
        return bool(self.done.all())


def operator_norm(
    apply: Matvec,
    apply_t: Matvec,
    x0: torch.Tensor,
    *,
    tol: float,
    krylov_dim: int | None = None,
    max_restarts: int | None = None,
    enough: torch.Tensor | None = None,
) -> tuple[list[float | None], int]:
    """``||A||_2 = sqrt(lambda_max(A^T A))`` per problem by :func:`lanczos` on ``v -> A^T (A v)``.

    ``apply`` is ``v -> A v`` and ``apply_t`` is ``u -> A^T u``. The Ritz value is a Rayleigh quotient of
    ``A^T A``, so each norm is a lower bound that converges from below; ``None`` where Lanczos did not
    converge. ``enough`` ``[*batch]``: a problem stops as soon as its lower bound reaches it (what an
    inequality ``x <= ||A||_2`` needs: the bound then proves it), and reports that lower bound. Returns
    the norms (a flat list over ``*batch``; one entry for an unbatched ``x0 [n]``) and the products per
    problem (each one ``A`` AND one ``A^T``).
    """
    krylov_dim = DEFAULTS.krylov_dim if krylov_dim is None else krylov_dim
    max_restarts = DEFAULTS.max_restarts if max_restarts is None else max_restarts
    m = _validate(x0, "LA", 1, krylov_dim, max_restarts)
    generator = torch.Generator(device=x0.device).manual_seed(0x5EC7)
    run = _LowerBound(lambda v: apply_t(apply(v)), x0, "LA", 1, m, float(tol), generator)
    run.reached = torch.zeros_like(run.done)
    if enough is not None:
        run.stop_above = (enough.reshape(-1).to(x0.dtype) ** 2).clamp_min(torch.finfo(x0.dtype).tiny)
    gram = run.run(max_restarts)
    # Flat over the batch: an unbatched x0 [n] is one problem (its 0-d .tolist() is a float, not a list).
    usable = (gram.converged[..., 0] | run.reached.reshape(gram.converged.shape[:-1])).reshape(-1).tolist()
    norms = [
        math.sqrt(max(float(value), 0.0)) if bool(ok) else None
        for value, ok in zip(gram.values[..., 0].reshape(-1).tolist(), usable, strict=True)
    ]
    return norms, gram.matvecs
