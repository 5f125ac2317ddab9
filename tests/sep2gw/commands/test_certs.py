"""``sep2gw certs init``."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from sep2gw.cli import main
from transport.pki import load_pem_chain, load_private_key, profile_violations
from transport.tls import TlsMaterial, client_context


def _identity(output: str) -> tuple[str, int]:
    lfdi = re.search(r"LFDI:\s+([0-9A-F]{40})", output)
    sfdi = re.search(r"SFDI:\s+(\d+)", output)
    assert lfdi and sfdi, output
    return lfdi.group(1), int(sfdi.group(1))


def test_certs_init_writes_a_complete_csip_pki(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0
    lfdi, sfdi = _identity(capsys.readouterr().out)
    pki = tmp_path / "pki"
    device_chain = load_pem_chain((pki / "device.pem").read_bytes())
    assert len(device_chain) == 3  # device, MICA, MCA
    der = device_chain[0].public_bytes(Encoding.DER)
    assert lfdi == hashlib.sha256(der).hexdigest()[:40].upper()
    assert sfdi // 10 == int(lfdi[:9], 16)
    for cert in [*device_chain, *load_pem_chain((pki / "server.pem").read_bytes())]:
        assert profile_violations(cert) == []
    assert (pki / "device.key").stat().st_mode & 0o077 == 0  # keys are private to the owner
    # The written files are directly usable as TLS material.
    ctx = client_context(
        TlsMaterial(str(pki / "device.pem"), str(pki / "device.key"), str(pki / "ca.pem"))
    )
    assert ctx.verify_mode.name == "CERT_REQUIRED"


def test_certs_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", str(tmp_path)]) == 0
    before = (tmp_path / "device.pem").read_bytes()
    assert main(["certs", "init", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "device.pem").read_bytes() == before
    assert main(["certs", "init", str(tmp_path), "--force"]) == 0
    assert (tmp_path / "device.pem").read_bytes() != before


def test_certs_init_encrypts_keys_with_password_from_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEP2GW_TEST_KEYPASS", "hunter2")
    assert main(["certs", "init", str(tmp_path), "--key-password-env", "SEP2GW_TEST_KEYPASS"]) == 0
    key_pem = (tmp_path / "device.key").read_bytes()
    assert b"ENCRYPTED" in key_pem
    load_private_key(key_pem, b"hunter2")
