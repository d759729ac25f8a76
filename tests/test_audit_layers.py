"""The audit package and the report layer keep their layers: report imports only result records.

Static checks over the source (the import statements, lazy ones included), so they fail the moment
an import crosses a layer, whichever code path would have reached it.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "spectral_probe"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def imported_modules(path: Path) -> set[str]:
    """Every ``spectral_probe`` module that ``path`` imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("spectral_probe")}


def test_the_report_layer_imports_only_result_records_and_itself() -> None:
    allowed = ("spectral_probe.results", "spectral_probe.verdict", "spectral_probe.report")
    for path in sorted((PACKAGE / "report").glob("*.py")):
        bad = {m for m in imported_modules(path) if not m.startswith(allowed)}
        assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_table_and_the_trajectory_view_do_not_import_each_other() -> None:
    assert "spectral_probe.report.table" not in imported_modules(PACKAGE / "report" / "trajectory.py")


def test_the_audit_package_never_imports_the_cli() -> None:
    for path in sorted((PACKAGE / "audit").glob("*.py")):
        assert "spectral_probe.cli" not in imported_modules(path), path.name


def test_the_jacobian_raises_no_cli_usage_error() -> None:
    source = (PACKAGE / "jacobian.py").read_text(encoding="utf-8")
    assert "UsageError" not in source


def test_audit_modules_and_functions_stay_short() -> None:
    for path in sorted((PACKAGE / "audit").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert len(text.splitlines()) <= MAX_MODULE_LINES, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                assert length <= MAX_FUNCTION_LINES, f"{path.name}:{node.name} has {length} lines"
