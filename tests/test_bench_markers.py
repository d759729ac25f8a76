"""``bench.markers``: a writer rewrites only its own marked region of the shared BENCHMARKS.md."""

from __future__ import annotations

from pathlib import Path

from bench.markers import replace_region, write_region

OTHER = "<!-- trust:start -->\ntrust's table\n<!-- trust:end -->"


def test_replaces_only_own_region() -> None:
    text = f"# Benchmarks\n\n<!-- bench:start -->\nold\n<!-- bench:end -->\n\n{OTHER}\n"
    out = replace_region(text, "bench", "new")
    assert out == f"# Benchmarks\n\n<!-- bench:start -->\nnew\n<!-- bench:end -->\n\n{OTHER}\n"
    # rewriting again is idempotent, and another region is untouched
    assert replace_region(out, "bench", "new") == out
    assert replace_region(out, "trust", "T").count("new") == 1


def test_appends_missing_region_and_creates_file(tmp_path: Path) -> None:
    path = tmp_path / "BENCHMARKS.md"
    write_region(path, "linalg", "numbers")
    assert path.read_text() == "<!-- linalg:start -->\nnumbers\n<!-- linalg:end -->\n"
    write_region(path, "audit", "more")
    text = path.read_text()
    assert text.index("linalg:end") < text.index("audit:start") and "numbers" in text and "more" in text


def test_legacy_unmarked_output_is_migrated_without_losing_others() -> None:
    legacy = f"# Benchmarks\n\nold generated report\n\n{OTHER}\n"
    out = replace_region(legacy, "bench", "# Benchmarks\n\nnew report", legacy_prefix="# Benchmarks")
    assert "old generated report" not in out and "new report" in out
    assert out.endswith(OTHER + "\n") and out.startswith("<!-- bench:start -->")
    # a file that is not legacy output keeps its text and gets the region appended
    assert replace_region("notes\n", "bench", "x", legacy_prefix="# Benchmarks") == (
        "notes\n\n<!-- bench:start -->\nx\n<!-- bench:end -->\n"
    )
