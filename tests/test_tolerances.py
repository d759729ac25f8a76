"""The one tolerances object: derived from the dtype and --tol, the README generated from it."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spectral_probe.linalg.result import default_tol as solver_default_tol
from spectral_probe.tolerances import MACHINE_EPS, SMALLEST_NORMAL, default_tol, tolerances, tolerances_markdown

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_machine_eps_and_default_tol_are_torchs(dtype: str) -> None:
    torch_dtype = getattr(torch, dtype)
    assert MACHINE_EPS[dtype] == torch.finfo(torch_dtype).eps
    assert default_tol(dtype) == pytest.approx(solver_default_tol(torch_dtype), rel=1e-15)
    assert tolerances(dtype).tol == default_tol(dtype)


def test_the_default_tolerance_is_3_7e_11_in_float64() -> None:
    # eps^(2/3) = (2.22e-16)^(2/3) = 3.67e-11; the README once said 1.8e-11, which no formula gives.
    assert f"{default_tol('float64'):.2g}" == "3.7e-11" and f"{default_tol('float32'):.2g}" == "2.4e-05"
    assert "(3.7e-11 in float64, 2.4e-05 in float32)" in README
    assert "1.8e-11" not in README


def test_readme_table_is_generated_from_the_object() -> None:
    region = README.split("<!-- tolerances:start -->\n")[1].split("\n<!-- tolerances:end -->")[0]
    assert region == tolerances_markdown()


def test_thresholds_follow_tol_and_dtype() -> None:
    loose, tight = tolerances("float64", 1e-6), tolerances("float64", 1e-12)
    assert loose.agreement == pytest.approx(1e-3) and tight.agreement == pytest.approx(1e-6)
    assert loose.dense_residual == pytest.approx(1e-4)
    assert tolerances("float32").autograd > tolerances("float64").autograd
    with pytest.raises(ValueError, match="float16"):
        tolerances("float16")


def test_verdict_and_tolerances_need_no_torch() -> None:
    code = "import sys, spectral_probe.tolerances, spectral_probe.verdict; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_a_jacobian_too_small_for_the_dtypes_norms_is_no_converged_answer() -> None:
    # float32, J_F = 1e-30 H (Hilbert): every residual's square underflowed to 0, so every run was
    # "converged" and alpha came back 54% off, 5 times outside its bound.
    import torch
    from scipy.linalg import hilbert

    from spectral_probe import probe

    hilbert8 = torch.tensor(hilbert(8))
    for scale, dtype, flagged in (
        (1e-30, torch.float32, True),
        (1e-18, torch.float32, True),
        (1e-30, torch.float64, False),
    ):
        a = (scale * hilbert8).to(dtype)
        result = probe(lambda z, a=a: a @ z, torch.zeros(8, dtype=dtype), c=-1.0, eps=0.1, method="krylov").results[0]
        names = {c.name for c in result.checks if not c.passed}
        assert ("matvec:scale" in names) == flagged, (scale, dtype, result.reason)
        if flagged:
            assert result.verdict == "inconclusive" and "norms resolve" in result.reason
    zero = probe(lambda z: 0 * z, torch.zeros(4, dtype=torch.float32), c=-1.0).results[0]  # exactly 0: fine
    assert zero.verdict == "marginal", zero.reason
    tiny = {"float64": torch.finfo(torch.float64).tiny, "float32": torch.finfo(torch.float32).tiny}
    assert tiny == SMALLEST_NORMAL
