"""The committed sample checkpoints cannot drift from their generator or from their dense truth.

* ``python -m tools.make_samples`` (:mod:`tools.samples`) re-run into a temporary directory reproduces every committed
  ``sample_checkpoints/*.safetensors`` byte for byte, and ``expected.json`` up to LAPACK round-off (the
  eigenvalues in it come from a threaded LAPACK whose last bits depend on the machine; the tensors are
  built with exact arithmetic and do not).
* Every file is at most 2 MB and carries the docs/SPEC.md section 3 metadata.
* ``expected.json`` agrees with a dense float64 truth recomputed HERE, with numpy only, from the committed
  files: ``J_F = J_nc - (1 + c) I``, ``omega = lambda_max(Sym J_F)``, ``alpha = max Re lambda(J_F)``,
  ``rho = max |lambda(I + eps J_F)|`` and the docs/SPEC.md section 2 verdict.
"""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_checkpoints"
MAX_BYTES = 2 * 1024 * 1024
BAND = 1e-6
REGISTERED = {"linear", "hopfield", "rnn"}
#: Dense eigenvalues of these small, well-conditioned samples agree to ~1e-12 across LAPACK builds.
TOL = 1e-9


def _load_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def make_samples() -> ModuleType:
    return importlib.import_module("tools.make_samples")


