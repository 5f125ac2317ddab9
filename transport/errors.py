"""Typed errors of the secure link. Each says *why* in its message and whether a retry can help.

Local vs remote follows the sans-IO convention: ``by_peer`` is True when the peer refused us (an
alert it sent, a reset, bytes that break the protocol) and False when we refused the peer.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BodyTooLarge",
    "CertificateRejected",
    "CipherMismatch",
    "ConnectFailed",
    "ConnectionReset",
    "LinkError",
    "LinkTimeout",
    "LocalProtocolError",
    "NoClientCertificate",
    "ProtocolViolation",
    "TlsError",
    "TlsHandshakeFailed",
    "TlsVersionMismatch",
    "UnknownCA",
]


class LinkError(Exception):
    """Base of every link error. ``retryable``: a fresh attempt (after back-off) may succeed
    without anyone changing configuration."""

    retryable: ClassVar[bool] = False

    def __init__(self, why: str, *, by_peer: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.by_peer = by_peer


class TlsError(LinkError):
    """The TLS handshake failed. Never retryable: certificates or configuration must change."""


class UnknownCA(TlsError):
    """A certificate chain does not lead to the configured root (ours or the peer's)."""


class CertificateRejected(TlsError):
    """A certificate chained correctly but is unacceptable (bad signature, wrong usage, expired)."""


class NoClientCertificate(TlsError):
    """Mutual TLS without a client certificate (the server demands one; 2030.5 always does)."""


class CipherMismatch(TlsError):
    """No cipher suite in common (2030.5 requires TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8)."""


class TlsVersionMismatch(TlsError):
    """No protocol version in common (2030.5 requires TLS 1.2)."""


class TlsHandshakeFailed(TlsError):
    """Any other handshake failure; the OpenSSL reason is in the message."""


class LinkTimeout(LinkError):
    """A connect, handshake or request did not complete within its deadline."""

    retryable = True


class ConnectFailed(LinkError):
    """The TCP connection could not be opened (refused, unreachable, name not resolved)."""

    retryable = True


class ConnectionReset(LinkError):
    """The peer closed or reset the connection before the exchange completed."""

    retryable = True


class ProtocolViolation(LinkError):
    """The peer sent bytes that break HTTP (or TLS framing); the connection is unusable."""


class BodyTooLarge(LinkError):
    """A message body exceeded the configured maximum; it was not read further."""

    def __init__(self, limit: int, *, by_peer: bool = True) -> None:
        super().__init__(f"message body exceeds the {limit}-byte limit", by_peer=by_peer)
        self.limit = limit


class LocalProtocolError(LinkError):
    """We misused a session (e.g. a second request on a busy HTTP/1.1 connection)."""
