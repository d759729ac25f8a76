"""Where the reports go: output paths checked against the inputs, writes that lose nothing.

* An output path that is an input of the run (the checkpoint, ``--fixed-point``, ``--config``, an
  operator file, a checkpoint that ``audit`` would read) or that has a checkpoint's suffix is refused
  before anything runs: ``scan x.safetensors --json x.safetensors`` must never overwrite the checkpoint.
* A report file is written to a temporary file beside it and renamed over it, so a write that fails
  (a full disk, a read-only place) leaves what the file held; the failure is an
  :class:`~spectral_probe.errors.OutputError` naming the path (exit code 2, docs/SPEC.md section 7).
* ``--json -`` on a closed pipe (``| true``) is the same error, naming standard output.
* What an operator plugin prints goes to standard error, so ``--json -`` stays one JSON document.

No torch here.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from fnmatch import fnmatch
from pathlib import Path, PurePath

from spectral_probe.errors import OutputError, UsageError
from spectral_probe.validate import check_string, shown

#: Suffixes of files the tool reads as checkpoints; a report is never written under one.
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth")
#: Environment variable of the GitHub Actions job summary (appended to, in Markdown).
STEP_SUMMARY = "GITHUB_STEP_SUMMARY"


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one does not exist (yet): compare where they would be
        return os.path.realpath(a) == os.path.realpath(b)


def _below(path: str, directory: str, pattern: str | None) -> bool:
    """Would ``audit DIR --glob pattern`` read ``path``?"""
    try:
        relative = PurePath(os.path.realpath(path)).relative_to(os.path.realpath(directory))
    except ValueError:
        return False
    if pattern is None:
        return relative.suffix.lower() in CHECKPOINT_SUFFIXES
    return relative.match(pattern) if "/" in pattern else fnmatch(relative.name, pattern)


def check_outputs(
    outputs: Mapping[str, str | None],
    inputs: Mapping[str, str | None],
    *,
    directory: str | None = None,
    pattern: str | None = None,
) -> None:
    """Refuse output paths that would overwrite an input or a checkpoint, or each other.

    ``outputs`` maps a flag (``--json``) to its path (``None``: not requested; ``-``: standard
    output); ``inputs`` maps what a file is (``the checkpoint``) to its path; ``directory`` and
    ``pattern`` are ``audit``'s folder and ``--glob``. Raises :class:`UsageError` naming the flag.
    """
    seen: dict[str, str] = {}
    to_stdout: str | None = None
    for flag, target in outputs.items():
        if target == "-":  # standard output holds one document
            if to_stdout is not None:
                raise UsageError(f"{flag} -: {to_stdout} - already writes to standard output")
            to_stdout = flag
            continue
        if target is None:
            continue
        check_string(target, flag)
        if not target:
            raise UsageError(f"{flag} needs a file name")
        where = f"{flag} {shown(target)}"
        if os.path.isdir(target):
            raise UsageError(f"{where}: is a directory, not a file")
        for what, source in inputs.items():
            if source and _same_file(target, source):
                raise UsageError(f"{where}: is {what}, an input of this run; refusing to overwrite it")
        if directory is not None and _below(target, directory, pattern):
            raise UsageError(f"{where}: is a checkpoint this audit reads; refusing to overwrite it")
        if PurePath(target).suffix.lower() in CHECKPOINT_SUFFIXES:
            raise UsageError(f"{where}: refusing to write a report under a checkpoint's suffix")
        for other, path in seen.items():
            if _same_file(target, path):
                raise UsageError(f"{where}: {other} writes the same file")
        seen[flag] = target


def write_report(path: str, text: str, flag: str) -> None:
    """Write ``text`` to ``path`` so that a failure leaves the old file intact (temporary file + rename).

    A path that exists and is not a regular file (``/dev/stdout``, a FIFO) is written in place.
    Raises :class:`OutputError` naming ``flag`` and ``path``.
    """
    target = Path(os.path.realpath(path))
    try:
        if target.exists() and not target.is_file():
            with _open_in_place(target, os.O_TRUNC) as handle:
                handle.write(text)
            return
        for folder in (target.parent, *target.parent.parents):
            if folder.exists():
                if not folder.is_dir():
                    raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a folder")
                break
        target.parent.mkdir(parents=True, exist_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask()
        descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", errors="backslashreplace") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(temporary, mode)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise OutputError(f"{flag} {path}", f"cannot write the report ({exc.strerror or exc})") from None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def append_step_summary(text: str) -> None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when it is set (an unwritable one is an OutputError)."""
    path = os.environ.get(STEP_SUMMARY)
    if not path:
        return
    try:
        with _open_in_place(Path(path), os.O_APPEND | os.O_CREAT) as handle:
            handle.write(text)
    except OSError as exc:
        raise OutputError(f"{STEP_SUMMARY}={path}", f"cannot append the summary ({exc.strerror or exc})") from None


def _open_in_place(target: Path, flags: int) -> io.TextIOWrapper:
    """``target`` opened for writing as it is (a device, a FIFO, or, with ``O_CREAT``, a file).

    A FIFO is opened without blocking, so that one no process reads is an error (ENXIO: "no such device
    or address") instead of a hang; once open, writes block as a pipe's do."""
    try:
        descriptor = os.open(target, os.O_WRONLY | flags | os.O_NONBLOCK, 0o666)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise OSError(errno.ENXIO, "a FIFO that no process reads") from None
        raise
    os.set_blocking(descriptor, True)
    return open(descriptor, "w", encoding="utf-8", errors="backslashreplace")


def write_stdout(text: str, flag: str = "--json") -> None:
    """Write the ``FLAG -`` report; a closed pipe is an :class:`OutputError`, never a traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        why = "standard output was closed before the report was written (broken pipe)"
        raise OutputError(f"{flag} -", why) from None
    except (OSError, ValueError) as exc:
        raise OutputError(f"{flag} -", f"cannot write to standard output ({exc})") from None


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


@contextlib.contextmanager
def plugin_output_to_stderr() -> Iterator[None]:
    """Send what runs inside (operator plugins, worker processes) to stderr instead of stdout.

    Python-level ``print`` is redirected, and, where standard output is a real file descriptor, so
    is descriptor 1 (C extensions, and the worker processes of ``audit --jobs``, which inherit it).
    """
    descriptor = None
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        if sys.stdout.fileno() == 1 and sys.stderr.fileno() == 2:
            sys.stdout.flush()
            descriptor = os.dup(1)
            os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if descriptor is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(descriptor, 1)
            os.close(descriptor)
