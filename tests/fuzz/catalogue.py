"""A catalogue of hand-made hostile and broken inputs, each with the exit code and message it gives.

Every case of issue 9's lists (the audit-journal ones aside, tested with the journal) is here, plus the
same kind found by the same search. :func:`build` writes the files below a folder and returns the
cases; the tests run each through the capped sandbox and assert the code, the message, one line, no
traceback, no hang, memory under the cap, and that no file changed that the case does not name as an
output.
"""

from __future__ import annotations

import io
import json
import os
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

N = 4


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    code: int
    message: tuple[str, ...]  # substrings of the output, all required
    named: str | None = None  # the file (or option) an error must name
    outputs: tuple[str, ...] = ()  # files below the folder that the case may write
    env: dict[str, str] = field(default_factory=dict)


def _save(path: Path, tensors: dict[str, torch.Tensor], **metadata: str) -> Path:
    meta = {f"spectral_probe.{k}": v for k, v in metadata.items()}
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(path), metadata=meta)
    return path


def _linear(path: Path, **metadata: str) -> Path:
    tensors = {"A": -torch.eye(N, dtype=torch.float64), "z_star": torch.zeros(N, dtype=torch.float64)}
    return _save(path, tensors, **({"operator": "linear"} | metadata))


def _raw_safetensors(path: Path, header: bytes, data: bytes = b"") -> Path:
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)
    return path


def _conv_34gb(path: Path) -> Path:
    """1 MB on disk; one evaluation of its hidden layer [8192, 500, 500] in float64 is 16 GB."""
    tensors = {
        "conv1_weight": torch.zeros(8192, 1, 1, 1),
        "conv2_weight": torch.zeros(1, 8192, 1, 1),
        "z_star": torch.zeros(500 * 500),
    }
    return _save(path, tensors, operator="conv", options=json.dumps({"height": 500, "width": 500}))


def _zip_bomb(path: Path) -> Path:
    """A torch.save archive re-packed with a deflated record that inflates 1000-fold."""
    buffer = io.BytesIO()
    torch.save({"A": -torch.eye(N), "z_star": torch.zeros(N)}, buffer)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w") as archive:
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info.filename), compress_type=zipfile.ZIP_STORED)
        prefix = source.infolist()[0].filename.split("/")[0]
        archive.writestr(f"{prefix}/data/99", bytes(16_000_000), compress_type=zipfile.ZIP_DEFLATED)
    return path


def _legacy_400gb(path: Path) -> Path:
    """A legacy (pre-1.6, non-zip) torch.save file of 540 bytes whose storage claims 10^11 floats."""
    buffer = io.BytesIO()
    torch.save({"A": -torch.eye(N), "z_star": torch.zeros(N)}, buffer, _use_new_zipfile_serialization=False)
    numel = b"X\x03\x00\x00\x00cpuq\x06K\x10"  # 'cpu', then the first storage's 16 elements
    assert buffer.getvalue().count(numel) == 1
    path.write_bytes(buffer.getvalue().replace(numel, numel[:-2] + b"\x8a\x05" + (10**11).to_bytes(5, "little")))
    return path


def _torch_file(path: Path, obj: object) -> Path:
    torch.save(obj, str(path))
    return path


def _operator_file(path: Path, body: str) -> Path:
    path.write_text("import torch\n\n\ndef factory(params, options):\n" + body)
    return path


