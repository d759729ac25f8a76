"""The gate and the exit code: one function, docs/SPEC.md section 7, precedence 4, 2, 3, 1."""

import dataclasses

import pytest

from spectral_probe.exitcodes import ExitCode, combine
from spectral_probe.gate import evaluate
from spectral_probe.results import CheckpointError, FixedPointResult


def result(verdict: str = "stable", rho: float = 0.9, omega: float | None = 0.1, index: int = 0):
    return FixedPointResult(
        checkpoint="a.safetensors",
        index=index,
        n=4,
        c=0.0,
        eps=1.0,
        omega=omega,
        alpha=-0.1,
        alpha_imag=0.0,
        rho=rho,
        lead_real=rho,
        lead_imag=0.0,
        mu_lead_real=rho - 1,
        mu_lead_imag=0.0,
        gap=None,
        omega_nc=None,
        alpha_nc=None,
        fd_jvp_rel_err=1e-10,
        adjoint_rel_err=1e-12,
        fixed_point_residual=0.0,
        converged=True,
        method="dense",
        matvecs=4,
        seconds=0.0,
        verdict=verdict,
    )


def test_no_gate_exits_zero_even_when_unstable() -> None:
    assert evaluate([result("saddle", rho=1.5)], [], {}).exit_code == ExitCode.OK


def test_violation_is_one() -> None:
    outcome = evaluate([result(rho=1.2), result(rho=0.5, index=1)], [], {"rho": 1.0})
    assert outcome.exit_code == ExitCode.GATE_VIOLATED and not outcome.passed
    assert len(outcome.violations) == 1 and "[0]" in outcome.violations[0]


def test_gate_holds() -> None:
    outcome = evaluate([result(rho=0.99)], [], {"rho": 1.0, "alpha": 0.0})
    assert outcome.exit_code == ExitCode.OK and outcome.passed


def test_inconclusive_under_gate_is_three_even_if_value_passes() -> None:
    bad = dataclasses.replace(result(rho=0.5), verdict="inconclusive", reason="fd check failed")
    assert evaluate([bad], [], {"rho": 1.0}).exit_code == ExitCode.UNTRUSTED


def test_inconclusive_without_gate_is_zero() -> None:
    bad = dataclasses.replace(result(), verdict="inconclusive", reason="x")
    assert evaluate([bad], [], {}).exit_code == ExitCode.OK


def test_gate_on_uncomputed_quantity_is_usage_error() -> None:
    assert evaluate([result(omega=None)], [], {"omega": 1.0}).exit_code == ExitCode.BAD_INPUT


def test_error_beats_untrusted_beats_violation() -> None:
    bad = dataclasses.replace(result(), verdict="inconclusive", reason="x", index=1)
    err = [CheckpointError("b.safetensors", "truncated")]
    assert evaluate([result(rho=2.0), bad], err, {"rho": 1.0}).exit_code == ExitCode.BAD_INPUT
    assert evaluate([result(rho=2.0), bad], [], {"rho": 1.0}).exit_code == ExitCode.UNTRUSTED


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ({ExitCode.GATE_VIOLATED, ExitCode.INTERNAL_ERROR}, ExitCode.INTERNAL_ERROR),
        ({ExitCode.GATE_VIOLATED, ExitCode.UNTRUSTED}, ExitCode.UNTRUSTED),
        (set(), ExitCode.OK),
    ],
)
def test_combine_precedence(codes, expected) -> None:
    assert combine(codes) == expected
