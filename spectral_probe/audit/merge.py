"""``merge``: join the journals of ``audit --shard K/N`` into the one Report that a single audit gives.

The checks, each a :class:`UsageError` naming the journal (exit 2), so a gate never passes on part of
a run:

* every journal is a shard's (its last header counts), all of one audit (folder, patterns, N,
  options fingerprint, number of files), and each shard ``0 .. N-1`` appears exactly once;
* every checkpoint that a shard's header lists has a finished record in that journal (a result for
  every fixed point, or an error row): a shard killed mid-way must be rerun with ``--resume`` first;
* no checkpoint is in two shards.

Records are folded as ``--resume`` folds them (the newest record of a checkpoint wins), so a shard
rerun without ``--resume`` after a partial run adds nothing twice either. The order, the gate and
the trajectory are then those of a single audit: natural order of the paths below the folder, or
step order where every checkpoint has a step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from spectral_probe.audit.discovery import natural_key, ordered_outcomes, relative_name
from spectral_probe.audit.journal import Journal, add_entry, path_key, recorded_outcome
from spectral_probe.audit.outcome import Outcome
from spectral_probe.audit.records import HEADER_KEY, OPTIONS_KEY, Recorded, parse_json_line
from spectral_probe.audit.run import DEFAULT_PATTERNS, assemble_report
from spectral_probe.audit.shards import ShardHeader, parse_header
from spectral_probe.config import ProbeOptions
from spectral_probe.errors import UsageError
from spectral_probe.results import Report
from spectral_probe.validate import path_stat

#: How many missing checkpoints an error message names before it says "and N more".
_NAMED = 3


def merge_journals(journals: Sequence[str], options: ProbeOptions) -> Report:
    """One Report (``command="audit"``) from the shards' journals, gated by ``options.gates``."""
    if not journals:
        raise UsageError("merge needs the journal (--jsonl file) of every shard")
    shards = [_read_shard(path) for path in journals]
    headers = [header for header, _ in shards]
    _check_one_audit(headers)
    outcomes: list[Outcome] = []
    for header, records in shards:
        outcomes.extend(_shard_outcomes(header, records))
    first = min(headers, key=lambda h: h.shard.index)
    outcomes.sort(key=lambda o: natural_key(relative_name(o.path, first.directory)))
    reproducibility: dict[str, Any] = dict(first.reproducibility)
    reproducibility.pop("audit", None)
    reproducibility["audit"] = {
        "directory": first.directory,
        "patterns": list(first.patterns) if first.patterns else list(DEFAULT_PATTERNS),
        "checkpoints": len(outcomes),
        "options_sha256": first.fingerprint,
        "shards": first.shard.count,
        "merged": [{"shard": str(h.shard), "journal": h.journal, "checkpoints": len(h.checkpoints)} for h in headers],
    }
    return assemble_report(ordered_outcomes(outcomes), first.directory, options, reproducibility)


def _read_shard(journal: str) -> tuple[ShardHeader, dict[str, Recorded]]:
    """The last header of ``journal`` and its newest complete records, of that header's checkpoints.

    Two passes, because records are folded as ``--resume`` folds them: every line of the last header's
    options fingerprint counts, wherever it is, and no other. A rerun with other numeric options writes
    a header of another fingerprint; the records of the runs before it answer another question.
    """
    source = Journal(journal)
    if path_stat(source.path) is None:
        raise UsageError(f"{journal}: no such journal")
    header: ShardHeader | None = None
    marker = HEADER_KEY.encode()
    for line in source.lines():
        entry = parse_json_line(line) if marker in line else None
        if entry is not None and HEADER_KEY in entry:
            header = parse_header(entry, journal)  # a rerun's header replaces the one before
    if header is None:
        raise UsageError(f"{journal}: no shard header; merge joins the journals of `audit --shard K/N --jsonl`")
    records: dict[str, Recorded] = {}
    for line in source.lines():
        entry = parse_json_line(line)
        if entry is not None and HEADER_KEY not in entry and entry.get(OPTIONS_KEY) == header.fingerprint:
            add_entry(records, entry, header.keys)
    return header, {key: rec for key, rec in records.items() if rec.complete()}


def _check_one_audit(headers: Sequence[ShardHeader]) -> None:
    """All shards of one audit, each exactly once, no checkpoint in two of them."""
    first = headers[0]
    for header in headers[1:]:
        if header.same_audit() != first.same_audit():
            raise UsageError(
                f"{header.journal}: shard {header.shard} is of another audit than {first.journal} "
                "(folder, patterns, number of shards, numeric options or number of files differ)"
            )
    seen: dict[int, str] = {}
    for header in headers:
        if header.shard.index in seen:
            raise UsageError(
                f"{header.journal}: shard {header.shard} is also in {seen[header.shard.index]}; give each shard once"
            )
        seen[header.shard.index] = header.journal
    missing = [f"{k}/{first.shard.count}" for k in range(first.shard.count) if k not in seen]
    if missing:
        raise UsageError(f"shard(s) {', '.join(missing[:_NAMED])} missing: merge needs every shard's journal")
    owners: dict[str, str] = {}
    for header in headers:
        for key in header.keys:
            if key in owners:
                raise UsageError(f"{header.journal}: a checkpoint is also in {owners[key]}; shards must not overlap")
            owners[key] = header.journal
    if len(owners) != first.all_checkpoints:
        raise UsageError(
            f"the shards list {len(owners)} checkpoints, the audit found {first.all_checkpoints}: "
            "a shard ran on another set of files; rerun the shards on the same folder"
        )


def _shard_outcomes(header: ShardHeader, records: dict[str, Recorded]) -> list[Outcome]:
    """An outcome per listed checkpoint; a checkpoint without a finished record is a usage error."""
    missing = [p for p in header.checkpoints if path_key(p) not in records]
    if missing:
        named = ", ".join(missing[:_NAMED]) + (f" and {len(missing) - _NAMED} more" if len(missing) > _NAMED else "")
        raise UsageError(
            f"{header.journal}: shard {header.shard} is unfinished: {len(missing)} of {len(header.checkpoints)} "
            f"checkpoints have no finished record ({named}); rerun that shard with --resume"
        )
    return [recorded_outcome(p, records[path_key(p)]) for p in header.checkpoints]
