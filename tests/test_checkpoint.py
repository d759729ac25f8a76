"""Reading checkpoints, fixed points, metadata and YAML: every bad input is one InputError line."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from spectral_probe.checkpoint import (
    checkpoint_settings,
    load_checkpoint,
    load_fixed_point,
    load_yaml_config,
    prepare_fixed_points,
    to_probe,
)
from spectral_probe.errors import InputError


def _randn(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _tensors() -> dict[str, torch.Tensor]:
    return {"W": _randn(4, 4), "b": _randn(4, seed=1), "z_star": _randn(4, seed=2)}


@pytest.fixture
def safetensors_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    metadata = {"spectral_probe.operator": "hopfield", "spectral_probe.c": "0.5", "note": "x"}
    save_file(_tensors(), str(path), metadata=metadata)
    return path


def _one_line_error(path: Path, call=load_checkpoint) -> InputError:
    with pytest.raises(InputError) as info:
        call(path)
    message = str(info.value)
    assert info.value.path == str(path)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message and "Traceback" not in message
    return info.value


# ----------------------------------------------------------------------------------------------
# Valid files


def test_load_safetensors(safetensors_file: Path) -> None:
    ckpt = load_checkpoint(safetensors_file)
    expected = _tensors()
    assert ckpt.path == str(safetensors_file)
    assert set(ckpt.params) == {"W", "b"}
    assert torch.equal(ckpt.params["W"], expected["W"])
    assert ckpt.z_star is not None and torch.equal(ckpt.z_star, expected["z_star"])
    assert ckpt.metadata["spectral_probe.operator"] == "hopfield"
    assert ckpt.sha256 == hashlib.sha256(safetensors_file.read_bytes()).hexdigest()


def test_load_plain_tensor_pt(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    tensors = _tensors()
    torch.save(
        {
            "W": torch.nn.Parameter(tensors["W"]),
            "b": tensors["b"],
            "__metadata__": {"spectral_probe.operator": "rnn"},
        },
        path,
    )
    ckpt = load_checkpoint(path)
    assert set(ckpt.params) == {"W", "b"} and ckpt.z_star is None
    assert type(ckpt.params["W"]) is torch.Tensor and not ckpt.params["W"].requires_grad
    assert torch.equal(ckpt.params["W"], tensors["W"])
    assert ckpt.metadata == {"spectral_probe.operator": "rnn"}
    pth = tmp_path / "model.pth"
    torch.save({"A": tensors["W"]}, pth)
    assert set(load_checkpoint(pth).params) == {"A"}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_loads_and_promotes(tmp_path: Path, dtype: torch.dtype) -> None:
    path = tmp_path / "half.safetensors"
    tensors = {k: v.to(dtype) for k, v in _tensors().items()}
    tensors["index"] = torch.arange(3)
    save_file(tensors, str(path))
    ckpt = load_checkpoint(path)
    assert ckpt.params["W"].dtype == dtype
    promoted = to_probe(ckpt.params, torch.float64, "cpu")
    assert promoted["W"].dtype == torch.float64 and promoted["b"].dtype == torch.float64
    assert promoted["index"].dtype == torch.int64  # integer tensors keep their dtype
    assert torch.equal(promoted["W"], tensors["W"].double())
    assert ckpt.z_star is not None
    z = to_probe(ckpt.z_star, torch.float32, "cpu")
    assert z.dtype == torch.float32
    # to_probe never aliases the stored tensor
    same = to_probe(ckpt.params, dtype, "cpu")
    same["W"].zero_()
    assert ckpt.params["W"].abs().sum() > 0


# ----------------------------------------------------------------------------------------------
# Bad files


def test_missing_file(tmp_path: Path) -> None:
    assert "no such file" in str(_one_line_error(tmp_path / "absent.safetensors"))


def test_directory(tmp_path: Path) -> None:
    directory = tmp_path / "dir.safetensors"
    directory.mkdir()
    assert "is a directory" in str(_one_line_error(directory))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_empty_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    assert "empty" in str(_one_line_error(path))


def test_truncated_safetensors(safetensors_file: Path) -> None:
    data = safetensors_file.read_bytes()
    safetensors_file.write_bytes(data[: len(data) // 2])
    assert "truncated" in str(_one_line_error(safetensors_file))
    safetensors_file.write_bytes(data[:-3])
    assert "truncated" in str(_one_line_error(safetensors_file))


def test_truncated_pt(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(_tensors(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "truncated or corrupt" in str(_one_line_error(path))


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_random_bytes(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"noise{suffix}"
    path.write_bytes(os.urandom(4096))
    _one_line_error(path)


def test_safetensors_with_bad_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.safetensors"
    header = b"{not json"
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    assert "not valid JSON" in str(_one_line_error(path))
    header = json.dumps({"W": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 15]}}).encode()
    path.write_bytes(len(header).to_bytes(8, "little") + header + bytes(15))
    assert "corrupt safetensors" in str(_one_line_error(path))
    path.write_bytes(b"abc")
    assert "only 3 bytes" in str(_one_line_error(path))


def _raw(path: Path, header: bytes, data: bytes) -> Path:
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    return path


def _entry(shape: list[int], start: int, end: int) -> bytes:
    return json.dumps({"dtype": "F64", "shape": shape, "data_offsets": [start, end]}).encode()


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        # Two parsers, two answers (json keeps the last, safetensors refuses): refused by name.
        (b'{"A": ' + _entry([4], 0, 32) + b', "A": ' + _entry([2], 0, 16) + b"}", bytes(32), "'A' is given twice"),
        (b'{"__metadata__": {}, "__metadata__": {}, "A": ' + _entry([4], 0, 32) + b"}", bytes(32), "given twice"),
        (b'{"__metadata__": {"k": "a", "k": "b"}, "A": ' + _entry([4], 0, 32) + b"}", bytes(32), "'k' is given twice"),
        # The data must be covered exactly, as safetensors requires.
        (b'{"A": ' + _entry([4], 0, 32) + b', "B": ' + _entry([1], 40, 48) + b"}", bytes(48), "8 bytes between"),
        (b'{"A": ' + _entry([4], 0, 32) + b"}", bytes(40), "cover 32 of the 40 data bytes"),
        (b'{"A": ' + _entry([4], 8, 40) + b"}", bytes(40), "cover 32 of the 40 data bytes"),
        # Zero elements, but torch still multiplies the dimensions (and overflows int64).
        (b'{"A": ' + _entry([2**32, 2**32, 2**32, 0], 0, 0) + b"}", b"", "beyond int64"),
    ],
    ids=["duplicate tensor", "duplicate metadata", "duplicate metadata key", "gap", "trailing", "leading", "int64"],
)
def test_safetensors_header_refused_by_name(tmp_path: Path, header: bytes, data: bytes, message: str) -> None:
    assert message in str(_one_line_error(_raw(tmp_path / "h.safetensors", header, data)))


def test_safetensors_odd_but_valid_layouts_load(tmp_path: Path) -> None:
    """Tensors out of offset order, a misaligned one, an empty one, bool and int: read as stored."""
    a, b = torch.arange(3, dtype=torch.float64), torch.tensor([True, False, True])
    header = json.dumps(
        {
            "a": {"dtype": "F64", "shape": [3], "data_offsets": [3, 27]},  # misaligned: after the bools
            "b": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]},
            "e": {"dtype": "I32", "shape": [0, 5], "data_offsets": [27, 27]},
        }
    ).encode()
    path = _raw(tmp_path / "odd.safetensors", header, b.numpy().tobytes() + a.numpy().tobytes())
    params = load_checkpoint(path).params
    assert torch.equal(params["a"], a) and torch.equal(params["b"], b)
    assert params["e"].shape == (0, 5) and params["e"].dtype == torch.int32


def test_a_checkpoint_rewritten_while_probed_keeps_what_was_read(safetensors_file: Path) -> None:
    """safe_open memory-maps the file: a checkpoint truncated in place (a training loop saving over it)
    changed the tensors under the probe or killed the process with SIGBUS. In a child process, so that
    a SIGBUS cannot take the test session with it."""
    import subprocess
    import sys

    script = (
        "import os, sys, torch\n"
        "from spectral_probe.checkpoint import load_checkpoint\n"
        "ckpt = load_checkpoint(sys.argv[1])\n"
        "os.truncate(sys.argv[1], 16)\n"
        "print(float(ckpt.params['W'].sum()), float(ckpt.params['b'].sum()))\n"
    )
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(safetensors_file)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    expected = _tensors()
    assert done.stdout.split() == [str(float(expected["W"].sum())), str(float(expected["b"].sum()))]


def test_a_file_that_changes_size_while_read_is_refused(safetensors_file: Path, monkeypatch) -> None:
    from spectral_probe.checkpoint import tensor_files

    real = tensor_files.check_fits

    def grow(needed: int, what: str, path: object, device: str = "cpu") -> None:
        real(needed, what, path, device)
        with open(path, "ab") as handle:  # the writer appends between the stat and the read
            handle.write(b"more")

    monkeypatch.setattr(tensor_files, "check_fits", grow)
    assert "changed while it was read" in str(_one_line_error(safetensors_file))


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"1234")
    assert "unsupported file type '.bin'" in str(_one_line_error(path))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_tensor_is_named(tmp_path: Path, bad: float) -> None:
    path = tmp_path / "nan.safetensors"
    tensors = _tensors()
    tensors["b"][2] = bad
    save_file(tensors, str(path))
    message = str(_one_line_error(path))
    assert "tensor 'b'" in message and "non-finite" in message


def test_no_tensors(tmp_path: Path) -> None:
    path = tmp_path / "nothing.safetensors"
    save_file({}, str(path))
    assert "holds no tensors" in str(_one_line_error(path))


class _WritesMarker:
    """Unpickling this would create the marker file: weights_only loading must refuse it first."""

    marker = ""

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "pwned"))


def test_pickled_object_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed.marker"
    payload = _WritesMarker()
    payload.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"W": _randn(2, 2), "payload": payload}, path)
    assert not marker.exists()
    message = str(_one_line_error(path))
    assert "not a plain tensor checkpoint" in message
    assert "never unpickles" in message
    assert not marker.exists()


def test_raw_pickle_and_legacy_format(tmp_path: Path) -> None:
    marker = tmp_path / "executed.marker"
    payload = _WritesMarker()
    payload.marker = str(marker)
    raw = tmp_path / "raw.pt"
    raw.write_bytes(pickle.dumps({"payload": payload}))
    assert "not a torch checkpoint" in str(_one_line_error(raw))
    legacy = tmp_path / "legacy.pt"
    torch.save({"W": _randn(2, 2), "payload": payload}, legacy, _use_new_zipfile_serialization=False)
    assert "legacy torch checkpoint" in str(_one_line_error(legacy))
    assert not marker.exists()


def test_legacy_format_is_refused_before_torch_allocates(tmp_path: Path) -> None:
    # The legacy (pre-1.6) format declares each storage's size in its pickle, and torch allocates it
    # while unpickling, before any check: 10^11 floats gave "[enforce fail at alloc_cpu.cpp:127]".
    legacy = tmp_path / "legacy.pt"
    torch.save({"W": _randn(2, 2)}, legacy, _use_new_zipfile_serialization=False)
    message = str(_one_line_error(legacy))
    assert "legacy torch checkpoint" in message and "re-save it" in message
    numel = b"X\x03\x00\x00\x00cpuq\x06K\x04"  # the location 'cpu', then the storage's 4 elements
    data = legacy.read_bytes()
    assert data.count(numel) == 1
    legacy.write_bytes(data.replace(numel, numel[:-2] + b"\x8a\x05" + (10**11).to_bytes(5, "little")))
    for call in (load_checkpoint, load_fixed_point):
        assert "legacy torch checkpoint" in str(_one_line_error(legacy, call))


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_randn(3), "expected a dict of name -> tensor, got a Tensor"),
        ({"W": _randn(2), "step": 3}, "'step' holds a int"),
        ({"model": {"W": _randn(2)}}, "nested state dicts are not unpacked"),
        ({"W": _randn(2), "__metadata__": {"k": 1}}, "must map strings to strings"),
    ],
)
def test_pt_that_is_not_a_flat_tensor_dict(tmp_path: Path, obj, message: str) -> None:
    path = tmp_path / "odd.pt"
    torch.save(obj, path)
    assert message in str(_one_line_error(path))


# ----------------------------------------------------------------------------------------------
# Fixed points


def test_load_fixed_point(tmp_path: Path) -> None:
    z = _randn(3, 4, seed=5)
    named = tmp_path / "z.safetensors"
    save_file({"z_star": z, "other": _randn(2)}, str(named))
    assert torch.equal(load_fixed_point(named), z)
    single = tmp_path / "single.safetensors"
    save_file({"whatever": z}, str(single))
    assert torch.equal(load_fixed_point(single), z)
    pt = tmp_path / "z.pt"
    torch.save({"z_star": z}, pt)
    assert torch.equal(load_fixed_point(pt), z)
    ambiguous = tmp_path / "two.safetensors"
    save_file({"a": z, "b": z.clone()}, str(ambiguous))
    assert "exactly one tensor" in str(_one_line_error(ambiguous, load_fixed_point))


def test_prepare_fixed_points_shapes() -> None:
    assert prepare_fixed_points(_randn(4), 4, "f").shape == (1, 4)
    assert prepare_fixed_points(_randn(3, 4), 4, "f").shape == (3, 4)
    assert prepare_fixed_points(_randn(3, 4), None, "f").shape == (3, 4)
    # an unflattened conv state [C, H, W] or [B, C, H, W]
    assert prepare_fixed_points(_randn(2, 3, 4), 24, "f").shape == (1, 24)
    stacked = _randn(5, 2, 3, 4)
    assert torch.equal(prepare_fixed_points(stacked, 24, "f"), stacked.reshape(5, 24))


@pytest.mark.parametrize(
    ("z", "n", "message"),
    [
        (_randn(5), 4, "z_star has shape [5] but the operator acts on states of size n = 4"),
        (_randn(3, 5), 4, "expected [4] or [B, 4]"),
        (_randn(2, 3, 5), 4, "z_star has shape [2, 3, 5]"),
        (_randn(2, 3, 5), None, "expected [n] or [B, n]"),
        (torch.zeros(0, 4), 4, "empty"),
        (torch.arange(4), 4, "real floating tensor"),
        (torch.tensor([1.0, float("nan"), 0.0, 1.0]), 4, "1 non-finite"),
        (torch.tensor([[1.0, 0.0], [float("inf"), 1.0]]), 2, "fixed points [1]"),
    ],
)
def test_prepare_fixed_points_errors(z: torch.Tensor, n: int | None, message: str) -> None:
    with pytest.raises(InputError) as info:
        prepare_fixed_points(z, n, "z.safetensors")
    assert str(info.value).startswith("z.safetensors: ")
    assert message in str(info.value)


# ----------------------------------------------------------------------------------------------
# Metadata settings


def test_checkpoint_settings() -> None:
    metadata = {
        "spectral_probe.operator": " rnn ",
        "spectral_probe.c": "0.25",
        "spectral_probe.eps": "1e-1",
        "spectral_probe.options": '{"activation": "relu"}',
        "spectral_probe.step": "1200",
        "spectral_probe.future_key": "ignored",
        "format": "pt",
    }
    assert checkpoint_settings(metadata) == {
        "operator": "rnn",
        "c": 0.25,
        "eps": 0.1,
        "options": {"activation": "relu"},
        "step": 1200,
    }
    assert checkpoint_settings({}) == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        *[("eps", v) for v in ("1_0", " 1", "1 ", "1e5\n", "\t0.5", "0x10", "1e", ".", "++1", "1,5", "１", "0.5f")],
        *[("c", v) for v in ("-1_0", "1__0", "+ 1", "0b1", "0o7", "1e1_0", "")],
    ],
)
def test_metadata_numbers_are_plain(key: str, value: str) -> None:
    # float() reads "1_0" as 10, " 1" as 1, "1e5\n" as 1e5: spectral_probe.eps = "1_0" probed at eps = 10
    with pytest.raises(InputError) as info:
        checkpoint_settings({f"spectral_probe.{key}": value}, "ckpt.safetensors")
    message = str(info.value)
    assert message.startswith(f"ckpt.safetensors: metadata 'spectral_probe.{key}' is not a number: ")
    assert "\n" not in message


@pytest.mark.parametrize("value", ["infinity", "-Infinity", "+inf", "NaN", "1e999"])
def test_metadata_numbers_that_are_not_finite(value: str) -> None:
    with pytest.raises(InputError, match="'spectral_probe.eps' is not finite"):
        checkpoint_settings({"spectral_probe.eps": value}, "ckpt.safetensors")


@pytest.mark.parametrize("value", ["2", "+2", "0.5", ".5", "5.", "1e-3", "1E+2", "2.5e0", "007"])
def test_metadata_numbers_read_as_the_command_line_reads_them(value: str) -> None:
    from spectral_probe.config import ProbeOptions

    assert checkpoint_settings({"spectral_probe.eps": value})["eps"] == ProbeOptions(eps=value).eps == float(value)


@pytest.mark.parametrize("value", [" 1", "1 ", "1\n", "1_0", "+1", "１"])
def test_metadata_step_is_plain_digits(value: str) -> None:
    with pytest.raises(InputError, match="'spectral_probe.step' is not an integer"):
        checkpoint_settings({"spectral_probe.step": value}, "ckpt.safetensors")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("c", "abc", "'spectral_probe.c' is not a number"),
        ("c", "nan", "not finite"),
        ("eps", "0", "must be > 0"),
        ("eps", "inf", "not finite"),
        ("options", "{bad", "not valid JSON"),
        ("options", "[1, 2]", "must be a JSON object"),
        ("step", "1.5", "not an integer"),
        ("step", "-3", "must be >= 0"),
        ("operator", "  ", "is empty"),
    ],
)
def test_checkpoint_settings_errors(key: str, value: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        checkpoint_settings({f"spectral_probe.{key}": value}, "ckpt.safetensors")
    assert str(info.value).startswith("ckpt.safetensors: ")
    assert message in str(info.value)


# ----------------------------------------------------------------------------------------------
# YAML config


def test_yaml_config_normalizes_keys(tmp_path: Path) -> None:
    path = tmp_path / "probe.yaml"
    path.write_text("max-rho: 0.99\n--max-alpha: 0\nmatvec: fd\noptions:\n  some-option: 1\n")
    assert load_yaml_config(path) == {
        "max_rho": 0.99,
        "max_alpha": 0,
        "matvec": "fd",
        "options": {"some-option": 1},
    }
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_yaml_config(empty) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must be a mapping"),
        ("max_rho: [1,\n", "invalid YAML at line"),
        ("max-rho: 1\nmax_rho: 2\n", "given twice"),
        ("1: 2\n", "keys must be strings"),
    ],
)
def test_yaml_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert message in str(_one_line_error(path, load_yaml_config))


def test_yaml_config_missing(tmp_path: Path) -> None:
    assert "no such file" in str(_one_line_error(tmp_path / "absent.yaml", load_yaml_config))


def test_a_pt_record_that_fails_its_crc_is_refused_not_probed(tmp_path: Path) -> None:
    # torch.load checks no CRC-32: A[0, 0] = -0.5 changed to -2.5 in the file was probed as a flip.
    path = tmp_path / "crc.pt"
    torch.save({"A": torch.tensor([[-0.5, 0.0], [0.0, -0.5]], dtype=torch.float64)}, path)
    data = path.read_bytes()
    value = torch.tensor([-0.5], dtype=torch.float64).numpy().tobytes()
    path.write_bytes(data.replace(value, torch.tensor([-2.5], dtype=torch.float64).numpy().tobytes(), 1))
    assert path.read_bytes() != data
    error = _one_line_error(path)
    assert "corrupt torch checkpoint: zip record" in str(error) and "fails its CRC-32 check" in str(error)


def test_key_in_a_pt_keeps_the_top_level_metadata_as_a_safetensors_header_does(tmp_path: Path) -> None:
    a, z = -0.5 * torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    metadata = {"spectral_probe.operator": "linear", "spectral_probe.eps": "0.1", "spectral_probe.c": "2"}
    torch.save({"model": {"A": a, "z_star": z}, "step": torch.tensor(7), "__metadata__": metadata}, tmp_path / "t.pt")
    save_file({"model.A": a, "model.z_star": z}, str(tmp_path / "t.safetensors"), metadata=metadata)
    for name in ("t.pt", "t.safetensors"):
        ckpt = load_checkpoint(tmp_path / name, key="model")
        assert ckpt.metadata == metadata and set(ckpt.params) == {"A"}, name
    inner = {**metadata, "spectral_probe.eps": "0.5"}  # the picked state dict's own metadata wins
    torch.save({"model": {"A": a, "__metadata__": inner}, "__metadata__": metadata}, tmp_path / "u.pt")
    assert load_checkpoint(tmp_path / "u.pt", key="model").metadata == inner


def test_a_zip_that_torch_refuses_is_named_by_the_reason_not_the_cpp_location(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "plain.pt"
    with zipfile.ZipFile(path, "w") as archive:  # records not under one folder, as torch.save writes them
        archive.writestr("hello.txt", "not a checkpoint")
    error = str(_one_line_error(path))
    assert "file in archive is not in a subdirectory" in error and "enforce fail" not in error


def test_many_tiny_fixed_points_are_priced_by_their_records_before_the_probe(tmp_path: Path, monkeypatch) -> None:
    # 200,000 fixed points of n = 1 in a 1.6 MB file took 2.3 GB (about 14 KB of records each) where the
    # check before the probe counted 8 MB of tensors: it ran out of memory 30 s in, instead of up front.
    import spectral_probe.memory as memory
    from spectral_probe.config import ProbeOptions
    from spectral_probe.errors import ResourceError
    from spectral_probe.probe import probe_checkpoint

    path = tmp_path / "many.safetensors"
    save_file({"A": -0.5 * torch.eye(1, dtype=torch.float64), "z_star": torch.zeros(20_000, 1, dtype=torch.float64)},
              str(path), metadata={"spectral_probe.operator": "linear"})  # fmt: skip
    monkeypatch.setattr(memory, "available_memory", lambda device="cpu": 100_000_000)  # 100 MB left
    with pytest.raises(ResourceError, match=r"the result records of 20000 fixed points needs at least 200\.0 MB"):
        probe_checkpoint(str(path), ProbeOptions())
