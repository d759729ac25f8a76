"""The Schur-designed samples, one per verdict: ``J_F = Q T Q^T`` with the spectrum chosen in ``T``."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .grid import GRID_BITS, coupling, dyadic, exact_conjugation, mixing_basis, random_spectrum, schur_blocks
from .sample import Sample
from .weights import hopfield_from_jacobian, linear_from_jacobian, rnn_from_jacobian


def _hopfield_sample(
    name: str,
    seed: int,
    spectrum_args: dict[str, Any],
    coupling_scale: float,
    c: float,
    eps: float,
    verdicts: list[str],
    description: str,
    activation: str = "tanh",
    dtype: type[np.floating] = np.float32,
    extra_checks: Callable[[list[dict[str, Any]]], None] | None = None,
) -> Sample:
    """A hopfield sample whose ``J_F`` is ``Q (Schur blocks + random strictly-upper coupling) Q^T``."""
    rng = np.random.default_rng(seed)
    spec = random_spectrum(rng, **spectrum_args)
    n = spec.size
    t, mask = schur_blocks(rng, spec)
    t = t + dyadic(coupling(rng, (n, n), coupling_scale / math.sqrt(n)), GRID_BITS) * mask
    j_nc = exact_conjugation(mixing_basis(rng, n), t, int(math.log2(n))) + (1.0 + c) * np.eye(n)
    tensors = hopfield_from_jacobian(rng, j_nc, c, activation, dtype)
    return Sample(
        name,
        "hopfield",
        "hopfield",
        c,
        eps,
        {"activation": activation},
        tensors,
        verdicts,
        description,
        extra_checks,
        design_eigs=spec.eigenvalues(),
    )


def contractive() -> Sample:
    """hopfield n=512 (float32): ``Sym J_F`` negative definite (omega < 0) and rho < 1."""
    return _hopfield_sample(
        "contractive.safetensors",
        seed=1001,
        spectrum_args={
            "n": 512,
            "fixed_reals": (),
            "fixed_pairs": ((-0.35, 0.5),),
            "real_range": (-1.8, -0.6),
            "pair_re_range": (-1.8, -0.6),
            "pair_im_range": (0.02, 0.4),
            "n_pairs": 80,
        },
        coupling_scale=0.15,
        c=0.5,
        eps=0.5,
        verdicts=["contractive"],
        description=(
            "hopfield/tanh n=512 float32. J_F has its rightmost pair at -0.35 +- 0.5i, the bulk in "
            "Re <= -0.6, and a weak strictly-upper coupling that keeps Sym(J_F) negative definite: no "
            "transient growth, rho < 1."
        ),
    )


def stable_nonnormal() -> Sample:
    """hopfield n=512 (float32) like a trained operator: omega ~ +12 at alpha ~ -0.02, rho < 1.

    ``T = [[L1, N12], [0, L2]]`` with both diagonal blocks quasi-diagonal and ``N12`` a large dense block:
    the eigenvalues are those of ``L1`` and ``L2`` (rightmost -0.02), while ``Sym T`` has an eigenvalue
    near ``||N12||_2 / 2``. The rightmost eigenvalue is separated by >= 0.1 from ``L2`` so that it stays
    well conditioned (its left eigenvector grows like ``||N12|| / gap``) despite the float32 weights.
    ``rho = |1 + eps alpha|`` would be within 0.004 of 1 for the usual eps = 0.1-0.2; eps = 3 puts it at
    0.94, a margin of 0.06, with the whole spectrum in ``[-0.6, -0.02]`` so that ``|1 + 3 lambda| <= 0.8``
    elsewhere.
    """
    rng = np.random.default_rng(1002)
    half = 256
    common = {"real_range": (-0.6, -0.12), "pair_re_range": (-0.5, -0.12), "pair_im_range": (0.02, 0.15)}
    s1 = random_spectrum(rng, half, (-0.02,), (), n_pairs=40, **common)
    s2 = random_spectrum(rng, half, (), (), n_pairs=40, **common)
    t1, _ = schur_blocks(rng, s1)
    t2, _ = schur_blocks(rng, s2)
    n = 2 * half
    t = np.zeros((n, n))
    t[:half, :half] = t1
    t[half:, half:] = t2
    t[:half, half:] = dyadic(coupling(rng, (half, half), 0.79), GRID_BITS)
    c, eps = 0.0, 3.0
    j_nc = exact_conjugation(mixing_basis(rng, n), t, int(math.log2(n))) + (1.0 + c) * np.eye(n)
    tensors = hopfield_from_jacobian(rng, j_nc, c, "tanh", np.float32)

    def checks(rows: list[dict[str, Any]]) -> None:
        (r,) = rows
        assert abs(r["alpha"] + 0.02) <= 0.005, r["alpha"]
        assert 11.0 <= r["omega"] <= 13.0, r["omega"]

    return Sample(
        "stable_nonnormal.safetensors",
        "hopfield",
        "hopfield",
        c,
        eps,
        {"activation": "tanh"},
        tensors,
        ["stable"],
        "hopfield/tanh n=512 float32, like a trained operator: alpha = -0.02 (real, well separated) but "
        "omega ~ +12 from a large dense coupling block N12 in the Schur form (huge non-normality). "
        "eps = 3 so that rho = 1 + eps*alpha = 0.94 sits 0.06 below 1; omega must not be read as the "
        "stability verdict.",
        checks,
        design_eigs=np.concatenate([s1.eigenvalues(), s2.eigenvalues()]),
    )


def hopf() -> Sample:
    """hopfield n=512 (float32): the pair ``0.15 +- 0.6i`` of ``J_F`` leads ``M`` (rho = 1.30)."""
    return _hopfield_sample(
        "hopf.safetensors",
        seed=1003,
        spectrum_args={
            "n": 512,
            "fixed_reals": (),
            "fixed_pairs": ((0.15, 0.6),),
            "real_range": (-1.6, -0.3),
            "pair_re_range": (-1.4, -0.3),
            "pair_im_range": (0.02, 0.5),
            "n_pairs": 100,
        },
        coupling_scale=0.3,
        c=0.0,
        eps=1.0,
        verdicts=["hopf"],
        description=(
            "hopfield/tanh n=512 float32. A complex pair 0.15 +- 0.6i of J_F (Re > 0) leads M = I + J_F: "
            "lead = 1.15 + 0.6i, rho = 1.297, Re(mu_lead) = 0.15; the rest has |1 + lambda| <= 0.86."
        ),
    )


def saddle() -> Sample:
    """rnn n=128 (float64): the real eigenvalue +0.3 of ``J_F`` leads ``M`` (lead = 1.24)."""
    rng = np.random.default_rng(1004)
    n, c, eps = 128, 1.0, 0.8
    spec = random_spectrum(rng, n, (0.3,), ((-0.2, 0.9),), (-1.5, -0.4), (-1.5, -0.4), (0.02, 0.5), 20)
    t, mask = schur_blocks(rng, spec)
    t = t + dyadic(coupling(rng, (n, n), 0.3 / math.sqrt(n)), GRID_BITS) * mask
    j_nc = exact_conjugation(mixing_basis(rng, n), t, int(math.log2(n))) + (1.0 + c) * np.eye(n)
    return Sample(
        "saddle.safetensors",
        "rnn",
        "rnn",
        c,
        eps,
        {"activation": "tanh"},
        rnn_from_jacobian(rng, j_nc, c),
        ["saddle"],
        "rnn/tanh n=128 float64, c = 1, eps = 0.8. The real eigenvalue +0.3 of J_F gives lead = 1.24 "
        "(real); a second, oscillatory unstable pair -0.2 +- 0.9i gives |1 + 0.8 mu| = 1.106 and must "
        "not be mistaken for the lead.",
        design_eigs=spec.eigenvalues(),
    )


def flip() -> Sample:
    """linear n=64 (float64): eigenvalue -3 of ``J_F`` with eps = 1 gives lead = -2."""
    rng = np.random.default_rng(1005)
    n, c, eps = 64, 0.25, 1.0
    spec = random_spectrum(rng, n, (-3.0, -0.15), (), (-1.8, -0.3), (-1.5, -0.3), (0.02, 0.6), 10)
    t, mask = schur_blocks(rng, spec)
    t = t + dyadic(coupling(rng, (n, n), 0.3 / math.sqrt(n)), GRID_BITS) * mask
    j_nc = exact_conjugation(mixing_basis(rng, n), t, int(math.log2(n))) + (1.0 + c) * np.eye(n)
    return Sample(
        "flip.safetensors",
        "linear",
        "linear",
        c,
        eps,
        {},
        linear_from_jacobian(rng, j_nc, c),
        ["flip"],
        "linear n=64 float64, c = 0.25, eps = 1. J_F is continuous-time stable (alpha = -0.15) but has "
        "the eigenvalue -3: lead = 1 + eps*(-3) = -2, period doubling because eps is too large.",
        design_eigs=spec.eigenvalues(),
    )


def neimark_sacker() -> Sample:
    """hopfield/sigmoid n=256 (float64): pair ``-0.4 +- 1.2i`` leads ``M`` with ``|lead| = 1.34``."""
    return _hopfield_sample(
        "neimark_sacker.safetensors",
        seed=1006,
        spectrum_args={
            "n": 256,
            "fixed_reals": (-0.1,),
            "fixed_pairs": ((-0.4, 1.2),),
            "real_range": (-1.6, -0.5),
            "pair_re_range": (-1.4, -0.5),
            "pair_im_range": (0.02, 0.5),
            "n_pairs": 40,
        },
        coupling_scale=0.3,
        c=0.5,
        eps=1.0,
        verdicts=["neimark-sacker"],
        activation="sigmoid",
        dtype=np.float64,
        description=(
            "hopfield/sigmoid n=256 float64, c = 0.5, eps = 1. The continuous flow is stable (alpha = -0.1, "
            "a real eigenvalue) but the pair -0.4 +- 1.2i gives lead = 0.6 + 1.2i, rho = 1.342 with "
            "Re(mu_lead) = -0.4: the step eps is too large."
        ),
    )
