"""The command line: parse -> probe -> report -> exit code. With :mod:`spectral_probe.cli_console`, the only
module that prints.

torch is imported lazily inside the commands so that ``spectral-probe --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from spectral_probe import __version__
from spectral_probe.cli_console import OneLineErrors
from spectral_probe.cli_console import console as _console
from spectral_probe.cli_console import error_line as _error_line
from spectral_probe.cli_console import stderr as _stderr
from spectral_probe.cli_options import SHARED_OPTIONS, DebugOpt, QuietOpt, probe_options
from spectral_probe.errors import SpectralProbeError, UsageError
from spectral_probe.exitcodes import ExitCode
from spectral_probe.validate import path_stat

app = typer.Typer(
    cls=OneLineErrors,
    name="spectral-probe",
    help="Stability of the fixed points of dynamical neural models: omega, alpha and rho, matrix-free.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _fail(code: ExitCode, message: str, debug: bool) -> None:
    _stderr().print(_error_line("error", message), soft_wrap=True)
    if debug:
        traceback.print_exc()
    raise typer.Exit(int(code))


def _options(params: dict[str, Any]):
    """Merge command line > config file > defaults into a ProbeOptions; also the options the config file
    set that the command line did not (an error about one of them names the file)."""
    from spectral_probe.checkpoint import load_yaml_config
    from spectral_probe.config import merge_options

    config_path = str(params["config"]) if params.get("config") is not None else None
    config = load_yaml_config(config_path) if config_path is not None else {}
    command_line = {}
    for key, value in params.items():
        if key in ("config", "ckpt", "directory"):
            continue
        if isinstance(value, Path):
            value = str(value)
        if key == "input":  # --input is repeatable; ProbeOptions holds the files as a tuple
            key, value = "inputs", tuple(value) if value else None
        if isinstance(value, bool) and key in ("quiet", "debug") and not value:
            value = None  # an unset flag must not override the config file
        command_line[key] = value
    keys = {"operator_options" if k == "options" else k for k in (str(k).replace("-", "_") for k in config)}
    from_file = keys - {k for k, v in command_line.items() if v is not None}
    options = merge_options(command_line, config, config_path)
    if "operator" in from_file and options.operator is not None:
        # Named here, where the file that set it is known (loading the checkpoint would name the checkpoint).
        from spectral_probe.operators import unknown_operator

        problem = unknown_operator(options.operator)
        if problem is not None:
            raise UsageError(f"{config_path}: option 'operator': {problem}")
    return options, from_file


def _naming_the_config(exc: UsageError, from_file: set[str], config_path: str | None) -> UsageError:
    """``exc`` about an option (``--save-modes ...``) that the config file set: the same, naming the file."""
    flags = {flag.replace("-", "_") for flag in re.findall(r"--([a-z][a-z-]*)", str(exc))}
    if config_path is None or not flags & from_file:
        return exc
    return UsageError(f"{config_path}: {exc}")


def _naming_the_options(report, from_file: set[str], config: object):
    """A checkpoint's operator factory that refused options of the config file: the error names that file
    too (the checkpoint is where it failed, the file is what to fix)."""
    if config is None or "operator_options" not in from_file:
        return report
    errors = tuple(
        dataclasses.replace(e, error=f"{e.error} (the operator options came from {config})")
        if "operator factory failed" in e.error
        else e
        for e in report.errors
    )
    return dataclasses.replace(report, errors=errors)


def _progress_enabled(options) -> bool:
    return not options.quiet and sys.stderr.isatty() and not os.environ.get("CI")


def _guarded(debug: bool, body) -> None:
    """Run a command body, mapping domain errors to exit 2 and bugs to exit 4 (one line each)."""
    try:
        body()
    except typer.Exit:
        raise
    except SpectralProbeError as exc:
        _fail(ExitCode.BAD_INPUT, str(exc), debug)
    except KeyboardInterrupt:
        _stderr().print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug: ask for a report
        _fail(
            ExitCode.INTERNAL_ERROR,
            f"internal error ({type(exc).__name__}: {exc}); please report it with the output of --debug",
            debug,
        )


def _emit(report, options) -> list[str]:
    """Write every requested output; none changes the exit code, a failed write is reported (exit 2)."""
    from spectral_probe.outputs import append_step_summary, write_report, write_stdout
    from spectral_probe.report import FORMATTERS, OutputFormat
    from spectral_probe.report.table import render

    to_stdout = "-" in (options.json, options.markdown, options.junit)  # one of them (check_outputs)
    human = _console(stderr=to_stdout)
    if not options.quiet and report.results:
        render(report, human)
    problems = _stderr()
    for error in report.errors:
        problems.print(_error_line("error", error.error), soft_wrap=True)
    if options.quiet or not report.results:
        for line in (*report.gate.untrusted, *report.gate.violations):
            problems.print(_error_line("gate", line), soft_wrap=True)
    writes = []
    for flag, target, kind in (
        ("--json", options.json, OutputFormat.JSON),
        ("--markdown", options.markdown, OutputFormat.MARKDOWN),
        ("--junit", options.junit, OutputFormat.JUNIT),
    ):
        if target == "-":
            writes.insert(0, functools.partial(write_stdout, FORMATTERS[kind](report), flag))
        elif target:
            writes.append(functools.partial(write_report, target, FORMATTERS[kind](report), flag))
    writes.append(lambda: append_step_summary(FORMATTERS[OutputFormat.MARKDOWN](report)))
    failed = []
    for write in writes:  # each is tried: one failed write does not lose the others
        try:
            write()
        except SpectralProbeError as exc:
            failed.append(str(exc))
    return failed


def _check_beyond(options, command: str, target: Path) -> None:
    """Before any probing: ``--plot`` needs matplotlib; ``--save-modes`` must not land on an input."""
    if options.plot:
        from spectral_probe.report.plot import INSTALL_HINT, matplotlib_available

        if not matplotlib_available():
            raise UsageError(INSTALL_HINT)
    if options.save_modes:
        modes = Path(options.save_modes)
        if command == "audit" and modes.suffix == ".safetensors":
            raise UsageError("audit --save-modes takes a folder (one file per checkpoint), not a .safetensors file")
        if command == "scan" and modes.suffix != ".safetensors":
            raise UsageError(f"--save-modes {options.save_modes}: name a .safetensors file")
        if command == "scan" and path_stat(modes) is not None and modes.resolve() == target.resolve():
            raise UsageError(f"--save-modes {options.save_modes}: is the checkpoint; refusing to overwrite it")
        if command == "audit" and modes.resolve().is_relative_to(target.resolve()):
            raise UsageError(f"--save-modes {options.save_modes}: is inside the audited folder")


def _attempt(write) -> list[str]:
    """Run one more output; a failure is a message (exit 2), never a traceback."""
    try:
        write()
    except OSError as exc:
        return [f"--plot: cannot write the picture ({exc.strerror})"]
    return []


def _inputs(target: Path, options, command: str, config: Path | None) -> dict[str, str | None]:
    """The files this run reads, by what they are (an output must not be one of them)."""
    operator_file = None
    if options.operator and ":" in options.operator:
        module = options.operator.rsplit(":", 1)[0]
        operator_file = module if module.endswith(".py") else None
    return {
        "the checkpoint" if command == "scan" else "the audited folder": str(target),
        "the --fixed-point file": options.fixed_point,
        "the --config file": str(config) if config is not None else None,
        "the --operator file": operator_file,
        **{f"the --input file {spec}": spec.partition("=")[2] or spec for spec in options.inputs},
    }


def _run(command: str, target: Path, own: dict[str, Any], shared: dict[str, Any]) -> None:
    """Options -> checks -> probe -> outputs -> exit code, for ``scan`` and ``audit`` alike."""

    def body() -> None:
        for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 file name prints escaped, never raises
            with contextlib.suppress(AttributeError, ValueError):
                stream.reconfigure(errors="backslashreplace")
        from spectral_probe.exitcodes import combine
        from spectral_probe.outputs import STEP_SUMMARY, check_outputs, plugin_output_to_stderr
        from spectral_probe.validate import check_device

        options, from_file = _options({**own, **shared})
        outputs = {"--json": options.json, "--markdown": options.markdown, "--junit": options.junit}
        outputs |= {"--jsonl": options.jsonl, STEP_SUMMARY: os.environ.get(STEP_SUMMARY) or None}
        outputs |= {"--plot": options.plot}
        directory = str(target) if command == "audit" else None
        try:
            check_outputs(
                outputs,
                _inputs(target, options, command, shared.get("config")),
                directory=directory,
                pattern=options.glob,
            )
            check_device(options.device)
            _check_beyond(options, command, target)
        except UsageError as exc:
            config = shared.get("config")
            raise _naming_the_config(exc, from_file, None if config is None else str(config)) from None
        if command == "scan" and options.plot and not options.margins:
            options = dataclasses.replace(options, margins=True)  # the picture draws their eigenvalues
        with plugin_output_to_stderr():
            if command == "scan":
                from spectral_probe.scan import run_scan

                report = run_scan(str(target), options, progress=_progress_enabled(options))
                report = _naming_the_options(report, from_file, shared.get("config"))
            else:
                from spectral_probe.audit import run_audit

                report = run_audit(str(target), options, progress=_progress_enabled(options))
        failed = _emit(report, options)
        if options.plot and report.results:
            from spectral_probe.report.plot import plot_run, plot_spectrum

            failed += _attempt(lambda: (plot_spectrum if command == "scan" else plot_run)(report.results, options.plot))
        for message in failed:
            _stderr().print(_error_line("error", message), soft_wrap=True)
        codes = {ExitCode(report.gate.exit_code)} | ({ExitCode.BAD_INPUT} if failed else set())
        raise typer.Exit(int(combine(codes)))

    _guarded(bool(shared.get("debug")), body)


@app.command()
@probe_options
def scan(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint: .safetensors, or .pt/.pth (weights_only).")],
    shared: dict[str, Any],
) -> None:
    """Probe the fixed point(s) of one checkpoint and print a verdict per fixed point."""
    _run("scan", ckpt, {}, shared)


@app.command()
@probe_options
def audit(
    directory: Annotated[Path, typer.Argument(help="Folder of checkpoints (a training run, a sweep).")],
    shared: dict[str, Any],
    glob: Annotated[
        str | None, typer.Option("--glob", help="Pattern below DIR (default *.safetensors, *.pt, *.pth).")
    ] = None,
    jobs: Annotated[int | None, typer.Option("--jobs", help="Parallel worker processes (default 1).")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="Append one JSON line per checkpoint.")] = None,
    resume: Annotated[
        bool | None, typer.Option("--resume/--no-resume", help="Skip checkpoints already in --jsonl.")
    ] = None,
    warm_start: Annotated[
        bool | None,
        typer.Option(
            "--warm-start/--no-warm-start",
            help="Seed each probe with the previous checkpoint's Krylov vectors (default on; --jobs 1 only).",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="Probe part K of N (K from 0), a stable split by file; join with `merge`."),
    ] = None,
) -> None:
    """Probe every checkpoint below DIR, in natural order; one bad file never stops the batch."""
    own = {"glob": glob, "jobs": jobs, "jsonl": jsonl, "resume": resume, "warm_start": warm_start}
    own["shard"] = shard
    _run("audit", directory, own, shared)


_SHARED = {name: annotation for name, annotation, _ in SHARED_OPTIONS}
# `merge` takes the gates and outputs of the shared options, declared there once.
MaxRhoOpt, MaxAlphaOpt, MaxOmegaOpt = _SHARED["max_rho"], _SHARED["max_alpha"], _SHARED["max_omega"]
JsonOpt, MarkdownOpt, JunitOpt = _SHARED["json"], _SHARED["markdown"], _SHARED["junit"]


@app.command()
def merge(
    journals: Annotated[list[Path], typer.Argument(help="The --jsonl journal of every `audit --shard K/N`.")],
    max_rho: MaxRhoOpt = None,
    max_alpha: MaxAlphaOpt = None,
    max_omega: MaxOmegaOpt = None,
    json: JsonOpt = None,
    markdown: MarkdownOpt = None,
    junit: JunitOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Join the shards' journals into the report, gate and trajectory of one audit."""
    params = {"max_rho": max_rho, "max_alpha": max_alpha, "max_omega": max_omega, "json": json}
    params |= {"markdown": markdown, "junit": junit, "quiet": quiet or None, "debug": debug or None}

    def body() -> None:
        from spectral_probe.audit.merge import merge_journals
        from spectral_probe.config import merge_options
        from spectral_probe.exitcodes import combine
        from spectral_probe.outputs import STEP_SUMMARY, check_outputs

        options = merge_options({k: str(v) if isinstance(v, Path) else v for k, v in params.items()}, {})
        outputs = {"--json": options.json, "--markdown": options.markdown, "--junit": options.junit}
        outputs[STEP_SUMMARY] = os.environ.get(STEP_SUMMARY) or None
        check_outputs(outputs, {f"the journal {path}": str(path) for path in journals})
        report = merge_journals([str(path) for path in journals], options)
        failed = _emit(report, options)
        for message in failed:
            _stderr().print(_error_line("error", message), soft_wrap=True)
        codes = {ExitCode(report.gate.exit_code)} | ({ExitCode.BAD_INPUT} if failed else set())
        raise typer.Exit(int(combine(codes)))

    _guarded(debug, body)


@app.command()
def operators(
    debug: DebugOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List the registered operator families (built-ins and installed plugins)."""

    def body() -> None:
        from rich.table import Table

        from spectral_probe.operators import registered_operators

        table = Table(title="operator families")
        for column in ("name", "nc_force(z)", "parameters", "source"):
            table.add_column(column)
        for name, info in sorted(registered_operators().items()):
            table.add_row(name, info.summary, ", ".join(info.params), info.source)
        Console().print(table)

    _guarded(debug, body)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"spectral-probe {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Stability of the fixed points of dynamical neural models: omega, alpha and rho, matrix-free."""


def main() -> None:
    """The ``spectral-probe`` console entry point."""
    app()
