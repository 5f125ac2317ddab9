"""Demo PKIs on disk for the secure-link tests (see tests/tls_fixtures.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tls_fixtures import PkiFiles, write_pki


@pytest.fixture(scope="session")
def pki_a(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("pki-a")))


@pytest.fixture(scope="session")
def pki_b(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("pki-b")))
