"""The probe: omega, alpha and rho at the fixed points of one checkpoint, cross-checked, with a verdict.

Layering: this module calls :mod:`spectral_probe.checkpoint` (files), :mod:`spectral_probe.operators`
(``nc_force``), :mod:`spectral_probe.jacobian` (matvecs) and :mod:`spectral_probe.linalg` (solvers).
It never prints and knows nothing of the command line.

Symbols (SPEC section 1): ``F(z) = nc_force(z) - (1 + c) z``, ``J_F = J_nc - (1 + c) I``,
``M = I + eps J_F``, ``omega = lambda_max(Sym J_F)``, ``alpha = max Re lambda(J_F)``,
``rho = max |lambda(M)|``, ``lead`` that eigenvalue of ``M`` and ``mu_lead = (lead - 1) / eps``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from spectral_probe.batching import map_rows, torch_quiet
from spectral_probe.callable_module import CallableModule
from spectral_probe.checkpoint import (
    checkpoint_settings,
    load_checkpoint,
    load_fixed_point,
    load_inputs,
    prepare_fixed_points,
    to_probe,
)
from spectral_probe.config import DEFAULT_C, DEFAULT_EPS, ProbeOptions
from spectral_probe.errors import InputError
from spectral_probe.fixed_point import solve_fixed_point
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.linalg.arnoldi import krylov_schur, largest_modulus, rightmost
from spectral_probe.linalg.dense import dense_spectrum
from spectral_probe.linalg.fdcheck import adjoint_rel_err, determinism_error, fd_jvp_rel_err
from spectral_probe.linalg.gmres import gmres
from spectral_probe.linalg.lanczos import lanczos
from spectral_probe.linalg.result import EigResult, default_tol
from spectral_probe.linalg.subspace import block_rayleigh_ritz
from spectral_probe.operators import operator_size, resolve_operator
from spectral_probe.results import FixedPointResult
from spectral_probe.user_model import build_user_force, whole_message
from spectral_probe.verdict import classify, lead_is_complex

NcForce = Callable[[torch.Tensor], torch.Tensor]

#: Wider blocks tried, in order, when the 2-D Rayleigh-Ritz rho disagrees with Arnoldi.
WIDER_BLOCKS = (4, 8)
#: Sweeps allowed to one block Rayleigh-Ritz run.
RR_MAX_SWEEPS = 300
#: Newton steps allowed to ``--refine``.
NEWTON_STEPS = 20


@dataclass
class WarmStart:
    """Start vectors carried from one checkpoint to the next along a training run (``audit``).

    Only the FIRST solve of each quantity is warm-started; the independent random starts that the
    cross-checks need stay random.
    """

    omega: torch.Tensor | None = None  # [B, n]
    arnoldi: torch.Tensor | None = None  # [B, n]
    block: torch.Tensor | None = None  # [B, p, n]
    matvecs_saved_hint: dict[str, int] = field(default_factory=dict)

    def fits(self, batch: int, n: int, device: torch.device, dtype: torch.dtype) -> bool:
        ref = self.arnoldi if self.arnoldi is not None else self.omega
        return ref is not None and ref.shape == (batch, n) and ref.device == device and ref.dtype == dtype


@dataclass(frozen=True)
class CheckpointProbe:
    """What probing one checkpoint produced."""

    path: str
    sha256: str
    results: tuple[FixedPointResult, ...]
    warm: WarmStart | None


def probe_checkpoint(
    path: str, options: ProbeOptions, *, warm: WarmStart | None = None, use_warm: bool = True
) -> CheckpointProbe:
    """Read ``path`` and probe each of its fixed points (``[n]`` or ``[B, n]``)."""
    checkpoint = load_checkpoint(path, options.key)
    settings = checkpoint_settings(checkpoint.metadata)
    # No z_star anywhere (None): the tool finds it (spectral_probe.fixed_point).
    z_star = load_fixed_point(options.fixed_point) if options.fixed_point is not None else checkpoint.z_star

    from_metadata = options.operator is None
    spec = options.operator if options.operator is not None else settings.get("operator")
    if spec is None:
        raise InputError(path, "names no operator (metadata 'spectral_probe.operator'); pass --operator")
    factory, _ = resolve_operator(spec, from_metadata=from_metadata, path=path)
    c = options.c if options.c is not None else settings.get("c", DEFAULT_C)
    eps = options.eps if options.eps is not None else settings.get("eps", DEFAULT_EPS)
    operator_options = {**settings.get("options", {}), **options.operator_options}

    dtype = getattr(torch, options.dtype)
    device = torch.device(options.device)
    params = to_probe(checkpoint.params, dtype, device)
    inputs = to_probe(load_inputs(options.inputs), dtype, device)
    user = build_user_force(
        factory,
        params,
        operator_options,
        inputs,
        path=path,
        z_shape=None if z_star is None else tuple(z_star.shape),
        dtype=dtype,
        device=device,
    )
    nc_force = user.nc_force
    n = user.layout.n if user.layout is not None else operator_size(nc_force)
    extra_notes: tuple[str, ...] = ()
    if z_star is None:
        fixed_points, extra_notes = _find_fixed_points(nc_force, n, float(c), float(eps), options, path, dtype, device)
    else:
        fixed_points = to_probe(z_star, dtype, device)
        if n is None:
            n = fixed_points.shape[-1] if fixed_points.ndim <= 2 else fixed_points.numel()
        fixed_points = prepare_fixed_points(fixed_points, n, options.fixed_point or path)
    try:
        with torch.no_grad():
            probe_out = nc_force(fixed_points[0])
    except Exception as exc:  # a user operator that cannot take this z*: a bad input, not a bug
        raise InputError(path, f"the operator failed on z_star: {whole_message(exc)}") from None
    if probe_out.shape != fixed_points[0].shape:
        raise InputError(
            path, f"nc_force maps z_star of shape {tuple(fixed_points[0].shape)} to {tuple(probe_out.shape)}"
        )
    with torch.no_grad(), torch_quiet():  # torch.func ignores no_grad; float() of the numbers would warn
        results, new_warm = probe_fixed_points(
            nc_force,
            fixed_points,
            c=float(c),
            eps=float(eps),
            options=options,
            label=path,
            warm=warm if use_warm else None,
        )
    step = settings.get("step")
    stamped = tuple(_stamp(r, checkpoint.sha256, step, extra_notes) for r in results)
    return CheckpointProbe(path=path, sha256=checkpoint.sha256, results=stamped, warm=new_warm)


def _stamp(result: FixedPointResult, sha256: str, step: int | None, notes: tuple[str, ...] = ()) -> FixedPointResult:
    from dataclasses import replace

    return replace(result, sha256=sha256, step=step, notes=(*notes, *result.notes))


def _find_fixed_points(
    nc_force: NcForce,
    n: int | None,
    c: float,
    eps: float,
    options: ProbeOptions,
    path: str,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, tuple[str, ...]]:
    """No ``z_star`` in the files: solve ``F(z) = 0`` from zero (``spectral_probe.fixed_point``)."""
    if n is None:
        raise InputError(
            path,
            "has no 'z_star' tensor and the operator declares no state shape, so the tool cannot find z* "
            "itself; store z_star, pass --fixed-point, or declare the shape (nc_force.state_shape, or the "
            "operator option state_shape)",
        )
    tol = min(options.fixed_point_tol, 10 * default_tol(dtype))
    start = torch.zeros(1, n, dtype=dtype, device=device)
    solve = solve_fixed_point(nc_force, start, c=c, eps=eps, tol=tol, matvec=options.matvec, path=path)
    return solve.z, (solve.note(),)


def probe_fixed_points(
    nc_force: NcForce,
    fixed_points: torch.Tensor,
    *,
    c: float,
    eps: float,
    options: ProbeOptions,
    label: str = "<memory>",
    warm: WarmStart | None = None,
) -> tuple[list[FixedPointResult], WarmStart]:
    """Probe the ``B`` fixed points ``fixed_points[b]`` (shape ``[B, n]``) of one operator together.

    Returns one result per fixed point and the start vectors for the next checkpoint of a run.
    """
    started = time.perf_counter()
    batch, n = fixed_points.shape
    dtype, device = fixed_points.dtype, fixed_points.device
    tol = options.tol if options.tol is not None else default_tol(dtype)
    generator = torch.Generator(device=device).manual_seed(options.seed)
    notes: list[str] = []

    def random(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator, dtype=dtype, device=device)

    residual_before: torch.Tensor | None = None
    if options.refine:
        residual_before = _fixed_point_residual(nc_force, fixed_points, c)
        fixed_points = _newton_krylov(nc_force, fixed_points, c, eps, options, tol)
    ops = JacobianOperators(nc_force, fixed_points, c=c, eps=eps, mode=options.matvec)
    fp_residual = _fixed_point_residual(nc_force, fixed_points, c)

    # The checks before any Krylov run: determinism, autograd against finite differences, adjoint.
    probe_vectors = random(batch, n)
    nondeterminism = determinism_error(ops.jf, probe_vectors)
    directions = random(batch, options.fd_directions, n)
    if options.matvec == "autograd":
        # The operator's forward rule against central differences, and against its backward rule;
        # the Krylov matvec (the transpose of the vjp) must equal the forward rule too.
        fd_err = fd_jvp_rel_err(ops.force, ops.jvp_forward, fixed_points, directions)
        adj_err = adjoint_rel_err(ops.jvp_forward, ops.vjp, random(batch, n), random(batch, n))
        transposed = _relative_difference(ops.jvp(probe_vectors), ops.jvp_forward(probe_vectors))
        adj_err = torch.maximum(adj_err, transposed)
    else:
        fd_err = adj_err = None
        notes.append("--matvec fd: the matvec is the finite-difference referee itself; no fd/adjoint check")
    check_tol = math.sqrt(tol)
    fd_tol = 100 * math.sqrt(float(torch.finfo(dtype).eps))

    # What the checks cost, per fixed point: the determinism probe (2 J v), central differences
    # (2 forces per direction), the forward rule on every direction, the adjoint and transpose tests.
    check_matvecs = 2 + (3 * options.fd_directions + 4 if options.matvec == "autograd" else 0)

    method = _choose_method(options, n)
    spectra = _dense(ops, eps, tol) if method == "dense" else _krylov(ops, eps, tol, options, random, warm, notes)
    spectra.matvecs += check_matvecs
    spectra.matvecs_by_kind["checks"] = check_matvecs

    notes.extend(note for note in ops.notes if note not in notes)  # e.g. the loop where vmap cannot run
    elapsed = time.perf_counter() - started
    results: list[FixedPointResult] = []
    for b in range(batch):
        reasons = list(spectra.reasons[b])
        if fp_residual[b] > options.fixed_point_tol:
            reasons.append(f"z* is not a fixed point: ||F(z*)|| relative {fp_residual[b]:.2e}")
        if nondeterminism[b] > 100 * float(torch.finfo(dtype).eps):
            reasons.append(f"the Jacobian matvec is not deterministic (relative change {nondeterminism[b]:.1e})")
        if fd_err is not None and not fd_err[b] <= fd_tol:
            reasons.append(f"autograd J v disagrees with finite differences (rel err {fd_err[b]:.1e})")
        if adj_err is not None and not adj_err[b] <= fd_tol:
            reasons.append(f"<u, J v> != <J^T u, v> (adjoint rel err {adj_err[b]:.1e})")
        results.append(
            _assemble(
                label=label,
                index=b,
                n=n,
                c=c,
                eps=eps,
                spectra=spectra,
                b=b,
                reasons=reasons,
                band=options.band,
                complex_tol=check_tol,
                fd_err=None if fd_err is None else float(fd_err[b]),
                adj_err=None if adj_err is None else float(adj_err[b]),
                fp_residual=float(fp_residual[b]),
                fp_before=None if residual_before is None else float(residual_before[b]),
                method=method,
                seconds=elapsed / batch,
                notes=tuple(notes + spectra.notes),
            )
        )
    return results, spectra.warm


@dataclass
class _Spectra:
    """Per-fixed-point quantities (Python lists of length B) from either path."""

    omega: list[float | None]
    mu_alpha: list[complex]
    mu_lead: list[complex]
    rho_rr: list[float | None]
    rr_block: list[int | None]
    rr2_misleading: list[bool]
    norm_M: list[float | None]
    residuals: list[dict[str, float | None]]
    converged: list[bool]
    reasons: list[list[str]]
    matvecs: int
    matvecs_by_kind: dict[str, int]
    notes: list[str]
    warm: WarmStart


def _relative_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    scale = torch.linalg.vector_norm(a, dim=-1) + torch.linalg.vector_norm(b, dim=-1)
    return torch.linalg.vector_norm(a - b, dim=-1) / scale.clamp_min(torch.finfo(a.dtype).tiny)


def _choose_method(options: ProbeOptions, n: int) -> str:
    if options.method != "auto":
        return options.method
    return "dense" if n <= options.dense_max_n else "krylov"


def _fixed_point_residual(nc_force: NcForce, z: torch.Tensor, c: float) -> list[float]:
    """Normwise backward error ``||F(z)|| / (||nc_force(z)|| + (1 + c) ||z||)`` per fixed point."""
    with torch.no_grad():
        force, _ = map_rows(nc_force, z)  # a loop where vmap cannot run the operator
    field_value = force - (1 + c) * z
    scale = torch.linalg.vector_norm(force, dim=-1) + (1 + c) * torch.linalg.vector_norm(z, dim=-1)
    tiny = torch.finfo(z.dtype).tiny
    return (torch.linalg.vector_norm(field_value, dim=-1) / scale.clamp_min(tiny)).tolist()


def _newton_krylov(
    nc_force: NcForce, z: torch.Tensor, c: float, eps: float, options: ProbeOptions, tol: float
) -> torch.Tensor:
    """Polish ``z*`` by Newton's method with GMRES on ``J_F dz = -F(z)`` (matrix-free)."""
    for _ in range(NEWTON_STEPS):
        if max(_fixed_point_residual(nc_force, z, c)) <= tol:
            break
        ops = JacobianOperators(nc_force, z, c=c, eps=eps, mode=options.matvec)
        step = gmres(ops.jf, -ops.field(z), tol=tol, restart=options.krylov_dim)
        z = z + step.x
    return z


