"""``Shifted(B, s)``: the operator ``A = B - s I``, whose Krylov solvers orthogonalize ``B v``.

Truth: dense ``numpy.linalg`` of ``A`` itself. The point of the hint is one Gram-Schmidt pass per
step where the shift dominates (``J_F = J_nc - (1 + c) I`` with a small ``J_nc``): that is checked by
counting the passes of the one kernel, the same solve with the plain matvec of ``A`` as the control.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import spectral_probe.linalg.krylov as krylov
from spectral_probe.linalg import Shifted, krylov_schur, lanczos, largest_modulus, rightmost
from spectral_probe.linalg.result import CountingMatvec

from .matrices import dense_matvec, symmetric

F64 = torch.float64


def _start(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _small_nonnormal(n: int, seed: int, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return scale * (rng.standard_normal((n, n)) / np.sqrt(n) + np.diag(rng.uniform(-1, 1, n)))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), shift=st.floats(-50, 50), seed=st.integers(0, 2**16))
def test_krylov_schur_of_a_shifted_operator_matches_dense(n: int, shift: float, seed: int) -> None:
    b = _small_nonnormal(n, seed, 0.3)
    a = b - shift * np.eye(n)
    found = krylov_schur(Shifted(dense_matvec(b), shift), _start((n,), seed), targets=(rightmost(),), krylov_dim=20)
    result = found["LR"]
    truth = np.linalg.eigvals(a)
    norm = max(np.linalg.norm(a, 2), 1e-300)
    assert bool(result.converged.all())
    assert abs(float(result.values[0].real) - truth.real.max()) <= 1e-7 * norm
    # TRUE residuals and images are those of A, not of B.
    x, image = result.vectors[0], result.images[0]
    assert torch.allclose(image, torch.as_tensor(a, dtype=torch.complex128) @ x, atol=1e-10 * norm)
    assert float(result.residuals[0]) <= 1e-9 * norm


@pytest.mark.parametrize("block", [False, True])
@pytest.mark.parametrize("which", ["LA", "SA"])
def test_lanczos_of_a_shifted_operator_matches_eigh(block: bool, which: str) -> None:
    n, shift = 80, 7.5
    b = symmetric(np.linspace(-0.4, 0.3, n), seed=3)
    x0 = _start((2, n) if block else (n,), 4)
    result = lanczos(Shifted(dense_matvec(b), shift), x0, which=which, nev=2, block=block)
    truth = np.linalg.eigvalsh(b - shift * np.eye(n))
    want = truth[::-1][:2] if which == "LA" else truth[:2]
    assert bool(result.converged.all())
    np.testing.assert_allclose(result.values.numpy(), want, atol=1e-9 * abs(shift))
    residual = torch.as_tensor(b - shift * np.eye(n)) @ result.vectors.T - result.vectors.T * result.values
    assert float(residual.norm(dim=0).max()) <= 1e-9 * abs(shift)


def test_a_dominant_shift_costs_one_gram_schmidt_pass_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # J_F = J_nc - I with a small J_nc: A v is mostly -v, so the plain operator's first pass removes
    # most of the norm and DGKS asks for a second pass at nearly every step; B v has no such component.
    n, shift = 400, 1.0
    b = _small_nonnormal(n, 5, 0.05)
    passes = []
    project = krylov._project

    def counted(*args):
        passes.append(1)
        return project(*args)

    monkeypatch.setattr(krylov, "_project", counted)
    runs = {}
    for name, matvec in (("plain", lambda x, m=dense_matvec(b): m(x) - shift * x), ("shifted", None)):
        matvec = Shifted(dense_matvec(b), shift) if matvec is None else matvec
        passes.clear()
        result = krylov_schur(matvec, _start((n,), 6), targets=(rightmost(), largest_modulus(1.0, 0.5)))
        runs[name] = (len(passes), result["LR"].matvecs, complex(result["LR"].values[0]))
    (plain_passes, plain_products, plain_value), (passes_, products, value) = runs["plain"], runs["shifted"]
    assert plain_passes > 1.6 * plain_products  # the control: a second pass at most steps
    assert passes_ < 1.2 * products  # one pass a step, nearly always
    assert abs(value - plain_value) <= 1e-9 and abs(products - plain_products) <= 2


def test_counting_matvec_counts_the_unshifted_product_as_a_product() -> None:
    b = torch.eye(3, dtype=F64) * 2
    counter = CountingMatvec(Shifted(lambda x: x @ b.T, 0.5), batch_ndim=1)
    x = torch.ones(4, 2, 3, dtype=F64)  # a batch of 4 problems, blocks of 2 vectors
    assert torch.equal(counter(x), 1.5 * x) and torch.equal(counter.unshifted(x), 2 * x)
    assert counter.count == 4 and counter.shift == 0.5
    plain = CountingMatvec(lambda x: 3 * x, batch_ndim=1)
    assert plain.shift == 0.0 and torch.equal(plain.unshifted(x), 3 * x)
