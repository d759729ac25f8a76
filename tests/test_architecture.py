"""The package's shape, read from its source with ``ast`` (nothing is imported or run).

* Layers one way (ARCHITECTURE.md): ``cli -> scan/audit -> probe -> {operators, jacobian,
  linalg}``; a component imports only components of a LOWER rank, plus the shared foundation
  (errors, exit codes, options, validation, result records, the verdict vocabulary).
* ``linalg`` imports only torch, the standard library and itself.
* ``report`` imports only the result records (and the verdict names they carry).
* ``checkpoint`` (the only file reader) is used by ``probe`` and ``audit``.
* No import cycle between modules.
* Every public function has a docstring; the solvers' docstrings state their equation.
* the package, ``bench/`` and ``tools/`` keep the size limits (a module 400 lines, a function 80).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "spectral_probe"

#: Shared by every layer: imports nothing above itself (checked below like the rest).
FOUNDATION = {"__init__", "errors", "exitcodes", "config", "validate", "memory", "results", "verdict"}

#: Rank of every other component: an import must go to a strictly lower rank (or within a component).
RANK: dict[str, float] = {
    "__main__": 7,
    "cli": 6,
    "cli_options": 5,
    "cli_console": 5,
    "outputs": 5,
    "monitor": 4.5,  # the training-loop monitor, on the Python API
    "audit": 4,
    "api": 4,  # the Python API: the same level as scan/audit, for programs instead of the shell
    "scan": 3,
    "probe": 2,
    "report": 2,
    "gate": 2,
    "analysis": 1.5,  # transient growth, margins, modes (beyond): on the Jacobian and the solvers
    "fixed_point": 1.5,
    "eigen_gradient": 1.5,
    "jacobian": 1,
    "linearized": 0.75,  # the opt-in Krylov J v of jacobian (torch.func.linearize)
    "operators": 1,
    "checkpoint": 1,
    "callable_module": 1,
    "tolerances": 0.5,  # every threshold of the probe and the verdicts, from the dtype and --tol
    "user_model": 0.5,
    "batching": 0.5,
    "linalg": 0,
}

#: Imports that cross the rules on purpose, each with its reason and owner.
KNOWN_EXCEPTIONS = {
    # The solver defaults live with the solvers (linalg/defaults.py, torch-free) and ProbeOptions
    # takes its --krylov-dim/--max-restarts defaults from them: one home for every default (linalg).
    ("config", "linalg"),
    # The --config YAML file is read by checkpoint, the package's only file reader (hostile).
    ("cli", "checkpoint"),
    # ``spectral_probe.probe(...)`` is callable and forwards to the Python API, by an import inside the
    # call (never at import time, so no cycle): the probe package stays the engine (model).
    ("callable_module", "api"),
}

#: Who may import checkpoint (the file reader).
CHECKPOINT_USERS = {"probe", "audit", "cli"}

#: Standard-library and torch roots linalg may import.
LINALG_EXTERNAL = set(sys.stdlib_module_names) | {"torch"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _top_level(tree: ast.Module) -> Iterator[ast.AST]:
    """The statements run at import time (``if TYPE_CHECKING:`` blocks excluded), not function bodies."""
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield from ast.walk(node)


def _imports(path: Path, *, import_time: bool = False) -> Iterator[str]:
    """Every module ``path`` imports (module level or inside functions; only at import time if
    ``import_time``), relative imports resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in _top_level(tree) if import_time else ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            yield base
            # ``from spectral_probe.x import y`` may import the submodule x.y
            for alias in node.names:
                yield f"{base}.{alias.name}"


def _graph(*, import_time: bool = False) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = _imports(path, import_time=import_time)
        graph[name] = {target for target in targets if target in modules and target != name}
    return graph


def _external(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imports(path) if not name.startswith("spectral_probe")}


