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
from spectral_probe.errors import ResourceError, SpectralProbeError
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
    """Probe one checkpoint; a bad input becomes an error outcome, and so does a bug met on it (exit 4 at
    the end, with every other checkpoint probed: one file never ends an audit)."""
    fn = probe_fn if probe_fn is not None else _default_probe()
    try:
        probed = fn(path, options, warm=warm, use_warm=use_warm)
    except SpectralProbeError as exc:
        error = CheckpointError(checkpoint=path, error=str(exc))
        # Not enough memory says nothing about the file: a resume (elsewhere, fewer --jobs) tries again.
        return Outcome(path, file_sha256_or_none(path), error=error, retry=isinstance(exc, ResourceError))
    except Exception as exc:  # a bug: reported, retried by --resume (after a fix), the audit goes on
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        why = f"internal error ({type(exc).__name__}: {first}); please report it (scan the file with --debug)"
        error = CheckpointError(checkpoint=path, error=f"{path}: {why}", internal=True)
        return Outcome(path, file_sha256_or_none(path), error=error, retry=True)
    return Outcome(path, probed.sha256, results=tuple(probed.results), warm=probed.warm if use_warm else None)


def _init_worker(threads: int) -> None:
    """Worker set-up: Ctrl-C is the parent's business, and N workers share the cores."""
    import signal

    import torch

    # The terminal sends SIGINT to the whole process group; only the parent should react (it
    # terminates the workers), else every worker prints its own KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _exit_with_the_parent()


def _exit_with_the_parent(interval: float = 0.2) -> None:
    """End this worker when the audit that started it is gone (``kill -9``, the OOM killer).

    A worker holds the write end of its own task queue, so it never reads end-of-file there: without
    this it would wait (or finish a probe, holding its memory) forever as an orphan. Only the parent
    writes the journal, so nothing is lost by ending here.
    """
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="spectral-probe-parent-watch", daemon=True).start()


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
    """Probe in ``options.jobs`` worker processes; a checkpoint whose worker dies is an error row.

    A worker killed mid-probe (the out-of-memory killer, a signal, a crash in native code) breaks the
    whole pool and fails every checkpoint then in flight, so which one was to blame is found out by
    probing each of those again alone, in a fresh single-worker pool: one that kills that worker too
    becomes an error row, the others get their results, and the rest of the audit goes on in a
    fresh pool. At most ``jobs`` checkpoints are in flight at a time, so a crash costs at most that.
    """
    workers = min(options.jobs, len(paths))
    remaining = list(paths)
    while remaining:
        crashed, remaining = _pool_run(remaining, options, probe_fn, on_outcome, workers)
        for path in crashed:
            again, _ = _pool_run([path], options, probe_fn, on_outcome, 1)
            if again:
                on_outcome(_worker_died(path))


def _worker_died(path: str) -> Outcome:
    message = (
        f"{path}: the worker process died while probing it (killed by a signal or out of memory); "
        "the other checkpoints were probed"
    )
    error = CheckpointError(checkpoint=path, error=message)
    return Outcome(path, file_sha256_or_none(path), error=error, retry=True)


def _pool_run(
    paths: Sequence[str],
    options: ProbeOptions,
    probe_fn: ProbeFn | None,
    on_outcome: Callable[[Outcome], None],
    workers: int,
) -> tuple[list[str], list[str]]:
    """Probe ``paths`` in one pool until it finishes or breaks: ``(in flight at the break, not started)``."""
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    executor = _executor(workers, options)
    todo, running = deque(paths), {}
    try:
        while todo or running:
            while todo and len(running) < workers:
                path = todo.popleft()
                # Warm starts only make sense along one sequence: in parallel every probe starts cold, so
                # --jobs N reports what --jobs 1 --no-warm-start does (and --jobs 1 agrees to tolerance).
                try:
                    running[executor.submit(_probe_task, path, options, probe_fn, None, False)] = path
                except BrokenProcessPool:
                    # A worker died between two submissions: this path never started. The futures in
                    # flight say which finished and which the break took (wait() below collects them).
                    if not running:
                        _abort(executor)
                        return [path], list(todo)
                    todo.appendleft(path)
                    break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = []
            for future in finished:
                path = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken.append(path)
                    continue
                on_outcome(outcome)
            if broken:
                _abort(executor)
                return broken + list(running.values()), list(todo)
    except BaseException:
        _abort(executor)
        raise
    executor.shutdown(wait=True)
    return [], []


def _executor(workers: int, options: ProbeOptions) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process that has started torch's thread pools can deadlock.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(max(1, _cores() // options.jobs),),
    )


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
