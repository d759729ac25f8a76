"""Write a synthetic training run whose fixed point loses stability through a Hopf bifurcation.

The run is a ``hopfield`` operator, ``nc_force(z) = W tanh(z) + b`` with ``b = 0``, so ``z* = 0`` is an
exact fixed point at every step and ``J_nc = W`` there (``tanh'(0) = 1``). With ``c = 0``,
``J_F = W - I``. The weights move linearly along the run, ``W(s) = W0 + s D``, and are built as

    J_F(s) = Q [ [a(s), beta; -beta, a(s)]  (+)  T ] Q^T

with ``Q`` a random orthogonal matrix, ``T`` upper triangular (a stable, mildly non-normal rest of the
spectrum, ``diag(T)`` in [-1.5, -0.5]) and ``a(s)`` growing linearly through 0 between the checkpoint
before ``hopf_at`` and ``hopf_at``: the complex pair ``a(s) +- i beta`` of ``J_F`` crosses ``Re = 0``.

The Euler step ``eps`` (metadata ``spectral_probe.eps``, default 0.2) is small enough that ``M`` loses
stability in the same interval (``|1 + eps mu| = 1`` at ``Re mu = -eps beta^2 / 2``, just left of 0), so
the first unstable checkpoint has ``Re(mu_lead) > 0``: a ``hopf`` verdict, not ``neimark-sacker``.

Usage: ``python -m tools.make_trajectory OUT_DIR [--steps 20] [--hopf-at 1000] [--n 64]``.
Files are named ``step_<s>.safetensors`` without zero padding (natural order matters) and carry
``spectral_probe.step``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file

#: Imaginary part of the crossing pair of J_F.
BETA = 0.5
#: How far Re(mu) of the pair moves from one checkpoint to the next.
DELTA = 0.1


def weights(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B0, E)`` in the eigen-basis: ``J_F(s) = Q (B0 + a(s) E) Q^T``."""
    generator = torch.Generator().manual_seed(seed)
    base = torch.zeros(n, n, dtype=torch.float64)
    base[0, 1], base[1, 0] = BETA, -BETA
    rest = n - 2
    base[2:, 2:] = torch.diag(-1.5 + torch.rand(rest, generator=generator, dtype=torch.float64))
    # A superdiagonal coupling makes the stable part non-normal (omega above alpha) without moving
    # its eigenvalues, which stay on the diagonal of the triangular block.
    coupling = 0.3 * torch.rand(rest - 1, generator=generator, dtype=torch.float64)
    base[2:, 2:] += torch.diag(coupling, 1)
    direction = torch.zeros(n, n, dtype=torch.float64)
    direction[0, 0] = direction[1, 1] = 1.0
    return base, direction


def main(
    out_dir: str | Path,
    steps: int = 20,
    hopf_at: int | None = None,
    *,
    n: int = 64,
    stride: int = 100,
    eps: float = 0.2,
    seed: int = 0,
) -> dict:
    """Write ``steps`` checkpoints at training steps ``0, stride, 2 stride, ...`` into ``out_dir``.

    ``hopf_at`` (a training step, one of those; default the middle one) is the first checkpoint at
    which the fixed point is unstable, through a Hopf crossing. Returns a description of the run.
    """
    if steps < 3:
        raise ValueError("a trajectory needs at least 3 checkpoints")
    if n < 4:
        raise ValueError("n must be at least 4")
    step_values = [k * stride for k in range(steps)]
    if hopf_at is None:
        hopf_at = step_values[steps // 2]
    if hopf_at not in step_values[1:]:
        raise ValueError(f"hopf_at must be one of the steps after the first: {step_values[1:]}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed + 1)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    base, direction = weights(n, seed)
    eye = torch.eye(n, dtype=torch.float64)
    # a(s) = DELTA * ((s - hopf_at) / stride + 1/2): -DELTA/2 one checkpoint before, +DELTA/2 at it.
    a0 = DELTA * (0.5 - hopf_at / stride)
    w0 = q @ (base + a0 * direction) @ q.T + eye
    d = (DELTA / stride) * (q @ direction @ q.T)
    paths = []
    for s in step_values:
        w = w0 + s * d
        path = out / f"step_{s}.safetensors"
        metadata = {
            "spectral_probe.operator": "hopfield",
            "spectral_probe.eps": repr(eps),
            "spectral_probe.c": "0.0",
            "spectral_probe.step": str(s),
            "spectral_probe.options": json.dumps({"activation": "tanh"}),
        }
        save_file({"W": w.contiguous(), "z_star": torch.zeros(n, dtype=torch.float64)}, str(path), metadata)
        paths.append(str(path))
    return {"paths": paths, "steps": step_values, "hopf_at": hopf_at, "n": n, "eps": eps}


def _cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--hopf-at", type=int, default=None)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--stride", type=int, default=100)
    parser.add_argument("--eps", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    info = main(args.out_dir, args.steps, args.hopf_at, n=args.n, stride=args.stride, eps=args.eps, seed=args.seed)
    print(f"wrote {len(info['paths'])} checkpoints to {args.out_dir}; Hopf crossing at step {info['hopf_at']}")


if __name__ == "__main__":
    _cli()
