"""Hypothesis fuzzing: random safetensors headers, metadata, YAML configs and option strings.

Every example runs through the capped sandbox (see sandbox.py) and must satisfy the suite's
invariants: exit code in {0, 1, 2, 3}, never 4; no traceback; no hang; memory under the cap; the
file named on a bad-input error; and no file changed that was not named as an output. The example
counts keep the whole module to about a minute on one core.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectral_probe.cli_options import SHARED_NAMES
from spectral_probe.config import OPTION_NAMES
from tests.fuzz.catalogue import _linear, _save
from tests.fuzz.sandbox import assert_well_behaved, snapshot

#: Examples per strategy; SPECTRAL_PROBE_FUZZ_EXAMPLES=500 for a deeper search than CI's.
EXAMPLES = int(os.environ.get("SPECTRAL_PROBE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_counter = itertools.count()

_HUGE = st.integers(min_value=2**40, max_value=2**70)
_WORDS = st.sampled_from(
    ["nan", "inf", "-inf", "1e309", "-0", "", " ", "[/]", "[bold]x[/]", "\x00", "9" * 5000, "x" * 10_000]
)
_NUMBERS_AS_TEXT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers().map(str),
    _HUGE.map(str),
)
_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def _fresh(folder: Path, suffix: str) -> Path:
    return folder / f"case_{next(_counter)}{suffix}"


def _check(sandbox, folder: Path, args: tuple[str, ...], named: str | None, outputs: set[str] = frozenset()) -> dict:
    before = snapshot(folder)
    answer = sandbox.run(*args, cwd=str(folder))
    assert_well_behaved(answer, args, named)
    after = snapshot(folder)
    changed = {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
    assert changed <= outputs, f"{args}: files changed that are no outputs: {sorted(changed)}"
    return answer


# --------------------------------------------------------------------------------------------------
# Random safetensors headers

_DTYPES = st.sampled_from(
    ["F64", "F32", "F16", "BF16", "I64", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "C64", "U16", "?"]
)
_DIM = st.one_of(st.integers(-2, 6), _HUGE, st.booleans(), st.text(max_size=2), st.floats(allow_nan=True))
_OFFSET = st.one_of(st.integers(-4, 400), _HUGE, st.floats(allow_nan=True), st.none())
_ENTRY = st.one_of(
    st.fixed_dictionaries(
        {
            "dtype": st.one_of(_DTYPES, st.integers()),
            "shape": st.lists(_DIM, max_size=4),
            "data_offsets": st.lists(_OFFSET, max_size=3),
        }
    ),
    _JSON,
)
_HEADER = st.dictionaries(
    st.one_of(st.sampled_from(["A", "W", "b", "z_star", "__metadata__"]), st.text(max_size=6)), _ENTRY, max_size=4
)


@FUZZ
@given(header=_HEADER, data=st.binary(max_size=400), operator=st.sampled_from(["linear", "hopfield", "rnn", "conv"]))
def test_random_safetensors_header(header, data, operator, folder, sandbox) -> None:
    if isinstance(header.get("__metadata__"), dict) or "__metadata__" not in header:
        header["__metadata__"] = {"spectral_probe.operator": operator}
    raw = json.dumps(header).encode()
    path = _fresh(folder, ".safetensors")
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    _check(sandbox, folder, ("scan", str(path), "--quiet"), str(path))


@FUZZ
@given(prefix=st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 600)), body=st.binary(max_size=600))
def test_random_safetensors_bytes(prefix, body, folder, sandbox) -> None:
    path = _fresh(folder, ".safetensors")
    path.write_bytes(struct.pack("<Q", prefix) + body)
    _check(sandbox, folder, ("scan", str(path), "--quiet"), str(path))


@settings(
    max_examples=max(15, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=400), zip_prefix=st.booleans())
def test_random_torch_bytes(body, zip_prefix, folder, sandbox) -> None:
    path = _fresh(folder, ".pt")
    path.write_bytes((b"PK\x03\x04" if zip_prefix else b"") + body)
    _check(sandbox, folder, ("scan", str(path), "--operator", "linear", "--quiet"), str(path))


# --------------------------------------------------------------------------------------------------
# Random metadata

_META_VALUE = st.one_of(st.text(max_size=30), _NUMBERS_AS_TEXT, _WORDS, _JSON.map(json.dumps))
_META = st.dictionaries(
    st.sampled_from(["operator", "c", "eps", "options", "step", "other"]).map(lambda k: "spectral_probe." + k),
    _META_VALUE,
    max_size=5,
)


@FUZZ
@given(metadata=_META)
def test_random_metadata(metadata, folder, sandbox) -> None:
    path = _fresh(folder, ".safetensors")
    tensors = {"A": -0.5 * torch.eye(4, dtype=torch.float64), "z_star": torch.zeros(4, dtype=torch.float64)}
    _save(path, tensors)
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata=metadata)
    _check(sandbox, folder, ("scan", str(path), "--quiet"), str(path))


# --------------------------------------------------------------------------------------------------
# Random YAML

_YAML_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    _HUGE,
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    _WORDS,
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
_YAML_KEYS = st.one_of(st.sampled_from(sorted(OPTION_NAMES | {"options", "max-rho", "--band"})), st.text(max_size=8))


@FUZZ
@given(config=st.dictionaries(_YAML_KEYS, _YAML_VALUE, max_size=4))
def test_random_yaml_config(config, folder, sandbox) -> None:
    good = folder / "good.safetensors"
    if not good.exists():
        _linear(good)
    config = {
        k: v
        for k, v in config.items()
        # the options that write files: a random value is a legitimate output, which the check would flag
        if k.replace("-", "_").lstrip("_") not in ("json", "markdown", "junit", "jsonl", "plot", "save_modes")
    }
    path = _fresh(folder, ".yaml")
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    answer = _check(sandbox, folder, ("scan", str(good), "--config", str(path), "--quiet"), str(path))
    if any(isinstance(v, float) and not math.isfinite(v) for v in config.values()):
        assert answer["exit_code"] == 2


@FUZZ
@given(text=st.text(alphabet="ab:-[]{}&*!|>'\"\n 0123.e#%@,?~", max_size=80))
def test_random_yaml_text(text, folder, sandbox) -> None:
    good = folder / "good.safetensors"
    if not good.exists():
        _linear(good)
    path = _fresh(folder, ".yaml")
    path.write_text(text)
    _check(sandbox, folder, ("scan", str(good), "--config", str(path), "--quiet"), str(path))


# --------------------------------------------------------------------------------------------------
# Random option strings

_FLAGS = [
    name
    for name in SHARED_NAMES
    if name not in ("quiet", "debug", "refine", "margins", "transient", "modes", "config", "fixed_point", "operator")
]


@settings(max_examples=EXAMPLES * 3 // 2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(_FLAGS), value=st.one_of(_WORDS, _NUMBERS_AS_TEXT, st.text(max_size=12)))
def test_random_option_string(name, value, folder, sandbox) -> None:
    good = folder / "good.safetensors"
    if not good.exists():
        _linear(good)
    flag = "--" + name.replace("_", "-")
    outputs = set()
    if name in ("json", "markdown", "junit", "plot", "save_modes") and value not in ("-", ""):
        outputs = {value} | {p for p in [value.rstrip("/")] if p}
    answer = _check(sandbox, folder, ("scan", str(good), flag, value, "--quiet"), None, outputs)
    if name in ("band", "max_rho", "max_alpha", "max_omega", "c", "eps", "tol") and value.strip().lower() in (
        "nan",
        "inf",
        "-inf",
        "1e309",
    ):
        assert answer["exit_code"] == 2 and flag in answer["stderr"], answer
