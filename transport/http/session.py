"""One session interface over HTTP/1.1 (h11) and HTTP/2 (h2), for the client and the server role.
The protocol is chosen by the ALPN result of the TLS handshake (absent ALPN means HTTP/1.1)."""

from __future__ import annotations

from typing import Protocol

from transport.http.h2_session import H2ClientSession, H2ServerSession
from transport.http.h11_session import H11ClientSession, H11ServerSession
from transport.http.messages import Request, Response, SessionEvent

__all__ = ["ClientSession", "ServerSession", "new_client_session", "new_server_session"]


class _Session(Protocol):
    @property
    def alpn(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def receive_data(self, data: bytes) -> list[SessionEvent]:
        """Feed bytes from the peer (``b""`` = the peer closed); returns what they completed."""
        ...

    def data_to_send(self) -> bytes:
        """Bytes the session wants written to the peer, in order."""
        ...

    def close(self) -> None: ...


class ClientSession(_Session, Protocol):
    @property
    def can_send_request(self) -> bool: ...

    def send_request(self, request: Request, *, authority: str) -> int:
        """Queue ``request``; returns its stream id (the key of its ResponseComplete)."""
        ...


class ServerSession(_Session, Protocol):
    def send_response(self, stream_id: int, response: Response) -> list[SessionEvent]:
        """Answer the request on ``stream_id``; returns requests that became readable (pipelined
        HTTP/1.1 requests wait until the previous response is sent)."""
        ...


def new_client_session(alpn: str | None, *, max_response_bytes: int) -> ClientSession:
    if alpn == "h2":
        return H2ClientSession(max_response_bytes=max_response_bytes)
    return H11ClientSession(max_response_bytes=max_response_bytes)


def new_server_session(alpn: str | None, *, max_request_bytes: int) -> ServerSession:
    if alpn == "h2":
        return H2ServerSession(max_request_bytes=max_request_bytes)
    return H11ServerSession(max_request_bytes=max_request_bytes)
