"""The lines of an audit journal, parsed and validated: nothing in a journal is trusted.

A journal may be edited, truncated, or not a journal at all, so every field of every line is checked
before it is used: the type each :class:`~spectral_probe.results.FixedPointResult` field declares,
finite numbers, bounded integers and strings, a known verdict, a hex sha256, and a fixed-point index
below the checkpoint's count of fixed points. A line that fails any check is ignored (its checkpoint
is probed again); nothing is allocated from a number a line holds.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Any

from spectral_probe.results import FixedPointResult, result_from_dict
from spectral_probe.verdict import VERDICTS

#: Extra keys on a result line (docs/SPEC.md section 6 allows more fields): how many fixed points the checkpoint has
#: (so a checkpoint cut between two of its lines is probed again) and the options fingerprint.
FIXED_POINTS_KEY = "fixed_points"
OPTIONS_KEY = "options_sha256"
#: Marks an error row that ``--resume`` probes again (a worker that died, not a bad file).
RETRY_KEY = "retry"
#: The checkpoint's absolute path on a line (``checkpoint`` is as the user wrote it, relative to where the
#: audit ran): a ``--resume`` from another working directory finds the line by it.
ABSOLUTE_KEY = "checkpoint_abspath"
#: The key that marks a shard's header line (``audit --shard``), read by ``merge``.
HEADER_KEY = "spectral_probe_audit"

#: Bounds on what one line may hold (far above anything the probe writes).
MAX_FIXED_POINTS = 1 << 20
MAX_INT = 1 << 63
MAX_TEXT = 1 << 16
MAX_PATH = 1 << 12
MAX_ENTRIES = 256

_SHA256 = re.compile(r"[0-9a-f]{64}")
_FINGERPRINT = re.compile(r"[0-9a-f]{1,64}")
_RESULT_FIELDS = {f.name: f.type for f in dataclasses.fields(FixedPointResult)}


def parse_json_line(line: bytes) -> dict[str, Any] | None:
    """A JSON object, or None for anything else (bad JSON, huge integers, deep nesting, not UTF-8)."""
    try:
        entry = json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, int digit limits
        return None
    return entry if isinstance(entry, dict) else None


def is_text(value: Any, limit: int = MAX_TEXT) -> bool:
    """A string of at most ``limit`` characters without NUL (a journal field that is safe to keep)."""
    return isinstance(value, str) and len(value) <= limit and "\x00" not in value


def is_count(value: Any, low: int = 0, high: int = MAX_INT) -> bool:
    """An integer (not a bool, not a float such as ``1e12``) in ``[low, high]``."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) if isinstance(value, float) else abs(value) <= MAX_INT


def _valid_value(kind: str, value: Any) -> bool:
    """Whether ``value`` fits the declared type ``kind`` of a result field (``None`` where allowed)."""
    base, optional = kind, False
    if kind not in _CHECKS and kind.endswith(" | None"):
        base, optional = kind.removesuffix(" | None"), True
    if value is None:
        # NaN and inf are written as null (results.json_safe), so a float field may hold null.
        return optional or base == "float"
    check = _CHECKS.get(base)
    # A field of a type this table does not know: result_from_dict is its only judge.
    return check(value) if check is not None else True


def _valid_mapping(value: Any, valid: Any) -> bool:
    if not isinstance(value, dict) or len(value) > MAX_ENTRIES:
        return False
    return all(is_text(k, 256) and valid(v) for k, v in value.items())


def _valid_common(entry: dict[str, Any]) -> bool:
    """The fields every journal line has: a checkpoint path, its sha256 and the options fingerprint."""
    checkpoint = entry.get("checkpoint")
    if not is_text(checkpoint, MAX_PATH) or not checkpoint:
        return False
    sha = entry.get("sha256")
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        return False
    fingerprint = entry.get(OPTIONS_KEY)
    return fingerprint is None or (isinstance(fingerprint, str) and _FINGERPRINT.fullmatch(fingerprint) is not None)


_CHECKS: dict[str, Any] = {
    "str": is_text,
    "int": lambda v: is_count(v, -MAX_INT, MAX_INT),
    "float": _is_number,
    "bool": lambda v: isinstance(v, bool),
    "tuple[str, ...]": lambda v: isinstance(v, list) and len(v) <= MAX_ENTRIES and all(map(is_text, v)),
    "dict[str, int]": lambda v: _valid_mapping(v, lambda x: is_count(x, -MAX_INT, MAX_INT)),
    "dict[str, float | None]": lambda v: _valid_mapping(v, lambda x: x is None or _is_number(x)),
}


def valid_result_line(entry: dict[str, Any]) -> FixedPointResult | None:
    """The result a line records, or None if any field is missing, mistyped or out of range."""
    if not _valid_common(entry) or entry.get("verdict") not in VERDICTS:
        return None
    batch = entry.get(FIXED_POINTS_KEY)
    if batch is not None and not is_count(batch, 1, MAX_FIXED_POINTS):
        return None
    limit = (batch if batch is not None else MAX_FIXED_POINTS) - 1
    if not is_count(entry.get("index"), 0, limit) or not is_count(entry.get("n"), 1, MAX_INT):
        return None
    if not is_count(entry.get("matvecs"), 0, MAX_INT):
        return None
    if any(not _valid_value(kind, entry[name]) for name, kind in _RESULT_FIELDS.items() if name in entry):
        return None
    try:
        return result_from_dict(entry)
    except (TypeError, ValueError, KeyError, AttributeError):  # a line from another tool or version
        return None


def valid_error_line(entry: dict[str, Any]) -> str | None:
    """The error message a line records, or None if it is no valid error line."""
    if "verdict" in entry or not _valid_common(entry):
        return None
    error = entry.get("error")
    return error if is_text(error) else None


@dataclass
class Recorded:
    """The newest record of one checkpoint in the journal."""

    sha256: str | None
    results: dict[int, FixedPointResult] = dataclasses.field(default_factory=dict)
    fixed_points: int | None = None
    error: str | None = None
    retry: bool = False

    def complete(self) -> bool:
        """An error, or a result for every fixed point ``0 .. fixed_points - 1``.

        Counted, never enumerated: the indices are distinct non-negative integers, so they are
        exactly ``0 .. k - 1`` when there are ``k`` of them and the largest is ``k - 1``.
        """
        if self.error is not None:
            return True
        if not self.results:
            return False
        expected = self.fixed_points if self.fixed_points is not None else max(self.results) + 1
        return len(self.results) == expected and max(self.results) == expected - 1

    def add_result(self, result: FixedPointResult, fixed_points: int | None) -> None:
        """Record one fixed point's result (replacing an older error; a new fixed-point count drops the rest)."""
        if self.error is not None:  # a newer result replaces an older error
            self.error, self.results, self.retry = None, {}, False
        if fixed_points is not None and fixed_points != self.fixed_points:
            # A new count of fixed points (the file was probed afresh): keep only what fits it.
            self.fixed_points = fixed_points
            self.results = {i: r for i, r in self.results.items() if i < fixed_points}
        self.results[result.index] = result

    def add_error(self, error: str, retry: bool = False) -> None:
        """Record that the checkpoint failed: the error replaces any results (``retry``: see RETRY_KEY)."""
        self.error, self.results, self.fixed_points, self.retry = error, {}, None, retry