def _dense(ops: JacobianOperators, eps: float, tol: float) -> _Spectra:
    batch, n = ops.z_star.shape
    eye = torch.eye(n, dtype=ops.z_star.dtype, device=ops.z_star.device)
    jf = ops.dense_jacobian() - (1 + ops.c) * eye
    spectrum = dense_spectrum(jf, eps)
    reasons: list[list[str]] = [[] for _ in range(batch)]
    residuals = []
    for b in range(batch):
        scale = max(1.0, float(spectrum.norm_J[b]))
        residual_b = {name: float(value[b]) for name, value in spectrum.residuals.items()}
        residuals.append(residual_b)
        bad = [name for name, value in residual_b.items() if not value <= 100 * tol * scale * max(1, eps)]
        if bad:
            reasons[b].append(f"dense eigenpair residual too large for {', '.join(bad)}")
    mu_alpha = spectrum.mu_alpha.tolist()
    mu_lead = spectrum.mu_lead.tolist()
    omega = spectrum.omega.tolist()
    norm_M = spectrum.norm_M.tolist()
    for b in range(batch):
        reasons[b] += _invariant_failures(
            omega[b], mu_alpha[b], mu_lead[b], norm_M[b], eps, math.sqrt(tol) * max(1.0, float(spectrum.norm_J[b]))
        )
    return _Spectra(
        omega=omega,
        mu_alpha=mu_alpha,
        mu_lead=mu_lead,
        rho_rr=[None] * batch,
        rr_block=[None] * batch,
        rr2_misleading=[False] * batch,
        norm_M=norm_M,
        residuals=residuals,
        converged=[not r for r in reasons],
        reasons=reasons,
        matvecs=n,
        matvecs_by_kind={"jvp": n},
        notes=[],
        warm=WarmStart(),
    )


