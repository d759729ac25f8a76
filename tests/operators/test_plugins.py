"""Plugin operators: MODULE:ATTR, FILE.py:ATTR, entry points; metadata never imports code."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from spectral_probe.errors import InputError
from spectral_probe.operators import (
    ENTRY_POINT_GROUP,
    build_nc_force,
    registered_operators,
    resolve_operator,
)

PLUGIN_SOURCE = '''
import torch

def factory(params, options):
    """nc_force(z) = scale * B z (a test plugin)."""
    weight = params["B"]
    scale = float(options.get("scale", 1.0))

    def nc_force(z):
        return scale * (weight @ z)

    return nc_force

class Families:
    @staticmethod
    def doubled(params, options):
        return lambda z: 2.0 * (params["B"] @ z)

NOT_CALLABLE = 3
'''


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def _write(directory: Path, name: str, source: str) -> Path:
    file = directory / f"{name}.py"
    file.write_text(textwrap.dedent(source))
    return file


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = _unique("sp_test_plugin")
    _write(tmp_path, name, PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _params() -> dict:
    return {"B": torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)}


def _fake_entry_points(monkeypatch: pytest.MonkeyPatch, *entries: tuple[str, str]) -> None:
    points = [importlib.metadata.EntryPoint(name=n, value=v, group=ENTRY_POINT_GROUP) for n, v in entries]
    points.append(importlib.metadata.EntryPoint(name="other", value="nowhere:x", group="another.group"))

    def entry_points(**selection):
        return [ep for ep in points if all(getattr(ep, k) == v for k, v in selection.items())]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


# ----------------------------------------------------------------------------------------------
# MODULE:ATTR and FILE.py:ATTR


def test_module_attr_plugin(plugin_module: str) -> None:
    factory, name = resolve_operator(f"{plugin_module}:factory")
    assert name == f"{plugin_module}:factory"
    params = _params()
    nc_force = build_nc_force(factory, params, {"scale": 0.5}, "ckpt.safetensors", name=name)
    z = torch.randn(3, dtype=torch.float64)
    assert torch.allclose(nc_force(z), 0.5 * params["B"] @ z)


def test_module_dotted_attr(plugin_module: str) -> None:
    factory, _ = resolve_operator(f"{plugin_module}:Families.doubled")
    params = _params()
    z = torch.ones(3, dtype=torch.float64)
    assert torch.allclose(factory(params, {})(z), 2.0 * params["B"] @ z)


def test_file_plugin(tmp_path: Path) -> None:
    file = _write(tmp_path, "my_operator", PLUGIN_SOURCE)
    spec = f"{file}:factory"
    factory, name = resolve_operator(spec)
    assert name == spec
    again, _ = resolve_operator(spec)
    assert again is factory  # one module per file: a second resolve does not re-import it
    params = _params()
    z = torch.randn(3, dtype=torch.float64)
    assert torch.allclose(factory(params, {})(z), params["B"] @ z)


def test_module_in_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _unique("sp_cwd_plugin")
    _write(tmp_path, name, PLUGIN_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        factory, _ = resolve_operator(f"{name}:factory")
        assert callable(factory)
        assert str(tmp_path) not in sys.path
    finally:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("make_spec", "message"),
    [
        (lambda mod, tmp: "sp_no_such_module_xyz:factory", "no module named 'sp_no_such_module_xyz'"),
        (lambda mod, tmp: f"{mod}:missing", "'missing' not found"),
        (lambda mod, tmp: f"{mod}:NOT_CALLABLE", "is not a factory function (int)"),
        (lambda mod, tmp: f"{tmp}/absent.py:factory", "no such operator file"),
        (lambda mod, tmp: f"{mod}:", "malformed operator"),
        (lambda mod, tmp: "no_such_operator", "unknown operator 'no_such_operator'"),
    ],
)
def test_bad_plugin_specs(plugin_module: str, tmp_path: Path, make_spec, message) -> None:
    with pytest.raises(InputError, match=None) as info:
        resolve_operator(make_spec(plugin_module, tmp_path))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_factory_in_a_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "plug.py").write_text("def make(params, options):\n    return lambda z: z\n")
    with pytest.raises(InputError) as info:
        resolve_operator(f"{tmp_path / 'plug.py'}:mkae")
    assert f"'mkae' not found in {tmp_path / 'plug.py'}" in str(info.value)  # not the internal module name


def test_unknown_operator_lists_registered_names() -> None:
    with pytest.raises(InputError) as info:
        resolve_operator("lineer")
    for name in ("linear", "hopfield", "rnn", "conv"):
        assert name in str(info.value)


def test_plugin_raising_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _unique("sp_broken_plugin")
    _write(tmp_path, name, "raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError, match="boom at import"):
        resolve_operator(f"{name}:factory")
    file = _write(tmp_path, "broken_file", "import sp_definitely_not_installed_xyz\n")
    with pytest.raises(InputError, match="sp_definitely_not_installed_xyz") as info:
        resolve_operator(f"{file}:factory")
    assert info.value.path == str(file)


def test_factory_errors_name_the_file(plugin_module: str) -> None:
    factory, name = resolve_operator(f"{plugin_module}:factory")
    with pytest.raises(InputError) as info:
        build_nc_force(factory, {}, {}, "ckpt.safetensors", name=name)
    assert info.value.path == "ckpt.safetensors"
    assert f"operator '{name}': B" in str(info.value)
    with pytest.raises(InputError, match="not a function"):
        build_nc_force(lambda p, o: 42, {}, {}, "ckpt.safetensors")


# ----------------------------------------------------------------------------------------------
# Entry points


def test_entry_point_plugin(plugin_module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(monkeypatch, ("scaled", f"{plugin_module}:factory"))
    infos = registered_operators()
    assert infos["scaled"].summary == "nc_force(z) = scale * B z (a test plugin)."
    assert infos["scaled"].source.startswith(f"entry point {plugin_module}:factory")
    assert "other" not in infos
    factory, name = resolve_operator("scaled")
    assert name == "scaled"
    # a registered plugin name may come from a checkpoint's metadata
    from_metadata, _ = resolve_operator("scaled", from_metadata=True)
    assert from_metadata is factory


def test_broken_entry_point_does_not_break_the_others(plugin_module: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_entry_points(
        monkeypatch,
        ("broken", "sp_no_such_plugin_pkg:factory"),
        ("good", f"{plugin_module}:factory"),
        ("linear", f"{plugin_module}:factory"),  # cannot shadow a built-in
    )
    infos = registered_operators()
    assert infos["broken"].error is not None and "sp_no_such_plugin_pkg" in infos["broken"].error
    assert infos["good"].error is None
    assert infos["linear"].source == "built-in"
    assert callable(resolve_operator("good")[0])
    with pytest.raises(InputError, match="operator plugin 'broken'.*failed to load"):
        resolve_operator("broken")
    with pytest.raises(InputError) as info:
        resolve_operator("nothing")
    assert "broken" in str(info.value) and "good" in str(info.value)


def test_entry_point_discovery_failure_keeps_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**selection):
        raise RuntimeError("corrupt distribution metadata")

    monkeypatch.setattr(importlib.metadata, "entry_points", broken)
    assert {"linear", "hopfield", "rnn", "conv"} <= set(registered_operators())
    assert callable(resolve_operator("linear")[0])


# ----------------------------------------------------------------------------------------------
# Metadata: a checkpoint never imports code


def test_metadata_module_path_is_refused_without_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _unique("sp_metadata_trap")
    marker = tmp_path / "imported.marker"
    _write(tmp_path, name, f"open({str(marker)!r}, 'w').write('x')\ndef factory(p, o):\n    return lambda z: z\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    file = tmp_path / f"{name}.py"
    for spec in (f"{name}:factory", f"{file}:factory"):
        with pytest.raises(InputError) as info:
            resolve_operator(spec, from_metadata=True, path="ckpt.safetensors")
        assert info.value.path == "ckpt.safetensors"
        assert "never makes spectral-probe import a module" in str(info.value)
    assert not marker.exists()
    assert name not in sys.modules


def test_metadata_unknown_name_and_builtin() -> None:
    factory, name = resolve_operator("hopfield", from_metadata=True, path="ckpt.safetensors")
    assert name == "hopfield" and callable(factory)
    with pytest.raises(InputError, match="ckpt.safetensors: unknown operator 'hopfeld' in the checkpoint metadata"):
        resolve_operator("hopfeld", from_metadata=True, path="ckpt.safetensors")


def test_a_missing_operator_file_in_the_config_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from spectral_probe.cli import app

    config = tmp_path / "probe.yaml"
    config.write_text("operator: plugin.py:make\n")  # beside the YAML, but read from the working directory
    (tmp_path / "plugin.py").write_text("def make(params, options):\n    return lambda z: z\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["scan", str(tmp_path / "missing.safetensors"), "--config", str(config)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"{config}: option 'operator': no such operator file 'plugin.py'" in message, result.output
    assert str(elsewhere) in message
