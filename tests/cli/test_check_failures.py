"""Every cross-check's failure branch, made to fire through the CLI (issue 9, item 1).

Each check is a structured record ``{name, kind, value, bound, passed, reason}`` in the JSON; the
verdict, the exit code and JUnit read the records. A check is tripped by an operator or solver setting
crafted for it where one exists (a non-deterministic operator, a Krylov space too small to converge),
and otherwise by the test hook :data:`spectral_probe.probe.checks.FAULTS`, which replaces the measured
value of one named check before it is judged: delete a check's failure branch and its test fails.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
import torch

from tests.cli.helpers import run_cli, write_checkpoint

F64 = torch.float64
N = 30


def stable_operator(tmp_path):
    """``J_F`` with a complex leading pair ``-0.3 +- 0.5 i``, the rest real in [-2, -0.8] (rho < 1)."""
    gen = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(N, N, generator=gen, dtype=F64))
    t = torch.diag(torch.linspace(-2.0, -0.8, N, dtype=F64))
    t[:2, :2] = torch.tensor([[-0.3, 0.5], [-0.5, -0.3]], dtype=F64)
    a = q @ t @ q.T + torch.eye(N, dtype=F64)
    return write_checkpoint(
        tmp_path / "ok.safetensors", {"A": a, "z_star": torch.zeros(N, dtype=F64)}, operator="linear"
    )


# (check name, path, words of the reason): each one's failure, injected through the hook.
INJECTED = [
    ("residual:alpha", "dense", "dense eigenpair residual too large for alpha"),
    ("residual:rho", "dense", "dense eigenpair residual too large for rho"),
    ("invariant:alpha_le_omega", "dense", "> omega"),
    ("invariant:rho_ge_1_plus_eps_alpha", "krylov", "< 1 + eps alpha"),
    ("invariant:rho_le_norm_M", "krylov", "> ||M||_2"),
    ("agreement:rr_vs_arnoldi", "krylov", "block Rayleigh-Ritz did not confirm rho"),
    ("agreement:alpha_starts", "krylov", "alpha differs between random starts"),
    ("agreement:rho_starts", "krylov", "rho differs between random starts"),
    ("matvec:determinism", "dense", "the Jacobian matvec is not deterministic"),
    ("force:determinism", "krylov", "nc_force is not deterministic"),
    ("matvec:autograd_fd", "dense", "autograd J v disagrees with finite differences"),
    ("matvec:adjoint", "krylov", "<u, J v> != <J^T u, v>"),
    ("fixed_point", "dense", "z* is not a fixed point"),
    ("converged:arnoldi", "krylov", "Arnoldi for alpha/rho did not converge"),
    ("converged:omega", "krylov", "Lanczos for omega did not converge"),
]


def test_a_clean_run_passes_every_check(tmp_path) -> None:
    path = stable_operator(tmp_path)
    for method in ("dense", "krylov"):
        code, report, output = run_cli("scan", path, "--method", method, "--eps", 0.5, "--max-rho", 1, "--json", "-")
        assert code == 0, output
        (r,) = report["results"]
        names = {c["name"] for c in r["checks"]}
        assert all(c["passed"] for c in r["checks"]), [c for c in r["checks"] if not c["passed"]]
        assert all(set(c) == {"name", "kind", "value", "bound", "passed", "reason"} for c in r["checks"])
        assert r["verdict"] in ("stable", "contractive") and r["converged"]
        wanted = {name for name, where, _ in INJECTED if where == method}
        assert wanted <= names, wanted - names


@pytest.mark.parametrize(("name", "method", "reason"), INJECTED, ids=[i[0] for i in INJECTED])
def test_each_check_failure_is_inconclusive_exit_3(tmp_path, monkeypatch, name, method, reason) -> None:
    from spectral_probe.probe import checks

    path = stable_operator(tmp_path)
    monkeypatch.setitem(checks.FAULTS, name, math.inf)
    junit = tmp_path / "r.xml"
    args = ("scan", path, "--method", method, "--eps", 0.5, "--max-rho", 1, "--junit", junit, "--json", "-")
    code, report, output = run_cli(*args)
    assert code == 3, output
    (r,) = report["results"]
    assert r["verdict"] == "inconclusive" and reason in r["reason"]
    (record,) = [c for c in r["checks"] if c["name"] == name]
    assert record["passed"] is False and reason in record["reason"]
    assert not report["gate"]["passed"] and report["gate"]["untrusted"]
    if record["kind"] in ("convergence", "residual"):
        assert r["converged"] is False  # read from the records' kinds, not from the reason's words
    (case,) = ET.parse(junit).getroot().iter("testcase")
    assert case.find("error") is not None and reason in case.find("error").get("message")
    # without a gate the same result exits 0: the verdict, not the output options, carries the doubt
    code, report, _ = run_cli("scan", path, "--method", method, "--eps", 0.5, "--json", "-")
    assert code == 0 and report["results"][0]["verdict"] == "inconclusive"


def test_a_real_nondeterministic_operator_trips_determinism(tmp_path) -> None:
    # Under --matvec fd every J v evaluates the operator again (autograd linearizes it once at z*).
    plugin = tmp_path / "noisy.py"
    plugin.write_text(
        "def factory(params, options):\n"
        "    a, calls = params['A'], [0]\n"
        "    def nc_force(z):  # a hidden state: each call a little different\n"
        "        calls[0] += 1\n"
        "        return a @ z * (1 + 1e-9 * calls[0])\n"
        "    return nc_force\n"
    )
    path = stable_operator(tmp_path)
    code, report, output = run_cli(
        "scan", path, "--operator", f"{plugin}:factory", "--matvec", "fd", "--max-rho", 1, "--json", "-"
    )
    assert code == 3, output
    (r,) = report["results"]
    failed = {c["name"] for c in r["checks"] if not c["passed"]}
    assert "matvec:determinism" in failed and "not deterministic" in r["reason"]


def test_a_krylov_space_too_small_trips_convergence(tmp_path) -> None:
    path = stable_operator(tmp_path)
    config = tmp_path / "small.yaml"
    config.write_text("krylov_dim: 3\nmax_restarts: 1\n")
    code, report, output = run_cli(
        "scan", path, "--config", config, "--method", "krylov", "--max-rho", 1, "--json", "-"
    )
    assert code == 3, output
    (r,) = report["results"]
    failed = {c["name"] for c in r["checks"] if not c["passed"]}
    assert {"converged:arnoldi", "converged:omega"} & failed and r["converged"] is False
