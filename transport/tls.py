"""TLS contexts for the 2030.5 link, OpenSSL capability detection, and handshake-error
classification. No sockets: the contexts are driven by ``actors`` over anyio byte streams.

IEEE 2030.5 §6.11 / CSIP §5.2.2: TLS 1.2 only; cipher suite TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 on
P-256; the client always presents its certificate; the peer's chain is verified against the
configured root (SERCA) with host-name checking off, because device and server certificates carry
no host names to check. Verification is never switched off.
"""

from __future__ import annotations

import functools
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from transport.errors import (
    CertificateRejected,
    CipherMismatch,
    ConnectionReset,
    LinkError,
    NoClientCertificate,
    ProtocolViolation,
    TlsHandshakeFailed,
    TlsVersionMismatch,
    UnknownCA,
)

__all__ = [
    "CCM8",
    "CCM8_SUITE_ID",
    "DEFAULT_ALPN",
    "TlsConfigError",
    "TlsMaterial",
    "TlsUnsupported",
    "ccm8_cipher_string",
    "classify_tls_error",
    "client_context",
    "client_hello_cipher_suites",
    "peer_certificates",
    "server_context",
]

logger = logging.getLogger(__name__)

CCM8 = "ECDHE-ECDSA-AES128-CCM8"
CCM8_SUITE_ID = 0xC0AE  # RFC 7251 TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8
DEFAULT_ALPN: tuple[str, ...] = ("h2", "http/1.1")

# X509 verify results that mean "this chain does not lead to a root we trust".
_UNKNOWN_ISSUER_CODES = frozenset({2, 18, 19, 20, 21})
_VERSION_REASONS = frozenset({
    "UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION", "WRONG_SSL_VERSION",
    "NO_PROTOCOLS_AVAILABLE", "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
})
_CIPHER_REASONS = frozenset({
    "NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_CIPHER_MATCH", "WRONG_CIPHER_RETURNED",
    "NO_SUITABLE_SIGNATURE_ALGORITHM", "NO_SHARED_SIGNATURE_ALGORITHMS",
})
_CERT_ALERTS = frozenset({
    "SSLV3_ALERT_BAD_CERTIFICATE", "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_REVOKED", "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN", "TLSV1_ALERT_DECRYPT_ERROR",
})


class TlsConfigError(ValueError):
    """The TLS material or options cannot build a context; names the file or option."""


class TlsUnsupported(RuntimeError):
    """This OpenSSL build cannot offer the 2030.5 cipher suite at any security level."""


def client_hello_cipher_suites(record: bytes) -> list[int]:
    """The cipher-suite IDs offered in a TLS ClientHello record (RFC 5246 §7.4.1.2)."""
    if len(record) < 5 or record[0] != 0x16:
        raise ValueError("not a TLS handshake record")
    body = record[5:]
    if not body or body[0] != 0x01:
        raise ValueError("not a ClientHello")
    pos = 4 + 2 + 32  # handshake header, client_version, random
    pos += 1 + body[pos]  # session_id
    length = int.from_bytes(body[pos : pos + 2], "big")
    suites = body[pos + 2 : pos + 2 + length]
    return [int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2)]


def _offers_ccm8(cipher_string: str) -> bool:
    # Build a real ClientHello in memory and look for the suite in it: this is what OpenSSL would
    # put on the wire, after its security-level filtering, which `get_ciphers()` does not show.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # never used for a connection: the hello is only inspected
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.set_ciphers(cipher_string)
    except ssl.SSLError:
        return False
    outgoing = ssl.MemoryBIO()
    sslobj = ctx.wrap_bio(ssl.MemoryBIO(), outgoing, server_side=False)
    try:
        sslobj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    except ssl.SSLError:
        return False
    return CCM8_SUITE_ID in client_hello_cipher_suites(outgoing.read())


@functools.cache
def ccm8_cipher_string() -> str:
    """The cipher string that makes this OpenSSL offer CCM8: plain ``ECDHE-ECDSA-AES128-CCM8``, or
    with ``@SECLEVEL=0`` on builds (OpenSSL >= 3.2) that moved the 64-bit-tag CCM8 suites below the
    default security level. Detected once per process by inspecting a ClientHello."""
    for candidate in (CCM8, f"{CCM8}@SECLEVEL=0"):
        if _offers_ccm8(candidate):
            return candidate
    raise TlsUnsupported(f"{ssl.OPENSSL_VERSION} does not offer {CCM8} at any security level")