def _files(root: Path) -> dict[str, Path]:
    """Every hostile file, by a short name."""
    (root / "run").mkdir()
    for step in (1, 2):
        _linear(root / "run" / f"step_{step}.safetensors", step=str(step))
    markup_dir = root / "run["  # with the file below: the path "run[/]x.safetensors"
    markup_dir.mkdir()
    nested = b"[" * 100_000 + b"]" * 100_000
    huge_int = "9" * 5000
    files = {
        "good": _linear(root / "good.safetensors"),
        "markup": _linear(markup_dir / "]x[bold].safetensors"),
        "non-utf8": _linear(Path(os.fsdecode(bytes(root / "na") + b"\xff\xfeme.safetensors"))),
        "deep header": _raw_safetensors(root / "deep.safetensors", nested),
        "float8": _save(
            root / "f8.safetensors",
            {"A": (-torch.eye(N)).to(torch.float8_e4m3fn), "z_star": torch.zeros(N).to(torch.float8_e4m3fn)},
            operator="linear",
        ),
        "shape lies": _raw_safetensors(
            root / "shape.safetensors",
            json.dumps({"A": {"dtype": "F64", "shape": [10**6, 10**6], "data_offsets": [0, 128]}}).encode(),
            bytes(128),
        ),
        "overlap": _raw_safetensors(
            root / "overlap.safetensors",
            json.dumps(
                {
                    "A": {"dtype": "F64", "shape": [N, N], "data_offsets": [0, 128]},
                    "z_star": {"dtype": "F64", "shape": [N], "data_offsets": [96, 128]},
                }
            ).encode(),
            bytes(128),
        ),
        "conv 34 GB": _conv_34gb(root / "conv.safetensors"),
        "zip bomb": _zip_bomb(root / "bomb.pt"),
        "legacy 400 GB": _legacy_400gb(root / "legacy.pt"),
        "meta tensor": _torch_file(root / "meta.pt", {"A": torch.empty(N, N, device="meta"), "z_star": torch.zeros(N)}),
        "stride 0": _torch_file(
            root / "expanded.pt", {"A": torch.zeros(1).expand(10**5, 10**5), "z_star": torch.zeros(N)}
        ),
        "options 5000 digits": _linear(root / "digits.safetensors", options='{"height": ' + huge_int + "}"),
        "options NaN": _linear(root / "optnan.safetensors", options='{"x": NaN}'),
        "options deep": _linear(root / "optdeep.safetensors", options="[" * 50_000 + "]" * 50_000),
        "options not JSON": _linear(root / "optbad.safetensors", options="{oops"),
        "eps nan": _linear(root / "epsnan.safetensors", eps="nan"),
        "eps inf": _linear(root / "epsinf.safetensors", eps="inf"),
        "eps -1": _linear(root / "epsneg.safetensors", eps="-1"),
        "eps 1e13": _linear(root / "epsbig.safetensors", eps="1e13"),
        "c 1e300": _linear(root / "cbig.safetensors", c="1e300"),
        "c abc": _linear(root / "cabc.safetensors", c="abc"),
        "eps 1_0": _linear(root / "eps_underscore.safetensors", eps="1_0"),
        "eps newline": _linear(root / "eps_newline.safetensors", eps="1e5\n"),
        "eps infinity": _linear(root / "eps_infinity.safetensors", eps="infinity"),
        "step space": _linear(root / "step_space.safetensors", step=" 1"),
        "step x": _linear(root / "stepx.safetensors", step="x"),
        "step 5000 digits": _linear(root / "stepbig.safetensors", step=huge_int),
        "1 MB operator": _linear(root / "bigname.safetensors", operator="x" * 1_000_000),
        "1 MB c": _linear(root / "bigc.safetensors", c="1" * 1_000_000),
        "not differentiable": _operator_file(
            root / "sqrt_op.py", "    A = params['A']\n    return lambda z: A @ z + 0 * torch.sqrt(z.abs())\n"
        ),
        "flat plugin": _operator_file(root / "flat_op.py", "    A = params['A']\n    return lambda z: A @ z\n"),
        **{
            f"state_shape {text}": _linear(root / f"shape_{i}.safetensors", options='{"state_shape": ' + text + "}")
            for i, text in enumerate(('"abc"', "[[[4]]]", "[4.5]", "[-4]", "true", "[]"))
        },
        "prints": _operator_file(
            root / "chatty_op.py",
            "    A = params['A']\n    print('hello from the plugin')\n\n"
            "    def nc_force(z):\n        print('called')\n        return A @ z\n\n    return nc_force\n",
        ),
    }
    configs = {
        "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x]\n"
        + "".join(
            f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for p, c in zip("abcdefgh", "bcdefghi", strict=True)
        )
        + "options: {bomb: *i}\n",
        "seed x": 'seed: "x"\n',
        "eps 1_0": 'eps: "1_0"\n',
        "krylov 2.5": "krylov_dim: 2.5\n",
        "krylov huge": "krylov_dim: 1000000000\n",
        "seed 1e23": "seed: 1e23\n",
        "seed bool": "seed: true\n",
        "band nan": "band: .nan\n",
        "options 5000 digits": "options: {height: " + huge_int + "}\n",
        "deep": "a: " + "[" * 5000 + "]" * 5000 + "\n",
        "date": "max_rho: 2024-01-01\n",
        "good": "seed: 3\n",
    }
    for name, text in configs.items():
        files[f"config {name}"] = root / f"cfg_{name.replace(' ', '_')}.yaml"
        files[f"config {name}"].write_text(text)
    files["config 2 MB"] = root / "cfg_big.yaml"
    files["config 2 MB"].write_text("# " + "x" * 2_000_000 + "\n")
    os.mkfifo(root / "fifo.safetensors")
    files["fifo"] = root / "fifo.safetensors"
    os.symlink(root / "loop_b.safetensors", root / "loop_a.safetensors")
    os.symlink(root / "loop_a.safetensors", root / "loop_b.safetensors")
    files["symlink loop"] = root / "loop_a.safetensors"
    files["name too long"] = root / ("y" * 300 + ".safetensors")  # longer than NAME_MAX: never created
    (root / "afile").write_text("not a folder")
    files["report"] = root / "report.json"
    files["report"].write_text("OLD REPORT")
    return files


