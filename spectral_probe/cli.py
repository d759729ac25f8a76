"""The command line: parse -> probe -> report -> exit code. The only module that prints.

torch is imported lazily inside the commands so that ``spectral-probe --help`` stays fast.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from spectral_probe import __version__
from spectral_probe.errors import SpectralProbeError, UsageError
from spectral_probe.exitcodes import ExitCode

app = typer.Typer(
    name="spectral-probe",
    help="Stability of the fixed points of dynamical neural models: omega, alpha and rho, matrix-free.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

_P = "numerics"
_G = "gates"
_O = "output"

FixedPointOpt = Annotated[Path | None, typer.Option("--fixed-point", help="File holding z_star [n] or [B, n].")]
OperatorOpt = Annotated[
    str | None, typer.Option("--operator", help="Registered NAME, package.module:factory or file.py:factory.")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML file with any of these options.")]
COpt = Annotated[float | None, typer.Option("--c", help="Extra damping c (default 0).", rich_help_panel=_P)]
EpsOpt = Annotated[float | None, typer.Option("--eps", help="Euler step eps of M = I + eps J_F (default 1).")]
DtypeOpt = Annotated[str | None, typer.Option("--dtype", help="float64 (default) or float32.", rich_help_panel=_P)]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu (default) or cuda.", rich_help_panel=_P)]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of the random start vectors (default 0).")]
TolOpt = Annotated[float | None, typer.Option("--tol", help="Normwise residual tolerance (default eps^(2/3)).")]
MatvecOpt = Annotated[str | None, typer.Option("--matvec", help="autograd (default) or fd.", rich_help_panel=_P)]
MethodOpt = Annotated[str | None, typer.Option("--method", help="auto (default), dense or krylov.")]
RefineOpt = Annotated[
    bool | None, typer.Option("--refine/--no-refine", help="Polish z* by Newton-Krylov first.", show_default=False)
]
BandOpt = Annotated[float | None, typer.Option("--band", help="Marginal band b around rho = 1 (default 1e-6).")]
MaxRhoOpt = Annotated[float | None, typer.Option("--max-rho", help="Gate: fail when rho > R.", rich_help_panel=_G)]
MaxAlphaOpt = Annotated[
    float | None, typer.Option("--max-alpha", help="Gate: fail when alpha > A.", rich_help_panel=_G)
]
MaxOmegaOpt = Annotated[
    float | None, typer.Option("--max-omega", help="Gate: fail when omega > W.", rich_help_panel=_G)
]
JsonOpt = Annotated[str | None, typer.Option("--json", help="Write the JSON report to PATH, or - for stdout.")]
MarkdownOpt = Annotated[Path | None, typer.Option("--markdown", help="Write a Markdown summary to PATH.")]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML to PATH.", rich_help_panel=_O)]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No table, no progress bar.", rich_help_panel=_O)]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.", rich_help_panel=_O)]
_A = "beyond omega, alpha, rho"
TransientOpt = Annotated[
    bool | None,
    typer.Option(
        "--transient/--no-transient",
        help="Lower bounds on max_k ||M^k|| and sup_t ||exp(t J_F)|| (default off: costly).",
        rich_help_panel=_A,
        show_default=False,
    ),
]
HorizonOpt = Annotated[
    int | None, typer.Option("--transient-horizon", help="Steps K searched (default 100).", rich_help_panel=_A)
]
MarginsOpt = Annotated[
    bool | None,
    typer.Option(
        "--margins/--no-margins",
        help="eps_max with its rho probes (default on).",
        rich_help_panel=_A,
        show_default=False,
    ),
]
ModesOpt = Annotated[
    bool | None,
    typer.Option(
        "--modes/--no-modes", help="Leading modes: units of largest weight.", rich_help_panel=_A, show_default=False
    ),
]
SaveModesOpt = Annotated[
    str | None,
    typer.Option("--save-modes", help="Write the modes: a .safetensors file (scan) or a folder.", rich_help_panel=_A),
]
PlotOpt = Annotated[
    str | None, typer.Option("--plot", help="PNG: the spectra (scan), rho/alpha/omega over the run (audit).")
]


#: Width of the table when the output is not a terminal (rich would fall back to 80 columns and fold paths).
PIPE_WIDTH = 160


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


def _stderr() -> Console:
    return _console(stderr=True)


def _fail(code: ExitCode, message: str, debug: bool) -> None:
    _stderr().print(f"[bold red]error:[/] {escape(message)}", markup=True, soft_wrap=True)  # [..] in a path is text
    if debug:
        traceback.print_exc()
    raise typer.Exit(int(code))


def _options(params: dict[str, Any]):
    """Merge command line > config file > defaults into a ProbeOptions."""
    from spectral_probe.checkpoint import load_yaml_config
    from spectral_probe.config import merge_options

    config_path = params.get("config")
    config = load_yaml_config(str(config_path)) if config_path is not None else {}
    command_line = {}
    for key, value in params.items():
        if key in ("config", "ckpt", "directory"):
            continue
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, bool) and key in ("quiet", "debug") and not value:
            value = None  # an unset flag must not override the config file
        command_line[key] = value
    return merge_options(command_line, config)


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


def _emit(report, options) -> None:
    """Write every requested output; none of them changes the exit code."""
    from spectral_probe.report import FORMATTERS, OutputFormat
    from spectral_probe.report.table import render

    human = _console(stderr=options.json == "-")
    if not options.quiet and report.results:
        render(report, human)
    problems = _stderr()
    for error in report.errors:
        problems.print(f"[bold red]error:[/] {error.error}", soft_wrap=True)
    if options.quiet or not report.results:
        for line in (*report.gate.untrusted, *report.gate.violations):
            problems.print(f"[bold red]gate:[/] {line}", soft_wrap=True)
    if options.json == "-":
        sys.stdout.write(FORMATTERS[OutputFormat.JSON](report))
        sys.stdout.flush()
    for target, kind in (
        (options.json, OutputFormat.JSON),
        (options.markdown, OutputFormat.MARKDOWN),
        (options.junit, OutputFormat.JUNIT),
    ):
        if target and target != "-":
            _write_report(Path(target), FORMATTERS[kind](report))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(FORMATTERS[OutputFormat.MARKDOWN](report))


def _require_plotting(options) -> None:
    """Fail before any probing when ``--plot`` is asked for without matplotlib (exit 2, the install line)."""
    if options.plot:
        from spectral_probe.report.plot import INSTALL_HINT, matplotlib_available

        if not matplotlib_available():
            raise UsageError(INSTALL_HINT)


def _plot(report, options, command: str) -> None:
    """``--plot``: the spectra (scan) or the run (audit); matplotlib is imported only here."""
    if not options.plot or not report.results:
        return
    from spectral_probe.report.plot import plot_run, plot_spectrum

    path = Path(options.plot)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        (plot_spectrum if command == "scan" else plot_run)(report.results, path)
    except OSError as exc:
        raise SpectralProbeError(f"{path}: cannot write the plot ({exc.strerror})") from None


def _write_report(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as exc:
        raise SpectralProbeError(f"{path}: cannot write the report ({exc.strerror})") from None


@app.command()
def scan(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint: .safetensors, or .pt/.pth (weights_only).")],
    fixed_point: FixedPointOpt = None,
    operator: OperatorOpt = None,
    config: ConfigOpt = None,
    c: COpt = None,
    eps: EpsOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    tol: TolOpt = None,
    matvec: MatvecOpt = None,
    method: MethodOpt = None,
    refine: RefineOpt = None,
    band: BandOpt = None,
    max_rho: MaxRhoOpt = None,
    max_alpha: MaxAlphaOpt = None,
    max_omega: MaxOmegaOpt = None,
    json: JsonOpt = None,
    markdown: MarkdownOpt = None,
    junit: JunitOpt = None,
    transient: TransientOpt = None,
    transient_horizon: HorizonOpt = None,
    margins: MarginsOpt = None,
    modes: ModesOpt = None,
    save_modes: SaveModesOpt = None,
    plot: PlotOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Probe the fixed point(s) of one checkpoint and print a verdict per fixed point."""
    params = dict(locals())

    def body() -> None:
        from spectral_probe.scan import run_scan

        options = _options(params)
        _require_plotting(options)
        report = run_scan(str(ckpt), options, progress=_progress_enabled(options))
        _emit(report, options)
        _plot(report, options, "scan")
        raise typer.Exit(report.gate.exit_code)

    _guarded(debug, body)


