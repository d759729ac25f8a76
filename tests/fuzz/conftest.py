"""One capped sandbox process for the whole fuzz suite (see sandbox.py)."""

from __future__ import annotations

import pytest

from tests.fuzz.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox():
    box = Sandbox()
    yield box
    box.close()
