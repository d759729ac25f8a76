"""Generate the sample checkpoints in ``sample_checkpoints/`` and their dense ground truth.

Run ``python scripts/make_samples.py`` (or ``main(out_dir)``). Every file is rebuilt from fixed seeds and
is byte-identical from run to run; ``tests/test_samples_manifest.py`` checks that.

The math (docs/SPEC.md section 1): an operator gives ``nc_force``; the vector field is
``F(z) = nc_force(z) - (1 + c) z`` with Jacobian ``J_F = J_nc - (1 + c) I`` at the fixed point ``z*``, and
the Euler relaxation ``z <- z + eps F(z)`` has the forward map ``M = I + eps J_F``. The probed numbers are

* ``omega = lambda_max((J_F + J_F^T) / 2)`` (numerical abscissa),
* ``alpha = max Re lambda(J_F)`` (spectral abscissa) and ``alpha_imag`` (abs imag of that eigenvalue),
* ``rho = max |lambda(M)|`` with ``lead`` the eigenvalue of ``M`` that attains it (im >= 0) and
  ``mu_lead = (lead - 1) / eps``.

How each sample is designed. Every Jacobian is chosen first, then the weights are solved for, then the
bias is solved for so that ``z*`` is a fixed point by construction:

1. A quasi-upper-triangular (real Schur) matrix ``T`` carries the designed spectrum of ``J_F`` on its
   diagonal: 1x1 blocks ``a`` and 2x2 blocks ``[[a, q], [-q, a]]`` (eigenvalues ``a +- i q``), plus a
   strictly upper "coupling" part that adds non-normality without moving any eigenvalue.
2. ``J_F = Q T Q^T`` in a dense orthogonal basis ``Q = H D1 P H D2 / n`` (``H`` a Sylvester Hadamard
   matrix, ``D`` random signs, ``P`` a random permutation). ``Q`` is integer up to the factor ``1/n`` and
   ``T`` lives on a dyadic grid, so ``Q T Q^T`` is computed EXACTLY in float64: no BLAS summation order
   (which differs between CPUs) can change a bit of the output.
3. ``hopfield`` (``W act(z) + b``): ``J_nc = W diag(act'(z*))``, so ``W = J_nc diag(act'(z*))^-1`` and
   ``b = (1 + c) z* - W act(z*)``. ``rnn`` (``act(W z + b)``): ``J_nc = diag(act'(u*)) W`` with
   ``act(u*) = (1 + c) z*``, so ``W = diag(act'(u*))^-1 J_nc`` and ``b = u* - W z*``. ``linear``:
   ``A = J_nc`` and ``b = (1 + c) z* - A z*``. Activation values are chosen on a dyadic grid
   (``tanh(z*) = t``) so that ``act'(z*) = 1 - t^2`` is exact.
4. Matrix-vector products that feed a stored bias are summed with ``math.fsum`` (one rounding, no
   dependence on the BLAS) and scalar transcendental functions come from ``math`` (libm), not from
   numpy's CPU-dispatched SIMD loops. The safetensors files are written by hand with a fixed header order
   (the ``safetensors`` package serializes its metadata from a hash map, in a different order every run).

After writing, the script re-reads every file with ``safetensors.numpy``, rebuilds ``J_F`` densely with
numpy in float64 from the STORED tensors (independent of the ``spectral_probe`` package), computes the
numbers above with ``numpy.linalg`` and asserts that each sample sits inside its verdict region with a
margin of at least ``MARGIN`` (and that the leading eigenvalue is isolated where the verdict depends on
it). The truth goes to ``expected.json``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import struct
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

#: Default verdict band of docs/SPEC.md section 2.
BAND = 1e-6
#: Every sample sits at least this far from each boundary of its verdict region (rho, omega, Re mu ...).
MARGIN = 0.05
#: Size cap per file.
MAX_BYTES = 2 * 1024 * 1024
#: ``lead`` counts as complex when ``|Im lead| > COMPLEX_TOL * max(1, rho)``; the samples have either an
#: exactly zero imaginary part or one of at least ``MARGIN``, so any sane rule agrees.
COMPLEX_TOL = 1e-8
#: Grid of the designed Schur matrices: entries are multiples of ``2**-GRID_BITS``.
GRID_BITS = 16
#: Grid of fixed-point coordinates and activation values.
VALUE_BITS = 12
#: ``--operator`` argument for the plugin sample, relative to the repository root.
PLUGIN_ARG = "sample_checkpoints/plugin/plugin_operator.py:make_force"
#: Gain of the plugin net's second layer: the window where its verdict is ``stable`` with margins
#: (omega >= 0.05 needs a gain >= 0.98, rho <= 0.95 needs a gain <= 1.15).
PLUGIN_GAIN = 1.05

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "sample_checkpoints"

_ST_DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}


# --------------------------------------------------------------------------------------------------
# Deterministic building blocks
# --------------------------------------------------------------------------------------------------


def dyadic(x: np.ndarray | float, bits: int) -> np.ndarray:
    """Round to the grid ``2**-bits`` (exact: scaling by a power of two never rounds)."""
    scale = 2.0**bits
    return np.round(np.asarray(x, dtype=np.float64) * scale) / scale


def uniform(rng: np.random.Generator, low: float, high: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Uniform samples from ``Generator.random`` only (its stream is the simplest and most stable)."""
    return low + (high - low) * rng.random(size)


