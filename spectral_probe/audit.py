"""``audit``: probe every checkpoint below a folder (a training run, a sweep) and assemble one Report.

What this module adds to :func:`spectral_probe.probe.probe_checkpoint`:

* discovery and natural ordering of the checkpoints (``step_900`` before ``step_1000``; the metadata
  ``spectral_probe.step`` that the probe stamps on each result wins where every checkpoint has one);
* ``--jobs N``: worker processes (``spawn``), each with ``cores // N`` torch threads;
* ``--jsonl``: one line per finished fixed point (or error), written by the parent process only, each
  line a single ``write()`` followed by ``fsync``, so an interrupted audit loses no finished line;
  ``--resume`` reloads what is there (matched by path, sha256 and the numeric options) and probes the
  rest;
* warm starts along the run (``--jobs 1`` only): the previous checkpoint's Krylov vectors seed the first
  solves of the next one;
* the training-trajectory view (``Report.trajectory``): per-checkpoint series, sparklines and the
  first bifurcation, classified from the leading eigenvalue on both sides of the crossing.

Layering: this module calls the probe, the gate and the result records. It never prints, except a
rich progress bar on stderr when the caller asks for one, and it opens no checkpoint itself (hashes
come from :mod:`spectral_probe.checkpoint`); the only file it writes is the ``--jsonl`` journal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spectral_probe.config import ProbeOptions
from spectral_probe.errors import SpectralProbeError, UsageError
from spectral_probe.gate import evaluate
from spectral_probe.results import CheckpointError, FixedPointResult, Report, result_from_dict
from spectral_probe.verdict import (
    CONTRACTIVE,
    FLIP,
    HOPF,
    INCONCLUSIVE,
    MARGINAL,
    NEIMARK_SACKER,
    SADDLE,
    STABLE,
    UNSTABLE,
    record_is_complex,
)

__all__ = [
    "DEFAULT_PATTERNS",
    "ProbeFn",
    "build_trajectory",
    "find_checkpoints",
    "natural_key",
    "options_fingerprint",
    "run_audit",
    "sparkline",
]

#: What ``audit DIR`` looks for when ``--glob`` is not given (at any depth below DIR).
DEFAULT_PATTERNS = ("*.safetensors", "*.pt", "*.pth")
#: A trajectory view needs at least this many probed checkpoints to say anything about a trend.
MIN_TRAJECTORY = 3
#: The eight block heights of a sparkline, lowest first.
SPARK_BLOCKS = "▁▂▃▄▅▆▇█"

# Options that change no reported number: a resumed audit may change them and still reuse lines.
_NOT_NUMERIC = frozenset(
    {"max_rho", "max_alpha", "max_omega", "json", "markdown", "junit", "quiet", "debug"}
    | {"glob", "jobs", "jsonl", "resume", "warm_start"}
)
# Extra keys on a JSONL result line (SPEC 6 allows more fields): how many fixed points the checkpoint
# has (so a checkpoint cut between two of its lines is probed again) and the options fingerprint.
_FIXED_POINTS_KEY = "fixed_points"
_OPTIONS_KEY = "options_sha256"


class ProbeFn(Protocol):
    """The signature of :func:`spectral_probe.probe.probe_checkpoint` (injectable for tests)."""

    def __call__(self, path: str, options: ProbeOptions, *, warm: Any = None, use_warm: bool = True) -> Any:
        """Return an object with ``sha256``, ``results``, ``warm``; raise SpectralProbeError on bad input."""
        ...


@dataclass(frozen=True)
class _Outcome:
    """What became of one checkpoint: results or an error, and the warm start for the next one."""

    path: str
    sha256: str | None
    results: tuple[FixedPointResult, ...] = ()
    error: CheckpointError | None = None
    warm: Any = None


# --------------------------------------------------------------------------------------------------
# Discovery and order


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that compares digit runs as numbers: ``step_900`` < ``step_1000``.

    ``re.split`` with a capturing group alternates text and digits (text first), so two keys compare
    str with str and int with int at every position. The raw text breaks ties (``007`` vs ``7``).
    """
    parts = _DIGITS.split(text)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), text


