"""The opt-in Krylov ``J v`` by ``torch.func.linearize`` (``krylov_jv: linearize``) against the dense
Jacobian of the user's own module (``torch.func.jacrev``), and its fallback to the transpose route."""

from __future__ import annotations

import pytest
import torch

from spectral_probe.config import ProbeOptions, merge_options
from spectral_probe.errors import OptionError, UsageError
from spectral_probe.jacobian import JacobianOperators
from spectral_probe.probe import probe_fixed_points

F64 = torch.float64


def _conv_field() -> tuple[torch.nn.Module, int]:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1, dtype=F64)
    shape = (3, 5, 5)

    def force(z: torch.Tensor) -> torch.Tensor:
        return 0.4 * torch.tanh(conv(z.reshape(1, *shape))).reshape(-1)

    return force, 3 * 5 * 5


def _gru_field() -> tuple[torch.nn.Module, int]:
    torch.manual_seed(1)
    cell = torch.nn.GRUCell(4, 6, dtype=F64)
    x = torch.randn(1, 4, dtype=F64)

    def force(z: torch.Tensor) -> torch.Tensor:
        return cell(x, z.unsqueeze(0)).squeeze(0)

    return force, 6


@pytest.mark.parametrize("field", [_conv_field, _gru_field])
def test_linearized_J_v_is_the_users_jacobian(field) -> None:
    """conv: the linearized route is used. GRUCell: torch 2.13's linearization is right on its first call
    and wrong after, so the repeat check refuses it and the transpose route (with a note) stays."""
    force, n = field()
    z_star = 0.1 * torch.randn(2, n, generator=torch.Generator().manual_seed(2), dtype=F64)
    ops = JacobianOperators(force, z_star, krylov_jv="linearize")
    refused = [note for note in ops.notes if "linearize" in note]
    assert bool(refused) == (field is _gru_field), ops.notes
    v = torch.randn(2, 3, n, generator=torch.Generator().manual_seed(3), dtype=F64)
    for b in range(2):
        truth = torch.func.jacrev(force)(z_star[b])  # the user's own module, not the tool's code
        for _ in range(3):  # every call, not only the first
            assert torch.allclose(ops.jvp(v)[b], v[b] @ truth.T, atol=1e-12, rtol=1e-10)


def test_a_scan_with_linearize_reports_the_same_numbers() -> None:
    force, n = _conv_field()
    z_star = torch.zeros(1, n, dtype=F64)
    (default,), _ = probe_fixed_points(force, z_star, c=0.0, eps=0.5, options=ProbeOptions(method="krylov"))
    options = ProbeOptions(method="krylov", krylov_jv="linearize")
    (linearized,), _ = probe_fixed_points(force, z_star, c=0.0, eps=0.5, options=options)
    jf = torch.func.jacrev(force)(z_star[0]) - torch.eye(n, dtype=F64)
    alpha = float(torch.linalg.eigvals(jf).real.max())
    assert linearized.verdict == default.verdict
    for name in ("omega", "alpha", "rho"):
        assert getattr(linearized, name) == pytest.approx(getattr(default, name), abs=1e-8), name
    assert linearized.alpha == pytest.approx(alpha, abs=1e-8)


def test_a_model_linearize_cannot_trace_keeps_the_transpose_route_with_a_note() -> None:
    weight = 0.3 * torch.randn(5, 5, generator=torch.Generator().manual_seed(4), dtype=F64)

    def force(z: torch.Tensor) -> torch.Tensor:
        scale = 0.5 if float(z.sum()) > 0 else 1.0  # a data-dependent branch: no trace can hold it
        return scale * torch.tanh(weight @ z)

    z_star = torch.zeros(1, 5, dtype=F64)
    ops = JacobianOperators(force, z_star, krylov_jv="linearize")
    assert any("linearize" in note for note in ops.notes), ops.notes
    v = torch.randn(1, 1, 5, generator=torch.Generator().manual_seed(5), dtype=F64)
    truth = torch.func.jacrev(lambda z: torch.tanh(weight @ z))(z_star[0])
    assert torch.allclose(ops.jvp(v)[0, 0], truth @ v[0, 0], atol=1e-12)


def test_an_unknown_krylov_jv_is_refused() -> None:
    with pytest.raises(UsageError):
        merge_options({"krylov_jv": "magic"}, {})
    with pytest.raises(OptionError):
        JacobianOperators(torch.tanh, torch.zeros(1, 3, dtype=F64), krylov_jv="magic")
