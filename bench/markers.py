"""Marked regions of the shared ``BENCHMARKS.md``: each writer rewrites only its own region.

Several scripts write to ``BENCHMARKS.md`` (the main benchmark :mod:`bench.run`, the overhead
benchmark :mod:`bench.overhead`, and others). Each owns the text between ``<!-- NAME:start -->`` and
``<!-- NAME:end -->`` and leaves everything outside it byte for byte as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["replace_region", "write_region"]


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_region(text: str, name: str, body: str, *, legacy_prefix: str | None = None) -> str:
    """``text`` with the region ``name`` replaced by ``body`` (appended at the end if absent).

    ``legacy_prefix``: a file written before the markers existed starts with this owner's unmarked
    output (e.g. ``"# Benchmarks"``); that leading part, up to the first other marked region, is taken
    to be the region and replaced, so the migration loses nothing of the other writers.
    """
    start, end = _markers(name)
    region = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text and text.index(start) < text.index(end):
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        return before + region + after
    if legacy_prefix is not None and text.startswith(legacy_prefix):
        other = re.search(r"<!-- [\w.-]+:start -->", text)
        after = text[other.start() :] if other else ""
        return region + "\n\n" + after if after else region + "\n"
    if not text.strip():
        return region + "\n"
    return text.rstrip("\n") + "\n\n" + region + "\n"


def write_region(path: Path | str, name: str, body: str, *, legacy_prefix: str | None = None) -> None:
    """Rewrite only the region ``name`` of the file at ``path`` (created if missing)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    path.write_text(replace_region(text, name, body, legacy_prefix=legacy_prefix), encoding="utf-8")
