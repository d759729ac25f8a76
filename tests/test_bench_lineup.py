"""The benchmark's solver line-up calls every solver it lists (``make bench`` with the ``bench`` extra
runs hessian-eigenthings' grown-max_iter variant; the quick run in CI does not)."""

from __future__ import annotations

from types import SimpleNamespace

from bench import competitors, lineup


class _FakeBench(SimpleNamespace):
    """Records what the line-up asks for; every solver 'meets' the residual target at once."""

    def record(self, solver: str, group: str, run, **kwargs) -> dict:  # noqa: ANN001, ANN003
        rec = {"solver": solver, "group": group, "jvp": 4, "quantities": {"omega": {"residual_ok": True}}}
        self.records.append(rec)
        return rec

    def modulus_hint(self, quantity: str, record: dict) -> float:
        return 1.0

    def arpack_tol(self, quantity: str, hint: float | None) -> float:
        return 1e-8


def test_omega_line_up_runs_the_grown_hessian_eigenthings_variant(monkeypatch) -> None:
    monkeypatch.setattr(competitors, "hessian_eigenthings_available", lambda: True)
    bench = _FakeBench(config={"hessian_eigenthings": True}, n=64, seed=0, x0=None, v0=None, budget=10_000, records=[])
    lineup._omega(bench, variants=True)
    grown = [
        r for r in bench.records if r["solver"].startswith("hessian-eigenthings lanczos (which='LA', max_iter doubled")
    ]
    assert len(grown) == 1 and grown[0]["group"] == "omega"
    assert grown[0]["extra"] == {"total_matvecs": 4, "max_iter": 20}
