"""Fixtures of the application tests: a demo PKI made once per module."""

from __future__ import annotations

from pathlib import Path

import pytest

from sep2gw.cli import main


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site folder with ``pki/`` from ``sep2gw certs init`` (CA, server and device)."""
    site = tmp_path_factory.mktemp("site")
    assert main(["certs", "init", str(site / "pki")]) == 0
    return site
