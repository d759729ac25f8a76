"""Matrix-free Jacobian operators at the fixed points ``z*`` (docs/SPEC.md section 1).

For ``F(z) = nc_force(z) - (1 + c) z`` linearized at each of B fixed points ``z*_b``:

* ``J_nc = d nc_force / dz (z*)``: products ``J_nc v`` (jvp), ``J_nc^T u`` (vjp); formed only for small n;
* ``J_F = J_nc - (1 + c) I``, its symmetric part ``(J_F + J_F^T) / 2`` (numerical abscissa ``omega``);
* ``M = I + eps J_F``, the forward map of the Euler relaxation ``z <- z + eps F(z)`` (``rho``).

Every matvec follows :mod:`spectral_probe.linalg.result`: it acts on the LAST dimension of a
``[B, *block, n]`` tensor, ``B`` the fixed points (problem b uses ``J`` at ``z*_b``), ``*block`` the vectors.

Two modes (``--matvec``):

* ``autograd``: ``J^T u`` by ``torch.autograd.grad``, set up once at ``z*``; the Krylov ``J v`` is the
  transpose of that vjp by double backward (``krylov_jv="linearize"``: :mod:`spectral_probe.linearized`).
  Forward mode is set up only on demand: ``jvp_forward``, and ``J v`` where the backward is not differentiable.
* ``fd``: central differences of ``nc_force`` (:mod:`spectral_probe.linalg.fdcheck`), for black-box or
  non-differentiable operators. ``J^T u`` is not available (``has_vjp`` is False).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd import forward_ad

from spectral_probe.batching import one_line
from spectral_probe.config import KRYLOV_JVS
from spectral_probe.errors import InputError, OptionError
from spectral_probe.linalg.fdcheck import central_difference_jvp
from spectral_probe.linalg.result import Shifted
from spectral_probe.linearized import linearized_rows

__all__ = ["MATVEC_MODES", "JacobianOperators"]

MATVEC_MODES = ("autograd", "fd")

NcForce = Callable[[Tensor], Tensor]
RowFn = Callable[[Tensor], Tensor]  # [B, n] -> [B, n], row b at fixed point b

# Elements of the identity block pushed through one dense_jacobian chunk (32 MiB in float64): the
# operator's own activations scale with it, so it is kept well below device memory.
_DENSE_CHUNK_ELEMENTS = 1 << 22


class JacobianOperators:
    """The linearization of ``F(z) = nc_force(z) - (1 + c) z`` at B fixed points ``z*`` ``[B, n]``.

    ``nc_force`` maps one state ``[n]`` to ``[n]``; it is batched with ``torch.func.vmap`` (or, if it is
    not vmap-compatible, by a Python loop: ``vectorized`` is then False). ``path`` names the checkpoint
    in errors. Raises :class:`InputError` if ``nc_force`` fails at ``z*`` or, in autograd mode, cannot be
    differentiated with ``torch.func`` (use ``mode="fd"``), and :class:`OptionError` for a bad mode.
    ``check_finite=False``: a caller (the scan) checks its own first products (:meth:`require_finite`).

    Attributes: ``z_star`` ``[B, n]``, ``batch`` (B), ``n``, ``c``, ``eps``, ``mode``, ``dtype``,
    ``device``, ``has_vjp``, ``vectorized``, ``force_at_star`` (``nc_force(z*)``, ``[B, n]``), ``force_repeat``
    (the autograd set-up's own ``nc_force(z*)`` by the same route, for the determinism check, or ``None``),
    ``notes`` (human-readable remarks, e.g. the forward-mode fallback).
    """

    def __init__(
        self,
        nc_force: NcForce,
        z_star: Tensor,
        c: float = 0.0,
        eps: float = 1.0,
        mode: str = "autograd",
        *,
        chunk_size: int | None = None,
        path: str | os.PathLike[str] | None = None,
        krylov_jv: str = "transpose",
        check_finite: bool = True,
    ) -> None:
        if mode not in MATVEC_MODES:
            raise OptionError(f"unknown matvec mode {mode!r} (valid: {', '.join(MATVEC_MODES)})")
        if krylov_jv not in KRYLOV_JVS:
            raise OptionError(f"unknown krylov_jv {krylov_jv!r} (valid: {', '.join(KRYLOV_JVS)})")
        if not (math.isfinite(c) and math.isfinite(eps)):
            raise OptionError(f"c and eps must be finite, got c={c}, eps={eps}")
        if z_star.ndim != 2 or not z_star.is_floating_point() or 0 in z_star.shape:
            raise ValueError(f"z_star must be a non-empty real [B, n] tensor, got {z_star.dtype} {list(z_star.shape)}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.nc_force = nc_force
        self.z_star = z_star.detach()
        self.batch, self.n = (int(s) for s in z_star.shape)
        self.c, self.eps = float(c), float(eps)
        self.mode, self.krylov_jv = mode, krylov_jv
        self.dtype, self.device = z_star.dtype, z_star.device
        self.has_vjp = mode == "autograd"
        self.chunk_size = chunk_size
        self.path = None if path is None else str(path)
        self.notes: list[str] = []
        self.vectorized = True
        # Products made while setting up (per fixed point): the probes that find a working route and
        # the finiteness check; a scan counts them with its checks' matvecs.
        self.setup_matvecs = 0
        self.force_at_star = self._setup_force()
        self._force_vectorized, self.force_repeat = self.vectorized, None
        self._jvp_rows: RowFn | None = None
        self._vjp_rows: RowFn | None = None
        self._jvp_forward_rows: RowFn | None = None
        if mode == "autograd":
            self._setup_autograd()
        if mode == "autograd" and krylov_jv == "linearize":  # checked against the transpose route first
            rows, why = linearized_rows(self._force_rows, self.z_star, self._jvp_rows)
            self._jvp_rows, self.setup_matvecs = rows or self._jvp_rows, self.setup_matvecs + 6  # trace, 5 checks
            self.notes += [why] if why else []
        if check_finite:  # a scan checks the products its own checks make instead (no extra product)
            self._check_finite_derivative()

    # ---------------------------------------------------------------------------------------------
    # Public matvecs

    def force(self, z: Tensor) -> Tensor:
        """``nc_force(z)`` for every state in ``z`` ``[..., n]`` (the force is the same for all b)."""
        # A copy: an operator that updates its input in place must not corrupt the caller's tensor.
        flat = z.reshape(-1, self.n).clone()
        return self._force_rows(flat).reshape(z.shape)

    def field(self, z: Tensor) -> Tensor:
        """``F(z) = nc_force(z) - (1 + c) z`` for every state in ``z`` ``[..., n]``."""
        return self.force(z) - (1.0 + self.c) * z

    @property
    def field_at_star(self) -> Tensor:
        """``F(z*)`` ``[B, n]``: zero at an exact fixed point (its norm is the fixed-point residual)."""
        return self.force_at_star - (1.0 + self.c) * self.z_star

    def jvp(self, v: Tensor) -> Tensor:
        """``J_nc v`` for ``v`` ``[B, *block, n]``."""
        self._check(v, "jvp")
        if self.mode == "fd":
            v3 = v.reshape(self.batch, -1, self.n)
            out = central_difference_jvp(self.force, self.z_star.unsqueeze(1), v3)
            return out.reshape(v.shape)
        assert self._jvp_rows is not None
        return self._blocked(self._jvp_rows, v)

    def jvp_forward(self, v: Tensor) -> Tensor:
        """``J_nc v`` by forward mode (set up on first call): :meth:`jvp`'s fallback, a second route for tests."""
        if self.mode == "fd":
            return self.jvp(v)
        self._check(v, "jvp")
        return self._blocked(self._forward_rows(), v)

    def vjp(self, u: Tensor) -> Tensor:
        """``J_nc^T u`` for ``u`` ``[B, *block, n]``; autograd mode only (``has_vjp``)."""
        self._check(u, "vjp")
        if self._vjp_rows is None:
            why = "finite differences give J v only, so omega and the adjoint check need --matvec autograd"
            raise OptionError(f"J^T u (vjp) is not available with --matvec fd: {why} or a dense FD Jacobian")
        return self._blocked(self._vjp_rows, u)

    def jf(self, v: Tensor) -> Tensor:
        """``J_F v = J_nc v - (1 + c) v``."""
        return self.jvp(v) - (1.0 + self.c) * v

    def jf_t(self, u: Tensor) -> Tensor:
        """``J_F^T u = J_nc^T u - (1 + c) u``."""
        return self.vjp(u) - (1.0 + self.c) * u

    def sym(self, v: Tensor) -> Tensor:
        """``(J_F + J_F^T) v / 2``, the symmetric part whose largest eigenvalue is ``omega``."""
        return 0.5 * (self.jf(v) + self.jf_t(v))

    def krylov(self, operator: str) -> Shifted:
        """``J_F``, ``J_F^T`` or ``Sym(J_F)`` (``"jf"``, ``"jf_t"``, ``"sym"``) for the Krylov solvers: the
        ``J_nc`` product shifted by ``1 + c`` (Gram-Schmidt never sees the ``-(1 + c) v`` of ``J_F v``)."""
        sym_nc = lambda v: 0.5 * (self.jvp(v) + self.vjp(v))  # noqa: E731
        return Shifted({"jf": self.jvp, "jf_t": self.vjp, "sym": sym_nc}[operator], 1.0 + self.c)

    def m(self, v: Tensor) -> Tensor:
        """``M v = v + eps J_F v``, the linearized Euler step."""
        return v + self.eps * self.jf(v)

    def m_t(self, u: Tensor) -> Tensor:
        """``M^T u = u + eps J_F^T u``."""
        return u + self.eps * self.jf_t(u)

    def restricted(self, rows: list[int]) -> JacobianOperators:
        """The same linearization at the fixed points ``rows`` alone (the few problems of a batch that need
        another solve), set up anew on those rows (its own ``setup_matvecs``), with the same settings."""
        same = {"chunk_size": self.chunk_size, "path": self.path, "krylov_jv": self.krylov_jv}
        return JacobianOperators(self.nc_force, self.z_star[rows], self.c, self.eps, self.mode, **same)

    def dense_jacobian(self, chunk_size: int | None = None) -> Tensor:
        """``J_nc`` at every fixed point, ``[B, n, n]``, ``chunk_size`` rows or columns at a time (default:
        about 4M elements per chunk, to bound memory); costs ``n`` products per fixed point.

        Autograd (vmapped operator): row ``i`` is ``J^T e_i``, a chunk of rows by ONE backward through the
        force on that many copies of ``z*`` (one batched forward). Otherwise (fd mode, a looped operator)
        column ``j`` is :meth:`jvp` of ``e_j``; in fd mode this is the finite-difference Jacobian.
        """
        chunk = chunk_size or self.chunk_size or max(1, _DENSE_CHUNK_ELEMENTS // (self.batch * self.n))
        chunk = min(chunk, self.n)
        if self.mode == "autograd" and self.vectorized:
            try:
                return torch.cat([self._rows(i, min(self.n, i + chunk)) for i in range(0, self.n, chunk)], dim=1)
            except Exception as exc:  # the batched copies do not run (memory, vmap): column by column
                self.notes.append(f"dense J by columns ({one_line(exc)})")
        columns = []
        for start in range(0, self.n, chunk):
            stop = min(self.n, start + chunk)
            basis = torch.zeros(stop - start, self.n, dtype=self.dtype, device=self.device)
            index = torch.arange(stop - start, device=self.device)
            basis[index, index + start] = 1.0
            columns.append(self.jvp(basis.unsqueeze(0).expand(self.batch, -1, -1)))
        # Row j of the stacked result is J e_j, i.e. column j of J.
        return torch.cat(columns, dim=1).transpose(1, 2).contiguous()

    def _rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``J_nc`` ``[B, stop - start, n]``: ``d<nc_force(z_i), e_i>/dz_i`` on copies."""
        count = stop - start
        z = self.z_star.unsqueeze(1).expand(-1, count, -1).reshape(-1, self.n).clone().requires_grad_(True)
        pick = torch.zeros(count, self.n, dtype=self.dtype, device=self.device)
        index = torch.arange(count, device=self.device)
        pick[index, index + start] = 1.0
        with torch.enable_grad():
            out = self._force_rows(z).reshape(self.batch, count, self.n)
            return _grad((out * pick).sum(), z).reshape(self.batch, count, self.n)

    # ---------------------------------------------------------------------------------------------
    # Setup and plumbing

    def _setup_force(self) -> Tensor:
        try:
            out = torch.func.vmap(self.nc_force)(self.z_star.clone())
        except Exception as vmap_error:
            vmap_message = one_line(vmap_error)
            try:
                out = torch.stack([self.nc_force(z) for z in self.z_star.clone()])
            except Exception as exc:  # user code: the operator does not run at z*
                raise InputError(self.path, f"the operator failed at z_star: {one_line(exc)}") from None
            # A black-box operator (numpy inside, .item(), data-dependent branches) still works, slowly.
            self.vectorized = False
            self.notes.append(f"nc_force is not vmap-compatible ({vmap_message}); matvecs loop over vectors")
        self.setup_matvecs += 1
        if not isinstance(out, Tensor) or out.shape != self.z_star.shape or out.dtype != self.dtype:
            got = f"{out.dtype} {list(out.shape)}" if isinstance(out, Tensor) else type(out).__name__
            raise InputError(
                self.path,
                f"the operator must map each state to {self.dtype} [{self.n}]; on z_star "
                f"{list(self.z_star.shape)} it returned {got}",
            )
        return out

    def _force_rows(self, rows: Tensor) -> Tensor:
        if self.vectorized:
            return torch.func.vmap(self.nc_force)(rows)
        return torch.stack([self.nc_force(z) for z in rows])

    def _setup_autograd(self) -> None:
        # The products see a copy, so no operator can write into self.z_star.
        z = self.z_star.detach().clone().requires_grad_(True)
        probe = torch.zeros_like(self.z_star)
        try:
            with torch.enable_grad():
                out = self._force_rows(z)
            if not out.requires_grad:  # numpy inside, .item(), .detach(): autograd sees a constant
                raise RuntimeError("the output does not depend on z_star through autograd")
            if self.vectorized == self._force_vectorized:  # force_at_star's route: the same numbers
                self.force_repeat = out.detach()
            vjp_rows = _gradient_of_pairing(out, z)
            vjp_rows(probe)
        except Exception as exc:
            if self.vectorized:  # the forward vmapped but its derivative cannot: loop over states
                self._stop_vectorizing(exc)
                return self._setup_autograd()
            raise InputError(
                self.path,
                f"the operator cannot be differentiated with torch.autograd ({one_line(exc)}); "
                "use --matvec fd (matvec='fd' in Python) for a black-box operator",
            ) from None
        self._vjp_rows = vjp_rows
        self.setup_matvecs += 2  # the recorded forward pass and the vjp probe
        # The Krylov J v is the transpose of the vjp: g(w) = J^T w, built once with create_graph, and
        # J v = d<g(w), v>/dw, reusing the graph saved at z* (about a vjp per product). No forward mode
        # here: forward AD of an add imports torch._dynamo, any forward AD the jvp decompositions.
        try:
            w = torch.zeros_like(probe, requires_grad=True)
            with torch.enable_grad():
                transposed = _grad((out * w).sum(), z, create_graph=True)
            # A backward that detaches (or is once_differentiable) leaves w out of the graph: the
            # transpose would read 0, so the strict probe insists that w is used.
            if not transposed.requires_grad:
                raise RuntimeError("the vjp does not depend on u through autograd")
            jvp_rows = _gradient_of_pairing(transposed, w)
            jvp_rows(probe, strict=True)
            self._jvp_rows = jvp_rows
        except Exception as exc:  # a backward that is not itself differentiable: forward mode
            self._jvp_rows = self._forward_rows()
            self.notes.append(f"J v by forward mode (the vjp is not differentiable: {one_line(exc)})")
        self.setup_matvecs += 1

    def _forward_rows(self) -> RowFn:
        """The forward-mode ``J v``, set up on first use (it is off the default path)."""
        if self._jvp_forward_rows is None:
            self._jvp_forward_rows = self._setup_forward_mode(self.z_star.clone(), torch.zeros_like(self.z_star))
        return self._jvp_forward_rows

    def _check_finite_derivative(self) -> None:
        """One ``J v`` (and ``J^T u``) on a random vector must be finite, or no solver can use them."""
        seeded = torch.Generator(self.device).manual_seed(0)
        v = torch.randn(self.batch, 1, self.n, generator=seeded, dtype=self.dtype, device=self.device)
        for name, product in [("J v", self.jvp)] + ([("J^T u", self.vjp)] if self.has_vjp else []):
            self.setup_matvecs += 1
            self.require_finite(name, product(v))

    def require_finite(self, name: str, values: Tensor) -> None:
        """Products ``values`` (``name``) that are not finite (an operator not differentiable at ``z*``:
        ``sqrt(|z|)`` at 0) would fail LAPACK inside a solver, read as a bug: an InputError (exit 2)."""
        if not bool(torch.isfinite(values).all()):
            why = f"({name} has nan/inf): the operator is not differentiable there"
            raise InputError(self.path, f"the derivative of nc_force at z_star is not finite {why}")

    def _setup_forward_mode(self, z: Tensor, probe: Tensor) -> RowFn:
        """The forward-mode ``J v`` by ``torch.autograd.forward_ad``."""

        def jvp_rows(v: Tensor) -> Tensor:
            # Native forward-mode AD: torch.func.jvp would send the operator's matmuls under vmap through
            # Python decompositions that import torch._dynamo (about a second of start-up).
            with forward_ad.dual_level():
                tangent = forward_ad.unpack_dual(self._force_rows(forward_ad.make_dual(z, v))).tangent
            return torch.zeros_like(z) if tangent is None else tangent

        jvp_rows.loops_over_blocks = True  # type: ignore[attr-defined]  # a dual level per call, not under vmap

        try:
            jvp_rows(probe)
            self.setup_matvecs += 1
        except Exception as exc:
            if self.vectorized:
                self._stop_vectorizing(exc)
                return self._setup_forward_mode(z, probe)
            raise InputError(
                self.path,
                f"the operator has no forward-mode derivative in torch.func ({one_line(exc)}); "
                "use --matvec fd (matvec='fd' in Python)",
            ) from None
        return jvp_rows

    def _blocked(self, fn: RowFn, v: Tensor) -> Tensor:
        """Apply a ``[B, n] -> [B, n]`` map to every block vector of ``v`` ``[B, *block, n]``."""
        v3 = v.reshape(self.batch, -1, self.n)
        count = v3.shape[1]
        if count == 0:
            return torch.empty_like(v)
        if count == 1:
            out = fn(v3[:, 0]).unsqueeze(1)
        elif self.vectorized and not getattr(fn, "loops_over_blocks", False):
            try:
                out = torch.func.vmap(fn, in_dims=1, out_dims=1)(v3)
            except Exception as exc:  # a derivative without a batching rule: loop over block vectors
                self._stop_vectorizing(exc)
                out = torch.stack([fn(v3[:, p]) for p in range(count)], dim=1)
        else:
            out = torch.stack([fn(v3[:, p]) for p in range(count)], dim=1)
        return out.reshape(v.shape)

    def _stop_vectorizing(self, exc: BaseException) -> None:
        self.vectorized = False
        self.notes.append(f"vmap cannot run the operator's derivatives ({one_line(exc)}); matvecs loop")

    def _check(self, v: Tensor, what: str) -> None:
        if v.ndim < 2 or v.shape[0] != self.batch or v.shape[-1] != self.n:
            raise ValueError(f"{what} takes [B={self.batch}, *block, n={self.n}], got {list(v.shape)}")


def _grad(scalar: Tensor, wrt: Tensor, create_graph: bool = False) -> Tensor:
    """``d scalar / d wrt`` (zeros where ``scalar`` does not depend on ``wrt``), keeping the graph."""
    if not scalar.requires_grad:
        return torch.zeros_like(wrt)
    (gradient,) = torch.autograd.grad(
        scalar, wrt, retain_graph=True, create_graph=create_graph, allow_unused=True, materialize_grads=True
    )
    return gradient


def _gradient_of_pairing(out: Tensor, wrt: Tensor) -> RowFn:
    """``u -> d<out, u>/d wrt``: the vjp ``J^T u`` of ``out = f(wrt)``, one reverse pass per call.

    Through :func:`torch.autograd.grad` of a scalar rather than ``torch.func.vjp`` or a
    ``grad_outputs`` tensor: the first ``torch.func.vjp`` backward imports ``torch._dynamo`` and a
    ``grad_outputs`` tensor imports sympy (about 1 s each at start-up); this imports neither.
    """

    def rows(u: Tensor, strict: bool = False) -> Tensor:
        with torch.enable_grad():
            if strict:  # raises where wrt is not in the graph (rather than reading its gradient as 0)
                return torch.autograd.grad((out * u).sum(), wrt, retain_graph=True)[0]
            return _grad((out * u).sum(), wrt)

    rows.loops_over_blocks = True  # type: ignore[attr-defined]  # autograd.grad does not run under vmap
    return rows
