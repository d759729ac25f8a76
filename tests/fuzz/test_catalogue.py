"""Every hand-made hostile input: its exit code and message, and the fuzz suite's invariants.

Each case runs in the capped sandbox (address space capped, a timeout): exit code in {0, 1, 2, 3},
never 4; no traceback; the file or option named on errors; the error on one line; and no file below the
folder changed that the case does not name as an output.
"""

from __future__ import annotations

import pytest

from tests.fuzz.catalogue import Case, build
from tests.fuzz.sandbox import assert_well_behaved, snapshot


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, {case.name: case for case in build(root)}


def _names() -> list[str]:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        return [case.name for case in build(Path(folder))]


@pytest.mark.parametrize("name", _names())
def test_hostile_input(name: str, catalogue, sandbox) -> None:
    root, cases = catalogue
    case: Case = cases[name]
    before = snapshot(root)
    answer = sandbox.run(*case.args, env=case.env)
    after = snapshot(root)
    assert_well_behaved(answer, case.args, case.named)
    text = answer["stdout"] + answer["stderr"]
    assert answer["exit_code"] == case.code, f"{name}: exit {answer['exit_code']}: {text[-2000:]}"
    for expected in case.message:
        assert expected in text, f"{name}: {expected!r} not in {text[-2000:]!r}"
    if case.code == 2:
        errors = [line for line in answer["stderr"].splitlines() if line.startswith(("error:", "Error:"))]
        assert errors, f"{name}: no error line in {answer['stderr']!r}"
        assert all(len(line) < 1000 for line in errors), f"{name}: an error line echoes too much"
    changed = {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}
    assert changed <= set(case.outputs), f"{name}: files changed that are no outputs: {sorted(changed)}"
