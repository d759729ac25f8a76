"""Hypothesis profiles: the suite is deterministic by default (the same examples on every run, so a red
CI run is reproducible and a green one means the same thing every time); ``HYPOTHESIS_PROFILE=explore``
draws new examples, to look for cases the fixed ones miss."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
