"""The header line of a shard's journal (``audit --shard K/N``): what ``merge`` checks the shard against.

Written at the start of every run of the shard (a rerun with ``--resume`` writes a new one; the
last header of a journal counts), it names the shard, the audited folder and patterns, the options
fingerprint and every checkpoint the shard took. ``merge`` uses it to prove that nothing was lost
(every listed checkpoint has a finished record, every shard ``0 .. N-1`` is there) and nothing
counted twice (one journal per shard, each checkpoint in one shard, the newest record wins).
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from spectral_probe.audit.discovery import Shard, parse_shard
from spectral_probe.audit.journal import MAX_LINE, path_key
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
    """The header line: the shard, the folder, the fingerprint, the shard's checkpoints as given.

    A :class:`UsageError` where the line would pass the journal's :data:`MAX_LINE` (about 250,000
    checkpoints of 64-character paths in one shard): ``--resume`` and ``merge`` could not read it back,
    so the audit refuses before it starts and names the number of shards that fits.
    """
    header = {
        HEADER_KEY: HEADER_VERSION,
        "shard": str(shard),
        "directory": str(directory),
        "patterns": [options.glob] if options.glob else None,
        "checkpoints": list(paths),
        "all_checkpoints": found,
        OPTIONS_KEY: fingerprint,
        "reproducibility": reproducibility,
    }
    size = len(json.dumps(header, allow_nan=False).encode("utf-8")) + 1
    if size > MAX_LINE:
        enough = shard.count * math.ceil(size / MAX_LINE) + 1
        raise UsageError(
            f"--shard {shard}: the shard's {len(paths)} checkpoints make a journal header of {size / 2**20:.0f} MB, "
            f"more than the {MAX_LINE >> 20} MB line --resume and merge read back; split the audit into more "
            f"shards (--shard K/{enough} or more)"
        )
    return header


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
