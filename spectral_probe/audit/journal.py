"""The ``--jsonl`` journal of an audit and ``--resume``: one line per finished fixed point or error.

The journal is written by the parent process only, each line a single ``write()`` followed by
``fsync``, so an interrupted audit loses no finished line; ``--resume`` reloads what is there (matched
by path, sha256 and the numeric options) and the audit probes the rest.

Nothing about the file is trusted. It must be a regular file (a FIFO or ``/dev/zero`` would hang the
read), it must not be a checkpoint or have a checkpoint's name, and an existing file must already be
a journal: the audit appends only to its own kind of file. One audit writes it at a time (an
exclusive ``flock`` from open to close; a second audit is refused). The read is bounded (the size the file
had when opened, lines of at most :data:`MAX_LINE` bytes, records only for the checkpoints being
audited) and every line is validated (:mod:`.records`). A write that fails (a full disk) cuts the
partial line, keeps every line before it and is one :class:`OutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import stat
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

from spectral_probe.audit.outcome import Outcome
from spectral_probe.audit.records import (
    ABSOLUTE_KEY,
    FIXED_POINTS_KEY,
    HEADER_KEY,
    MAX_PATH,
    OPTIONS_KEY,
    RETRY_KEY,
    Recorded,
    is_text,
    parse_json_line,
    valid_error_line,
    valid_result_line,
)
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import OutputError, SpectralProbeError
from spectral_probe.results import CheckpointError

# Options that change no reported number: a resumed audit may change them and still reuse lines.
_NOT_NUMERIC = frozenset(
    {"max_rho", "max_alpha", "max_omega", "json", "markdown", "junit", "quiet", "debug"}
    | {"glob", "jobs", "jsonl", "resume", "warm_start", "shard"}
)
#: The longest journal line that is read (a shard header lists its checkpoints; results are ~2 KB).
MAX_LINE = 16 << 20
#: The names a journal may not have: those of the checkpoints an audit looks for.
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
_CHUNK = 1 << 20


def options_fingerprint(options: ProbeOptions) -> str:
    """A short hash of the options that change reported numbers (not gates, outputs or ``--jobs``).

    ``--resume`` reuses a line only under the same fingerprint: rerunning with another ``--c`` or a
    fixed ``--operator`` must probe again, not reload answers to a different question.
    """
    numeric = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_NUMERIC}
    # The files an option names count by their bytes, not their names: a --fixed-point file rewritten
    # in place changes every answer, and the same files named from another folder change none.
    numeric["fixed_point"] = _by_content(options.fixed_point)
    numeric["inputs"] = [_by_content(spec.partition("=")[2] or spec, spec) for spec in options.inputs]
    if options.operator and ":" in options.operator:
        source, _, factory = options.operator.rpartition(":")
        numeric["operator"] = [_by_content(source), factory]
    text = json.dumps(numeric, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _by_content(path: str | None, spelled: str | None = None) -> str | None:
    """The sha256 of the file ``path`` names, or the name as written (``spelled``) where none can be read."""
    if path is None:
        return None
    from spectral_probe.checkpoint import file_sha256  # the one package that opens input files

    try:
        return file_sha256(path)
    except (SpectralProbeError, OSError):
        return spelled or path


def path_key(path: str) -> str:
    # "runs/a.pt", "./runs/a.pt" and "/abs/runs/a.pt" are one checkpoint.
    """The key of a checkpoint path in the journal: normalized and absolute, so spellings of one file agree."""
    return os.path.normcase(os.path.abspath(path))


class Journal:
    """The ``--jsonl`` file: appended by the parent process only, one ``write()`` + ``fsync`` per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def _fail(self, problem: str) -> OutputError:
        return OutputError(self.path, problem)

    def guard(self, inputs: Sequence[str]) -> None:
        """Refuse a journal path that would damage a file: an input, a checkpoint name, a non-journal.

        Decided before anything is read or written: a ``.safetensors``/``.pt``/``.pth`` name, one of
        the checkpoints being audited (the same inode, however it is spelt), a FIFO, device or folder,
        and an existing file whose first line is no journal line are each refused.
        """
        if self.path.suffix.lower() in CHECKPOINT_SUFFIXES:
            raise self._fail(f"the --jsonl journal may not have a checkpoint's name ({self.path.suffix})")
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise self._fail(f"cannot use as the --jsonl journal ({exc.strerror or exc})") from None
        if not stat.S_ISREG(info.st_mode):
            raise self._fail("the --jsonl journal must be a regular file (not a FIFO, device or folder)")
        for path in inputs:
            with contextlib.suppress(OSError):
                if os.path.samestat(info, os.stat(path)):
                    raise self._fail(f"is the checkpoint {path} being audited; the journal must be another file")
        if info.st_size and not self._looks_like_journal():
            raise self._fail("exists and is not a spectral-probe journal; refusing to append to it")

    def _looks_like_journal(self) -> bool:
        """Whether the first line is a journal line (or, cut before its end, starts like one)."""
        fd = self._open_regular(os.O_RDONLY)
        try:
            head = os.read(fd, MAX_LINE + 1)
        finally:
            os.close(fd)
        line, newline, _ = head.partition(b"\n")
        if not newline:
            return head.startswith(b'{"')
        entry = parse_json_line(line)
        return entry is not None and ("checkpoint" in entry or HEADER_KEY in entry)

    def _open_regular(self, flags: int) -> int:
        """Open without blocking on a FIFO, and refuse anything but a regular file (race-free: fstat)."""
        try:
            fd = os.open(self.path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise self._fail(f"cannot open the --jsonl journal ({exc.strerror or exc})") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise self._fail("the --jsonl journal must be a regular file (not a FIFO, device or folder)")
        os.set_blocking(fd, True)
        return fd

    def lines(self) -> Iterator[bytes]:
        """Every whole line (without its newline) up to the size the file had when opened.

        Lines longer than :data:`MAX_LINE` are skipped without being held; the part after the last
        newline is a line cut by a killed writer and is not returned.
        """
        if not self.path.exists():
            return
        fd = self._open_regular(os.O_RDONLY)
        try:
            yield from _bounded_lines(fd, os.fstat(fd).st_size)
        except OSError as exc:
            raise self._fail(f"cannot read the --jsonl journal ({exc.strerror or exc})") from None
        finally:
            os.close(fd)

    def load(self, fingerprint: str, wanted: Collection[str] | None = None) -> dict[str, Recorded]:
        """The newest complete record per checkpoint (by path key), for ``--resume``.

        Only lines of this options ``fingerprint`` count, and with ``wanted`` (path keys) only those
        checkpoints are kept, so the memory is bounded by the audit, not by the file. A cut or
        invalid line is ignored: its checkpoint is simply probed again.
        """
        records: dict[str, Recorded] = {}
        for line in self.lines():
            entry = parse_json_line(line)
            if entry is None or entry.get(OPTIONS_KEY, fingerprint) != fingerprint:
                continue
            add_entry(records, entry, wanted)
        return {key: rec for key, rec in records.items() if rec.complete()}

    def open(self) -> None:
        """Open for appending, after cutting a trailing partial line so the next line starts clean."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._fail(f"cannot create the folder of the --jsonl journal ({exc.strerror or exc})") from None
        self._fd = self._open_regular(os.O_RDWR | os.O_CREAT | os.O_APPEND)
        self._lock()
        size = os.fstat(self._fd).st_size
        if size:
            tail = os.pread(self._fd, min(size, 1 << 16), max(0, size - (1 << 16)))
            if not tail.endswith(b"\n"):
                cut = tail.rfind(b"\n")
                # With no newline in the last 64 KiB the partial line is longer than that: find it.
                keep = size - len(tail) + cut + 1 if cut >= 0 else self._last_newline(size)
                self._truncate(keep)

    def _lock(self) -> None:
        """One writer at a time: a second audit on the same journal would probe everything again and,
        cutting what it takes for a partial last line, could cut a line the first one is writing."""
        assert self._fd is not None
        try:
            import fcntl
        except ImportError:  # not on POSIX: no advisory locks
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.close()
            raise self._fail(
                "another audit is writing this --jsonl journal; wait for it to end or use another file"
            ) from None
        except OSError:  # a file system without locks (some network mounts): go on unlocked
            return

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

    def _truncate(self, size: int) -> None:
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as exc:
            raise self._fail(f"cannot write the --jsonl journal ({exc.strerror or exc})") from None

    def write_line(self, entry: dict[str, Any]) -> None:
        """Append one whole line and fsync it; on failure cut what was written of it and raise.

        Every line written before is kept: the file is cut back to its size before this line.
        """
        assert self._fd is not None
        data = (json.dumps(entry, allow_nan=False) + "\n").encode("utf-8")
        before = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # a short write on a regular file is rare but allowed
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, before)
            full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            why = "the disk is full" if full else (exc.strerror or str(exc))
            raise self._fail(
                f"cannot write the --jsonl journal ({why}); every line before is kept, rerun with --resume"
            ) from None

    def append(self, outcome: Outcome, fingerprint: str) -> None:
        """One line per fixed point (or one for the error), each a single write of a whole line."""
        if outcome.error is not None:
            entries = [{**outcome.error.to_dict(), "sha256": outcome.sha256, OPTIONS_KEY: fingerprint}]
            if outcome.retry:
                entries[0][RETRY_KEY] = True
        else:
            batch = len(outcome.results)
            entries = [{**r.to_dict(), FIXED_POINTS_KEY: batch, OPTIONS_KEY: fingerprint} for r in outcome.results]
        for entry in entries:
            entry[ABSOLUTE_KEY] = path_key(outcome.path)
            self.write_line(entry)

    def close(self) -> None:
        """Close the journal file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def add_entry(records: dict[str, Recorded], entry: dict[str, Any], wanted: Collection[str] | None) -> None:
    """Fold one parsed line into ``records`` (newest wins; a changed sha256 starts a new record)."""
    if "verdict" in entry:
        result, error = valid_result_line(entry), None
        if result is None:
            return
    else:
        result, error = None, valid_error_line(entry)
        if error is None:
            return
    absolute = entry.get(ABSOLUTE_KEY)
    key = absolute if is_text(absolute, MAX_PATH) and os.path.isabs(absolute) else path_key(entry["checkpoint"])
    if wanted is not None and key not in wanted:
        return
    sha = entry.get("sha256")
    current = records.get(key)
    if current is None or current.sha256 != sha:
        current = records[key] = Recorded(sha256=sha)
    if result is not None:
        current.add_result(result, entry.get(FIXED_POINTS_KEY))
    else:
        current.add_error(error, entry.get(RETRY_KEY) is True)


def _bounded_lines(fd: int, size: int) -> Iterator[bytes]:
    """Whole lines of the first ``size`` bytes of ``fd``, skipping any longer than MAX_LINE."""
    buffer, skipping, remaining = b"", False, size
    while remaining > 0:
        chunk = os.read(fd, min(_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        buffer += chunk
        *whole, buffer = buffer.split(b"\n")
        for line in whole:
            if skipping:  # the end of an overlong line
                skipping = False
            else:
                yield line
        if len(buffer) > MAX_LINE:
            buffer, skipping = b"", True


def recorded_outcome(path: str, record: Recorded) -> Outcome:
    """Rebuild an outcome from the journal, labelled with the path as given this time."""
    if record.error is not None:
        error = CheckpointError(checkpoint=path, error=record.error)
        return Outcome(path, record.sha256, error=error, retry=record.retry)
    results = tuple(dataclasses.replace(record.results[i], checkpoint=path) for i in sorted(record.results))
    return Outcome(path, record.sha256, results=results)
