"""find_fixed_point (the Python API): the point it returns is one the probe accepts, in every dtype."""

from __future__ import annotations

import pytest
import torch

from spectral_probe import find_fixed_point, probe


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_found_point_passes_the_probes_fixed_point_check(dtype: torch.dtype) -> None:
    # In float32 the default tol was 10 eps^(2/3) = 2.4e-4, above the probe's fixed_point_tol 1e-6: every
    # probe(f, find_fixed_point(f, zeros)) came back inconclusive ("z* is not a fixed point").
    torch.manual_seed(0)
    w, b = torch.randn(20, 20, dtype=dtype) * 0.1, torch.randn(20, dtype=dtype)

    def f(z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(w @ z + b)

    z = find_fixed_point(f, torch.zeros(20, dtype=dtype))
    result = probe(f, z).results[0]
    assert z.dtype == dtype and result.fixed_point_residual <= 1e-6
    assert result.verdict == "contractive"