def permutation(rng: np.random.Generator, n: int) -> np.ndarray:
    """A random permutation as a stable argsort of uniforms (no reliance on ``Generator.permutation``)."""
    return np.argsort(rng.random(n), kind="stable")


def signs(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random +-1 entries."""
    return np.where(rng.random(n) < 0.5, -1.0, 1.0)


def hadamard(n: int) -> np.ndarray:
    """Sylvester Hadamard matrix of order ``n`` (a power of two): entries +-1, ``H H^T = n I``."""
    if n < 1 or n & (n - 1):
        raise ValueError(f"n = {n} is not a power of two")
    h = np.ones((1, 1))
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h


def mixing_basis(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer matrix ``G = H D1 P H D2`` with ``G G^T = n^2 I``: ``Q = G / n`` is a dense orthogonal basis.

    Entries are integers of size ~sqrt(n), so products with dyadic matrices are exact in float64.
    """
    h = hadamard(n)
    left = (h * signs(rng, n)[None, :])[:, permutation(rng, n)]
    g = left @ (h * signs(rng, n)[None, :])
    if not np.array_equal(g @ g.T, n * n * np.eye(n)):
        raise AssertionError("mixing basis is not orthogonal")
    return g


def exact_conjugation(g: np.ndarray, t: np.ndarray, g_scale_log2: int) -> np.ndarray:
    """``(g / 2**s) T (g / 2**s)^T`` computed exactly: every partial sum is an integer below 2**53.

    ``T`` must lie on the ``2**-GRID_BITS`` grid. The bound ``|g| |T| |g|^T < 2**52`` guarantees that
    every product and partial sum of both matrix products is an exactly representable integer, whatever
    order the BLAS adds them in.
    """
    t_int = np.round(t * 2.0**GRID_BITS)
    if not np.array_equal(t_int, t * 2.0**GRID_BITS):
        raise AssertionError("T is not on the dyadic grid")
    bound = np.abs(g) @ np.abs(t_int) @ np.abs(g).T
    if bound.max() >= 2.0**52 or (np.abs(g) @ np.abs(t_int)).max() >= 2.0**52:
        raise AssertionError("exactness bound violated: lower GRID_BITS")
    return (g @ t_int @ g.T) * 2.0 ** -(2 * g_scale_log2 + GRID_BITS)


@dataclass(frozen=True)
class Spectrum:
    """A designed spectrum for ``J_F``: real eigenvalues and complex pairs ``a +- i q`` (``q > 0``)."""

    reals: tuple[float, ...]
    pairs: tuple[tuple[float, float], ...]

    @property
    def size(self) -> int:
        return len(self.reals) + 2 * len(self.pairs)

    def eigenvalues(self) -> np.ndarray:
        """All eigenvalues, pairs as both conjugates."""
        vals = [complex(a, 0.0) for a in self.reals]
        for a, q in self.pairs:
            vals += [complex(a, q), complex(a, -q)]
        return np.array(vals)


def random_spectrum(
    rng: np.random.Generator,
    n: int,
    fixed_reals: tuple[float, ...],
    fixed_pairs: tuple[tuple[float, float], ...],
    real_range: tuple[float, float],
    pair_re_range: tuple[float, float],
    pair_im_range: tuple[float, float],
    n_pairs: int,
) -> Spectrum:
    """Designed eigenvalues (``fixed_*``) plus a random bulk, everything on the dyadic grid."""
    n_reals = n - len(fixed_reals) - 2 * (len(fixed_pairs) + n_pairs)
    if n_reals < 0:
        raise ValueError("too many eigenvalues for n")
    reals = np.concatenate([np.array(fixed_reals, dtype=float), uniform(rng, *real_range, n_reals)])
    pair_a = uniform(rng, *pair_re_range, n_pairs)
    pair_q = uniform(rng, *pair_im_range, n_pairs)
    pairs = [(float(a), float(q)) for a, q in fixed_pairs] + list(zip(pair_a, pair_q, strict=True))
    return Spectrum(
        reals=tuple(float(x) for x in dyadic(reals, GRID_BITS)),
        pairs=tuple((float(dyadic(a, GRID_BITS)), float(dyadic(q, GRID_BITS))) for a, q in pairs),
    )


def schur_blocks(rng: np.random.Generator, spectrum: Spectrum) -> tuple[np.ndarray, np.ndarray]:
    """Place the spectrum's 1x1 and 2x2 blocks on a diagonal in random order.

    Returns the block-diagonal matrix and a mask of the strictly-upper entries outside every block (where
    coupling can go without changing the eigenvalues).
    """
    n = spectrum.size
    blocks: list[tuple[float, float]] = [(a, 0.0) for a in spectrum.reals] + list(spectrum.pairs)
    order = permutation(rng, len(blocks))
    t = np.zeros((n, n))
    mask = np.triu(np.ones((n, n), dtype=bool), k=1)
    pos = 0
    for k in order:
        a, q = blocks[k]
        if q == 0.0:
            t[pos, pos] = a
            pos += 1
        else:
            t[pos : pos + 2, pos : pos + 2] = [[a, q], [-q, a]]
            mask[pos, pos + 1] = False
            pos += 2
    return t, mask


def coupling(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Uniform entries with standard deviation ``scale`` (variance of ``U(-s sqrt3, s sqrt3)`` is s^2)."""
    return uniform(rng, -math.sqrt(3.0) * scale, math.sqrt(3.0) * scale, shape)


def exact_rows_dot(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``a @ x`` with each row summed by ``math.fsum``: one rounding, independent of the BLAS."""
    prod = np.asarray(a, dtype=np.float64) * np.asarray(x, dtype=np.float64)[None, :]
    return np.array([math.fsum(row) for row in prod])


def vmap_math(fn: Callable[[float], float], x: np.ndarray) -> np.ndarray:
    """Apply a scalar libm function elementwise (numpy's SIMD loops differ between CPUs)."""
    flat = [fn(float(v)) for v in np.asarray(x, dtype=np.float64).ravel()]
    return np.array(flat).reshape(np.shape(x))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# --------------------------------------------------------------------------------------------------
# Safetensors writer with a deterministic header
# --------------------------------------------------------------------------------------------------


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a ``.safetensors`` file byte-for-byte deterministically.

    Layout (the safetensors format): little-endian u64 header length, a JSON header padded with spaces to
    a multiple of 8, then the raw little-endian tensor bytes without holes. Metadata keys are sorted and
    tensors are ordered by (itemsize descending, name), which keeps every tensor aligned to its itemsize.
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    names = sorted(tensors, key=lambda k: (-tensors[k].dtype.itemsize, k))
    chunks: list[bytes] = []
    offset = 0
    for name in names:
        arr = np.ascontiguousarray(tensors[name])
        code = _ST_DTYPES[arr.dtype]
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


def probe_metadata(operator: str | None, c: float, eps: float, options: dict[str, Any]) -> dict[str, str]:
    """docs/SPEC.md section 3 metadata (all values are strings; options as a JSON object)."""
    md = {
        "spectral_probe.c": repr(float(c)),
        "spectral_probe.eps": repr(float(eps)),
        "spectral_probe.options": json.dumps(options, sort_keys=True),
    }
    if operator is not None:
        md["spectral_probe.operator"] = operator
    return md


# --------------------------------------------------------------------------------------------------
# Operator constructions: Jacobian first, weights second, bias last
# --------------------------------------------------------------------------------------------------


def hopfield_from_jacobian(
    rng: np.random.Generator, j_nc: np.ndarray, c: float, activation: str, dtype: type[np.floating]
) -> dict[str, np.ndarray]:
    """``W act(z) + b`` with ``W diag(act'(z*)) = J_nc`` and ``F(z*) = 0``.

    The activation values ``s = act(z*)`` are drawn on a dyadic grid so that ``act'(z*)`` (``1 - s^2`` for
    tanh, ``s (1 - s)`` for sigmoid) is exact; ``z* = act^-1(s)`` is rounded to ``dtype`` and the bias is
    solved from the STORED ``W`` and ``z*``: ``b = (1 + c) z* - W act(z*)`` (one rounding to ``dtype``).
    """
    n = j_nc.shape[0]
    if activation == "tanh":
        s = dyadic(uniform(rng, -0.85, 0.85, n), VALUE_BITS)
        deriv = 1.0 - s * s
        z = vmap_math(math.atanh, s)
        act = math.tanh
    elif activation == "sigmoid":
        s = dyadic(uniform(rng, 0.1, 0.9, n), VALUE_BITS)
        deriv = s * (1.0 - s)
        z = vmap_math(lambda v: math.log(v / (1.0 - v)), s)
        act = _sigmoid
    else:
        raise ValueError(activation)
    w = (j_nc / deriv[None, :]).astype(dtype)
    z = z.astype(dtype)
    z64 = z.astype(np.float64)
    b = ((1.0 + c) * z64 - exact_rows_dot(w, vmap_math(act, z64))).astype(dtype)
    return {"W": w, "b": b, "z_star": z}


def rnn_from_jacobian(rng: np.random.Generator, j_nc: np.ndarray, c: float) -> dict[str, np.ndarray]:
    """``tanh(W z + b)`` with ``diag(1 - y^2) W = J_nc`` and ``b = u* - W z*``.

    ``y = tanh(u*) = (1 + c) z*`` is drawn on a dyadic grid, so ``1 - y^2`` is exact.
    """
    n = j_nc.shape[0]
    y = dyadic(uniform(rng, -0.8, 0.8, n), VALUE_BITS)
    z = y / (1.0 + c)  # exact for the dyadic c used here
    w = j_nc / (1.0 - y * y)[:, None]
    b = vmap_math(math.atanh, y) - exact_rows_dot(w, z)
    return {"W": w, "b": b, "z_star": z}


def linear_from_jacobian(rng: np.random.Generator, j_nc: np.ndarray, c: float) -> dict[str, np.ndarray]:
    """``A z + b`` with ``A = J_nc`` and ``b = (1 + c) z* - A z*``."""
    n = j_nc.shape[0]
    z = dyadic(uniform(rng, -1.0, 1.0, n), VALUE_BITS)
    b = (1.0 + c) * z - exact_rows_dot(j_nc, z)
    return {"A": j_nc.copy(), "b": b, "z_star": z}


# --------------------------------------------------------------------------------------------------
# Dense float64 truth from the stored tensors (numpy only; independent of spectral_probe)
# --------------------------------------------------------------------------------------------------


def _act_and_deriv(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if name == "tanh":
        t = np.tanh(x)
        return t, 1.0 - t * t
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-x))
        return s, s * (1.0 - s)
    raise ValueError(f"unsupported activation {name!r}")


def force_and_jacobian(
    operator: str, params: dict[str, np.ndarray], options: dict[str, Any], z: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``nc_force(z)`` and its dense Jacobian ``J_nc`` in float64 (``operator`` "plugin" = 2-layer net)."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    act = options.get("activation", "tanh")
    if operator == "linear":
        a = p["A"]
        return a @ z + p.get("b", 0.0), a
    if operator == "hopfield":
        w = p["W"]
        s, ds = _act_and_deriv(act, z)
        return w @ s + p.get("b", 0.0), w * ds[None, :]
    if operator == "rnn":
        w = p["W"]
        s, ds = _act_and_deriv(act, w @ z + p.get("b", 0.0))
        return s, ds[:, None] * w
    if operator == "plugin":  # sample_checkpoints/plugin/plugin_operator.py: W2 act(W1 z + b1) + b2
        s, ds = _act_and_deriv(act, p["W1"] @ z + p["b1"])
        return p["W2"] @ s + p["b2"], p["W2"] @ (ds[:, None] * p["W1"])
    raise ValueError(operator)


def _partner_excluded(values: np.ndarray, idx: int) -> np.ndarray:
    """Mask of all eigenvalues except ``values[idx]`` and (for a complex one) its conjugate partner."""
    keep = np.ones(values.size, dtype=bool)
    keep[idx] = False
    if values[idx].imag != 0.0:
        dist = np.abs(values - np.conj(values[idx]))
        dist[idx] = np.inf
        keep[int(np.argmin(dist))] = False
    return keep


def verdict(rho: float, lead: complex, mu_lead: complex, omega: float, band: float = BAND) -> str:
    """docs/SPEC.md section 2."""
    if rho < 1.0 - band:
        return "contractive" if omega < 0.0 else "stable"
    if abs(rho - 1.0) <= band:
        return "marginal"
    if abs(lead.imag) > COMPLEX_TOL * max(1.0, rho):
        return "hopf" if mu_lead.real > 0.0 else "neimark-sacker"
    return "saddle" if lead.real > 1.0 else "flip"


def spectral_numbers(lam: np.ndarray, eps: float) -> dict[str, Any]:
    """alpha, rho, lead, mu_lead and separations from the eigenvalues ``lam`` of ``J_F``.

    Conjugate pairs are reported by the member with ``im >= 0``. ``*_separation`` is how far the reported
    eigenvalue stands from the next one that is not its conjugate (in ``|.|`` for ``M``, in real part for
    ``J_F``): a Krylov solver can only be expected to agree on ``lead``/``alpha`` when it is not tiny.
    """
    lam = np.asarray(lam, dtype=np.complex128)
    ia = int(np.lexsort((-lam.imag, -lam.real))[0])  # rightmost, im >= 0 member of a pair
    rest = lam[_partner_excluded(lam, ia)].real
    m = 1.0 + eps * lam
    mod = np.abs(m)
    im_ = int(np.lexsort((-m.imag, -mod))[0])
    rest_mod = mod[_partner_excluded(m, im_)]
    rho = float(mod[im_])
    lead = complex(m[im_].real, abs(m[im_].imag))
    mu = (lead - 1.0) / eps
    return {
        "alpha": float(lam[ia].real),
        "alpha_imag": float(abs(lam[ia].imag)),
        "rho": rho,
        "lead_real": lead.real,
        "lead_imag": lead.imag,
        "mu_lead_real": mu.real,
        "mu_lead_imag": mu.imag,
        "lead_separation": float(rho - rest_mod.max()) if rest_mod.size else math.inf,
        "alpha_separation": float(lam[ia].real - rest.max()) if rest.size else math.inf,
    }


def dense_truth(j_f: np.ndarray, eps: float) -> dict[str, Any]:
    """omega, alpha, rho, lead ... and the verdict of ``J_F`` by dense float64 ``numpy.linalg``."""
    omega = float(np.linalg.eigvalsh(0.5 * (j_f + j_f.T))[-1])
    nums = spectral_numbers(np.linalg.eigvals(j_f), eps)
    lead = complex(nums["lead_real"], nums["lead_imag"])
    mu = complex(nums["mu_lead_real"], nums["mu_lead_imag"])
    return {
        "omega": omega,
        **nums,
        "gap": omega - nums["alpha"],
        "verdict": verdict(nums["rho"], lead, mu, omega),
    }


def read_sample(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Tensors (numpy) and metadata of a safetensors file."""
    with path.open("rb") as fh:
        (hlen,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(hlen))
    return load_file(str(path)), header.get("__metadata__", {})


def truth_of_file(path: Path, operator: str) -> list[dict[str, Any]]:
    """Per fixed point (row of ``z_star``): dense truth and fixed-point residuals from the stored tensors.

    The residuals are evaluated in float64 from the stored (possibly float32) tensors, so for the float32
    samples they measure the rounding of the stored bias, the only error left by the construction.
    """
    tensors, md = read_sample(path)
    c = float(md.get("spectral_probe.c", "0"))
    eps = float(md.get("spectral_probe.eps", "1"))
    options = json.loads(md.get("spectral_probe.options", "{}"))
    params = {k: v for k, v in tensors.items() if k != "z_star"}
    zs = np.atleast_2d(tensors["z_star"].astype(np.float64))
    out = []
    for index, z in enumerate(zs):
        force, j_nc = force_and_jacobian(operator, params, options, z)
        resid = float(np.linalg.norm(force - (1.0 + c) * z))
        znorm = float(np.linalg.norm(z))
        scale = float(np.linalg.norm(force)) + (1.0 + c) * znorm
        row = {"index": index, **dense_truth(j_nc - (1.0 + c) * np.eye(z.size), eps)}
        row["residual_norm"] = resid  # ||F(z*)||_2
        row["residual_rel"] = resid / znorm if znorm > 0.0 else None  # ||F(z*)|| / ||z*||
        # normwise backward error ||F|| / (||nc_force(z*)|| + (1 + c) ||z*||)
        row["backward_error"] = resid / scale if scale > 0.0 else 0.0
        out.append(row)
    return out


# --------------------------------------------------------------------------------------------------
# The samples
# --------------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """One generated file and what the manifest says about it."""

    name: str
    operator: str | None  # registered name written to the metadata; None for the plugin
    truth_operator: str  # how the dense truth evaluates it
    c: float
    eps: float
    options: dict[str, Any]
    tensors: dict[str, np.ndarray]
    verdicts: list[str]
    description: str
    extra_checks: Callable[[list[dict[str, Any]]], None] | None = None
    manifest_extra: dict[str, Any] = field(default_factory=dict)
    #: The eigenvalues of ``J_F`` built into the Schur form; the dense truth from the stored (rounded)
    #: tensors must reproduce them, which also shows that they are well conditioned.
    design_eigs: np.ndarray | None = None


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


def _r_of_gain(g: float) -> float:
    """The root ``r > 0`` of ``r / tanh(r) = g`` (``g > 1``) by bisection to the last bit."""
    lo, hi = 1e-12, 64.0
    while True:
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            return lo if abs(lo / math.tanh(lo) - g) <= abs(hi / math.tanh(hi) - g) else hi
        if mid / math.tanh(mid) < g:
            lo = mid
        else:
            hi = mid


def batched() -> Sample:
    """hopfield/tanh n=64, b = 0, four exact fixed points ``[z1, -z1, z2, 0]`` (float64).

    ``W = U Lambda U^T`` with ``U = H diag(signs) P / 8`` orthogonal (its columns are +-1/8 vectors) and
    ``Lambda`` block diagonal: ``g1`` on ``u1``, ``g2`` on ``u2``, the pair ``p +- i q`` and a small bulk.
    With ``s_k = 8 u_k`` (entries +-1) and ``z_k = r_k s_k``: ``tanh(z_k) = tanh(r_k) s_k``, so
    ``W tanh(z_k) = g_k tanh(r_k) s_k = (1 + c) z_k`` iff ``r_k / tanh(r_k) = g_k / (1 + c)``; tanh is odd,
    so ``-z_k`` is a fixed point too, and so is 0. At ``z = r s`` (any sign pattern) ``act'(z) = d I`` with
    ``d = sech^2(r)``, hence ``J_F = d W - (1 + c) I`` whose eigenvalues are ``d lambda_k(W) - (1 + c)``;
    ``W`` is normal, so ``omega = d max_k Re lambda_k(W) - (1 + c)`` as well.
    """
    rng = np.random.default_rng(1007)
    n, c, eps = 64, 0.0, 0.5
    g1, g2, p, q = 1.5, 5.0, 1.25, 5.75
    bulk = random_spectrum(rng, n - 4, (), (), (-0.5, 0.3), (-0.4, 0.2), (0.05, 0.4), 10)
    lam = np.zeros((n, n))
    lam[0, 0], lam[1, 1] = g1, g2
    lam[2:4, 2:4] = [[p, q], [-q, p]]
    bulk_t, _ = schur_blocks(rng, bulk)  # block diagonal only: W stays normal
    lam[4:, 4:] = bulk_t
    u_int = (hadamard(n) * signs(rng, n)[None, :])[:, permutation(rng, n)]  # U = u_int / 8
    w = exact_conjugation(u_int, lam, 3)
    s1, s2 = u_int[:, 0], u_int[:, 1]
    if not (np.array_equal(w @ s1, g1 * s1) and np.array_equal(w @ s2, g2 * s2)):
        raise AssertionError("W s_k = g_k s_k must hold exactly")
    r1, r2 = _r_of_gain(g1 / (1.0 + c)), _r_of_gain(g2 / (1.0 + c))
    z = np.stack([r1 * s1, -r1 * s1, r2 * s2, np.zeros(n)])
    w_eigs = np.concatenate([[g1, g2, complex(p, q), complex(p, -q)], bulk.eigenvalues()])
    rows_d = [1.0 - math.tanh(r1) ** 2, 1.0 - math.tanh(r1) ** 2, 1.0 - math.tanh(r2) ** 2, 1.0]

    closed = []
    for d in rows_d:
        mu = d * w_eigs - (1.0 + c)
        m = np.abs(1.0 + eps * mu)
        closed.append(
            {
                "d": d,
                "omega": d * float(w_eigs.real.max()) - (1.0 + c),
                "alpha": float(mu.real.max()),
                "rho": float(m.max()),
            }
        )

    def checks(rows: list[dict[str, Any]]) -> None:
        for row, cf in zip(rows, closed, strict=True):
            for key in ("omega", "alpha", "rho"):
                assert abs(row[key] - cf[key]) <= 1e-9, (row["index"], key, row[key], cf[key])

    sample = Sample(
        "batched.safetensors",
        "hopfield",
        "hopfield",
        c,
        eps,
        {"activation": "tanh"},
        {"W": w, "z_star": z},
        ["saddle", "saddle", "contractive", "hopf"],
        "hopfield/tanh n=64 float64 with NO bias tensor (b = 0) and z_star of shape [4, 64]: rows "
        "[z1, -z1, z2, 0], each an exact fixed point. Row 0 and 1 (+-z1, same Jacobian): saddle (the g2 "
        "direction, lead = 1 + eps (d1 g2 - 1) real). Row 2 (z2, deep in saturation): contractive. Row 3 "
        "(the origin, J_F = W - I): hopf (the pair p +- iq of W).",
        checks,
    )
    sample.manifest_extra["closed_form"] = {
        "formula": (
            "W = U blockdiag(g1, g2, [[p, q], [-q, p]], bulk) U^T (normal); z_k = r_k s_k with "
            "r_k / tanh(r_k) = g_k / (1 + c); at row z = r s: J_F = d W - (1 + c) I, d = sech^2(r) (d = 1 at "
            "0); eigenvalues d lambda(W) - (1 + c); omega = d max Re lambda(W) - (1 + c); "
            "rho = max |1 + eps (d lambda(W) - (1 + c))|"
        ),
        "g1": g1,
        "g2": g2,
        "p": p,
        "q": q,
        "r1": r1,
        "r2": r2,
        "rows": closed,
    }
    return sample


def plugin_example() -> Sample:
    """A user-plugin sample: ``nc_force(z) = W2 tanh(W1 z + b1) + b2`` (n = 32, hidden = 64, float64).

    ``J_nc = W2 diag(1 - tanh(u*)^2) W1`` with ``u* = W1 z* + b1``; ``b2 = (1 + c) z* - W2 tanh(u*)``. The
    weights are random (a small generic 2-layer net); the gain of ``W2`` puts the verdict at ``stable``
    (omega > 0 from the non-normal product, alpha < 0, rho < 1).
    """
    rng = np.random.default_rng(1008)
    n, h, c, eps = 32, 64, 0.0, 1.0
    w1 = dyadic(coupling(rng, (h, n), 1.0 / math.sqrt(n)), GRID_BITS)
    b1 = dyadic(uniform(rng, -0.5, 0.5, h), GRID_BITS)
    w2 = dyadic(coupling(rng, (n, h), PLUGIN_GAIN / math.sqrt(h)), GRID_BITS)
    z = dyadic(uniform(rng, -1.0, 1.0, n), VALUE_BITS)
    u = w1 @ z + b1  # exact: few-bit dyadic operands
    b2 = (1.0 + c) * z - exact_rows_dot(w2, vmap_math(math.tanh, u))
    return Sample(
        "plugin/plugin_example.safetensors",
        None,
        "plugin",
        c,
        eps,
        {"activation": "tanh"},
        {"W1": w1, "b1": b1, "W2": w2, "b2": b2, "z_star": z},
        ["stable"],
        "A 2-layer tanh net nc_force(z) = W2 tanh(W1 z + b1) + b2 (n = 32, hidden = 64, float64) for the "
        f"user plugin sample_checkpoints/plugin/plugin_operator.py. Its metadata names no operator: pass "
        f"--operator {PLUGIN_ARG}.",
        manifest_extra={"operator_arg": PLUGIN_ARG},
    )


def closed_form_2d() -> Sample:
    """hopfield/tanh n = 2 with eigenvalues in closed form.

    ``z* = (ln 2, 0)``: ``tanh(ln 2) = 3/5`` exactly, so ``act'(z*) = diag(16/25, 1)`` and with
    ``W = [[-1, -10], [1/2, -1]]``, ``c = 0``: ``J_F = [[-1.64, -10], [0.32, -2]]``, trace ``tau = -3.64``,
    determinant ``Delta = 6.48``, eigenvalues ``tau/2 +- i sqrt(Delta - tau^2/4) = -1.82 +- 1.7798i``;
    ``omega = tau/2 + sqrt(((a - d)/2)^2 + ((b + c')/2)^2) = -1.82 + sqrt(0.0324 + 23.4256) = +3.0234``;
    with ``eps = 1/4``: ``lead = 1 + eps mu = 0.545 + 0.44495i``, ``rho = 0.7036``: stable although
    ``omega > 0``. ``b = z* - W (3/5, 0) = (ln 2 + 3/5, -3/10)``.
    """
    c, eps = 0.0, 0.25
    w = np.array([[-1.0, -10.0], [0.5, -1.0]])
    z = np.array([math.log(2.0), 0.0])
    b = (1.0 + c) * z - w @ np.array([0.6, 0.0])
    d1 = 1.0 - 0.6**2
    a11, a12, a21, a22 = w[0, 0] * d1 - (1 + c), w[0, 1], w[1, 0] * d1, w[1, 1] - (1 + c)
    tau, delta = a11 + a22, a11 * a22 - a12 * a21
    im = math.sqrt(delta - tau * tau / 4.0)
    omega = tau / 2.0 + math.hypot((a11 - a22) / 2.0, (a12 + a21) / 2.0)
    lead = complex(1.0 + eps * tau / 2.0, eps * im)
    closed = {
        "formula": (
            "z* = (ln 2, 0), tanh(ln 2) = 3/5, act'(z*) = (16/25, 1); J_F = W diag(16/25, 1) - (1 + c) I = "
            "[[a, b], [c', d]]; tau = a + d, Delta = a d - b c'; lambda = tau/2 +- i sqrt(Delta - tau^2/4); "
            "omega = tau/2 + sqrt(((a - d)/2)^2 + ((b + c')/2)^2); lead = 1 + eps lambda (im >= 0), "
            "rho = |lead|"
        ),
        "J_F": [[a11, a12], [a21, a22]],
        "tau": tau,
        "Delta": delta,
        "omega": omega,
        "alpha": tau / 2.0,
        "alpha_imag": im,
        "rho": abs(lead),
        "lead_real": lead.real,
        "lead_imag": lead.imag,
    }

    def checks(rows: list[dict[str, Any]]) -> None:
        (r,) = rows
        for key in ("omega", "alpha", "alpha_imag", "rho", "lead_real", "lead_imag"):
            assert abs(r[key] - closed[key]) <= 1e-12, (key, r[key], closed[key])

    sample = Sample(
        "closed_form_2d.safetensors",
        "hopfield",
        "hopfield",
        c,
        eps,
        {"activation": "tanh"},
        {"W": w, "b": b, "z_star": z},
        ["stable"],
        "hopfield/tanh n=2 float64 with a closed-form spectrum (see closed_form): a stable spiral whose "
        "omega = +3.02 > 0 (non-normal W), rho = 0.704.",
        checks,
    )
    sample.manifest_extra["closed_form"] = closed
    return sample


SAMPLES: tuple[Callable[[], Sample], ...] = (
    contractive,
    stable_nonnormal,
    hopf,
    saddle,
    flip,
    neimark_sacker,
    batched,
    plugin_example,
    closed_form_2d,
)


# --------------------------------------------------------------------------------------------------
# Checks and manifest
# --------------------------------------------------------------------------------------------------


def assert_region(row: dict[str, Any], expected: str, name: str) -> None:
    """The row gets ``expected`` with at least ``MARGIN`` to every boundary that decides it."""
    where = f"{name}[{row['index']}]"
    assert row["verdict"] == expected, (where, row["verdict"], expected)
    assert row["lead_imag"] == 0.0 or row["lead_imag"] >= MARGIN, (where, "lead neither real nor complex")
    rho, mu = row["rho"], row["mu_lead_real"]
    if expected in ("contractive", "stable"):
        assert rho <= 1.0 - MARGIN, (where, rho)
        assert (row["omega"] <= -MARGIN) if expected == "contractive" else (row["omega"] >= MARGIN), where
        return
    assert rho >= 1.0 + MARGIN and row["lead_separation"] >= MARGIN, (where, rho, row["lead_separation"])
    if expected == "hopf":
        assert mu >= MARGIN, (where, mu)
    elif expected == "neimark-sacker":
        assert mu <= -MARGIN and row["alpha"] <= -MARGIN, (where, mu)
    elif expected == "saddle":
        assert row["lead_real"] >= 1.0 + MARGIN, where
    elif expected == "flip":
        assert row["lead_real"] <= -1.0 - MARGIN, where


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run dense LAPACK single-threaded, then restore the previous thread count.

    On a couple of shared cores a threaded OpenBLAS ``dgeev`` of n = 512 is several times SLOWER than a
    single-threaded one (oversubscription). This is what ``threadpoolctl`` does; it is used when present,
    otherwise the OpenBLAS libraries already loaded in the process are asked through ctypes. Best effort:
    it never fails, it only leaves the thread count alone.
    """
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-not-found]
    except ImportError:
        threadpool_limits = None
    if threadpool_limits is not None:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
        return
    restore: list[tuple[Any, int]] = []
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        maps = ""
    libs = sorted({ln.split()[-1] for ln in maps.splitlines() if "openblas" in ln.rsplit("/", 1)[-1]})
    for lib_path in libs:
        try:
            lib = ctypes.CDLL(lib_path)
        except OSError:
            continue
        for prefix in ("scipy_openblas", "openblas"):
            for suffix in ("64_", ""):
                getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                if getter is not None and setter is not None:
                    restore.append((setter, int(getter())))
                    setter(1)
                    break
            else:
                continue
            break
    try:
        yield
    finally:
        for setter, count in restore:
            setter(count)


def _clean(value: Any) -> Any:
    """JSON-safe copy (numpy scalars to Python, inf to None)."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(out_dir: Path = DEFAULT_OUT) -> dict[str, Any]:
    """Write every sample and ``expected.json`` into ``out_dir``; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "version": 1,
        "generator": "python scripts/make_samples.py",
        "band": BAND,
        "margin": MARGIN,
        "complex_rule": f"lead is complex iff |Im lead| > {COMPLEX_TOL} * max(1, rho)",
        "truth": "numpy.linalg float64 dense, from the stored tensors (independent of spectral_probe)",
        "samples": {},
    }
    with single_threaded_blas():
        for build in SAMPLES:
            sample = build()
            path = out_dir / sample.name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_safetensors(
                path, sample.tensors, probe_metadata(sample.operator, sample.c, sample.eps, sample.options)
            )
            size = path.stat().st_size
            assert size <= MAX_BYTES, (sample.name, size)
            rows = truth_of_file(path, sample.truth_operator)
            assert len(rows) == len(sample.verdicts), sample.name
            for row, expected in zip(rows, sample.verdicts, strict=True):
                assert_region(row, expected, sample.name)
                rel = row["residual_rel"]
                assert (rel if rel is not None else row["residual_norm"]) <= 1e-6, (sample.name, row)
            if sample.extra_checks is not None:
                sample.extra_checks(rows)
            design = None
            if sample.design_eigs is not None:
                design = spectral_numbers(sample.design_eigs, sample.eps)
                # rounding W to float32 moves these well-conditioned eigenvalues by < 1e-6 (seen: 3e-7)
                tol = 1e-5 if sample.tensors["z_star"].dtype == np.float32 else 1e-9
                for key in ("alpha", "alpha_imag", "rho", "lead_real", "lead_imag"):
                    assert abs(rows[0][key] - design[key]) <= tol, (
                        sample.name,
                        key,
                        rows[0][key],
                        design[key],
                    )
            z = sample.tensors["z_star"]
            entry = {
                "description": sample.description,
                "operator": sample.operator,
                "operator_arg": sample.manifest_extra.get("operator_arg"),
                "options": sample.options,
                "c": sample.c,
                "eps": sample.eps,
                "n": int(z.shape[-1]),
                "batch": int(z.shape[0]) if z.ndim == 2 else None,
                "dtype": str(z.dtype),
                "bytes": size,
                "expected_verdicts": sample.verdicts,
                "results": rows,
            }
            if design is not None:
                entry["design"] = {
                    "note": "numbers of the eigenvalues built into the Schur form, before storage rounding",
                    **{k: design[k] for k in ("alpha", "alpha_imag", "rho", "lead_real", "lead_imag")},
                }
            entry.update({k: v for k, v in sample.manifest_extra.items() if k != "operator_arg"})
            manifest["samples"][sample.name] = _clean(entry)
    (out_dir / "expected.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


if __name__ == "__main__":
    result = main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT)
    for fname, info in result["samples"].items():
        for r in info["results"]:
            print(
                f"{fname:30s} [{r['index']}] omega={r['omega']:+.4f} alpha={r['alpha']:+.4f} "
                f"rho={r['rho']:.4f} lead={r['lead_real']:+.4f}{r['lead_imag']:+.4f}i "
                f"resid={r['residual_norm']:.1e} -> {r['verdict']}"
            )
