"""Shared test configuration. Hypothesis runs derandomised in CI so a red run is reproducible."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from transport.sep2 import codec, decoding

settings.register_profile(
    "ci", derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _fresh_name_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """The decoder's budget of unknown names (``transport.sep2.decoding.MAX_UNKNOWN_NAMES``) is
    process-wide, as the parser's name dictionary is: each test starts with a whole one, so the
    fuzzing tests' invented names cannot make a later test's document refused."""
    monkeypatch.setattr(decoding, "_NAMES", codec.NameBudget(codec.MAX_UNKNOWN_NAMES))
