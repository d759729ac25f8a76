"""The ``--jsonl`` journal of an audit and ``--resume``: one line per finished fixed point or error.

The journal is written by the parent process only, each line a single ``write()`` followed by
``fsync``, so an interrupted audit loses no finished line; ``--resume`` reloads what is there (matched
by path, sha256 and the numeric options) and the audit probes the rest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spectral_probe.audit.outcome import Outcome
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import UsageError
from spectral_probe.results import CheckpointError, FixedPointResult, result_from_dict

# Options that change no reported number: a resumed audit may change them and still reuse lines.
_NOT_NUMERIC = frozenset(
    {"max_rho", "max_alpha", "max_omega", "json", "markdown", "junit", "quiet", "debug"}
    | {"glob", "jobs", "jsonl", "resume", "warm_start"}
)
# Extra keys on a JSONL result line (SPEC 6 allows more fields): how many fixed points the checkpoint
# has (so a checkpoint cut between two of its lines is probed again) and the options fingerprint.
_FIXED_POINTS_KEY = "fixed_points"
_OPTIONS_KEY = "options_sha256"


def options_fingerprint(options: ProbeOptions) -> str:
    """A short hash of the options that change reported numbers (not gates, outputs or ``--jobs``).

    ``--resume`` reuses a line only under the same fingerprint: rerunning with another ``--c`` or a
    fixed ``--operator`` must probe again, not reload answers to a different question.
    """
    numeric = {k: v for k, v in dataclasses.asdict(options).items() if k not in _NOT_NUMERIC}
    text = json.dumps(numeric, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path_key(path: str) -> str:
    # "runs/a.pt", "./runs/a.pt" and "/abs/runs/a.pt" are one checkpoint.
    return os.path.normcase(os.path.abspath(path))


@dataclass
class Recorded:
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


class Journal:
    """The ``--jsonl`` file: appended by the parent process only, one ``write()`` + ``fsync`` per line."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def load(self, fingerprint: str) -> dict[str, Recorded]:
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
        records: dict[str, Recorded] = {}
        for line in lines:
            entry = _parse_line(line)
            if entry is None or entry.get(_OPTIONS_KEY, fingerprint) != fingerprint:
                continue
            key = path_key(str(entry["checkpoint"]))
            sha = entry.get("sha256")
            current = records.get(key)
            if current is None or current.sha256 != sha:
                current = records[key] = Recorded(sha256=sha)
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

    def append(self, outcome: Outcome, fingerprint: str) -> None:
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


def recorded_outcome(path: str, record: Recorded) -> Outcome:
    """Rebuild an outcome from the journal, labelled with the path as given this time."""
    if record.error is not None:
        return Outcome(path, record.sha256, error=CheckpointError(checkpoint=path, error=record.error))
    results = tuple(dataclasses.replace(record.results[i], checkpoint=path) for i in sorted(record.results))
    return Outcome(path, record.sha256, results=results)
