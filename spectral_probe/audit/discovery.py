"""Which checkpoints an audit probes, in which order, and which of them a shard takes.

* discovery below a folder with the default patterns or ``--glob``;
* natural order of the path relative to the folder (``step_900`` before ``step_1000``), or training
  step order where every probed checkpoint carries its metadata ``spectral_probe.step``;
* ``--shard K/N``: a stable partition by file (a hash of the path relative to the folder), so that N
  array tasks (SLURM, a Kubernetes indexed Job, a CI matrix) each take their part and a file keeps its
  shard when others are added or removed.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from spectral_probe.audit.outcome import Outcome
from spectral_probe.errors import SpectralProbeError, UsageError
from spectral_probe.validate import path_stat

#: What ``audit DIR`` looks for when ``--glob`` is not given (at any depth below DIR).
DEFAULT_PATTERNS = ("*.safetensors", "*.pt", "*.pth")
#: The most shards an audit can be cut into (a bound on user input, far above any scheduler's array).
MAX_SHARDS = 1_000_000

_DIGITS = re.compile(r"(\d+)")
# ASCII digits only: \d would also take a fullwidth or an Arabic-Indic digit ("\uff11/4" read as 1/4).
_SHARD = re.compile(r"([0-9]{1,7})/([0-9]{1,7})")


def natural_key(text: str) -> tuple[tuple[Any, ...], str]:
    """Sort key that compares digit runs as numbers: ``step_900`` < ``step_1000``.

    ``re.split`` with a capturing group alternates text and digits (text first), so two keys compare
    str with str and int with int at every position. The raw text breaks ties (``007`` vs ``7``).
    """
    parts = _DIGITS.split(text)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), text


def find_checkpoints(directory: str | os.PathLike[str], pattern: str | None = None) -> list[str]:
    """The checkpoint paths below ``directory``, in natural order of their path relative to it.

    ``pattern`` without a ``/`` matches file names at any depth (like ``rglob``); with a ``/`` it is
    a glob relative to ``directory`` (``runs/*/last.pt``, ``**/ema_*.safetensors``). The default is
    every ``*.safetensors``, ``*.pt`` and ``*.pth`` at any depth, in any case (``.PT``). No match is a
    usage error: an empty audit must never pass a CI gate.
    """
    root = Path(directory)
    info = path_stat(directory)
    if info is None:
        raise UsageError(f"{directory}: no such directory")
    if not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{directory}: not a directory (use `spectral-probe scan` for one checkpoint)")
    patterns = (pattern,) if pattern else DEFAULT_PATTERNS
    if pattern is None:  # any case of the suffixes, as scan reads them: a STEP_1.PT is no less a checkpoint
        suffixes = {pat.removeprefix("*") for pat in DEFAULT_PATTERNS}
        found = {p for p in root.rglob("*") if p.suffix.lower() in suffixes and _is_file(p)}
    else:
        found = {p for p in (root.glob(pattern) if "/" in pattern else root.rglob(pattern)) if _is_file(p)}
    if not found:
        raise UsageError(f"{directory}: no checkpoint matches {' or '.join(patterns)} (an empty audit never passes)")
    ordered = sorted(found, key=lambda p: natural_key(p.relative_to(root).as_posix()))
    return [str(p) for p in ordered]


def _is_file(path: Path) -> bool:
    """Anything but a folder: a FIFO, a broken symlink or a path that cannot be looked at (a symlink
    loop, a name too long) is a checkpoint that cannot be read, and its error row says why (skipped,
    it would drop out of the audit unnoticed)."""
    try:
        info = path_stat(path)
    except SpectralProbeError:
        return True
    return info is None or not stat.S_ISDIR(info.st_mode)


def relative_name(path: str, directory: str | os.PathLike[str]) -> str:
    """``path`` relative to the audited folder, ``/``-separated (the same on every machine and cwd)."""
    try:
        return PurePath(path).relative_to(PurePath(directory)).as_posix()
    except ValueError:
        return PurePath(path).as_posix()


def ordered_outcomes(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """Natural order, or training-step order when every probed checkpoint carries a step.

    The sort is stable, so checkpoints with equal steps keep their natural order. Errors carry no
    step and do not prevent step order.
    """
    probed = [o for o in outcomes if o.results]
    if probed and all(o.results[0].step is not None for o in probed):
        return sorted(outcomes, key=lambda o: o.results[0].step if o.results else math.inf)
    return list(outcomes)


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (``--shard K/N``, K counted from 0 like array task ids)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, relative: str) -> bool:
        """Whether the file at ``relative`` (below the folder) is in this shard.

        The shard of a file is ``int(sha256(relative)[:16 hex]) mod N``: uniform over files, the same
        on every machine and Python (unlike ``hash()``), and independent of the other files.
        """
        digest = hashlib.sha256(relative.encode("utf-8", "surrogatepass")).hexdigest()
        return int(digest[:16], 16) % self.count == self.index


def parse_shard(text: str | None) -> Shard | None:
    """``"K/N"`` with ``0 <= K < N`` into a :class:`Shard`; ``None`` stays ``None``."""
    if text is None:
        return None
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        raise UsageError(f"--shard must be K/N with integers 0 <= K < N (e.g. 0/4), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if not 0 < count <= MAX_SHARDS or not 0 <= index < count:
        raise UsageError(f"--shard {text}: need 0 <= K < N and N <= {MAX_SHARDS} (K counts from 0)")
    return Shard(index, count)


def shard_paths(paths: Sequence[str], directory: str | os.PathLike[str], shard: Shard | None) -> list[str]:
    """The paths that ``shard`` takes (all of them without a shard), order kept."""
    if shard is None:
        return list(paths)
    return [p for p in paths if shard.owns(relative_name(p, directory))]
