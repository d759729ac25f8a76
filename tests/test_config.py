"""Options: precedence, validation, and the README kept true to the one defaults object."""

import re
from pathlib import Path

import pytest

from spectral_probe.config import ProbeOptions, defaults, merge_options
from spectral_probe.errors import UsageError
from spectral_probe.exitcodes import ExitCode

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(name: str) -> str:
    return README.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]


def test_command_line_beats_config_beats_default() -> None:
    options = merge_options({"seed": 7, "band": None}, {"seed": 3, "band": 0.01, "krylov-dim": 40})
    assert options.seed == 7 and options.band == 0.01 and options.krylov_dim == 40
    assert merge_options({}, {}).seed == ProbeOptions().seed


def test_unknown_config_key_is_named() -> None:
    with pytest.raises(UsageError, match="max_roh"):
        merge_options({}, {"max_roh": 1.0})


@pytest.mark.parametrize("bad", [{"dtype": "float16"}, {"method": "magic"}, {"eps": -1.0}, {"device": "tpu"}])
def test_bad_values_are_usage_errors(bad) -> None:
    with pytest.raises(UsageError):
        merge_options(bad, {})


def test_readme_defaults_match_the_defaults_object() -> None:
    table = _section("defaults")
    values = defaults()
    checked = 0
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`--"):
            continue
        name = cells[0].split("`")[1].lstrip("-").replace("-", "_")
        if name not in values or values[name] is None:
            continue
        documented = cells[1].strip("`").split("`")[-1] if "else" in cells[1] else cells[1].strip("`")
        if name in ("c", "eps"):
            from spectral_probe import config

            assert float(documented) == getattr(config, f"DEFAULT_{name.upper()}")
        elif name == "method":
            assert f"n <= {values['dense_max_n']}" in cells[2]
            assert documented == values[name]
        else:
            assert documented == str(values[name]), name
        checked += 1
    assert checked >= 8
    for name in ("krylov_dim", "block_size", "max_restarts", "fixed_point_tol", "dense_max_n"):
        assert f"`{name}` ({values[name]})" in README, name


def test_readme_exit_codes_match_the_enum() -> None:
    rows = re.findall(r"^\| (\d) \| (.+) \|$", _section("exitcodes"), flags=re.M)
    assert [int(code) for code, _ in rows] == [int(c) for c in ExitCode]


def test_a_cross_field_error_from_the_config_file_names_the_file(tmp_path) -> None:
    import pytest

    from spectral_probe.config import merge_options
    from spectral_probe.errors import UsageError

    for key, value in (("device", ""), ("glob", "/abs/x")):
        with pytest.raises(UsageError, match=rf"cfg\.yaml: {key}: --{key}"):
            merge_options({}, {key: value}, str(tmp_path / "cfg.yaml"))
        with pytest.raises(UsageError) as typed:  # typed on the command line: no file to name
            merge_options({key: value}, {}, str(tmp_path / "cfg.yaml"))
        assert "cfg.yaml" not in str(typed.value)


@pytest.mark.parametrize(
    ("text", "option", "expected"),
    [
        ("seed: 010\n", "seed", 10),  # YAML 1.1: octal 8
        ("seed: +5\n", "seed", 5),
        ("tol: 1e-8\n", "tol", 1e-8),  # YAML 1.1: the string "1e-8"
        ("max_rho: -1.5E+3\n", "max_rho", -1500.0),
        ("band: .5\n", "band", 0.5),
    ],
)
def test_config_numbers_are_read_by_the_yaml_1_2_core_schema(tmp_path, text, option, expected) -> None:
    from spectral_probe.checkpoint import load_yaml_config

    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    config = load_yaml_config(path)
    assert type(config[option]) is type(expected)
    assert getattr(merge_options({}, config, str(path)), option) == expected


@pytest.mark.parametrize(
    "text",
    [
        "seed: 1_0\n",  # YAML 1.1: 10
        "seed: 0x10\n",  # YAML 1.1: 16
        "krylov_dim: 1:20\n",  # YAML 1.1 sexagesimal: 80
        "seed: yes\n",  # YAML 1.1: true
        "seed: 0b11\n",  # YAML 1.1: 3
    ],
)
def test_yaml_1_1_number_spellings_are_refused_not_reinterpreted(tmp_path, text) -> None:
    from spectral_probe.checkpoint import load_yaml_config

    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    option, written = text.strip().split(": ")
    with pytest.raises(UsageError, match=rf"cfg\.yaml: option '{option}' must be an integer.*'{re.escape(written)}'"):
        merge_options({}, load_yaml_config(path), str(path))


def test_an_explicit_int_tag_takes_decimal_digits_only(tmp_path) -> None:
    from spectral_probe.checkpoint import load_yaml_config
    from spectral_probe.errors import InputError

    path = tmp_path / "cfg.yaml"
    path.write_text("seed: !!int 1_0\n")
    with pytest.raises(InputError, match=r"cfg\.yaml: invalid YAML at line 1.*not a decimal integer"):
        load_yaml_config(path)


def test_a_key_given_twice_in_yaml_is_refused_not_the_last_one_kept(tmp_path) -> None:
    # max_rho: 0.5 then max_rho: 100 loosened the gate silently (PyYAML keeps the last).
    from spectral_probe.checkpoint import load_yaml_config
    from spectral_probe.errors import InputError

    for text, key in (("max_rho: 0.5\nmax_rho: 100\n", "max_rho"), ("options: {a: 1, a: 2}\n", "a")):
        path = tmp_path / "cfg.yaml"
        path.write_text(text)
        with pytest.raises(InputError, match=rf"cfg\.yaml: invalid YAML at line \d+.*the key '{key}' is given twice"):
            load_yaml_config(path)
    path.write_text("base: &base {p: 1, q: 3}\noptions: {<<: *base, p: 2}\n")  # a merge key's keys may be overridden
    assert load_yaml_config(path)["options"] == {"p": 2, "q": 3}


def test_a_key_given_twice_in_the_metadata_options_is_refused() -> None:
    from spectral_probe.checkpoint import checkpoint_settings
    from spectral_probe.errors import InputError

    raw = '{"activation": "tanh", "activation": "relu"}'
    message = r"x\.safetensors: metadata 'spectral_probe\.options' .*'activation' is given twice"
    with pytest.raises(InputError, match=message):
        checkpoint_settings({"spectral_probe.options": raw}, "x.safetensors")
    assert checkpoint_settings({"spectral_probe.options": '{"a": {"b": 1}}'}, "x")["options"] == {"a": {"b": 1}}