def _invariant_failures(
    omega: float | None, mu_alpha: complex, mu_lead: complex, norm_M: float | None, eps: float, slack: float
) -> list[str]:
    """SPEC 2 invariants: ``alpha <= omega``, ``rho >= 1 + eps alpha``, ``rho <= ||M||_2``."""
    failures = []
    rho = abs(1 + eps * mu_lead)
    if omega is not None and mu_alpha.real > omega + slack:
        failures.append(f"alpha {mu_alpha.real:.6g} > omega {omega:.6g}")
    if rho < 1 + eps * mu_alpha.real - eps * slack:
        failures.append(f"rho {rho:.6g} < 1 + eps alpha {1 + eps * mu_alpha.real:.6g}")
    if norm_M is not None and rho > norm_M + eps * slack:
        failures.append(f"rho {rho:.6g} > ||M||_2 {norm_M:.6g}")
    return failures


def _leading(result: EigResult) -> tuple[list[complex], list[float], list[bool], list[float]]:
    """First eigenvalue, its residual, converged flag and the norm estimate, per problem."""
    values = result.values[..., 0]
    if not values.is_complex():
        values = values.to(torch.complex128 if values.dtype == torch.float64 else torch.complex64)
    return (
        [complex(v) for v in values.tolist()],
        result.residuals[..., 0].tolist(),
        result.converged[..., 0].tolist(),
        result.norm_estimate.tolist(),
    )