def build(root: Path) -> list[Case]:
    """Write the hostile files below ``root`` and return the cases."""
    f = {name: str(path) for name, path in _files(root).items()}
    good = f["good"]
    cases = [
        # Data lost
        Case("json over the checkpoint", ("scan", good, "--json", good), 2, ("is the checkpoint",), "--json"),
        Case(
            "markdown over the config",
            ("scan", good, "--config", f["config good"], "--markdown", f["config good"]),
            2,
            ("is the --config file",),
            "--markdown",
        ),
        Case(
            "jsonl over a checkpoint",
            ("audit", str(root / "run"), "--jsonl", str(root / "run" / "step_2.safetensors")),
            2,
            ("a checkpoint this audit reads",),
            "--jsonl",
        ),
        Case(
            "json into the audited run",
            ("audit", str(root / "run"), "--glob", "*.json", "--json", str(root / "run" / "x.json")),
            2,
            ("a checkpoint this audit reads",),
            "--json",
        ),
        Case(
            "json under a checkpoint suffix",
            ("scan", good, "--json", str(root / "new.pt")),
            2,
            ("checkpoint's suffix",),
            "--json",
        ),
        Case(
            "two outputs, one file",
            ("scan", good, "--markdown", str(root / "o.md"), "--junit", str(root / "o.md")),
            2,
            ("writes the same file",),
            "--junit",
        ),
        # Silently wrong: non-finite options
        *[
            Case(f"{flag} {value}", ("scan", good, flag, value), 2, (f"{flag} must be a finite number",), flag)
            for flag in ("--band", "--max-rho", "--max-alpha", "--max-omega", "--c", "--eps", "--tol")
            for value in ("nan", "inf", "-inf")
        ],
        Case("band 1", ("scan", good, "--band", "1"), 2, ("--band must be",), "--band"),
        # Hangs and memory
        Case(
            "YAML alias bomb",
            ("scan", good, "--config", f["config alias bomb"]),
            2,
            ("more than 10000 values",),
            f["config alias bomb"],
        ),
        Case(
            "conv asking 34 GB",
            ("scan", f["conv 34 GB"]),
            2,
            ("needs at least", "GB of memory", "refusing it before allocating"),
            f["conv 34 GB"],
        ),
        Case(
            "zip record inflating 1000x",
            ("scan", f["zip bomb"]),
            2,
            ("is compressed", "torch.save never compresses"),
            f["zip bomb"],
        ),
        # torch allocated the legacy format's declared storage first: "[enforce fail at alloc_cpu.cpp:127]"
        Case(
            "legacy .pt asking 400 GB",
            ("scan", f["legacy 400 GB"], "--operator", "linear"),
            2,
            ("legacy torch checkpoint", "re-save it"),
            f["legacy 400 GB"],
        ),
        Case("shape asking 8 TB", ("scan", f["shape lies"]), 2, ("does not fit its 128 bytes",), f["shape lies"]),
        Case(
            "stride-0 .pt view",
            ("scan", f["stride 0"], "--operator", "linear"),
            2,
            ("claims 10000000000 elements",),
            f["stride 0"],
        ),
        Case("FIFO checkpoint", ("scan", f["fifo"]), 2, ("is not a regular file",), f["fifo"]),
        # Path.exists() raised ENAMETOOLONG as a bare OSError (exit 4), and called a symlink loop missing
        *[
            Case(f"{label} name too long", (*args, f["name too long"]), 2, ("File name too long",), f["name too long"])
            for label, args in (
                ("checkpoint", ("scan",)),
                ("--config", ("scan", good, "--config")),
                ("--fixed-point", ("scan", good, "--fixed-point")),
                ("--input", ("scan", good, "--input")),
                ("audit DIR", ("audit",)),
                ("merge journal", ("merge",)),
            )
        ],
        Case(
            "--operator file name too long",
            ("scan", good, "--operator", f["name too long"][: -len(".safetensors")] + ".py:factory"),
            2,
            ("File name too long",),
            "yyyy.py",
        ),
        Case("symlink loop", ("scan", f["symlink loop"]), 2, ("Too many levels of symbolic links",), f["symlink loop"]),
        Case("FIFO fixed point", ("scan", good, "--fixed-point", f["fifo"]), 2, ("is not a regular file",), f["fifo"]),
        Case("config /dev/zero", ("scan", good, "--config", "/dev/zero"), 2, ("is not a regular file",), "/dev/zero"),
        Case("checkpoint /dev/zero", ("scan", "/dev/zero"), 2, ("is not a regular file",), "/dev/zero"),
        Case(
            "config of 2 MB",
            ("scan", good, "--config", f["config 2 MB"]),
            2,
            ("a config file holds at most",),
            f["config 2 MB"],
        ),
        # A crash for bad input
        Case(
            "markup in a missing path",
            ("scan", str(root / "a[/]b[bold]c.safetensors")),
            2,
            ("a[/]b[bold]c.safetensors: no such file",),
            "a[/]b[bold]c",
        ),
        Case("markup in a valid path", ("scan", f["markup"]), 0, ("]x[bold].safetensors",)),
        Case("deeply nested header", ("scan", f["deep header"]), 2, ("nested too deeply",), f["deep header"]),
        Case("float8 tensors", ("scan", f["float8"]), 2, ("dtype 'F8_E4M3'", "does not read"), f["float8"]),
        Case("overlapping tensors", ("scan", f["overlap"]), 2, ("overlap",), f["overlap"]),
        Case(
            "meta-device tensor",
            ("scan", f["meta tensor"], "--operator", "linear"),
            2,
            ("is on the meta device",),
            f["meta tensor"],
        ),
        Case(
            "5000-digit integer in metadata options",
            ("scan", f["options 5000 digits"]),
            2,
            ("spectral_probe.options", "is not valid JSON"),
            f["options 5000 digits"],
        ),
        Case(
            "NaN in metadata options",
            ("scan", f["options NaN"]),
            2,
            ("spectral_probe.options", "NaN"),
            f["options NaN"],
        ),
        Case(
            "deep metadata options",
            ("scan", f["options deep"]),
            2,
            ("spectral_probe.options", "nested"),
            f["options deep"],
        ),
        Case(
            "5000-digit integer in YAML options",
            ("scan", good, "--config", f["config options 5000 digits"]),
            2,
            ("invalid YAML",),
            f["config options 5000 digits"],
        ),
        Case("5000-digit --seed", ("scan", good, "--seed", "9" * 5000), 2, ("--seed",), "--seed"),
        Case(
            "YAML seed 'x'",
            ("scan", good, "--config", f["config seed x"]),
            2,
            ("option 'seed' must be an integer", "'x'"),
            f["config seed x"],
        ),
        Case(
            "YAML krylov_dim 2.5",
            ("scan", good, "--config", f["config krylov 2.5"]),
            2,
            ("option 'krylov_dim' must be an integer", "2.5"),
            f["config krylov 2.5"],
        ),
        Case(
            "YAML seed 1e23",
            ("scan", good, "--config", f["config seed 1e23"]),
            2,
            ("option 'seed' must be an integer",),
            f["config seed 1e23"],
        ),
        Case(
            "YAML seed true",
            ("scan", good, "--config", f["config seed bool"]),
            2,
            ("option 'seed' must be an integer",),
            f["config seed bool"],
        ),
        Case(
            "YAML band .nan",
            ("scan", good, "--config", f["config band nan"]),
            2,
            ("option 'band': must be a finite number",),
            f["config band nan"],
        ),
        Case("YAML deep nesting", ("scan", good, "--config", f["config deep"]), 2, ("nested",), f["config deep"]),
        Case(
            "YAML date as a gate",
            ("scan", good, "--config", f["config date"]),
            2,
            ("unsupported value",),
            f["config date"],
        ),
        Case("--seed 1e23", ("scan", good, "--seed", "1e23"), 2, ("--seed",), "--seed"),
        Case("--seed 10^23", ("scan", good, "--seed", str(10**23)), 2, ("--seed must be an integer >= 0",), "--seed"),
        Case("--seed -1", ("scan", good, "--seed", "-1"), 2, ("--seed must be an integer >= 0",), "--seed"),
        Case("audit's --jobs given to scan", ("scan", good, "--jobs", "2"), 2, ("No such option",), "--jobs"),
        Case(
            "YAML krylov_dim 10^9",
            ("scan", good, "--config", f["config krylov huge"]),
            2,
            ("option 'krylov_dim' must be an integer >= 2 and <= 100000",),
            f["config krylov huge"],
        ),
        Case("--jobs 0", ("audit", str(root / "run"), "--jobs", "0"), 2, ("--jobs must be an integer >= 1",), "--jobs"),
        Case(
            "--glob /abs/path",
            ("audit", str(root / "run"), "--glob", "/etc/*.safetensors"),
            2,
            ("must be relative to DIR",),
            "--glob",
        ),
        Case(
            "--glob ../escape",
            ("audit", str(root / "run"), "--glob", "../*.safetensors"),
            2,
            ("must stay below DIR",),
            "--glob",
        ),
        Case(
            "--device tpu", ("scan", good, "--device", "tpu"), 2, ("--device must be cpu, cuda or cuda:N",), "--device"
        ),
        Case(
            "full disk",
            ("scan", good, "--json", "/dev/full"),
            2,
            ("--json /dev/full: cannot write the report", "No space left"),
            "/dev/full",
        ),
        Case(
            "report below a file",
            ("scan", good, "--markdown", str(root / "afile" / "r.md")),
            2,
            ("cannot write the report",),
            "afile/r.md",
        ),
        Case(
            "unwritable GITHUB_STEP_SUMMARY",
            ("scan", good),
            2,
            ("GITHUB_STEP_SUMMARY=", "cannot append the summary"),
            "afile/summary.md",
            env={"GITHUB_STEP_SUMMARY": str(root / "afile" / "summary.md")},
        ),
        Case(
            "GITHUB_STEP_SUMMARY is the checkpoint",
            ("scan", good),
            2,
            ("is the checkpoint",),
            "GITHUB_STEP_SUMMARY",
            env={"GITHUB_STEP_SUMMARY": good},
        ),
        Case(
            "not differentiable at z*",
            ("scan", good, "--operator", f"{f['not differentiable']}:factory"),
            2,
            ("derivative of nc_force at z_star is not finite",),
            good,
        ),
        # A malformed state_shape in the metadata options: int("a") escaped as a bug (exit 4, the
        # audit with it), or a state of n = -4 or n = 1 (true)
        *[
            Case(
                f"metadata state_shape {text}",
                ("scan", f[f"state_shape {text}"], "--operator", f"{f['flat plugin']}:factory"),
                2,
                ("state_shape must be a shape of positive integers",),
                f[f"state_shape {text}"],
            )
            for text in ('"abc"', "[[[4]]]", "[4.5]", "[-4]", "true", "[]")
        ],
        # Unclear messages
        Case("metadata eps nan", ("scan", f["eps nan"]), 2, ("'spectral_probe.eps' is not finite",), f["eps nan"]),
        Case("metadata eps inf", ("scan", f["eps inf"]), 2, ("'spectral_probe.eps' is not finite",), f["eps inf"]),
        Case("metadata eps -1", ("scan", f["eps -1"]), 2, ("'spectral_probe.eps' must be > 0",), f["eps -1"]),
        # Out of the range --eps and --c have: accepted from metadata, a verdict from rho = 2e+13
        Case(
            "metadata eps 1e13",
            ("scan", f["eps 1e13"]),
            2,
            ("'spectral_probe.eps' must be > 0 and <= 1e+12, got '1e13'",),
            f["eps 1e13"],
        ),
        Case(
            "metadata c 1e300",
            ("scan", f["c 1e300"]),
            2,
            ("'spectral_probe.c' must be >= -1e+12 and <= 1e+12, got '1e300'",),
            f["c 1e300"],
        ),
        Case("metadata c abc", ("scan", f["c abc"]), 2, ("'spectral_probe.c' is not a number: 'abc'",), f["c abc"]),
        # float() reads "1_0" as 10 and skips whitespace: probed at eps = 10, silently
        Case(
            "metadata eps 1_0",
            ("scan", f["eps 1_0"]),
            2,
            ("'spectral_probe.eps' is not a number: '1_0'",),
            f["eps 1_0"],
        ),
        Case(
            "metadata eps with a newline",
            ("scan", f["eps newline"]),
            2,
            ("'spectral_probe.eps' is not a number: '1e5\\n'",),
            f["eps newline"],
        ),
        Case(
            "metadata eps infinity",
            ("scan", f["eps infinity"]),
            2,
            ("'spectral_probe.eps' is not finite",),
            f["eps infinity"],
        ),
        Case(
            "metadata step ' 1'",
            ("scan", f["step space"]),
            2,
            ("'spectral_probe.step' is not an integer",),
            f["step space"],
        ),
        Case(
            "YAML eps '1_0'",
            ("scan", good, "--config", f["config eps 1_0"]),
            2,
            ("option 'eps' must be a finite number", "'1_0'"),
            f["config eps 1_0"],
        ),
        Case("metadata step x", ("scan", f["step x"]), 2, ("'spectral_probe.step' is not an integer",), f["step x"]),
        Case(
            "metadata step 5000 digits",
            ("scan", f["step 5000 digits"]),
            2,
            ("'spectral_probe.step' is not an integer", "characters)"),
            f["step 5000 digits"],
        ),
        Case(
            "metadata options not JSON",
            ("scan", f["options not JSON"]),
            2,
            ("'spectral_probe.options' is not valid JSON",),
            f["options not JSON"],
        ),
        Case(
            "1 MB operator name",
            ("scan", f["1 MB operator"]),
            2,
            ("is not an operator name", "characters)"),
            f["1 MB operator"],
        ),
        Case("1 MB c", ("scan", f["1 MB c"]), 2, ("'spectral_probe.c' is not a number", "characters)"), f["1 MB c"]),
        Case("non-UTF-8 file name", ("scan", f["non-utf8"]), 0, ("marginal", "na\\udcff\\udcfeme.safetensors")),
        Case(
            "plugin prints, --json -",
            ("scan", good, "--operator", f"{f['prints']}:factory", "--json", "-"),
            0,
            ('"version": 1',),
        ),
        Case(
            "report kept on a refused run",
            ("scan", good, "--json", f["report"], "--band", "nan"),
            2,
            ("--band",),
            "--band",
        ),
    ]
    if torch.cuda.is_available():
        cases.append(Case("--device cuda:9", ("scan", good, "--device", "cuda:9"), 2, ("CUDA device",), "--device"))
    else:
        cases.append(
            Case(
                "--device cuda without a GPU",
                ("scan", good, "--device", "cuda"),
                2,
                ("no CUDA device is available",),
                "--device",
            )
        )
    return cases