@dataclass(frozen=True, slots=True)
class TlsMaterial:
    """Paths to the PEM files of one TLS identity. ``chain`` holds the leaf first, then the
    intermediates the peer needs (MICA, MCA); ``ca`` holds the root(s) the peer must chain to."""

    chain: str
    key: str
    ca: str
    key_password: bytes | None = None


def _cipher_string(extra_ciphers: Sequence[str]) -> str:
    base = ccm8_cipher_string()
    if not extra_ciphers:
        return base
    logger.warning(
        "TLS: extra cipher suites enabled by configuration (%s); 2030.5 permits only %s",
        ", ".join(extra_ciphers), CCM8,
    )
    name, _, level = base.partition("@")
    joined = ":".join([name, *extra_ciphers])
    return f"{joined}@{level}" if level else joined


def _no_password() -> bytes:
    """The password callback when none is configured: an encrypted key is refused, never prompted
    for (OpenSSL's default callback reads the terminal and blocks a service forever)."""
    raise TlsConfigError(
        "the private key is encrypted and no password is configured (sep2gw never prompts: set "
        "tls.key_password_env, or --key-password-env, to the variable that holds it)"
    )


def _configure(
    ctx: ssl.SSLContext,
    material: TlsMaterial,
    *,
    alpn: Sequence[str],
    extra_ciphers: Sequence[str],
    tls13_for_tests: bool = False,
) -> ssl.SSLContext:
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if tls13_for_tests else ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_COMPRESSION
    try:
        ctx.set_ciphers(_cipher_string(extra_ciphers))
    except ssl.SSLError as exc:
        raise TlsConfigError(
            f"cipher suites {list(extra_ciphers)!r} not understood: {exc}"
        ) from exc
    ctx.set_ecdh_curve("prime256v1")  # CSIP: ECDHE on P-256
    ctx.verify_mode = ssl.CERT_REQUIRED
    try:
        ctx.load_verify_locations(cafile=material.ca)
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(f"CA file {material.ca}: {exc}") from exc
    try:
        ctx.load_cert_chain(
            material.chain,
            material.key,
            # Never OpenSSL's terminal prompt: a gateway has no one at the keyboard.
            password=material.key_password if material.key_password is not None else _no_password,
        )
    except TlsConfigError:
        raise
    except ssl.SSLError as exc:
        raise TlsConfigError(
            f"certificate {material.chain} / key {material.key}: {exc.reason or exc} "
            "(wrong key password, or key does not match the certificate?)"
        ) from exc
    except OSError as exc:
        raise TlsConfigError(f"certificate {material.chain} / key {material.key}: {exc}") from exc
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def client_context(
    material: TlsMaterial,
    *,
    alpn: Sequence[str] = DEFAULT_ALPN,
    extra_ciphers: Sequence[str] = (),
) -> ssl.SSLContext:
    """The device side: TLS 1.2, CCM8 (plus ``extra_ciphers`` only when configured, with a
    warning), our certificate always presented, the server verified against ``material.ca``
    without a host-name check, ALPN ``h2`` then ``http/1.1`` by default."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # 2030.5 server identity is its chain to the SERCA, not a name
    return _configure(ctx, material, alpn=alpn, extra_ciphers=extra_ciphers)


def server_context(
    material: TlsMaterial,
    *,
    alpn: Sequence[str] = DEFAULT_ALPN,
    extra_ciphers: Sequence[str] = (),
) -> ssl.SSLContext:
    """The utility-server / notification-listener side: the same suite and version, and a client
    certificate chained to ``material.ca`` is mandatory."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return _configure(ctx, material, alpn=alpn, extra_ciphers=extra_ciphers)