#: Weight of the random part of a warm start, relative to the unit warm vector.
WARM_RANDOM_WEIGHT = 0.1


def _blend(warm: torch.Tensor | None, noise: torch.Tensor) -> torch.Tensor:
    """A warm start with a random part: the previous checkpoint's leading vector can be orthogonal to
    the new leading one (the eigenvectors swapped order), and a Krylov method started exactly there would
    converge to the old eigenvalue; the random part keeps every eigenvector in reach."""
    if warm is None:
        return noise
    unit = warm / torch.linalg.vector_norm(warm, dim=-1, keepdim=True).clamp_min(torch.finfo(warm.dtype).tiny)
    noise = noise / torch.linalg.vector_norm(noise, dim=-1, keepdim=True)
    return unit + WARM_RANDOM_WEIGHT * noise


def _krylov(
    ops: JacobianOperators,
    eps: float,
    tol: float,
    options: ProbeOptions,
    random: Callable[..., torch.Tensor],
    warm: WarmStart | None,
    notes: list[str],
) -> _Spectra:
    batch, n = ops.z_star.shape
    dtype, device = ops.z_star.dtype, ops.z_star.device
    warm_ok = warm is not None and warm.fits(batch, n, device, dtype)
    counts: dict[str, int] = {"jvp": 0, "vjp": 0}
    reasons: list[list[str]] = [[] for _ in range(batch)]
    residuals: list[dict[str, float | None]] = [{} for _ in range(batch)]
    krylov = {"krylov_dim": options.krylov_dim, "tol": tol, "max_restarts": options.max_restarts}

    # omega: Lanczos on Sym(J_F) for the largest ALGEBRAIC eigenvalue, from two independent starts.
    omega: list[float | None] = [None] * batch
    omega_vector = None
    if ops.has_vjp:
        first_start = _blend(warm.omega if warm_ok else None, random(batch, n))
        sym_runs = [lanczos(ops.sym, start, which="LA", **krylov) for start in (first_start, random(batch, n))]
        counts["jvp"] += sum(r.matvecs for r in sym_runs)
        counts["vjp"] += sum(r.matvecs for r in sym_runs)
        omega_vector = sym_runs[0].vectors[..., 0, :]
        runs = [_leading(r) for r in sym_runs]
        for b in range(batch):
            (v1, r1, c1, s1), (v2, _, c2, s2) = ((x[b] for x in run) for run in runs)
            omega[b] = v1.real
            residuals[b]["omega"] = r1
            if not (c1 and c2):
                reasons[b].append("Lanczos for omega did not converge")
            elif abs(v1.real - v2.real) > math.sqrt(tol) * max(1.0, s1, s2):
                reasons[b].append(f"omega differs between random starts ({v1.real:.8g} vs {v2.real:.8g})")
    elif n <= options.fd_dense_max_n:
        eye = torch.eye(n, dtype=dtype, device=device)
        jf = ops.dense_jacobian() - (1 + ops.c) * eye
        omega = torch.linalg.eigvalsh((jf + jf.transpose(-1, -2)) / 2)[..., -1].tolist()
        counts["jvp"] += 2 * n
        notes.append("omega from a dense finite-difference Jacobian (--matvec fd)")
    else:
        notes.append(f"omega not computed: --matvec fd has no J^T u and n > {options.fd_dense_max_n}")

    # alpha and rho: one Krylov-Schur run on J_F serves both targets; a second one from another start.
    targets = (rightmost(), largest_modulus(1.0, eps))
    first_start = _blend(warm.arnoldi if warm_ok else None, random(batch, n))
    arnoldi_runs = [krylov_schur(ops.jf, start, targets=targets, **krylov) for start in (first_start, random(batch, n))]
    counts["jvp"] += sum(next(iter(run.values())).matvecs for run in arnoldi_runs)
    alpha_runs = [_leading(run[targets[0].name]) for run in arnoldi_runs]
    lead_runs = [_leading(run[targets[1].name]) for run in arnoldi_runs]
    mu_alpha: list[complex] = []
    mu_lead: list[complex] = []
    for b in range(batch):
        (a1, ra, ca1, sa), (a2, _, ca2, _) = ((x[b] for x in run) for run in alpha_runs)
        (l1, rl, cl1, sl), (l2, _, cl2, _) = ((x[b] for x in run) for run in lead_runs)
        mu_alpha.append(complex(a1.real, abs(a1.imag)))
        mu_lead.append(complex(l1.real, abs(l1.imag)))
        residuals[b]["alpha"] = ra
        residuals[b]["rho"] = eps * rl
        scale = math.sqrt(tol) * max(1.0, sa, sl)
        if not (ca1 and ca2 and cl1 and cl2):
            reasons[b].append("Arnoldi for alpha/rho did not converge")
        else:
            if abs(a1.real - a2.real) > scale:
                reasons[b].append(f"alpha differs between random starts ({a1.real:.8g} vs {a2.real:.8g})")
            if abs(abs(1 + eps * l1) - abs(1 + eps * l2)) > eps * scale:
                reasons[b].append("rho differs between random starts")

    # rho confirmed by block Rayleigh-Ritz on M: the 2-D block from a random start first (what a
    # training-time controller runs); where it cannot, wider blocks that hold the Arnoldi leading
    # vectors plus random columns (the random part still drifts to any larger eigenvalue of M).
    rho_arnoldi = [abs(1 + eps * m) for m in mu_lead]
    lead_vectors = arnoldi_runs[0][targets[1].name].vectors[..., 0, :]
    rho_rr: list[float | None] = [None] * batch
    rr_block: list[int | None] = [None] * batch
    rr2_misleading = [False] * batch
    pending = list(range(batch))
    block_start = warm.block if warm_ok and warm.block is not None else None
    next_block = None
    rr_tol = math.sqrt(tol)
    for width in (options.block_size, *[w for w in WIDER_BLOCKS if w > options.block_size]):
        if not pending:
            break
        if width == options.block_size:
            fits = block_start is not None and block_start.shape[-2] == width
            start = _blend(block_start if fits else None, random(batch, width, n))
        else:
            start = torch.cat(
                [torch.stack([lead_vectors.real, lead_vectors.imag], dim=-2), random(batch, width - 2, n)], dim=-2
            )
        rr = block_rayleigh_ritz(ops.m, start, tol=rr_tol, max_iters=RR_MAX_SWEEPS)
        counts["jvp"] += rr.matvecs
        if width == options.block_size:
            # Re and Im of the leading Ritz vector span a complex pair's invariant plane (the real parts
            # of the two conjugate vectors are equal, so they would waste half of the warm block).
            vectors = rr.vectors if rr.vectors.is_complex() else rr.vectors.to(torch.complex128)
            lead = vectors[..., 0, :]
            rest = [vectors[..., k, :].real for k in range(2, width)]
            next_block = torch.stack([lead.real, lead.imag, *rest], dim=-2).to(dtype).detach()
        rr_rho = rr.values[..., 0].abs().tolist()
        rr_scale = rr.norm_estimate.tolist()
        still = []
        for b in pending:
            if rho_rr[b] is None:
                rho_rr[b], rr_block[b] = rr_rho[b], width
            if abs(rr_rho[b] - rho_arnoldi[b]) <= 10 * rr_tol * max(1.0, rr_scale[b]):
                if width != options.block_size:
                    rr2_misleading[b] = True
                    rho_rr[b], rr_block[b] = rr_rho[b], width
            else:
                still.append(b)
        pending = still
    for b in pending:
        reasons[b].append(
            f"block Rayleigh-Ritz did not confirm rho (Arnoldi {rho_arnoldi[b]:.8g}, RR {rho_rr[b]:.8g}"
            f" with p = {rr_block[b]}; widened to {max(WIDER_BLOCKS)})"
        )
        rr2_misleading[b] = True

    # ||M||_2 by Lanczos on M^T M (a lower bound that converges from below), for rho <= ||M||_2.
    norm_M: list[float | None] = [None] * batch
    if ops.has_vjp:
        gram = lanczos(
            lambda v: ops.m_t(ops.m(v)),
            random(batch, n),
            which="LA",
            tol=math.sqrt(tol),
            **{k: v for k, v in krylov.items() if k != "tol"},
        )
        counts["jvp"] += gram.matvecs
        counts["vjp"] += gram.matvecs
        for b in range(batch):
            if bool(gram.converged[b, 0]):
                norm_M[b] = math.sqrt(max(float(gram.values[b, 0]), 0.0))
    for b in range(batch):
        slack = math.sqrt(tol) * max(1.0, abs(mu_lead[b]), abs(mu_alpha[b]), abs(omega[b] or 0.0))
        reasons[b] += _invariant_failures(omega[b], mu_alpha[b], mu_lead[b], norm_M[b], eps, slack)

    best_start = arnoldi_runs[0][targets[1].name].vectors[..., 0, :]
    next_warm = WarmStart(
        omega=omega_vector.detach() if omega_vector is not None else None,
        arnoldi=(best_start.real + best_start.imag).detach() if best_start.is_complex() else best_start.detach(),
        block=next_block,
    )
    return _Spectra(
        omega=omega,
        mu_alpha=mu_alpha,
        mu_lead=mu_lead,
        rho_rr=rho_rr,
        rr_block=rr_block,
        rr2_misleading=rr2_misleading,
        norm_M=norm_M,
        residuals=residuals,
        converged=[not any("converge" in r for r in reasons[b]) for b in range(batch)],
        reasons=reasons,
        matvecs=counts["jvp"] + counts["vjp"],
        matvecs_by_kind=counts,
        notes=[],
        warm=next_warm,
    )


