"""The benchmark problems: a checkpoint-like operator, its fixed point and its reference spectrum.

Two families, both built-in operators of ``spectral_probe`` (the force comes from the SAME factory a
checkpoint would use):

``hopfield`` (``nc_force(z) = W tanh(z) + b``), dense ``W``, ``n = 2 m``. The Jacobian ``J_nc = W D``
(``D = diag(tanh'(z*))``) is designed first, then ``W = J_nc D^-1`` and ``b = z* - W tanh(z*)`` make ``z*``
an exact fixed point (``c = 0``, ``eps = 1``). The state holds two mirror populations: ``z* = [y, y]`` and
``J_nc = [[X, Y], [Y, X]]``, which commutes with the swap of the halves, so ``J_nc`` acts on the mirror-
symmetric vectors ``[x, x]`` as ``S = X + Y`` and on the antisymmetric ones ``[x, -x]`` as ``T = X - Y``.
Each sector is ``Q (Lambda_out (+) B) Q^T`` with ``Q`` a dense orthogonal matrix, ``B`` a normal bulk
(eigenvalues uniform in a disk of radius ``BULK_RADIUS``), a few outlier eigenvalues and a dense
coupling ``H`` from the bulk into the outliers (block upper triangular: the eigenvalues stay exactly
as designed, the eigenvectors stay well conditioned, the matrix is strongly non-normal):

* antisymmetric sector ``T``: a complex pair ``0.98 +- 0.12 i`` (so ``alpha = -0.02`` and, with
  ``eps = 1``, the leading pair of ``M`` with ``rho = 0.9873``), a real ``-0.93``, coupling ``||H|| = 3``
  (``omega`` far above ``alpha``, and ``Sym(J_F)`` has its largest-MAGNITUDE eigenvalue at the negative
  end, the trap of a default ``which='LM'`` Lanczos);
* symmetric sector ``S``: decoys ``0.95`` and ``-0.97`` and a weaker coupling: the answers that a Krylov
  method started from the structured vector ``ones`` (mirror-symmetric, so its Krylov space never
  leaves ``S`` in exact arithmetic) converges to.

``conv`` (``nc_force(z) = conv2(tanh(conv1(z) + b1)) + b2 + b``, state ``[C, H, W]``, 3x3 kernels,
'same' padding). The fixed point is ``z* = bump(x, y) v``: a Gaussian spot with one channel vector ``v``
chosen so that ``conv1(z*) + b1`` is ``~0`` inside the spot and ``~b1`` (``|b1| = 1.5``) outside; the
hidden units saturate outside the spot, so the top of the spectrum is a few states bound to the spot
(independent of the grid size, as in a real convolutional equilibrium model whose activity is local),
above a continuous band. ``b = z* - conv2(...)`` makes ``z*`` exact; ``conv2`` is scaled so that
``alpha ~ -0.03`` (calibrated once on a 32x32 grid with the same spot).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor

from spectral_probe.operators.builtin import conv, hopfield

NcForce = Callable[[Tensor], Tensor]
DTYPE = torch.float64

#: Bulk eigenvalues of each hopfield sector lie uniformly in a disk of this radius.
BULK_RADIUS = 0.6
#: Outliers of the antisymmetric (wanted) sector: a complex pair and a negative real.
TRUE_PAIR = (0.98, 0.12)
TRUE_NEGATIVE = -0.93
#: Outliers of the symmetric (decoy) sector, seen from a mirror-symmetric start.
DECOY_RIGHT = 0.95
DECOY_NEGATIVE = -0.94
#: ||H||_2 of the bulk-to-outlier coupling (non-normality) per sector.
COUPLING_TRUE = 3.0
COUPLING_DECOY = 1.5

#: conv: channels of the hidden layer equal the state's; |b1| outside the spot; spot width (pixels).
CONV_SATURATION = 2.5
CONV_SPOT_SIGMA = 3.0
#: conv: target rightmost eigenvalue of J_nc (alpha = target - 1).
CONV_TARGET_ALPHA_NC = 0.97
CONV_CALIBRATION_SIDE = 32


@dataclass(frozen=True)
class ProblemSpec:
    """What identifies one problem; JSON-serializable (the worker subprocess rebuilds it from this).

    family: ``hopfield`` or ``conv``; ``n``: the state size; ``channels``/``side``: the conv grid
    (``n = channels * side ** 2``); ``seed``: every random draw.
    """

    family: str
    n: int
    seed: int = 0
    channels: int = 0
    side: int = 0

    @property
    def label(self) -> str:
        if self.family == "conv":
            return f"conv C={self.channels} {self.side}x{self.side} (n={self.n:,})"
        return f"hopfield n={self.n:,}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProblemSpec:
        return cls(**data)


@dataclass
class Problem:
    """A built problem: the operator as a checkpoint would give it, and one fixed point ``[1, n]``."""

    spec: ProblemSpec
    params: dict[str, Tensor]
    options: dict[str, Any]
    nc_force: NcForce
    z_star: Tensor
    c: float = 0.0
    eps: float = 1.0
    description: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def spec_for_size(n: int, seed: int = 0) -> ProblemSpec:
    """``hopfield`` below 65,536 (``n`` even); ``conv`` with C=16 (or fewer channels) on a square grid above."""
    if n < 65_536:
        if n % 2 or n < 8:
            raise ValueError(f"hopfield sizes must be even and >= 8, got {n}")
        return ProblemSpec("hopfield", n, seed)
    for channels in (16, 8, 4, 2, 1):
        side = math.isqrt(n // channels)
        if channels * side * side == n:
            return ProblemSpec("conv", n, seed, channels=channels, side=side)
    raise ValueError(f"conv sizes must be C * side^2 with C in 16, 8, 4, 2, 1; got {n}")


def conv_spec(channels: int, side: int, seed: int = 0) -> ProblemSpec:
    return ProblemSpec("conv", channels * side * side, seed, channels=channels, side=side)


def build(spec: ProblemSpec) -> Problem:
    """Build the problem named by ``spec`` (deterministic in ``spec.seed``)."""
    if spec.family == "hopfield":
        return build_hopfield(spec)
    if spec.family == "conv":
        return build_conv(spec)
    raise ValueError(f"unknown benchmark family {spec.family!r}")


# --------------------------------------------------------------------------------------------------
# hopfield


def _fwht(x: Tensor) -> Tensor:
    """Unnormalized fast Walsh-Hadamard transform along dim 0 (length a power of two)."""
    m = x.shape[0]
    rest = x.shape[1:]
    h = 1
    while h < m:
        view = x.reshape(m // (2 * h), 2, h, *rest)
        a, b = view[:, 0], view[:, 1]
        x = torch.stack((a + b, a - b), dim=1).reshape(m, *rest)
        h *= 2
    return x


class _Orthogonal:
    """A dense random orthogonal ``Q``: ``H D1 P H D2 / m`` (fast, m a power of 2) or QR of a Gaussian."""

    def __init__(self, m: int, generator: torch.Generator) -> None:
        self.m = m
        self.hadamard = m >= 2 and (m & (m - 1)) == 0
        if self.hadamard:
            self.d1 = torch.randint(0, 2, (m,), generator=generator).to(DTYPE) * 2 - 1
            self.d2 = torch.randint(0, 2, (m,), generator=generator).to(DTYPE) * 2 - 1
            self.perm = torch.randperm(m, generator=generator)
            self.q = None
        else:
            self.q, _ = torch.linalg.qr(torch.randn(m, m, generator=generator, dtype=DTYPE))

    def left(self, x: Tensor) -> Tensor:
        """``Q x`` for ``x`` ``[m, k]``."""
        if self.q is not None:
            return self.q @ x
        x = _fwht(self.d2[:, None] * x)
        x = self.d1[:, None] * x[self.perm]
        return _fwht(x) / self.m

    def conjugate(self, t: Tensor) -> Tensor:
        """``Q t Q^T``."""
        return self.left(self.left(t).T.contiguous()).T.contiguous()


def _disk(count: int, radius: float, generator: torch.Generator) -> Tensor:
    """``count`` points uniform in the upper half of a disk (complex)."""
    r = radius * torch.sqrt(torch.rand(count, generator=generator, dtype=DTYPE))
    theta = math.pi * torch.rand(count, generator=generator, dtype=DTYPE)
    return torch.complex(r * torch.cos(theta), r * torch.sin(theta))


def _quasi_diagonal(pairs: Tensor, reals: Tensor) -> Tensor:
    """Block diagonal real matrix with 2x2 blocks ``[[a, q], [-q, a]]`` (eigenvalues ``a +- iq``) then reals."""
    size = 2 * pairs.numel() + reals.numel()
    out = torch.zeros(size, size, dtype=DTYPE)
    for i, mu in enumerate(pairs.tolist()):
        j = 2 * i
        out[j, j] = out[j + 1, j + 1] = mu.real
        out[j, j + 1] = mu.imag
        out[j + 1, j] = -mu.imag
    offset = 2 * pairs.numel()
    idx = torch.arange(reals.numel()) + offset
    out[idx, idx] = reals
    return out


def _sector(m: int, outliers: Tensor, coupling: float, generator: torch.Generator) -> Tensor:
    """``Q [[outliers, H], [0, bulk]] Q^T`` with ``outliers`` a small real block (eigenvalues exact)."""
    k = outliers.shape[0]
    if m <= k:
        raise ValueError(f"hopfield sector of size {m} cannot hold {k} outliers")
    bulk_size = m - k
    bulk = _quasi_diagonal(_disk(bulk_size // 2, BULK_RADIUS, generator), _disk(bulk_size % 2, 0.0, generator).real)
    coupling_block = torch.randn(k, bulk_size, generator=generator, dtype=DTYPE)
    coupling_block *= coupling / torch.linalg.matrix_norm(coupling_block, ord=2)
    t = torch.zeros(m, m, dtype=DTYPE)
    t[:k, :k] = outliers
    t[:k, k:] = coupling_block
    t[k:, k:] = bulk
    return _Orthogonal(m, generator).conjugate(t)


def hopfield_jacobian(n: int, seed: int) -> tuple[Tensor, Tensor]:
    """The designed ``J_nc`` ``[n, n]`` and the half state ``y`` (``z* = [y, y]``)."""
    m = n // 2
    generator = torch.Generator().manual_seed(1000 + seed)
    a, q = TRUE_PAIR
    true_block = torch.tensor([[a, q, 0.5], [-q, a, 0.0], [0.0, 0.0, TRUE_NEGATIVE]], dtype=DTYPE)
    decoy_block = torch.tensor([[DECOY_RIGHT, 0.3], [0.0, DECOY_NEGATIVE]], dtype=DTYPE)
    t_sector = _sector(m, true_block, COUPLING_TRUE, generator)
    s_sector = _sector(m, decoy_block, COUPLING_DECOY, generator)
    x, y_block = (s_sector + t_sector) / 2, (s_sector - t_sector) / 2
    jac = torch.cat((torch.cat((x, y_block), 1), torch.cat((y_block, x), 1)), 0)
    y = 0.5 * torch.randn(m, generator=generator, dtype=DTYPE)
    return jac, y


def hopfield_params(n: int, seed: int) -> tuple[dict[str, Tensor], Tensor]:
    """``{"W", "b"}`` and ``z*`` ``[n]`` of the benchmark hopfield checkpoint."""
    jac, y = hopfield_jacobian(n, seed)
    z_star = torch.cat((y, y))
    slope = 1 - torch.tanh(z_star) ** 2
    weight = jac / slope[None, :]
    bias = z_star - weight @ torch.tanh(z_star)
    return {"W": weight.contiguous(), "b": bias.contiguous()}, z_star


def build_hopfield(spec: ProblemSpec) -> Problem:
    params, z_star = hopfield_params(spec.n, spec.seed)
    options = {"activation": "tanh"}
    return Problem(
        spec=spec,
        params=params,
        options=options,
        nc_force=hopfield(params, dict(options)),
        z_star=z_star.unsqueeze(0),
        description=(
            "dense asymmetric W, J_nc = [[X, Y], [Y, X]] (two mirror populations); designed spectrum: "
            f"pair {TRUE_PAIR[0]} +- {TRUE_PAIR[1]}i (alpha = {TRUE_PAIR[0] - 1:+.2f}), {TRUE_NEGATIVE}, "
            f"bulk radius {BULK_RADIUS}, coupling {COUPLING_TRUE} (non-normal); mirror-symmetric decoys "
            f"{DECOY_RIGHT}, {DECOY_NEGATIVE}"
        ),
    )


# --------------------------------------------------------------------------------------------------
# conv


def _conv_kernels(channels: int, seed: int) -> dict[str, Tensor]:
    generator = torch.Generator().manual_seed(2000 + seed)
    fan_in = channels * 9
    w1 = torch.randn(channels, channels, 3, 3, generator=generator, dtype=DTYPE) / math.sqrt(fan_in)
    w2 = torch.randn(channels, channels, 3, 3, generator=generator, dtype=DTYPE) / math.sqrt(fan_in)
    signs = torch.randint(0, 2, (channels,), generator=generator).to(DTYPE) * 2 - 1
    b1 = CONV_SATURATION * signs
    # The spot's channel vector v: conv1 of a constant field v is (sum of the kernel taps) v; cancel b1.
    taps = w1.sum(dim=(-1, -2))
    v = -torch.linalg.solve(taps, b1)
    return {"conv1_weight": w1, "conv2_weight": w2, "conv1_bias": b1, "v": v}


def _conv_state(channels: int, side: int, v: Tensor) -> Tensor:
    coords = torch.arange(side, dtype=DTYPE) - (side - 1) / 2
    r2 = coords[:, None] ** 2 + coords[None, :] ** 2
    bump = torch.exp(-r2 / (2 * CONV_SPOT_SIGMA**2))
    return (v[:, None, None] * bump[None]).reshape(-1)


def _conv_params(channels: int, side: int, seed: int, scale: float) -> tuple[dict[str, Tensor], Tensor]:
    kernels = _conv_kernels(channels, seed)
    w1, b1 = kernels["conv1_weight"], kernels["conv1_bias"]
    w2 = kernels["conv2_weight"] * scale
    z_star = _conv_state(channels, side, kernels["v"])
    base = {"conv1_weight": w1, "conv1_bias": b1, "conv2_weight": w2}
    force = conv(base, {"height": side, "width": side})
    bias = z_star - force(z_star)
    return {**base, "b": bias.reshape(channels, side, side).contiguous()}, z_star


@functools.lru_cache(maxsize=8)
def conv_scale(channels: int, seed: int) -> float:
    """The factor on ``conv2_weight`` that puts the rightmost eigenvalue of ``J_nc`` at the target.

    Measured with SciPy ARPACK (tight tolerance) on a ``CONV_CALIBRATION_SIDE`` grid with the same spot;
    the bound states do not depend on the grid size.
    """
    import numpy as np
    from scipy.sparse.linalg import LinearOperator, eigs

    from spectral_probe.jacobian import JacobianOperators

    side = CONV_CALIBRATION_SIDE
    params, z_star = _conv_params(channels, side, seed, 1.0)
    ops = JacobianOperators(conv(params, {}), z_star.unsqueeze(0))
    n = z_star.numel()

    def matvec(x: np.ndarray) -> np.ndarray:
        return ops.jvp(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)).reshape(1, n)).reshape(n).numpy()

    start = np.random.default_rng(seed).standard_normal(n)
    values = eigs(LinearOperator((n, n), matvec=matvec, dtype=np.float64), k=1, which="LR", v0=start, tol=1e-10)[0]
    rightmost = float(values.real.max())
    if not rightmost > 0:
        raise RuntimeError(f"conv calibration: rightmost eigenvalue {rightmost} is not positive")
    return CONV_TARGET_ALPHA_NC / rightmost


def build_conv(spec: ProblemSpec) -> Problem:
    scale = conv_scale(spec.channels, spec.seed)
    params, z_star = _conv_params(spec.channels, spec.side, spec.seed, scale)
    options = {"activation": "tanh"}
    return Problem(
        spec=spec,
        params=params,
        options=options,
        nc_force=conv(params, dict(options)),
        z_star=z_star.unsqueeze(0),
        description=(
            f"conv2(tanh(conv1(z) + b1)) + b2 + b, C = {spec.channels} (hidden {spec.channels}), 3x3 kernels, "
            f"{spec.side}x{spec.side} grid; hidden units saturated (|b1| = {CONV_SATURATION}) outside a "
            f"Gaussian spot (sigma = {CONV_SPOT_SIGMA} px) at the centre; conv2 scaled by {scale:.4f} so "
            f"alpha ~ {CONV_TARGET_ALPHA_NC - 1:+.2f}"
        ),
        info={"conv2_scale": scale},
    )


# --------------------------------------------------------------------------------------------------
# Batched checkpoint: many fixed points of ONE operator


def multi_fixed_point_hopfield(n: int, count: int, seed: int = 0) -> tuple[dict[str, Tensor], Tensor]:
    """A hopfield checkpoint (``b = 0``) with ``count`` exact fixed points ``[count, n]``, ``count < n``.

    The states ``Z`` (random patterns of amplitude ~1.2, as the equilibria of ``count`` input samples)
    are chosen first; ``W = Z T^+ + R (I - T T^+)`` with ``T = tanh(Z)`` then maps every ``tanh(z_b)`` to
    ``z_b`` exactly, and ``R`` (dense, asymmetric, ``||R|| ~ 1.6``) gives it a bulk spectrum.
    """
    if not 0 < count < n:
        raise ValueError(f"count must be in (0, n), got {count} for n = {n}")
    generator = torch.Generator().manual_seed(3000 + seed)
    signs = torch.randint(0, 2, (count, n), generator=generator).to(DTYPE) * 2 - 1
    z = signs * (1.2 + 0.3 * torch.rand(count, n, generator=generator, dtype=DTYPE))
    t = torch.tanh(z).T  # [n, count]
    t_pinv = torch.linalg.pinv(t)  # [count, n]
    rest = torch.randn(n, n, generator=generator, dtype=DTYPE) * (0.8 / math.sqrt(n))
    weight = z.T @ t_pinv + rest @ (torch.eye(n, dtype=DTYPE) - t @ t_pinv)
    residual = (torch.tanh(z) @ weight.T - z).norm(dim=-1) / z.norm(dim=-1)
    if not bool((residual < 1e-10).all()):
        raise RuntimeError(f"the designed fixed points are not fixed: max residual {residual.max():.2e}")
    return {"W": weight.contiguous(), "b": torch.zeros(n, dtype=DTYPE)}, z