def classify_tls_error(
    exc: ssl.SSLError,
    *,
    role: Literal["client", "server"],
    peer_hello_seen: bool,
) -> LinkError:
    """Turn an OpenSSL handshake error into a typed error that says why.

    ``peer_hello_seen``: whether the peer's first handshake flight (ServerHello/ClientHello) had
    arrived before the failure. An OpenSSL server answers both "no shared cipher" and "no client
    certificate" with the same handshake_failure alert; only *when* it arrives tells them apart
    (before our certificate was ever asked for, it can only be the cipher).
    """
    reason = getattr(exc, "reason", None) or ""  # absent on errors not raised by OpenSSL
    peer = "server" if role == "client" else "client"
    if isinstance(exc, ssl.SSLCertVerificationError):
        detail = exc.verify_message or reason
        if exc.verify_code in _UNKNOWN_ISSUER_CODES:
            return UnknownCA(
                f"the {peer}'s certificate chain does not lead to the configured CA ({detail})"
            )
        return CertificateRejected(f"the {peer}'s certificate was rejected: {detail}")
    if isinstance(exc, ssl.SSLEOFError) or reason == "UNEXPECTED_EOF_WHILE_READING":
        if peer_hello_seen and role == "client":
            # Some servers (trio's SSLStream, hence hypercorn) drop the connection without
            # sending their alert; after the hello, the usual cause is our certificate.
            return ConnectionReset(
                "the server closed the connection during the TLS handshake, after its hello and "
                "without an alert (often: it does not accept our certificate chain)", by_peer=True)
        return ConnectionReset(f"the {peer} closed the connection during the TLS handshake",
                               by_peer=True)
    if reason == "TLSV1_ALERT_UNKNOWN_CA":
        return UnknownCA(f"the {peer} does not trust our certificate chain (alert unknown_ca)",
                         by_peer=True)
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return NoClientCertificate("the client presented no certificate; one is mandatory")
    if reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED":
        return NoClientCertificate("the server requires a client certificate", by_peer=True)
    if reason in _CERT_ALERTS:
        return CertificateRejected(f"the {peer} rejected our certificate ({reason})",
                                   by_peer=True)
    if reason in _VERSION_REASONS:
        return TlsVersionMismatch(
            f"no TLS version in common with the {peer} (2030.5 requires TLS 1.2; {reason})",
            by_peer=reason.startswith("TLSV1_ALERT"),
        )
    if reason in _CIPHER_REASONS:
        return CipherMismatch(f"no cipher suite in common with the {peer} ({reason})",
                              by_peer=False)
    if reason == "SSLV3_ALERT_HANDSHAKE_FAILURE":
        if role == "client" and peer_hello_seen:
            return NoClientCertificate(
                "the server refused the handshake after asking for our certificate "
                "(handshake_failure): it received none it would accept", by_peer=True)
        return CipherMismatch(
            f"the {peer} refused the hello (handshake_failure): no cipher suite in common "
            f"(2030.5 requires {CCM8})", by_peer=True)
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "RECORD_LAYER_FAILURE"):
        return ProtocolViolation(f"the {peer} does not speak TLS ({reason})", by_peer=True)
    return TlsHandshakeFailed(f"TLS handshake with the {peer} failed: {reason or exc}",
                              by_peer=True)



def peer_certificates(handshake_bytes: bytes) -> list[bytes]:
    """The DER certificates of the TLS 1.2 Certificate message in the peer's plaintext handshake
    flight (RFC 5246 §7.4.2), leaf first; empty when there is none (a resumed session) or the bytes
    are cut short. Python's ``ssl`` exposes only the leaf, so the probe reads the chain here."""
    payload = bytearray()
    pos = 0
    while pos + 5 <= len(handshake_bytes):
        kind = handshake_bytes[pos]
        length = int.from_bytes(handshake_bytes[pos + 3 : pos + 5], "big")
        if kind != 0x16:  # anything else (ChangeCipherSpec, alert) ends the plaintext flight
            break
        payload += handshake_bytes[pos + 5 : pos + 5 + length]
        pos += 5 + length
    at = 0
    while at + 4 <= len(payload):
        msg_type = payload[at]
        msg_len = int.from_bytes(payload[at + 1 : at + 4], "big")
        body = bytes(payload[at + 4 : at + 4 + msg_len])
        if len(body) < msg_len:
            return []
        if msg_type == 11:  # Certificate
            certs: list[bytes] = []
            inner = 3
            while inner + 3 <= len(body):
                cert_len = int.from_bytes(body[inner : inner + 3], "big")
                certs.append(body[inner + 3 : inner + 3 + cert_len])
                inner += 3 + cert_len
            return certs
        at += 4 + msg_len
    return []