def _assemble(
    *,
    label: str,
    index: int,
    n: int,
    c: float,
    eps: float,
    spectra: _Spectra,
    b: int,
    reasons: list[str],
    band: float,
    complex_tol: float,
    fd_err: float | None,
    adj_err: float | None,
    fp_residual: float,
    fp_before: float | None,
    method: str,
    seconds: float,
    notes: tuple[str, ...],
) -> FixedPointResult:
    omega = spectra.omega[b]
    mu_alpha = spectra.mu_alpha[b]
    mu_lead = spectra.mu_lead[b]
    lead = 1 + eps * mu_lead
    rho = abs(lead)
    finite = all(math.isfinite(x) for x in (mu_alpha.real, mu_alpha.imag, lead.real, lead.imag))
    if not finite:
        reasons = [*reasons, "a computed eigenvalue is not finite"]
    verdict, reason = classify(
        rho=rho,
        lead_real=lead.real,
        lead_imag=lead.imag,
        mu_lead_real=mu_lead.real,
        omega=omega,
        band=band,
        complex_tol=complex_tol,
        reasons=reasons,
    )
    return FixedPointResult(
        checkpoint=label,
        index=index,
        n=n,
        c=c,
        eps=eps,
        omega=omega,
        alpha=mu_alpha.real,
        alpha_imag=abs(mu_alpha.imag),
        rho=rho,
        lead_real=lead.real,
        lead_imag=abs(lead.imag),
        mu_lead_real=mu_lead.real,
        mu_lead_imag=abs(mu_lead.imag),
        gap=None if omega is None else max(0.0, omega - mu_alpha.real),  # >= 0 up to round-off (checked)
        omega_nc=None if omega is None else omega + (1 + c),
        alpha_nc=mu_alpha.real + (1 + c),
        fd_jvp_rel_err=fd_err,
        adjoint_rel_err=adj_err,
        fixed_point_residual=fp_residual,
        converged=spectra.converged[b],
        method=method,
        matvecs=spectra.matvecs,
        seconds=seconds,
        verdict=verdict,
        reason=reason,
        lead_is_complex=lead_is_complex(lead.real, lead.imag, complex_tol) if finite else None,
        rho_rr=spectra.rho_rr[b],
        rr_block_size=spectra.rr_block[b],
        rr2_misleading=spectra.rr2_misleading[b],
        norm_M_estimate=spectra.norm_M[b],
        residuals=spectra.residuals[b],
        matvecs_by_kind=dict(spectra.matvecs_by_kind),
        fixed_point_residual_before_refine=fp_before,
        notes=notes,
    )


# `spectral_probe.probe(f, z_star, ...)` is the Python API (spectral_probe.api.probe) as well as this module.
sys.modules[__name__].__class__ = CallableModule
