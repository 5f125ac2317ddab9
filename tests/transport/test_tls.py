"""TLS contexts and handshake-error classification, exercised by in-memory handshakes (no
sockets): CSIP §5.2.2 / 2030.5 §6.11 TLS 1.2 + CCM8 + mutual certificates."""

from __future__ import annotations

import dataclasses
import logging
import ssl
from pathlib import Path

import pytest

from tests.tls_fixtures import PkiFiles, memory_handshake, write_pki
from transport.errors import (
    CipherMismatch,
    ConnectionReset,
    NoClientCertificate,
    TlsVersionMismatch,
    UnknownCA,
)
from transport.pki import certificate_der
from transport.tls import (
    CCM8,
    CCM8_SUITE_ID,
    TlsConfigError,
    _offers_ccm8,
    ccm8_cipher_string,
    classify_tls_error,
    client_context,
    client_hello_cipher_suites,
    peer_certificates,
    server_context,
)

RENEGOTIATION_SCSV = 0x00FF
GCM = "ECDHE-ECDSA-AES128-GCM-SHA256"


def _hello(ctx: ssl.SSLContext) -> bytes:
    out = ssl.MemoryBIO()
    obj = ctx.wrap_bio(ssl.MemoryBIO(), out, server_side=False)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_seclevel_zero_is_appended_only_when_this_openssl_needs_it() -> None:
    needs_it = not _offers_ccm8(CCM8)
    assert ccm8_cipher_string().endswith("@SECLEVEL=0") == needs_it


def test_client_offers_only_ccm8_on_tls12(pki_a: PkiFiles) -> None:
    ctx = client_context(pki_a.device)
    hello = _hello(ctx)
    suites = set(client_hello_cipher_suites(hello))
    assert CCM8_SUITE_ID in suites
    assert suites <= {CCM8_SUITE_ID, RENEGOTIATION_SCSV}
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.check_hostname is False


def test_extra_ciphers_only_by_configuration_and_logged(
    pki_a: PkiFiles, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="transport.tls"):
        ctx = client_context(pki_a.device, extra_ciphers=[GCM])
    assert any("extra cipher suites" in r.getMessage() for r in caplog.records)
    suites = client_hello_cipher_suites(_hello(ctx))
    assert suites[0] == CCM8_SUITE_ID and 0xC02B in suites  # CCM8 first, then the extra GCM


def test_server_requires_client_certificate(pki_a: PkiFiles) -> None:
    ctx = server_context(pki_a.server)
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.maximum_version == ssl.TLSVersion.TLSv1_2


def test_mutual_handshake_negotiates_ccm8_tls12_and_alpn_h2(pki_a: PkiFiles) -> None:
    pair = memory_handshake(client_context(pki_a.device), server_context(pki_a.server))
    assert pair.client_error is None and pair.server_error is None
    assert pair.client.version() == "TLSv1.2"
    assert pair.client.cipher()[0] == CCM8  # type: ignore[index]
    assert pair.client.selected_alpn_protocol() == "h2"
    assert pair.server.getpeercert(binary_form=True) == certificate_der(
        pki_a.pki.device.certificate
    )


def test_alpn_falls_back_to_http11_when_server_offers_only_it(pki_a: PkiFiles) -> None:
    pair = memory_handshake(
        client_context(pki_a.device), server_context(pki_a.server, alpn=("http/1.1",))
    )
    assert pair.client.selected_alpn_protocol() == "http/1.1"


def test_peer_chain_is_read_from_the_server_flight(pki_a: PkiFiles) -> None:
    pair = memory_handshake(client_context(pki_a.device), server_context(pki_a.server))
    assert peer_certificates(pair.to_client) == [
        certificate_der(c) for c in pki_a.pki.server_chain()
    ]
    assert peer_certificates(pair.to_server[:10]) == []


def test_session_resumption_is_accepted_by_the_server(pki_a: PkiFiles) -> None:
    client_ctx, server_ctx = client_context(pki_a.device), server_context(pki_a.server)
    first = memory_handshake(client_ctx, server_ctx)
    second = memory_handshake(client_ctx, server_ctx, session=first.client.session)
    assert second.client_error is None and second.client.session_reused
    assert peer_certificates(second.to_client) == []  # no Certificate message when resumed