def find_checkpoints(directory: str | os.PathLike[str], pattern: str | None = None) -> list[str]:
    """The checkpoint paths below ``directory``, in natural order of their path relative to it.

    ``pattern`` without a ``/`` matches file names at any depth (like ``rglob``); with a ``/`` it is
    a glob relative to ``directory`` (``runs/*/last.pt``, ``**/ema_*.safetensors``). The default is
    every ``*.safetensors``, ``*.pt`` and ``*.pth`` at any depth. No match is a usage error: an empty
    audit must never pass a CI gate.
    """
    root = Path(directory)
    if not root.exists():
        raise UsageError(f"{directory}: no such directory")
    if not root.is_dir():
        raise UsageError(f"{directory}: not a directory (use `spectral-probe scan` for one checkpoint)")
    patterns = (pattern,) if pattern else DEFAULT_PATTERNS
    found: set[Path] = set()
    for pat in patterns:
        matches = root.glob(pat) if "/" in pat else root.rglob(pat)
        found.update(p for p in matches if p.is_file())
    if not found:
        raise UsageError(f"{directory}: no checkpoint matches {' or '.join(patterns)} (an empty audit never passes)")
    ordered = sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))
    return [str(p) for p in ordered]


def _ordered(outcomes: Sequence[_Outcome]) -> list[_Outcome]:
    """Natural order, or training-step order when every probed checkpoint carries a step.

    The sort is stable, so checkpoints with equal steps keep their natural order. Errors carry no
    step and do not prevent step order.
    """
    probed = [o for o in outcomes if o.results]
    if probed and all(o.results[0].step is not None for o in probed):
        return sorted(outcomes, key=lambda o: o.results[0].step if o.results else math.inf)
    return list(outcomes)


# --------------------------------------------------------------------------------------------------
# The journal (--jsonl, --resume)


