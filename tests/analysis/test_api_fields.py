"""The analyses as fields of the Python API's result records (issue 11 with issue 8's api.probe)."""

from __future__ import annotations

import pytest
import torch

from tests.analysis.cases import DTYPE, dense_max_power, shear


def test_api_probe_carries_the_analysis_fields() -> None:
    from spectral_probe import api  # lazily: see tests/analysis/test_margins.py::probe

    # distinct eigenvalues -0.2 .. -1.1 (a defective one is ill-conditioned: eps_max would then rest on
    # eigenvalues known only to tol^(1/n); docs/beyond.md), coupled strongly enough to amplify
    jf = shear(10, 0.0, 1.0, seed=3) - torch.diag(torch.linspace(0.2, 1.1, 10, dtype=DTYPE))
    a = jf + torch.eye(10, dtype=DTYPE)  # nc_force(z) = a z, c = 0: J_F = jf
    report = api.probe(lambda z: a @ z, torch.zeros(10, dtype=DTYPE), eps=0.5, margins=True, transient=True, modes=True)
    r = report.results[0]
    truth, _ = dense_max_power(torch.eye(10, dtype=DTYPE) + 0.5 * jf, 100)
    assert r.rho < 1 and r.transient is True
    assert 0.9 * truth <= r.max_power_norm <= truth * (1 + 1e-10)
    mu = torch.linalg.eigvals(jf)
    assert r.eps_max == pytest.approx(float((-2 * mu.real / mu.abs() ** 2).min()), rel=1e-8)
    assert r.c_crit == pytest.approx(r.alpha_nc - 1)
    assert len(r.lead_mode_units) == 3
    row = report.to_dict()["results"][0]
    assert row["max_power_norm"] == r.max_power_norm and row["eigenvalues_jf"] == r.eigenvalues_jf
