"""The cross-checks that need no eigensolver: matvec determinism, autograd against finite differences,
the adjoint identity, and the docs/SPEC.md section 2 invariants between omega, alpha and rho."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from spectral_probe.config import ProbeOptions
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.fdcheck import adjoint_rel_err, determinism_error, fd_jvp_rel_err, step_doubling_error
from spectral_probe.results import Check
from spectral_probe.tolerances import SMALLEST_NORMAL, Tolerances


@dataclass(frozen=True)
class KnownProducts:
    """Products the checks made on random directions, for the solvers to start from at no cost (linear
    operators: :class:`~spectral_probe.linalg.known.KnownImages`)."""

    vectors: torch.Tensor  # [B, k, n] random directions
    jv: torch.Tensor  # [B, k, n] J v of each
    jtv: torch.Tensor  # [B, q, n] J^T v of the first q <= k of them (q = 2 when k >= 2, else 0)

    def jv_nc(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The directions and their ``J_nc v``."""
        return self.vectors, self.jv

    def sym_nc(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The directions whose ``Sym(J) v = (J v + J^T v) / 2`` is known, and those products."""
        q = self.jtv.shape[-2]
        return self.vectors[..., :q, :], 0.5 * (self.jv[..., :q, :] + self.jtv)

    def forward_map(self, eps: float, c: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The directions and ``M d = d + eps (J_nc d - (1 + c) d)``."""
        d = self.vectors
        return d, d + eps * (self.jv - (1.0 + c) * d)


@dataclass(frozen=True)
class MatvecChecks:
    """The checks run before any Krylov solve, per fixed point (``fd_err``/``adj_err`` are ``None``
    under ``--matvec fd``, where the matvec is the finite-difference referee itself)."""

    nondeterminism: torch.Tensor  # [B]
    fd_err: torch.Tensor | None  # [B]
    adj_err: torch.Tensor | None  # [B]
    matvecs: int
    notes: tuple[str, ...]
    known: KnownProducts | None = None
    force_change: torch.Tensor | None = None  # [B]: nc_force(z*) twice, relative (None: not evaluated twice)
    operator_error: torch.Tensor | None = None  # [B]: --matvec fd, the central differences' own error
    scale: torch.Tensor | None = None  # [B]: about max ||J_F d|| / ||d|| over the directions (the norm's scale)


def matvec_checks(ops: JacobianOperators, options: ProbeOptions, random: Callable[..., torch.Tensor]) -> MatvecChecks:
    """Determinism of ``J v``; the Krylov ``J v`` (the transpose of the vjp by double backward, or forward
    mode where the backward is not differentiable) against central differences of the operator, and the
    adjoint identity ``<u, J v> = <J^T u, v>`` between it and the vjp: both products the solvers use are
    refereed on random directions, with no forward-mode AD on the default path (a fast start). Every
    product must be finite (an :class:`InputError` otherwise), and they are kept (``known``): omega's
    block Lanczos starts from the first two directions, Krylov-Schur and ``||M||`` from the first."""
    batch, n = ops.z_star.shape
    probe_vectors = random(batch, 1, n)
    directions = random(batch, options.fd_directions, n)
    if options.matvec != "autograd":
        first = ops.jf(probe_vectors)
        ops.require_finite("J v", first)
        nondeterminism = determinism_error(ops.jf, probe_vectors, first=first)
        # The bounds then count the error of the J that central differences give (a residual of the true J)
        along = torch.cat([probe_vectors, directions], dim=1)
        error = step_doubling_error(ops.force, ops.z_star, along)
        notes = (
            "--matvec fd: the matvec is the finite-difference referee itself; no fd/adjoint check",
            "--matvec fd: the error bounds include the central differences' own error, by step doubling",
        )
        matvecs = ops.setup_matvecs + 2 + 2 * along.shape[1]  # a difference at h and at 2 h per direction
        return MatvecChecks(nondeterminism, None, None, matvecs, notes, operator_error=error)
    # One J v per direction serves all three: the central differences along the directions, the adjoint
    # identity, and determinism (J v of v again, on a block of the same shape: a kernel may round a
    # wider block differently, by more than 100 u).
    k = options.fd_directions
    shift = 1.0 + ops.c  # J_F = J_nc - (1 + c) I: errors in J_nc v count at J_F's scale
    v = directions[:, :1] if k else probe_vectors
    jv_first = ops.jvp(v)
    jv = torch.cat([jv_first, ops.jvp(directions[:, 1:])], dim=1) if k > 1 else jv_first[:, :k]
    if k >= 2:  # the adjoint pairs (d_1, d_2) and (d_2, d_1): J^T of both, which Sym(J) reuses
        pair = directions[:, :2]
        jtv = ops.vjp(pair)
        adj_err = adjoint_rel_err(ops.jvp, ops.vjp, pair.flip(1), pair, jv=jv[:, :2], jtu=jtv.flip(1), shift=shift)
    else:  # an independent random u
        jtv = directions[:, :0]
        u = random(batch, 1, n)
        jtu = ops.vjp(u)
        adj_err = adjoint_rel_err(ops.jvp, ops.vjp, u, v, jv=jv_first, jtu=jtu, shift=shift)
        ops.require_finite("J^T u", jtu)
    ops.require_finite("J v", jv if k else jv_first)  # jv starts with jv_first where there are directions
    ops.require_finite("J^T u", jtv)
    fd_err = fd_jvp_rel_err(ops.force, ops.jvp, ops.z_star, directions, jv=jv, shift=shift)
    nondeterminism = determinism_error(ops.jvp, v, first=jv_first)
    # central differences (2 forces) and J v per direction (v's own where there is none), J^T of two
    # directions (of a random u where there are fewer), J v of v again
    matvecs = 3 * k + (2 if k >= 2 else 1) + 1 + (k == 0)
    known = KnownProducts(directions, jv, jtv) if k else KnownProducts(v, jv_first, jtv)
    along = directions if k else v
    # ||J_F d|| / ||d|| by the largest entry (times sqrt(n)): the 2-norm itself underflows where it matters
    image = (known.jv - shift * along).abs().amax(dim=-1) * math.sqrt(n)
    scale = (image / torch.linalg.vector_norm(along, dim=-1)).amax(dim=-1)
    # What the checks cost per fixed point, with the products of the set-up (ops.setup_matvecs).
    matvecs += ops.setup_matvecs
    return MatvecChecks(nondeterminism, fd_err, adj_err, matvecs, (), known, force_change(ops), scale=scale)


def fd_error_along(ops: JacobianOperators, x: torch.Tensor, floor: list[float]) -> tuple[list[float], int]:
    """``--matvec fd``: the central differences' own error along ``x`` ``[B, n]`` (a Ritz vector; its real
    and imaginary parts), where it moves that eigenvalue, or ``floor`` (the random directions') if larger;
    and the products it took (a difference at ``h`` and at ``2 h`` per part)."""
    parts = torch.stack([x.real, x.imag], dim=1) if x.is_complex() else x.unsqueeze(1)
    along = step_doubling_error(ops.force, ops.z_star, parts).tolist()
    return [max(a, r) for a, r in zip(along, floor, strict=True)], 2 * parts.shape[1]


def force_change(ops: JacobianOperators) -> torch.Tensor | None:
    """``||f_2 - f_1|| / ||f_1||`` per fixed point for the two evaluations of ``nc_force(z*)`` the set-up
    made (the force, then the recorded forward of the vjp); ``None`` where it made one (or two by different
    routes). A layer that draws random numbers (dropout in train mode) changes it at every call."""
    if ops.force_repeat is None:
        return None
    scale = torch.linalg.vector_norm(ops.force_at_star, dim=-1).clamp_min(torch.finfo(ops.dtype).tiny)
    return torch.linalg.vector_norm(ops.force_repeat - ops.force_at_star, dim=-1) / scale


def judge(name: str, kind: str, value: float | None, bound: float | None, reason: str, **details: object) -> Check:
    """The record of one check: passed iff ``value <= bound`` (a NaN value fails). ``reason`` is a format
    string over ``value``, ``bound`` and ``details``. :data:`FAULTS` may replace the value (tests)."""
    value = FAULTS.get(name, value)
    passed = value is not None and bound is not None and value <= bound
    return Check(name, kind, value, bound, bool(passed), reason.format(value=value, bound=bound, **details))


#: Fault injection for the tests of each check's failure branch: ``{check name: value}`` replaces the
#: measured value of that check before it is judged. Empty in every real run.
FAULTS: dict[str, float] = {}


def matvec_failures(
    checks: MatvecChecks, b: int, fp_residual: float, tolerances: Tolerances, n: int = 1
) -> list[Check]:
    """The records of the checks before the solves, for fixed point ``b``."""
    records = []
    if not math.isfinite(fp_residual):  # NaN != NaN: not a nondeterminism, and no residual to speak of
        return [Check("fixed_point", "fixed_point", None, None, False, "nc_force(z*) is not finite (nan/inf)")]
    if checks.force_change is not None:
        records.append(
            judge(
                "force:determinism",
                "matvec",
                float(checks.force_change[b]),
                tolerances.determinism,
                "nc_force is not deterministic: at z* twice it differs by {value:.1e} (dropout in train mode?)",
            )
        )
    records += [
        judge(
            "fixed_point",
            "fixed_point",
            fp_residual,
            tolerances.fixed_point,
            "z* is not a fixed point: ||F(z*)|| relative {value:.2e}",
        ),
        judge(
            "matvec:determinism",
            "matvec",
            float(checks.nondeterminism[b]),
            tolerances.determinism,
            "the Jacobian matvec is not deterministic (relative change {value:.1e})",
        ),
    ]
    autograd = (
        ("matvec:autograd_fd", checks.fd_err, "autograd J v disagrees with finite differences (rel err {value:.1e})"),
        ("matvec:adjoint", checks.adj_err, "<u, J v> != <J^T u, v> (adjoint rel err {value:.1e})"),
    )
    for name, errors, message in autograd:  # None under --matvec fd
        if errors is not None:
            records.append(judge(name, "matvec", float(errors[b]), tolerances.autograd, message))
    if checks.scale is not None:
        records.append(_scale_check(float(checks.scale[b]), n, tolerances))
    return records


def _scale_check(scale: float, n: int, tolerances: Tolerances) -> Check:
    """``||J_F||`` above what this dtype's norms resolve at ``tol``: a residual ``tol ||J_F||`` spread over
    ``n`` entries squares below the smallest normal number (``||J_F|| < sqrt(n tiny) / tol``, 5e-13 in
    float32 at n = 1e4) and reads as 0, a converged residual for any vector. ``J_F = 0`` exactly passes."""
    floor = math.sqrt(n * SMALLEST_NORMAL[tolerances.dtype]) / tolerances.tol
    value = 0.0 if scale == 0 else floor / scale
    why = f"the Jacobian's scale ~{scale:.1e} is below what {tolerances.dtype} norms resolve at --tol ({floor:.1e}):"
    return judge("matvec:scale", "matvec", value, 1.0, why + " residuals underflow to 0; use --dtype float64")


def invariant_checks(
    omega: float | None,
    mu_alpha: complex,
    mu_lead: complex,
    norm_M: float | None,
    eps: float,
    slack: float,
    norm_accuracy: float = 0.0,
) -> list[Check]:
    """docs/SPEC.md section 2 invariants: ``alpha <= omega``, ``rho >= 1 + eps alpha``, ``rho <= ||M||_2``
    (up to ``slack``, times ``eps`` in the frame of ``M``; ``||M||_2`` itself known to ``norm_accuracy ||M||_2``: the
    Lanczos estimate is a lower bound, and at a small step ``eps`` its tolerance dominates)."""
    rho = abs(1 + eps * mu_lead)
    records = []
    if omega is not None:
        records.append(
            judge(
                "invariant:alpha_le_omega",
                "invariant",
                mu_alpha.real - omega,
                slack,
                "alpha {alpha:.6g} > omega {omega:.6g}",
                alpha=mu_alpha.real,
                omega=omega,
            )
        )
    records.append(
        judge(
            "invariant:rho_ge_1_plus_eps_alpha",
            "invariant",
            1 + eps * mu_alpha.real - rho,
            eps * slack,
            "rho {rho:.6g} < 1 + eps alpha {floor:.6g}",
            rho=rho,
            floor=1 + eps * mu_alpha.real,
        )
    )
    if norm_M is not None:
        records.append(
            judge(
                "invariant:rho_le_norm_M",
                "invariant",
                rho - norm_M,
                eps * slack + norm_accuracy * norm_M,
                "rho {rho:.6g} > ||M||_2 {norm_M:.6g}",
                rho=rho,
                norm_M=norm_M,
            )
        )
    return records