def options_fingerprint(options: ProbeOptions) -> str:
    """A short hash of the options that change reported numbers (not gates, outputs or ``--jobs``).

    ``--resume`` reuses a line only under the same fingerprint: rerunning with another ``--c`` or a
    fixed ``--operator`` must probe again, not reload answers to a different question.
    """
    numeric = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_NUMERIC}
    text = json.dumps(numeric, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _path_key(path: str) -> str:
    # "runs/a.pt", "./runs/a.pt" and "/abs/runs/a.pt" are one checkpoint.
    return os.path.normcase(os.path.abspath(path))


@dataclass
class _Recorded:
    """The newest record of one checkpoint in the journal."""

    sha256: str | None
    results: dict[int, FixedPointResult] = dataclasses.field(default_factory=dict)
    fixed_points: int | None = None
    error: str | None = None

    def complete(self) -> bool:
        if self.error is not None:
            return True
        if not self.results:
            return False
        expected = self.fixed_points if self.fixed_points is not None else max(self.results) + 1
        return set(self.results) == set(range(expected))


class _Journal:
    """The ``--jsonl`` file: appended by the parent process only, one ``write()`` + ``fsync`` per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def load(self, fingerprint: str) -> dict[str, _Recorded]:
        """The newest complete record per checkpoint (by path key), for ``--resume``.

        A trailing partial line (a writer killed mid-line despite the single ``write()``) and any
        unreadable line are ignored: their checkpoints are simply probed again.
        """
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot read the --jsonl file: {exc.strerror or exc}") from None
        lines = text.split("\n")[:-1]  # the part after the last newline is empty or partial
        records: dict[str, _Recorded] = {}
        for line in lines:
            entry = _parse_line(line)
            if entry is None or entry.get(_OPTIONS_KEY, fingerprint) != fingerprint:
                continue
            key = _path_key(str(entry["checkpoint"]))
            sha = entry.get("sha256")
            current = records.get(key)
            if current is None or current.sha256 != sha:
                current = records[key] = _Recorded(sha256=sha)
            if "verdict" in entry:
                try:
                    result = result_from_dict(entry)
                except (TypeError, ValueError):  # a line from another tool or version: probe again
                    continue
                if current.error is not None:  # a newer result replaces an older error
                    current.error, current.results = None, {}
                current.results[result.index] = result
                if isinstance(entry.get(_FIXED_POINTS_KEY), int):
                    current.fixed_points = entry[_FIXED_POINTS_KEY]
            else:
                current.error, current.results = str(entry["error"]), {}
        return {key: rec for key, rec in records.items() if rec.complete()}

    def open(self) -> None:
        """Open for appending, after cutting a trailing partial line so the next line starts clean."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot open the --jsonl file: {exc.strerror or exc}") from None
        size = os.fstat(self._fd).st_size
        if size:
            tail = os.pread(self._fd, min(size, 1 << 16), max(0, size - (1 << 16)))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                # With no newline in the last 64 KiB the partial line is longer than that: find it.
                keep = size - len(tail) + cut + 1 if cut >= 0 else self._last_newline(size)
                os.ftruncate(self._fd, keep)
                os.fsync(self._fd)

    def _last_newline(self, size: int) -> int:
        assert self._fd is not None
        position = size
        while position > 0:
            start = max(0, position - (1 << 16))
            chunk = os.pread(self._fd, position - start, start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            position = start
        return 0

    def append(self, outcome: _Outcome, fingerprint: str) -> None:
        """One line per fixed point (or one for the error), each a single write of a whole line."""
        assert self._fd is not None
        if outcome.error is not None:
            entries = [{**outcome.error.to_dict(), "sha256": outcome.sha256, _OPTIONS_KEY: fingerprint}]
        else:
            batch = len(outcome.results)
            entries = [{**r.to_dict(), _FIXED_POINTS_KEY: batch, _OPTIONS_KEY: fingerprint} for r in outcome.results]
        for entry in entries:
            data = (json.dumps(entry, allow_nan=False) + "\n").encode("utf-8")
            written = os.write(self._fd, data)
            while written < len(data):  # a short write on a regular file is rare but allowed
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _parse_line(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("checkpoint"), str):
        return None
    if "verdict" not in entry and "error" not in entry:
        return None
    return entry


def _recorded_outcome(path: str, record: _Recorded) -> _Outcome:
    """Rebuild an outcome from the journal, labelled with the path as given this time."""
    if record.error is not None:
        return _Outcome(path, record.sha256, error=CheckpointError(checkpoint=path, error=record.error))
    results = tuple(dataclasses.replace(record.results[i], checkpoint=path) for i in sorted(record.results))
    return _Outcome(path, record.sha256, results=results)


# --------------------------------------------------------------------------------------------------
# Probing one checkpoint (in this process or a worker)


def _file_sha256(path: str) -> str | None:
    """The file's sha256 through the checkpoint module (the only one that opens files); None if unreadable."""
    from spectral_probe.checkpoint import file_sha256

    try:
        return file_sha256(path)
    except (SpectralProbeError, OSError):
        return None


def _default_probe() -> ProbeFn:
    from spectral_probe.probe import probe_checkpoint  # lazy: torch and the solvers load only here

    return probe_checkpoint


def _probe_task(path: str, options: ProbeOptions, probe_fn: ProbeFn | None, warm: Any, use_warm: bool) -> _Outcome:
    """Probe one checkpoint; a bad input becomes an error outcome, a bug propagates (exit 4)."""
    fn = probe_fn if probe_fn is not None else _default_probe()
    try:
        probed = fn(path, options, warm=warm, use_warm=use_warm)
    except SpectralProbeError as exc:
        return _Outcome(path, _file_sha256(path), error=CheckpointError(checkpoint=path, error=str(exc)))
    return _Outcome(path, probed.sha256, results=tuple(probed.results), warm=probed.warm if use_warm else None)


def _init_worker(threads: int) -> None:
    """Worker set-up: Ctrl-C is the parent's business, and N workers share the cores."""
    import signal

    import torch

    # The terminal sends SIGINT to the whole process group; only the parent should react (it
    # terminates the workers), else every worker prints its own KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _run_sequential(
    paths: Sequence[str],
    options: ProbeOptions,
    probe_fn: ProbeFn | None,
    on_outcome: Callable[[_Outcome], None],
    on_start: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Probe in order, each checkpoint warm-started from the previous one; return the cold retries.

    A warm start may only save work, never change an answer: where the leading mode switches between
    checkpoints, a start vector from the previous one can lie (nearly) in an invariant subspace that
    misses the new leading eigenvector, the cross-check against the random start then fails and the
    result is inconclusive. Such a checkpoint is probed again from random starts and that answer is
    kept (the wasted matvecs are reported in ``reproducibility.audit.warm_start_retries``).
    """
    warm: Any = None
    retries: list[dict[str, Any]] = []
    for path in paths:
        on_start(path)
        outcome = _probe_task(path, options, probe_fn, warm, options.warm_start)
        warmed = options.warm_start and warm is not None
        if warmed and any(r.verdict == INCONCLUSIVE for r in outcome.results):
            cold = _probe_task(path, options, probe_fn, None, options.warm_start)
            wasted = sum(r.matvecs for r in outcome.results[:1])  # one matvec count per batched probe
            retries.append({"checkpoint": path, "matvecs": wasted, "reason": outcome.results[0].reason})
            note = f"probed again from random starts: the warm-started probe was inconclusive ({wasted} matvecs)"
            outcome = dataclasses.replace(
                cold, results=tuple(dataclasses.replace(r, notes=(*r.notes, note)) for r in cold.results)
            )
        if outcome.warm is not None:  # an error keeps the previous warm start for the next one
            warm = outcome.warm
        on_outcome(outcome)
    return retries


def _run_parallel(
    paths: Sequence[str],
    options: ProbeOptions,
    probe_fn: ProbeFn | None,
    on_outcome: Callable[[_Outcome], None],
) -> None:
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
    context = multiprocessing.get_context("spawn")
    threads = max(1, _cores() // options.jobs)
    executor = ProcessPoolExecutor(
        max_workers=min(options.jobs, len(paths)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(threads,),
    )
    try:
        # Warm starts only make sense along one sequence: in parallel every probe starts cold, so
        # --jobs N reports what --jobs 1 --no-warm-start does (and --jobs 1 agrees to tolerance).
        pending = {executor.submit(_probe_task, p, options, probe_fn, None, False) for p in paths}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                on_outcome(future.result())
    except BaseException:
        _abort(executor)
        raise
    executor.shutdown(wait=True)


def _abort(executor: Any) -> None:
    """Stop now: drop queued checkpoints and end running workers (only the parent writes the journal)."""
    # ProcessPoolExecutor has no public way to stop a running task, and a probe of a large checkpoint
    # can take minutes; its process table is the only handle (best effort if that ever changes).
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


@contextlib.contextmanager
def _progress_bar(
    enabled: bool, total: int, completed: int
) -> Iterator[tuple[Callable[[str], None], Callable[[], None]]]:
    """``(describe, advance)`` callbacks driving a rich progress bar on stderr, or doing nothing."""
    if not enabled:
        yield (lambda _path: None), (lambda: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("audit"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
    )
    with progress:
        task = progress.add_task("", total=total, completed=completed)
        yield (
            lambda path: progress.update(task, description=Path(path).name),
            lambda: progress.advance(task),
        )


# --------------------------------------------------------------------------------------------------
# The audit


def run_audit(
    directory: str,
    options: ProbeOptions,
    *,
    progress: bool = False,
    probe_fn: ProbeFn | None = None,
) -> Report:
    """Probe every checkpoint below ``directory`` and return one Report (``command="audit"``).

    ``probe_fn`` replaces :func:`spectral_probe.probe.probe_checkpoint` (tests); with ``options.jobs``
    above 1 it must be picklable (a module-level function). A checkpoint that cannot be read becomes
    an error row and the others are still probed; the exit code is ``report.gate.exit_code``.
    KeyboardInterrupt stops the audit with every finished line in the journal, and propagates.
    """
    paths = find_checkpoints(directory, options.glob)
    if options.resume and not options.jsonl:
        raise UsageError("--resume needs --jsonl PATH: the journal is what is resumed")
    fingerprint = options_fingerprint(options)
    outcomes: dict[str, _Outcome] = {}
    journal = _Journal(options.jsonl) if options.jsonl else None
    if journal is not None and options.resume:
        recorded = journal.load(fingerprint)
        for path in paths:
            record = recorded.get(_path_key(path))
            # Hash only the files with a record: the sha256 decides whether the file changed since.
            if record is not None and record.sha256 is not None and record.sha256 == _file_sha256(path):
                outcomes[path] = _recorded_outcome(path, record)
    resumed = len(outcomes)
    todo = [p for p in paths if p not in outcomes]

    with _progress_bar(progress, len(paths), resumed) as (describe, advance), contextlib.ExitStack() as stack:
        if journal is not None:
            journal.open()
            stack.callback(journal.close)

        def finished(outcome: _Outcome) -> None:
            if journal is not None:
                journal.append(outcome, fingerprint)
            # Keep no warm start in the table of outcomes: only the next probe needs it.
            outcomes[outcome.path] = dataclasses.replace(outcome, warm=None)
            advance()

        retries: list[dict[str, Any]] = []
        if options.jobs > 1 and len(todo) > 1:
            _run_parallel(todo, options, probe_fn, finished)
        else:
            retries = _run_sequential(todo, options, probe_fn, finished, describe)

    ordered = _ordered([outcomes[p] for p in paths])
    results = tuple(r for o in ordered for r in o.results)
    errors = tuple(o.error for o in ordered if o.error is not None)
    gate = evaluate(results, errors, options.gates)
    reproducibility = _reproducibility(options)
    reproducibility["audit"] = {
        "directory": str(directory),
        "patterns": [options.glob] if options.glob else list(DEFAULT_PATTERNS),
        "checkpoints": len(paths),
        "resumed": resumed,
        "jobs": options.jobs,
        "warm_start": options.warm_start and options.jobs == 1,
        "options_sha256": fingerprint,
        "warm_start_retries": retries,
    }
    return Report(
        results=results,
        errors=errors,
        gate=gate,
        reproducibility=reproducibility,
        command="audit",
        trajectory=build_trajectory(ordered, directory),
    )


def _reproducibility(options: ProbeOptions) -> dict[str, Any]:
    from spectral_probe.scan import reproducibility  # the same record as `scan` writes

    return reproducibility(options)


# --------------------------------------------------------------------------------------------------
# The training-trajectory view


def sparkline(values: Sequence[float | None], width: int | None = None) -> str:
    """Unicode blocks scaled between the finite min and max; a blank where a value is missing.

    With ``width`` below ``len(values)`` each character covers a bucket and shows its largest value
    (the worst, for rho, alpha and omega), so a spike is never averaged away.
    """
    if width is not None and 0 < width < len(values):
        buckets = []
        for i in range(width):
            chunk = [v for v in values[i * len(values) // width : (i + 1) * len(values) // width] if _finite(v)]
            buckets.append(max(chunk) if chunk else None)
        values = buckets
    finite = [v for v in values if _finite(v)]
    if not finite:
        return " " * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    flat = span <= 1e-12 * max(1.0, abs(high))
    chars = []
    for v in values:
        if not _finite(v):
            chars.append(" ")
        elif flat:
            chars.append(SPARK_BLOCKS[len(SPARK_BLOCKS) // 2 - 1])
        else:
            chars.append(SPARK_BLOCKS[round((v - low) / span * (len(SPARK_BLOCKS) - 1))])
    return "".join(chars)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _worst(values: Sequence[float | None]) -> float | None:
    finite = [v for v in values if _finite(v)]
    return max(finite) if finite else None


def _safe(value: Any) -> Any:
    # The trajectory goes into the JSON report, which refuses NaN (allow_nan=False).
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _label(path: str, directory: str | os.PathLike[str]) -> str:
    """The checkpoint as a person names it: its path below the audited folder, without the suffix."""
    try:
        relative = Path(path).relative_to(Path(directory))
    except ValueError:
        relative = Path(path)
    return relative.with_suffix("").as_posix()


def _point(index: int, outcome: _Outcome, directory: str | os.PathLike[str]) -> dict[str, Any]:
    """One checkpoint of the series: the worst over its fixed points.

    rho, alpha and omega are each the largest over the fixed points; the leading eigenvalue and the
    verdict are those of the fixed point with the largest rho (the one a bifurcation is read from),
    except that any inconclusive fixed point makes the checkpoint inconclusive.
    """
    results = outcome.results
    with_rho = [r for r in results if _finite(r.rho)]
    worst = max(with_rho, key=lambda r: r.rho) if with_rho else results[0]
    verdict = INCONCLUSIVE if any(r.verdict == INCONCLUSIVE for r in results) else worst.verdict
    step = results[0].step
    label = _label(outcome.path, directory)
    if step is not None and str(step) not in label:
        label += f" (step {step})"
    return {
        "index": index,
        "step": step,
        "checkpoint": outcome.path,
        "label": label,
        "fixed_points": len(results),
        "rho": _safe(_worst([r.rho for r in results])),
        "alpha": _safe(_worst([r.alpha for r in results])),
        "omega": _safe(_worst([r.omega for r in results])),
        "verdict": verdict,
        "lead_real": _safe(worst.lead_real),
        "lead_imag": _safe(worst.lead_imag),
        "mu_lead_real": _safe(worst.mu_lead_real),
        "lead_is_complex": worst.lead_is_complex,
    }


def build_trajectory(outcomes: Sequence[_Outcome], directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The trajectory view over the probed checkpoints in order, or None below three of them.

    Checkpoints that could not be read have no numbers and are left out of the series (they are in
    the report's errors).
    """
    points = [_point(i, o, directory) for i, o in enumerate(o for o in outcomes if o.results)]
    if len(points) < MIN_TRAJECTORY:
        return None
    by_step = all(p["step"] is not None for p in points)
    numbered = all(re.search(r"\d", Path(o.path).stem) for o in outcomes if o.results)
    if not (by_step or numbered):  # a folder of unrelated checkpoints is no training run
        return None
    quantities = ("rho", "alpha", "omega")
    ranges = {}
    for q in quantities:
        finite = [p[q] for p in points if _finite(p[q])]
        ranges[q] = [min(finite), max(finite)] if finite else None
    return {
        "x": "step" if by_step else "index",
        "series": points,
        "sparklines": {q: sparkline([p[q] for p in points]) for q in quantities},
        "ranges": ranges,
        "transitions": _transitions(points),
        "bifurcation": _first_bifurcation(points, by_step),
    }


_STABLE_SIDE = frozenset({CONTRACTIVE, STABLE, MARGINAL})


def _transitions(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every change of verdict between consecutive checkpoints (for the JSON; the view shows the first)."""
    changes = []
    for before, after in zip(points, points[1:], strict=False):
        if before["verdict"] != after["verdict"]:
            changes.append({"from": before["verdict"], "to": after["verdict"], "at": after["label"]})
    return changes


def _is_complex(point: dict[str, Any]) -> bool:
    """Whether the leading eigenvalue is one of a complex pair, as the probe decided it (the one rule,
    :func:`spectral_probe.verdict.record_is_complex`; the verdict where that is ambiguous)."""
    decided = record_is_complex(point)
    if decided is not None:
        return decided
    return point["verdict"] in (HOPF, NEIMARK_SACKER)


def _first_bifurcation(points: Sequence[dict[str, Any]], by_step: bool) -> dict[str, Any] | None:
    """The first crossing from stable/contractive/marginal to unstable, classified.

    As continuation software (MatCont, AUTO) classifies a loss of stability of the map ``M``: by
    which eigenvalues left the unit circle between the two checkpoints and where. Only the leading
    eigenvalue is known on each side, so the count of unstable eigenvalues goes from 0 to 2 for a
    complex pair and from 0 to 1 for a real one:

    * a complex pair with ``Re(mu) > 0``: ``hopf`` (the continuous flow itself lost stability);
    * a complex pair with ``Re(mu) <= 0``: ``neimark-sacker`` (the step ``eps`` is too large);
    * a real eigenvalue through ``+1``: ``saddle`` (fold or branch point);
    * a real eigenvalue through ``-1``: ``flip`` (period doubling).

    Inconclusive checkpoints are skipped: a crossing is only claimed between two trusted verdicts.
    """
    before = None
    for point in points:
        if point["verdict"] == INCONCLUSIVE:
            continue
        if before is not None and before["verdict"] in _STABLE_SIDE and point["verdict"] in UNSTABLE:
            return _classify_crossing(before, point, by_step)
        before = point
    return None


def _classify_crossing(before: dict[str, Any], after: dict[str, Any], by_step: bool) -> dict[str, Any]:
    complex_before, complex_after = _is_complex(before), _is_complex(after)
    if complex_after:
        kind = HOPF if (after["mu_lead_real"] or 0.0) > 0 else NEIMARK_SACKER
    else:
        kind = SADDLE if (after["lead_real"] or 0.0) > 0 else FLIP
    rho0, rho1 = before["rho"], after["rho"]
    x0, x1 = (before["step"], after["step"]) if by_step else (before["index"], after["index"])
    crossing = None
    if _finite(rho0) and _finite(rho1) and rho1 > rho0:
        # Linear interpolation of rho to 1: where between the two checkpoints the crossing happened.
        fraction = min(1.0, max(0.0, (1.0 - rho0) / (rho1 - rho0)))
        crossing = x0 + fraction * (x1 - x0)
    notes = []
    if complex_after and not complex_before:
        notes.append("the leading eigenvalue was real before: two real eigenvalues met and left as a pair")
    if complex_before and not complex_after:
        notes.append("the leading eigenvalue was complex before: a pair met on the real axis, then crossed")
    if kind != after["verdict"]:
        notes.append(f"the checkpoint's own verdict is {after['verdict']}")
    rho_text = _pair_text(rho0, rho1)
    summary = f"{kind} between {before['label']} and {after['label']} (rho {rho_text})"
    out: dict[str, Any] = {
        "type": kind,
        "before": before["label"],
        "after": after["label"],
        "checkpoint_before": before["checkpoint"],
        "checkpoint_after": after["checkpoint"],
        "step_before": before["step"],
        "step_after": after["step"],
        "index_before": before["index"],
        "index_after": after["index"],
        "rho_before": rho0,
        "rho_after": rho1,
        "lead_before": [before["lead_real"], before["lead_imag"]],
        "lead_after": [after["lead_real"], after["lead_imag"]],
        "mu_lead_real_after": after["mu_lead_real"],
        "unstable_count_change": [0, 2 if complex_after else 1],
        "complex_lead": [complex_before, complex_after],
        f"estimated_{'step' if by_step else 'index'}": _safe(crossing),
        "notes": notes,
        "summary": summary,
    }
    if complex_after and _finite(after["lead_real"]) and _finite(after["lead_imag"]):
        # The rotation per relaxation step at the crossing: the oscillation a user will see.
        out["angle"] = math.atan2(after["lead_imag"], after["lead_real"])
    return out


def _pair_text(a: float | None, b: float | None) -> str:
    """``0.998 -> 1.004``, with as many digits as it takes to show the two differ."""
    if not (_finite(a) and _finite(b)):
        return f"{a} -> {b}"
    assert a is not None and b is not None
    for digits in range(4, 10):
        left, right = f"{a:.{digits}g}", f"{b:.{digits}g}"
        if left != right:
            break
    return f"{left} -> {right}"
