"""``audit``: probe every checkpoint below a folder (a training run, a sweep) and assemble one Report.

The steps, each in its own module: discovery and order (:mod:`.discovery`), the journal and
``--resume`` (:mod:`.journal`), probing in this process or in workers (:mod:`.pool`), and the
training-trajectory view (:mod:`.trajectory`).

Layering: this package calls the probe, the gate and the result records. It never prints, except a
rich progress bar on stderr when the caller asks for one, and it opens no checkpoint itself (hashes
come from :mod:`spectral_probe.checkpoint`); the only file it writes is the ``--jsonl`` journal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from spectral_probe.audit.discovery import (
    DEFAULT_PATTERNS,
    find_checkpoints,
    ordered_outcomes,
    parse_shard,
    shard_paths,
)
from spectral_probe.audit.journal import Journal, options_fingerprint, path_key, recorded_outcome
from spectral_probe.audit.outcome import Outcome, ProbeFn
from spectral_probe.audit.pool import file_sha256_or_none, progress_bar, run_parallel, run_sequential
from spectral_probe.audit.shards import shard_header
from spectral_probe.audit.trajectory import build_trajectory
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import UsageError
from spectral_probe.gate import evaluate
from spectral_probe.results import Report


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
    found = find_checkpoints(directory, options.glob)
    if options.resume and not options.jsonl:
        raise UsageError("--resume needs --jsonl PATH: the journal is what is resumed")
    shard = parse_shard(options.shard)
    if shard is not None and not options.jsonl:
        raise UsageError("--shard needs --jsonl PATH: the shards' journals are what `spectral-probe merge` joins")
    paths = shard_paths(found, directory, shard)
    fingerprint = options_fingerprint(options)
    journal = Journal(options.jsonl) if options.jsonl else None
    if journal is not None:
        journal.guard(found)
    reproducibility = _reproducibility(options)
    header = (
        None
        if shard is None
        else shard_header(shard, directory, options, paths, fingerprint, len(found), reproducibility)
    )
    outcomes = _resumed(journal, paths, fingerprint) if journal is not None and options.resume else {}
    resumed = len(outcomes)
    todo = [p for p in paths if p not in outcomes]

    with (
        progress_bar(progress, len(paths), resumed) as (describe, advance),
        contextlib.ExitStack() as stack,
        _remembered_interrupt() as interrupted,
    ):
        if journal is not None:
            journal.open()
            stack.callback(journal.close)
            if header is not None:  # what `merge` checks the shard against: nothing lost, nothing twice
                journal.write_line(header)

        def finished(outcome: Outcome) -> None:
            if interrupted.is_set():  # this outcome may hold an interrupt some code turned into an error
                raise KeyboardInterrupt
            if journal is not None:
                journal.append(outcome, fingerprint)
            # Keep no warm start in the table of outcomes: only the next probe needs it.
            outcomes[outcome.path] = dataclasses.replace(outcome, warm=None)
            advance()

        retries: list[dict[str, Any]] = []
        if options.jobs > 1 and len(todo) > 1:
            run_parallel(todo, options, probe_fn, finished)
        else:
            retries = run_sequential(todo, options, probe_fn, finished, describe)

    ordered = ordered_outcomes([outcomes[p] for p in paths])
    reproducibility["audit"] = {
        "directory": str(directory),
        "patterns": patterns(options),
        "checkpoints": len(paths),
        "resumed": resumed,
        "jobs": options.jobs,
        "warm_start": options.warm_start and options.jobs == 1,
        "options_sha256": fingerprint,
        "warm_start_retries": retries,
    }
    if shard is not None:
        reproducibility["audit"]["shard"] = {"shard": str(shard), "of_checkpoints": len(found)}
    return assemble_report(ordered, directory, options, reproducibility)


@contextlib.contextmanager
def _remembered_interrupt() -> Iterator[threading.Event]:
    """Ctrl-C raises KeyboardInterrupt as always, and is also remembered: user code or a library may
    catch it, or turn it into another error (an error row, a "bad input"), and then the audit would go
    on and journal that checkpoint as done. A remembered interrupt stops the audit at the next
    checkpoint boundary, with nothing of the interrupted checkpoint journaled (exit 130, ``--resume``
    redoes it). Only where Python's own handler is in place (the main thread of a CLI run)."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield interrupted
        return

    def remember(signum: int, frame: Any) -> None:
        interrupted.set()
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, remember)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def patterns(options: ProbeOptions) -> list[str]:
    """The discovery patterns of this audit, as the report records them."""
    return [options.glob] if options.glob else list(DEFAULT_PATTERNS)


def _resumed(journal: Journal, paths: Sequence[str], fingerprint: str) -> dict[str, Outcome]:
    """The checkpoints whose journal record still holds: same path, options and file contents."""
    recorded = journal.load(fingerprint, wanted={path_key(p) for p in paths})
    outcomes: dict[str, Outcome] = {}
    for path in paths:
        record = recorded.get(path_key(path))
        # A worker that died (killed, out of memory) says nothing about the file: probe it again.
        if record is None or record.sha256 is None or record.retry:
            continue
        # Hash only the files with a record: the sha256 decides whether the file changed since.
        if record.sha256 == file_sha256_or_none(path):
            outcomes[path] = recorded_outcome(path, record)
    return outcomes


def assemble_report(
    ordered: Sequence[Outcome], directory: str, options: ProbeOptions, reproducibility: dict[str, Any]
) -> Report:
    """One Report from the outcomes in audit order: rows, errors, the gate and the trajectory."""
    results = tuple(r for o in ordered for r in o.results)
    errors = tuple(o.error for o in ordered if o.error is not None)
    return Report(
        results=results,
        errors=errors,
        gate=evaluate(results, errors, options.gates),
        reproducibility=reproducibility,
        command="audit",
        trajectory=build_trajectory(ordered, directory),
    )


def _reproducibility(options: ProbeOptions) -> dict[str, Any]:
    from spectral_probe.scan import reproducibility  # the same record as `scan` writes

    return reproducibility(options)
