from __future__ import annotations

from pathlib import Path

import pytest

from tests.sep2gw.forensics.worlds import logs


@pytest.fixture(scope="session")
def world_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo (supersession, cancel), comms-loss and restart worlds' logs, built once."""
    return logs(tmp_path_factory.mktemp("forensic-worlds"))