def test_every_component_has_a_place() -> None:
    components = {_component(_module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert components <= FOUNDATION | set(RANK), sorted(components - FOUNDATION - set(RANK))


def test_layers_are_one_way() -> None:
    wrong = []
    for module, targets in _graph().items():
        source = _component(module)
        for target in targets:
            dest = _component(target)
            if dest == source or dest in FOUNDATION and source not in FOUNDATION or (source, dest) in KNOWN_EXCEPTIONS:
                continue
            # the foundation imports only itself; the rest only lower ranks
            ok = dest in FOUNDATION if source in FOUNDATION else RANK[dest] < RANK[source]
            if not ok:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def test_linalg_imports_only_torch_and_itself() -> None:
    wrong = {}
    for path in (PACKAGE / "linalg").rglob("*.py"):
        outside = _external(path) - LINALG_EXTERNAL
        inside = {
            t for t in _imports(path) if t.startswith("spectral_probe") and not t.startswith("spectral_probe.linalg")
        }
        if outside or inside:
            wrong[path.name] = sorted(outside | inside)
    assert not wrong, wrong


def test_report_imports_only_result_records() -> None:
    for module, targets in _graph().items():
        if _component(module) == "report":
            others = {_component(t) for t in targets} - {"report", "results", "verdict"}
            assert not others, f"{module} imports {sorted(others)}"


def test_checkpoint_is_used_by_probe_and_audit() -> None:
    users = {_component(m) for m, targets in _graph().items() if any(_component(t) == "checkpoint" for t in targets)}
    assert users - {"checkpoint"} <= CHECKPOINT_USERS, sorted(users)


def test_no_import_cycle() -> None:
    graph = _graph(import_time=True)  # an import inside a function runs later: it cannot deadlock imports
    # A package imports its own submodules from __init__ and they import siblings, never the package.
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):  # a package's __init__ loading its own submodule
                continue
            if state.get(nxt) == 1:
                cycle.extend([*path[path.index(nxt) :], nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, [*path, nxt]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and visit(start, [start]):
            break
    assert not cycle, " -> ".join(cycle)


def _public_functions() -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = _module_name(path)
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
                yield f"{module}.{node.name}", node
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                        yield f"{module}.{node.name}.{item.name}", item


def _is_overload(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(
        isinstance(d, (ast.Name, ast.Attribute)) and ast.unparse(d).endswith("overload") for d in node.decorator_list
    )


def test_every_public_function_has_a_docstring() -> None:
    missing = [
        name
        for name, node in _public_functions()
        if not _is_overload(node) and not (ast.get_docstring(node) or "").strip()
    ]
    assert not missing, "public functions without a docstring:\n" + "\n".join(missing)


#: The equation each solver's docstring must state (the symbols of docs/SPEC.md; see each module for the derivation).
SOLVER_MATH = {
    "spectral_probe.linalg.symmetric.lanczos": ["A x = lambda x", "A V_j = V_j T_j"],
    "spectral_probe.linalg.arnoldi.krylov_schur": ["A V_m = V_m H_m + v_{m+1} h^T"],
    "spectral_probe.linalg.linear.gmres": ["A x = b", "argmin ||beta e_1 - Hbar_k y||"],
    "spectral_probe.linalg.subspace.block_rayleigh_ritz": ["H = X^T M X", "M u_i - mu_i u_i"],
    "spectral_probe.linalg.krylov.orthogonalize": ["w - V (V^T w)", "||w'|| < eta ||w||"],
    "spectral_probe.linalg.dense.dense_spectrum": ["lambda_max", "M = I + eps J_F"],
    "spectral_probe.linalg.result.default_tol": ["eps(dtype) ** (2/3)"],
}


@pytest.mark.parametrize("name", sorted(SOLVER_MATH))
def test_solver_docstrings_state_their_equation(name: str) -> None:
    docs = {qualified: ast.get_docstring(node) or "" for qualified, node in _public_functions()}
    assert name in docs, f"{name} is gone: update SOLVER_MATH"
    flat = " ".join(docs[name].replace("``", "").split())
    for equation in SOLVER_MATH[name]:
        assert equation in flat, f"{name}: docstring does not state {equation!r}"


#: The size limits of ARCHITECTURE.md, for the package and the code beside it (the benchmark, the tools).
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
LIMITED = ("spectral_probe", "bench", "tools")


@pytest.mark.parametrize("folder", LIMITED)
def test_modules_and_functions_stay_short(folder: str) -> None:
    too_long = []
    for path in sorted((PACKAGE.parent / folder).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(PACKAGE.parent).as_posix()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}:{node.name}: {length} lines")
    assert not too_long, "over the limits (a module 400 lines, a function 80):\n" + "\n".join(too_long)