@pytest.fixture(scope="module")
def regenerated(make_samples: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    make_samples.main(out)
    return out


@pytest.fixture(scope="module")
def expected() -> dict[str, Any]:
    return json.loads((SAMPLES / "expected.json").read_text())


def _metadata(path: Path) -> dict[str, str]:
    with path.open("rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        return json.loads(fh.read(length)).get("__metadata__", {})


# ---------------------------------------------------------------------------------------------------
# reproducibility
# ---------------------------------------------------------------------------------------------------


def test_regenerated_files_are_byte_identical(regenerated: Path) -> None:
    committed = sorted(p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.safetensors"))
    fresh = sorted(p.relative_to(regenerated).as_posix() for p in regenerated.rglob("*.safetensors"))
    assert committed == fresh, "the generator and sample_checkpoints/ list different files"
    for name in committed:
        assert (regenerated / name).read_bytes() == (SAMPLES / name).read_bytes(), (
            f"{name} drifted from tools/samples/: regenerate with `python -m tools.make_samples`"
        )


def _assert_close_tree(a: Any, b: Any, where: str = "") -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_close_tree(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close_tree(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool) and isinstance(b, int | float):
        assert math.isclose(a, b, rel_tol=TOL, abs_tol=1e-12), (where, a, b)
    else:
        assert a == b, (where, a, b)


def test_regenerated_manifest_matches(regenerated: Path, expected: dict[str, Any]) -> None:
    _assert_close_tree(expected, json.loads((regenerated / "expected.json").read_text()), "expected.json")


# ---------------------------------------------------------------------------------------------------
# files and metadata
# ---------------------------------------------------------------------------------------------------


def test_every_file_is_listed_small_and_well_formed(expected: dict[str, Any]) -> None:
    files = {p.relative_to(SAMPLES).as_posix() for p in SAMPLES.rglob("*.safetensors")}
    assert files == set(expected["samples"])
    for name, info in expected["samples"].items():
        path = SAMPLES / name
        assert path.stat().st_size <= MAX_BYTES, name
        assert path.stat().st_size == info["bytes"], name
        md = _metadata(path)
        assert {k for k in md if not k.startswith("spectral_probe.")} == set(), name
        assert float(md["spectral_probe.c"]) == info["c"]
        assert float(md["spectral_probe.eps"]) == info["eps"]
        assert json.loads(md["spectral_probe.options"]) == info["options"]
        if info["operator"] is None:
            # a checkpoint never names a module: the user passes the plugin on the command line
            assert "spectral_probe.operator" not in md, name
            module_path, _, attr = info["operator_arg"].rpartition(":")
            assert (ROOT / module_path).is_file() and attr, name
        else:
            assert md["spectral_probe.operator"] == info["operator"] in REGISTERED, name
        z = load_file(str(path))["z_star"]
        assert z.shape[-1] == info["n"] and (z.ndim == 1 or z.shape[0] == info["batch"]), name
        assert len(info["results"]) == len(info["expected_verdicts"]), name


# ---------------------------------------------------------------------------------------------------
# independent dense truth (numpy only)
# ---------------------------------------------------------------------------------------------------


def _act(name: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Activation and its derivative."""
    if name == "tanh":
        y = np.tanh(x)
        return y, 1.0 - y**2
    assert name == "sigmoid", name
    y = 0.5 * (1.0 + np.tanh(0.5 * x))  # sigmoid, written differently from the generator on purpose
    return y, y * (1.0 - y)


def _field_and_jacobian(info: dict[str, Any], t: dict[str, np.ndarray], z: np.ndarray):
    """``F(z)`` and ``J_F`` in float64 from the stored tensors."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    c, act = info["c"], info["options"].get("activation", "tanh")
    op = info["operator"]
    if op == "linear":
        force, jac = t["A"] @ z + t.get("b", 0.0), t["A"]
    elif op == "hopfield":
        y, dy = _act(act, z)
        force, jac = t["W"] @ y + t.get("b", 0.0), t["W"] @ np.diag(dy)
    elif op == "rnn":
        y, dy = _act(act, t["W"] @ z + t.get("b", 0.0))
        force, jac = y, np.diag(dy) @ t["W"]
    else:  # the plugin: W2 act(W1 z + b1) + b2
        y, dy = _act(act, t["W1"] @ z + t["b1"])
        force, jac = t["W2"] @ y + t["b2"], t["W2"] @ np.diag(dy) @ t["W1"]
    return force - (1.0 + c) * z, jac - (1.0 + c) * np.eye(z.size)


def _verdict(rho: float, lead: complex, eps: float, omega: float) -> str:
    if rho < 1.0 - BAND:
        return "contractive" if omega < 0.0 else "stable"
    if abs(rho - 1.0) <= BAND:
        return "marginal"
    if abs(lead.imag) > 1e-8 * max(1.0, rho):
        return "hopf" if (lead.real - 1.0) / eps > 0.0 else "neimark-sacker"
    return "saddle" if lead.real > 1.0 else "flip"


def _truth(j_f: np.ndarray, eps: float) -> dict[str, Any]:
    lam = np.linalg.eigvals(j_f)
    mu_m = 1.0 + eps * lam
    ia = int(np.argmax(lam.real))
    im = int(np.argmax(np.abs(mu_m)))
    lead = complex(mu_m[im].real, abs(mu_m[im].imag))
    omega = float(np.linalg.eigvalsh((j_f + j_f.T) / 2.0).max())
    rho = float(abs(mu_m[im]))
    return {
        "omega": omega,
        "alpha": float(lam[ia].real),
        "alpha_imag": float(abs(lam[ia].imag)),
        "rho": rho,
        "lead_real": lead.real,
        "lead_imag": lead.imag,
        "verdict": _verdict(rho, lead, eps, omega),
    }


def _separated(separation: float | None) -> bool:
    return separation is None or separation > 1e-6


def test_expected_json_matches_dense_truth(make_samples: ModuleType, expected: dict[str, Any]) -> None:
    checked = 0
    with make_samples.single_threaded_blas():  # threaded dgeev is slow on a few shared cores
        for name, info in expected["samples"].items():
            tensors = load_file(str(SAMPLES / name))
            zs = np.atleast_2d(tensors.pop("z_star").astype(np.float64))
            for row, verdict, z in zip(info["results"], info["expected_verdicts"], zs, strict=True):
                field, j_f = _field_and_jacobian(info, tensors, z)
                truth = _truth(j_f, info["eps"])
                where = f"{name}[{row['index']}]"
                assert truth["verdict"] == verdict == row["verdict"], where
                for key in ("omega", "alpha", "rho"):
                    assert math.isclose(truth[key], row[key], rel_tol=TOL, abs_tol=TOL), (where, key)
                # compare which eigenvalue was picked only where it is well defined (separation None:
                # no other eigenvalue exists, n = 2 with one pair)
                if _separated(row["alpha_separation"]):
                    assert math.isclose(truth["alpha_imag"], row["alpha_imag"], abs_tol=TOL), where
                if _separated(row["lead_separation"]):
                    for key in ("lead_real", "lead_imag"):
                        assert math.isclose(truth[key], row[key], rel_tol=TOL, abs_tol=TOL), (where, key)
                # z* is a fixed point by construction, up to the rounding of a stored float32 bias
                assert np.linalg.norm(field) <= 1e-6 * np.linalg.norm(z), where
                checked += 1
    assert checked == sum(len(i["results"]) for i in expected["samples"].values())


def test_verdicts_are_robust(expected: dict[str, Any]) -> None:
    """Every sample sits at least ``margin`` inside its verdict region (docs/SPEC.md section 2)."""
    margin = expected["margin"]
    assert margin >= 0.05
    for name, info in expected["samples"].items():
        for row in info["results"]:
            where = f"{name}[{row['index']}]"
            rho, v = row["rho"], row["verdict"]
            if v in ("contractive", "stable"):
                assert rho <= 1 - margin and abs(row["omega"]) >= margin, where
            else:
                assert rho >= 1 + margin and row["lead_separation"] >= margin, where
                assert abs(row["mu_lead_real"]) >= margin or row["lead_imag"] == 0.0, where


def test_stable_nonnormal_is_the_trained_operator_trap(expected: dict[str, Any]) -> None:
    (row,) = expected["samples"]["stable_nonnormal.safetensors"]["results"]
    assert -0.025 <= row["alpha"] <= -0.015 and row["alpha_imag"] == 0.0
    assert 11.0 <= row["omega"] <= 13.0 and row["verdict"] == "stable"


def test_closed_form_2d_matches_its_formula(expected: dict[str, Any]) -> None:
    info = expected["samples"]["closed_form_2d.safetensors"]
    t = load_file(str(SAMPLES / "closed_form_2d.safetensors"))
    w, eps = t["W"], info["eps"]
    # z* = (ln 2, 0): tanh(ln 2) = 3/5, so act'(z*) = (16/25, 1)
    assert math.isclose(math.tanh(float(t["z_star"][0])), 0.6, rel_tol=1e-15) and t["z_star"][1] == 0.0
    a, b = w[0, 0] * 16 / 25 - 1.0, w[0, 1]
    c, d = w[1, 0] * 16 / 25, w[1, 1] - 1.0
    tau, delta = a + d, a * d - b * c
    lam = complex(tau / 2, math.sqrt(delta - tau**2 / 4))
    (row,) = info["results"]
    assert math.isclose(row["alpha"], lam.real, abs_tol=1e-12)
    assert math.isclose(row["alpha_imag"], lam.imag, abs_tol=1e-12)
    assert math.isclose(row["omega"], tau / 2 + math.hypot((a - d) / 2, (b + c) / 2), abs_tol=1e-12)
    assert math.isclose(row["rho"], abs(1 + eps * lam), abs_tol=1e-12)
    assert row["omega"] > 0 > row["alpha"] and row["verdict"] == "stable"


def test_batched_rows_are_exact_fixed_points_with_closed_forms(expected: dict[str, Any]) -> None:
    info = expected["samples"]["batched.safetensors"]
    t = load_file(str(SAMPLES / "batched.safetensors"))
    assert "b" not in t  # hopfield with b = 0: +-z* and 0 are fixed points together
    z = t["z_star"]
    assert z.shape == (4, info["n"])
    np.testing.assert_array_equal(z[1], -z[0])
    assert not z[3].any()
    for row, cf in zip(info["results"], info["closed_form"]["rows"], strict=True):
        for key in ("omega", "alpha", "rho"):
            assert math.isclose(row[key], cf[key], abs_tol=1e-9), (row["index"], key)
    assert info["expected_verdicts"] == ["saddle", "saddle", "contractive", "hopf"]


def test_plugin_operator_matches_the_numpy_truth() -> None:
    """The torch plugin computes the same force and Jacobian as the numpy reference."""
    torch = pytest.importorskip("torch")
    plugin = _load_module("sample_plugin_operator_under_test", SAMPLES / "plugin" / "plugin_operator.py")
    tensors = load_file(str(SAMPLES / "plugin" / "plugin_example.safetensors"))
    md = _metadata(SAMPLES / "plugin" / "plugin_example.safetensors")
    params = {k: torch.from_numpy(v) for k, v in tensors.items() if k != "z_star"}
    force = plugin.make_force(params, json.loads(md["spectral_probe.options"]))
    z = torch.from_numpy(tensors["z_star"])
    info = {"c": float(md["spectral_probe.c"]), "options": {}, "operator": None}
    field, j_f = _field_and_jacobian(info, {k: v for k, v in tensors.items() if k != "z_star"}, tensors["z_star"])
    np.testing.assert_allclose(force(z).numpy() - (1 + info["c"]) * z.numpy(), field, atol=1e-14)
    assert np.linalg.norm(field) <= 1e-12
    jac = torch.func.jacrev(force)(z).numpy()
    np.testing.assert_allclose(jac - (1 + info["c"]) * np.eye(z.numel()), j_f, atol=1e-13)
    batched = torch.vmap(force)(torch.stack([z, z]))
    np.testing.assert_allclose(batched[1].numpy(), force(z).numpy(), atol=1e-15)
