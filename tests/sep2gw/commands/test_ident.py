"""``sep2gw id``: LFDI and SFDI of a certificate file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sep2gw.cli import main


def _identity(output: str) -> tuple[str, int]:
    lfdi = re.search(r"LFDI:\s+([0-9A-F]{40})", output)
    sfdi = re.search(r"SFDI:\s+(\d+)", output)
    assert lfdi and sfdi, output
    return lfdi.group(1), int(sfdi.group(1))


def test_id_prints_the_same_identity_as_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["certs", "init", str(tmp_path)])
    from_init = _identity(capsys.readouterr().out)
    assert main(["id", str(tmp_path / "device.pem")]) == 0
    assert _identity(capsys.readouterr().out) == from_init
    der_file = tmp_path / "device.der"
    der_file.write_bytes(
        x509.load_pem_x509_certificate((tmp_path / "device.pem").read_bytes()).public_bytes(
            Encoding.DER
        )
    )
    assert main(["id", str(der_file)]) == 0
    assert _identity(capsys.readouterr().out) == from_init


def test_id_of_a_non_certificate_fails_with_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    assert main(["id", str(junk)]) == 2
    assert "neither a PEM certificate nor DER" in capsys.readouterr().err
    assert main(["id", str(tmp_path / "missing.pem")]) == 2