@app.command()
def audit(
    directory: Annotated[Path, typer.Argument(help="Folder of checkpoints (a training run, a sweep).")],
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
    fixed_point: FixedPointOpt = None,
    operator: OperatorOpt = None,
    config: ConfigOpt = None,
    c: COpt = None,
    eps: EpsOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    seed: SeedOpt = None,
    tol: TolOpt = None,
    matvec: MatvecOpt = None,
    method: MethodOpt = None,
    refine: RefineOpt = None,
    band: BandOpt = None,
    max_rho: MaxRhoOpt = None,
    max_alpha: MaxAlphaOpt = None,
    max_omega: MaxOmegaOpt = None,
    json: JsonOpt = None,
    markdown: MarkdownOpt = None,
    junit: JunitOpt = None,
    transient: TransientOpt = None,
    transient_horizon: HorizonOpt = None,
    margins: MarginsOpt = None,
    modes: ModesOpt = None,
    save_modes: SaveModesOpt = None,
    plot: PlotOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Probe every checkpoint below DIR, in natural order; one bad file never stops the batch."""
    params = dict(locals())

    def body() -> None:
        from spectral_probe.audit import run_audit

        options = _options(params)
        _require_plotting(options)
        if options.save_modes and options.save_modes.endswith(".safetensors"):
            raise UsageError("audit --save-modes takes a folder (one file per checkpoint), not a .safetensors file")
        report = run_audit(str(directory), options, progress=_progress_enabled(options))
        _emit(report, options)
        _plot(report, options, "audit")
        raise typer.Exit(report.gate.exit_code)

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
    app()
