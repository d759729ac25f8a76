"""The dense path against numpy.linalg (an independent implementation) and closed forms."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spectral_probe.linalg.dense import dense_spectrum


def numpy_truth(jf: np.ndarray, eps: float):
    mu = np.linalg.eigvals(jf)
    omega = np.linalg.eigvalsh((jf + jf.T) / 2)[-1]
    lead_mu = mu[np.argmax(np.abs(1 + eps * mu))]
    return omega, mu.real.max(), abs(1 + eps * lead_mu), np.linalg.norm(np.eye(len(jf)) + eps * jf, 2)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(0, 2**31 - 1), st.floats(0.05, 1.5))
def test_against_numpy(n: int, seed: int, eps: float) -> None:
    rng = np.random.default_rng(seed)
    jf = rng.standard_normal((n, n)) / np.sqrt(n) - np.eye(n)
    spectrum = dense_spectrum(torch.from_numpy(jf), eps)
    omega, alpha, rho, norm_m = numpy_truth(jf, eps)
    assert float(spectrum.omega) == pytest.approx(omega, abs=1e-10)
    assert float(spectrum.mu_alpha.real) == pytest.approx(alpha, abs=1e-8)
    assert abs(1 + eps * complex(spectrum.mu_lead)) == pytest.approx(rho, abs=1e-8)
    assert float(spectrum.norm_M) == pytest.approx(norm_m, rel=1e-10)
    assert float(spectrum.mu_lead.imag) >= 0 and float(spectrum.mu_alpha.imag) >= 0


def test_rotated_nonnormal_block_closed_form() -> None:
    # J_F = Q [[a, b], [0, a]] Q^T: eigenvalue a (double), Sym has eigenvalues a +- b/2.
    a, b, theta = -0.3, 4.0, 0.7
    q = torch.tensor([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]], dtype=torch.float64)
    jf = q @ torch.tensor([[a, b], [0.0, a]], dtype=torch.float64) @ q.T
    spectrum = dense_spectrum(jf, 1.0)
    assert float(spectrum.omega) == pytest.approx(a + b / 2, abs=1e-12)
    # a defective double eigenvalue: perturbation ~ sqrt(machine eps) is all one can ask of eig
    assert float(spectrum.mu_alpha.real) == pytest.approx(a, abs=1e-6)


def test_batched_matches_separate() -> None:
    gen = torch.Generator().manual_seed(3)
    jf = torch.randn(4, 7, 7, generator=gen, dtype=torch.float64)
    together = dense_spectrum(jf, 0.5)
    for b in range(4):
        alone = dense_spectrum(jf[b], 0.5)
        assert torch.allclose(together.omega[b], alone.omega)
        assert torch.allclose(together.mu_lead[b], alone.mu_lead)


def test_a_near_tie_of_real_eigenvalues_picks_the_rightmost() -> None:
    # Two distinct real eigenvalues 1e-13 apart fall inside the conjugate-pair tie tolerance; alpha is
    # still the larger (the W21+ pair is 7e-14 apart), whichever order LAPACK returns them in.
    for values in ([2.0, 2.0 + 1e-13, -1.0], [2.0 + 1e-13, 2.0, -1.0]):
        spectrum = dense_spectrum(torch.diag(torch.tensor(values, dtype=torch.float64)), 0.1)
        assert spectrum.mu_alpha.real.item() == 2.0 + 1e-13
