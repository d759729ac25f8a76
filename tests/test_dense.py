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


def test_the_given_eig_of_the_condition_numbers_gives_the_same_spectrum() -> None:
    from spectral_probe.linalg.conditioning import eigen_conditions

    gen = torch.Generator().manual_seed(5)
    jf = torch.randn(3, 9, 9, generator=gen, dtype=torch.float64)
    conditions = eigen_conditions(jf)
    shared = dense_spectrum(jf, 0.7, eigen=(conditions.values, conditions.vectors))
    own = dense_spectrum(jf, 0.7)
    truth = np.linalg.eigvals(jf.numpy())
    assert np.allclose(shared.mu_alpha.real.numpy(), truth.real.max(-1), atol=1e-12)
    for name in ("omega", "mu_alpha", "mu_lead", "norm_M"):
        assert torch.allclose(getattr(shared, name), getattr(own, name), atol=1e-12), name
    for name, value in own.residuals.items():
        assert torch.allclose(shared.residuals[name], value, atol=1e-12), name


def test_the_dense_path_decomposes_J_F_once(monkeypatch) -> None:
    from spectral_probe.config import ProbeOptions
    from spectral_probe.probe import probe_fixed_points

    gen = torch.Generator().manual_seed(6)
    weight = 0.3 * torch.randn(12, 12, generator=gen, dtype=torch.float64)
    real_eig, calls = torch.linalg.eig, []

    def counted_eig(a: torch.Tensor):
        calls.append(tuple(a.shape))
        return real_eig(a)

    monkeypatch.setattr(torch.linalg, "eig", counted_eig)
    (result,), _ = probe_fixed_points(
        lambda z: torch.tanh(z @ weight.T), torch.zeros(1, 12, dtype=torch.float64), c=0.0, eps=0.5,
        options=ProbeOptions(method="dense"),
    )  # fmt: skip
    assert calls == [(1, 12, 12)]
    truth = np.linalg.eigvals(weight.numpy() - np.eye(12))
    assert result.alpha == pytest.approx(truth.real.max(), abs=1e-12)
