"""The header line of a shard's journal (``audit --shard K/N``): what ``merge`` checks the shard against.

Written at the start of every run of the shard (a rerun with ``--resume`` writes a new one; the
last header of a journal counts), it names the shard, the audited folder and patterns, the options
fingerprint and every checkpoint the shard took. ``merge`` uses it to prove that nothing was lost
(every listed checkpoint has a finished record, every shard ``0 .. N-1`` is there) and nothing
counted twice (one journal per shard, each checkpoint in one shard, the newest record wins).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spectral_probe.audit.discovery import Shard, parse_shard
from spectral_probe.audit.journal import path_key
from spectral_probe.audit.records import HEADER_KEY, MAX_PATH, OPTIONS_KEY, is_count, is_text
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import UsageError

#: The header format; a merge refuses headers of another version.
HEADER_VERSION = 1
#: The most checkpoints one audit may list (a bound on what a header may make ``merge`` hold).
MAX_CHECKPOINTS = 10_000_000


def shard_header(
    shard: Shard,
    directory: str | os.PathLike[str],
    options: ProbeOptions,
    paths: Sequence[str],
    fingerprint: str,
    found: int,
    reproducibility: dict[str, Any],
) -> dict[str, Any]:
    """The header line: the shard, the folder, the fingerprint, the shard's checkpoints as given."""
    return {
        HEADER_KEY: HEADER_VERSION,
        "shard": str(shard),
        "directory": str(directory),
        "patterns": [options.glob] if options.glob else None,
        "checkpoints": list(paths),
        "all_checkpoints": found,
        OPTIONS_KEY: fingerprint,
        "reproducibility": reproducibility,
    }


@dataclass(frozen=True)
class ShardHeader:
    """A validated header line of one shard's journal."""

    journal: str
    shard: Shard
    directory: str
    patterns: tuple[str, ...] | None
    checkpoints: tuple[str, ...]
    all_checkpoints: int
    fingerprint: str
    reproducibility: dict[str, Any]

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        """The path keys of the listed checkpoints (computed once: a journal has many lines)."""
        return frozenset(path_key(p) for p in self.checkpoints)

    def same_audit(self) -> tuple[Any, ...]:
        """What every shard of one audit shares (folder, patterns, N, options, file count)."""
        return self.directory, self.patterns, self.shard.count, self.fingerprint, self.all_checkpoints


def parse_header(entry: dict[str, Any], journal: str) -> ShardHeader:
    """Validate a header line (a :class:`UsageError` naming the journal for anything wrong)."""

    def bad(problem: str) -> UsageError:
        return UsageError(f"{journal}: the shard header {problem}")

    if entry.get(HEADER_KEY) != HEADER_VERSION:
        raise bad(f"is of another version ({entry.get(HEADER_KEY)!r}, this merge reads {HEADER_VERSION})")
    shard_text = entry.get("shard")
    if not is_text(shard_text, 32):
        raise bad("names no shard")
    try:
        shard = parse_shard(shard_text)
    except UsageError as exc:
        raise bad(f"has a bad shard: {exc}") from None
    assert shard is not None
    directory, patterns, paths = entry.get("directory"), entry.get("patterns"), entry.get("checkpoints")
    if not is_text(directory, MAX_PATH):
        raise bad("names no folder")
    listed = isinstance(patterns, list) and len(patterns) <= 16 and all(map(is_text, patterns))
    if patterns is not None and not listed:
        raise bad("has bad patterns")
    if not isinstance(paths, list) or len(paths) > MAX_CHECKPOINTS or not all(is_text(p, MAX_PATH) for p in paths):
        raise bad("has no valid list of checkpoints")
    found, fingerprint = entry.get("all_checkpoints"), entry.get(OPTIONS_KEY)
    if not is_count(found, len(paths), MAX_CHECKPOINTS):
        raise bad("has no valid count of the audit's checkpoints")
    if not is_text(fingerprint, 64):
        raise bad("has no options fingerprint")
    reproducibility = entry.get("reproducibility")
    return ShardHeader(
        journal=journal,
        shard=shard,
        directory=directory,
        patterns=tuple(patterns) if patterns is not None else None,
        checkpoints=tuple(paths),
        all_checkpoints=found,
        fingerprint=fingerprint,
        reproducibility=reproducibility if isinstance(reproducibility, dict) else {},
    )
