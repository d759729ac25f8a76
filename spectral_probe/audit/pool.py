"""Probing the checkpoints of an audit: in this process (with warm starts) or in worker processes.

* ``--jobs N``: worker processes (``spawn``), each with ``cores // N`` torch threads;
* warm starts along the run (``--jobs 1`` only): the previous checkpoint's Krylov vectors seed the first
  solves of the next one;
* the rich progress bar on stderr, when the caller asks for one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from spectral_probe.audit.outcome import Outcome, ProbeFn
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import SpectralProbeError
from spectral_probe.results import CheckpointError
from spectral_probe.verdict import INCONCLUSIVE


def file_sha256_or_none(path: str) -> str | None:
    """The file's sha256 through the checkpoint module (the only one that opens files); None if unreadable."""
    from spectral_probe.checkpoint import file_sha256

    try:
        return file_sha256(path)
    except (SpectralProbeError, OSError):
        return None


def _default_probe() -> ProbeFn:
    from spectral_probe.probe import probe_checkpoint  # lazy: torch and the solvers load only here

    return probe_checkpoint


def _probe_task(path: str, options: ProbeOptions, probe_fn: ProbeFn | None, warm: Any, use_warm: bool) -> Outcome:
    """Probe one checkpoint; a bad input becomes an error outcome, a bug propagates (exit 4)."""
    fn = probe_fn if probe_fn is not None else _default_probe()
    try:
        probed = fn(path, options, warm=warm, use_warm=use_warm)
    except SpectralProbeError as exc:
        return Outcome(path, file_sha256_or_none(path), error=CheckpointError(checkpoint=path, error=str(exc)))
    return Outcome(path, probed.sha256, results=tuple(probed.results), warm=probed.warm if use_warm else None)


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


def run_sequential(
    paths: Sequence[str],
    options: ProbeOptions,
    probe_fn: ProbeFn | None,
    on_outcome: Callable[[Outcome], None],
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


def run_parallel(
    paths: Sequence[str],
    options: ProbeOptions,
    probe_fn: ProbeFn | None,
    on_outcome: Callable[[Outcome], None],
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
def progress_bar(
    enabled: bool, total: int, completed: int
) -> Iterator[tuple[Callable[[str], None], Callable[[], None]]]:
    """``(describe, advance)`` callbacks driving a rich progress bar on stderr, or doing nothing."""
    if not enabled:
        yield (lambda _path: None), (lambda: None)
        return
    from rich.console import Console
    from rich.markup import escape
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
            lambda path: progress.update(task, description=escape(Path(path).name)),  # a name is no markup
            lambda: progress.advance(task),
        )
