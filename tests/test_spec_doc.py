"""The contract lives in docs/SPEC.md, every citation points at it, and section 8 matches the code."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

from spectral_probe.config import OPTION_NAMES
from spectral_probe.results import FixedPointResult
from spectral_probe.validate import OPTION_SPECS

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "docs" / "SPEC.md").read_text()
SECTION_6_FIELDS = set(re.findall(r'"(\w+)": ', SPEC.split("## 6. The JSON report")[1].split("## 7.")[0]))
SECTION_5 = SPEC.split("## 5. Command line")[1].split("## 6.")[0]


def _marked(name: str) -> str:
    return SPEC.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]


def test_every_citation_points_at_docs_spec() -> None:
    """A bare "SPEC section 3" or "SPEC.md 3" would send a reader to a file that ships nowhere."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    bare = re.compile(r"(?<![/\w`])SPEC(?:\.md)?(?!\w)")
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", SPEC, flags=re.M)}
    offenders, cited = [], set()
    for name in files:
        path = ROOT / name
        if (
            name in ("docs/SPEC.md", "tests/test_spec_doc.py")
            or path.suffix not in (".py", ".md", ".toml", ".yaml", ".yml")
            or not path.is_file()
        ):
            continue
        text = path.read_text(errors="replace")
        offenders += [f"{name}: {m.group(0)!r}" for m in bare.finditer(text)]
        cited |= {int(n) for n in re.findall(r"docs/SPEC\.md sections? (\d+)", text)}
    assert not offenders, f"cite the contract as docs/SPEC.md section N: {offenders[:10]}"
    assert cited and cited <= sections, f"cited sections {sorted(cited - sections)} do not exist"


def test_every_reported_field_is_in_the_contract() -> None:
    """A new JSON field is a change of contract: add it to docs/SPEC.md section 8.2."""
    extra = set(re.findall(r"`(\w+)`", _marked("spec-fields")))
    fields = {f.name for f in dataclasses.fields(FixedPointResult)}
    assert fields <= SECTION_6_FIELDS | extra, f"undocumented: {sorted(fields - SECTION_6_FIELDS - extra)}"
    assert not extra & SECTION_6_FIELDS and extra <= fields, sorted(extra - fields)


def test_every_option_is_in_the_contract() -> None:
    """A new option (flag or config key) is a change of contract: add it to docs/SPEC.md section 8.1."""
    documented = {name.replace("-", "_") for name in re.findall(r"--([a-z][a-z-]*)", SECTION_5)}
    documented |= {name.replace("-", "_") for name in re.findall(r"`-{0,2}([a-z][a-z_-]*)", _marked("spec-options"))}
    documented |= {"operator_options", "fixed_point", "glob", "jobs", "jsonl", "resume", "warm_start"}
    assert documented >= OPTION_NAMES, f"undocumented options: {sorted(OPTION_NAMES - documented)}"


def test_documented_ranges_match_the_validation_layer() -> None:
    ranges = " ".join(_marked("spec-ranges").split())
    for name, spec in OPTION_SPECS.items():
        if spec.kind not in ("int", "float") or name.startswith("max_"):
            continue
        assert f"`{name}`" in ranges, name
        if spec.kind == "int":
            high = "2^63 - 1" if spec.high == 2**63 - 1 else str(int(spec.high))
            assert re.search(rf"`{name}`[^;]*\[{int(spec.low)}, {re.escape(high)}\]", ranges), name
