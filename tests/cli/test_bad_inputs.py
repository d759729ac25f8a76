"""Every bad input: exit code 2, one line naming the file and the problem, no traceback."""

import pickle

import pytest
import torch

from tests.cli.helpers import run_cli, write_checkpoint


class Exploit:
    """A pickle payload that would write a marker file if it were ever unpickled."""

    marker = None

    def __reduce__(self):
        return (open, (str(Exploit.marker), "w"))


def _good(tmp_path, name="good.safetensors", **meta):
    n = 4
    tensors = {"A": -torch.eye(n, dtype=torch.float64), "z_star": torch.zeros(n, dtype=torch.float64)}
    return write_checkpoint(tmp_path / name, tensors, **({"operator": "linear"} | meta))


def _cases(tmp_path):
    good = _good(tmp_path)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(bytes(range(256)) * 7)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    nonfinite = write_checkpoint(
        tmp_path / "nan.safetensors",
        {"A": torch.full((3, 3), float("nan")), "z_star": torch.zeros(3)},
        operator="linear",
    )
    shape = write_checkpoint(
        tmp_path / "shape.safetensors", {"A": torch.eye(3), "z_star": torch.zeros(5)}, operator="linear"
    )
    unknown = _good(tmp_path, "unknown_op.safetensors", operator="no_such_operator")
    module_path = _good(tmp_path, "module_op.safetensors", operator="os:system")
    # No z_star stored, and none exists (F(z) = b for A = I): the tool's own solve must fail clearly.
    no_z = write_checkpoint(tmp_path / "no_z.safetensors", {"A": torch.eye(3), "b": torch.ones(3)}, operator="linear")
    pickled = tmp_path / "pickled.pt"
    Exploit.marker = tmp_path / "PWNED"
    with open(pickled, "wb") as handle:
        pickle.dump({"A": torch.eye(3), "evil": Exploit()}, handle)
    return {
        "missing": (tmp_path / "does_not_exist.safetensors", ()),
        "truncated": (truncated, ()),
        "random bytes": (garbage, ()),
        "empty": (empty, ()),
        "non-finite": (nonfinite, ()),
        "shape mismatch": (shape, ()),
        "unknown operator": (unknown, ()),
        "module path in metadata": (module_path, ()),
        "no fixed point": (no_z, ()),
        "pickled .pt": (pickled, ("--operator", "linear")),
        "bad --fixed-point": (good, ("--fixed-point", str(garbage))),
        "unknown --operator": (good, ("--operator", "nope_not_registered")),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "truncated",
        "random bytes",
        "empty",
        "non-finite",
        "shape mismatch",
        "unknown operator",
        "module path in metadata",
        "no fixed point",
        "pickled .pt",
        "bad --fixed-point",
        "unknown --operator",
    ],
)
def test_bad_input_exit_2(tmp_path, case: str) -> None:
    path, extra = _cases(tmp_path)[case]
    code, _, output = run_cli("scan", path, *extra)
    assert code == 2, output
    assert "Traceback" not in output
    named = path.name if case not in ("bad --fixed-point",) else "garbage.safetensors"
    assert named in output, output
    assert not (tmp_path / "PWNED").exists()


def test_debug_shows_traceback(tmp_path) -> None:
    path = tmp_path / "garbage.safetensors"
    path.write_bytes(b"\x00" * 100)
    code, _, output = run_cli("scan", path, "--debug")
    assert code == 2
    assert "Traceback" in output


def test_gate_on_uncomputed_quantity_is_exit_2(tmp_path) -> None:
    n = 3000  # above the fd dense limit: omega is not computed under --matvec fd
    path = write_checkpoint(
        tmp_path / "big.safetensors", {"A": -torch.eye(n) * 0.5, "z_star": torch.zeros(n)}, operator="linear"
    )
    code, _, output = run_cli("scan", path, "--matvec", "fd", "--max-omega", "0", "--quiet")
    assert code == 2, output
    assert "omega" in output


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("operator: '0'", "unknown operator '0'"),
        ("save_modes: '0'", "name a .safetensors file"),
        ("plot: m.safetensors", "refusing to write a report under a checkpoint's suffix"),
    ],
)
def test_a_bad_value_from_the_config_file_names_the_config_file(tmp_path, line: str, problem: str) -> None:
    # The value came from the config file, so the error names it (not the checkpoint, not a flag the
    # user never typed); the same value on the command line is named by its flag.
    checkpoint = write_checkpoint(
        tmp_path / "m.safetensors",
        {"A": -torch.eye(4, dtype=torch.float64), "z_star": torch.zeros(4)},
        operator="linear",
    )
    config = tmp_path / "settings.yaml"
    config.write_text(line + "\n")
    code, _, output = run_cli("scan", checkpoint, "--config", config)
    assert code == 2, output
    first = output.strip().splitlines()[-1]
    assert first.startswith(f"error: {config}: ") and problem in first, first


def test_operator_options_the_factory_refuses_name_the_config_file(tmp_path) -> None:
    checkpoint = write_checkpoint(
        tmp_path / "m.safetensors",
        {"A": -torch.eye(4, dtype=torch.float64), "z_star": torch.zeros(4)},
        operator="linear",
    )
    config = tmp_path / "settings.yaml"
    config.write_text("options:\n  height: 3\n")
    code, _, output = run_cli("scan", checkpoint, "--config", config)
    assert code == 2 and str(config) in output and str(checkpoint) in output, output


def test_a_z_star_of_more_than_two_dimensions_is_named_with_its_shape(tmp_path) -> None:
    # hopfield acts on states of n = 8: a [2, 2, 8] z_star is neither one state of 8 elements nor [B, ...] of them
    tensors = {
        "W": 0.1 * torch.eye(8, dtype=torch.float64),
        "b": torch.zeros(8, dtype=torch.float64),
        "z_star": torch.zeros(2, 2, 8, dtype=torch.float64),
    }
    path = write_checkpoint(tmp_path / "z3d.safetensors", tensors, operator="hopfield")
    code, _, output = run_cli("scan", path)
    assert code == 2, output
    assert "Traceback" not in output
    assert "z3d.safetensors" in output and "z_star has shape [2, 2, 8]" in output, output
    assert "expected [8] or [B, 8] (or 8 elements in any shape, [B, ...] for B states)" in output, output
