"""HTTP messages and session events shared by the HTTP/1.1 and HTTP/2 sessions (sans-IO)."""

from __future__ import annotations

from dataclasses import dataclass

from transport.errors import LinkError

__all__ = [
    "SEP_XML",
    "ConnectionClosed",
    "Headers",
    "Request",
    "RequestComplete",
    "Response",
    "ResponseComplete",
    "SessionEvent",
    "StreamFailed",
    "header_value",
]

SEP_XML = "application/sep+xml"  # IEEE 2030.5 §B.2 media type

Headers = tuple[tuple[str, str], ...]
"""Header fields in order, names lowercase (HTTP/2 requires it; HTTP/1.1 names are
case-insensitive, so lowercasing loses nothing)."""


def header_value(headers: Headers, name: str) -> str | None:
    """The first value of ``name`` (case-insensitive), or None."""
    wanted = name.lower()
    for key, value in headers:
        if key == wanted:
            return value
    return None


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Headers = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return header_value(self.headers, name)


@dataclass(frozen=True, slots=True)
class ResponseComplete:
    """Client role: the whole response to ``stream_id`` has arrived."""

    stream_id: int
    response: Response


@dataclass(frozen=True, slots=True)
class RequestComplete:
    """Server role: a whole request has arrived on ``stream_id``; answer with ``send_response``."""

    stream_id: int
    request: Request


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """One exchange failed; on HTTP/2 the connection may carry on, on HTTP/1.1 it never does."""

    stream_id: int
    error: LinkError


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The connection is over (peer EOF, GOAWAY, or a protocol error in ``error``)."""

    error: LinkError | None


SessionEvent = ResponseComplete | RequestComplete | StreamFailed | ConnectionClosed