def _classified(pair_error: ssl.SSLError | None, role: str, to_me: bytes) -> object:
    assert pair_error is not None
    return classify_tls_error(
        pair_error,
        role=role,  # type: ignore[arg-type]
        peer_hello_seen=to_me[:1] == b"\x16",
    )


def test_server_from_another_ca_is_unknown_ca(pki_a: PkiFiles, pki_b: PkiFiles) -> None:
    pair = memory_handshake(client_context(pki_a.device), server_context(pki_b.server))
    error = _classified(pair.client_error, "client", pair.to_client)
    assert isinstance(error, UnknownCA) and not error.by_peer
    assert "server's certificate chain" in str(error)


def test_device_from_another_ca_is_unknown_ca_on_both_sides(
    pki_a: PkiFiles, pki_b: PkiFiles
) -> None:
    foreign = dataclasses.replace(pki_b.device, ca=pki_a.ca)  # trusts the server, not trusted
    pair = memory_handshake(client_context(foreign), server_context(pki_a.server))
    server_error = _classified(pair.server_error, "server", pair.to_server)
    assert isinstance(server_error, UnknownCA) and not server_error.by_peer
    client_error = _classified(pair.client_error, "client", pair.to_client)
    assert isinstance(client_error, UnknownCA) and client_error.by_peer


def test_missing_client_certificate_is_named(pki_a: PkiFiles) -> None:
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(pki_a.ca)
    bare.set_ciphers(ccm8_cipher_string())
    pair = memory_handshake(bare, server_context(pki_a.server))
    assert isinstance(_classified(pair.server_error, "server", pair.to_server), NoClientCertificate)
    assert isinstance(_classified(pair.client_error, "client", pair.to_client), NoClientCertificate)


def test_no_shared_cipher_is_a_cipher_mismatch(pki_a: PkiFiles) -> None:
    gcm_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    gcm_server.maximum_version = ssl.TLSVersion.TLSv1_2
    gcm_server.set_ciphers(GCM)
    gcm_server.load_cert_chain(pki_a.server.chain, pki_a.server.key)
    pair = memory_handshake(client_context(pki_a.device), gcm_server)
    assert isinstance(_classified(pair.client_error, "client", pair.to_client), CipherMismatch)
    assert isinstance(_classified(pair.server_error, "server", pair.to_server), CipherMismatch)


def test_tls13_only_server_is_a_version_mismatch(pki_a: PkiFiles) -> None:
    tls13 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    tls13.load_cert_chain(pki_a.server.chain, pki_a.server.key)
    pair = memory_handshake(client_context(pki_a.device), tls13)
    error = _classified(pair.client_error, "client", pair.to_client)
    assert isinstance(error, TlsVersionMismatch) and "TLS 1.2" in str(error)


def test_missing_files_and_wrong_key_password_are_config_errors(
    pki_a: PkiFiles, tmp_path: Path
) -> None:
    with pytest.raises(TlsConfigError, match="CA file"):
        client_context(dataclasses.replace(pki_a.device, ca=str(tmp_path / "nope.pem")))
    locked = write_pki(tmp_path / "locked", key_password=b"right")
    with pytest.raises(TlsConfigError, match="key"):
        client_context(dataclasses.replace(locked.device, key_password=b"wrong"))
    assert client_context(locked.device).verify_mode == ssl.CERT_REQUIRED


def test_eof_during_handshake_is_a_reset_with_a_hint_after_the_server_hello() -> None:
    eof = ssl.SSLEOFError(8, "EOF occurred in violation of protocol")
    early = classify_tls_error(eof, role="client", peer_hello_seen=False)
    late = classify_tls_error(eof, role="client", peer_hello_seen=True)
    assert isinstance(early, ConnectionReset) and isinstance(late, ConnectionReset)
    assert "certificate" not in str(early)
    assert "does not accept our certificate chain" in str(late)
    assert late.retryable
