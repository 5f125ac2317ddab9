"""HTTP/1.1 sessions over h11, client and server role (sans-IO).

RFC 9112: one exchange at a time per connection; keep-alive unless either side says close. Bytes
in through ``receive_data`` (``b""`` = the peer closed), bytes out through ``data_to_send``.
"""

from __future__ import annotations

import h11

from transport.errors import (
    BodyTooLarge,
    ConnectionReset,
    LinkError,
    LocalProtocolError,
    ProtocolViolation,
)
from transport.http.messages import (
    ConnectionClosed,
    Headers,
    Request,
    RequestComplete,
    Response,
    ResponseComplete,
    SessionEvent,
    StreamFailed,
)

__all__ = ["H11ClientSession", "H11ServerSession"]

_MAX_HEADER_BYTES = 64 * 1024


def _decode_headers(raw: list[tuple[bytes, bytes]]) -> Headers:
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)


def _content_length(headers: Headers) -> int | None:
    for key, value in headers:
        if key == "content-length":
            return int(value)  # h11 has already validated it
    return None


class _H11Base:
    def __init__(self, role: type[h11.CLIENT] | type[h11.SERVER], max_body_bytes: int) -> None:
        self._conn = h11.Connection(role, max_incomplete_event_size=_MAX_HEADER_BYTES)
        self._out = bytearray()
        self._max_body = max_body_bytes
        self._body = bytearray()
        self._closed = False
        self._eof = False

    alpn = "http/1.1"

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    @property
    def closed(self) -> bool:
        return self._closed

    def _send(self, event: h11.Event) -> None:
        try:
            data = self._conn.send(event)
        except h11.LocalProtocolError as exc:
            raise LocalProtocolError(f"HTTP/1.1: {exc}") from exc
        if data:
            self._out += data

    def _remote_error(self, exc: h11.RemoteProtocolError) -> LinkError:
        self._closed = True
        if self._eof:
            return ConnectionReset(f"peer closed the connection mid-message ({exc})", by_peer=True)
        return ProtocolViolation(f"malformed HTTP/1.1 from the peer: {exc}", by_peer=True)

    def _take_body(self, data: bytes) -> bool:
        """Append ``data``; False once the body exceeds the limit."""
        self._body += data
        return len(self._body) <= self._max_body

    def close(self) -> None:
        self._closed = True


class H11ClientSession(_H11Base):
    """Client role. One request at a time; ``can_send_request`` says when the next may go."""

    def __init__(self, *, max_response_bytes: int) -> None:
        super().__init__(h11.CLIENT, max_response_bytes)
        self._stream: int | None = None
        self._next_stream = 1
        self._status = 0
        self._headers: Headers = ()

    @property
    def can_send_request(self) -> bool:
        return not self._closed and self._stream is None and self._conn.our_state is h11.IDLE

    def send_request(self, request: Request, *, authority: str) -> int:
        if not self.can_send_request:
            raise LocalProtocolError("HTTP/1.1 connection is busy or closed")
        headers: list[tuple[str, str]] = [("host", authority)]
        headers += [(k, v) for k, v in request.headers if k != "host"]
        if request.body or request.method in ("POST", "PUT"):
            headers.append(("content-length", str(len(request.body))))
        self._send(h11.Request(method=request.method, target=request.target, headers=headers))
        if request.body:
            self._send(h11.Data(data=request.body))
        self._send(h11.EndOfMessage())
        self._stream = self._next_stream
        self._next_stream += 2
        self._body.clear()
        return self._stream

    def receive_data(self, data: bytes) -> list[SessionEvent]:
        if self._closed:
            return []
        self._eof = self._eof or not data
        self._conn.receive_data(data)
        out: list[SessionEvent] = []
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                error = self._remote_error(exc)
                if self._stream is not None:
                    out.append(StreamFailed(self._stream, error))
                    self._stream = None
                out.append(ConnectionClosed(error))
                return out
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return out
            if isinstance(event, h11.Response):
                self._status = event.status_code
                self._headers = _decode_headers(list(event.headers))
                length = _content_length(self._headers)
                if length is not None and length > self._max_body:
                    return out + self._too_large()
            elif isinstance(event, h11.Data):
                if not self._take_body(event.data):
                    return out + self._too_large()
            elif isinstance(event, h11.EndOfMessage):
                assert self._stream is not None
                out.append(ResponseComplete(
                    self._stream, Response(self._status, self._headers, bytes(self._body))))
                self._stream = None
                self._body.clear()
                if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
                    self._conn.start_next_cycle()
                else:
                    self._closed = True  # "Connection: close" from either side
                    out.append(ConnectionClosed(None))
                    return out
            elif isinstance(event, h11.ConnectionClosed):
                self._closed = True
                if self._stream is not None:
                    out.append(StreamFailed(self._stream, ConnectionReset(
                        "server closed the connection before responding", by_peer=True)))
                    self._stream = None
                out.append(ConnectionClosed(None))
                return out
            # InformationalResponse (1xx): nothing to do, the final response follows.

    def _too_large(self) -> list[SessionEvent]:
        self._closed = True  # the rest of the body is still coming: the connection is spent
        assert self._stream is not None
        stream, self._stream = self._stream, None
        error = BodyTooLarge(self._max_body)
        return [StreamFailed(stream, error), ConnectionClosed(error)]


class H11ServerSession(_H11Base):
    """Server role. Pipelined requests wait in h11's buffer; ``send_response`` returns the next
    request once it can be parsed."""

    def __init__(self, *, max_request_bytes: int) -> None:
        super().__init__(h11.SERVER, max_request_bytes)
        self._request: h11.Request | None = None
        self._stream = 1
        self._responding = False

    def receive_data(self, data: bytes) -> list[SessionEvent]:
        if self._closed:
            return []
        self._eof = self._eof or not data
        self._conn.receive_data(data)
        return self._events()

    def _events(self) -> list[SessionEvent]:
        out: list[SessionEvent] = []
        while not self._responding:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                error = self._remote_error(exc)
                if not self._eof and self._conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    # RFC 9112: answer a malformed request (h11 suggests the status) and close.
                    self._send(h11.Response(status_code=exc.error_status_hint, headers=[
                        ("content-length", "0"), ("connection", "close")]))
                    self._send(h11.EndOfMessage())
                out.append(ConnectionClosed(error))
                return out
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return out
            if isinstance(event, h11.Request):
                self._request = event
                self._body.clear()
                length = _content_length(_decode_headers(list(event.headers)))
                if length is not None and length > self._max_body:
                    return out + self._too_large()
            elif isinstance(event, h11.Data):
                if not self._take_body(event.data):
                    return out + self._too_large()
            elif isinstance(event, h11.EndOfMessage):
                assert self._request is not None
                req = self._request
                out.append(RequestComplete(self._stream, Request(
                    req.method.decode("ascii"), req.target.decode("ascii"),
                    _decode_headers(list(req.headers)), bytes(self._body))))
                self._responding = True
            elif isinstance(event, h11.ConnectionClosed):
                self._closed = True
                out.append(ConnectionClosed(None))
                return out
        return out

    def _too_large(self) -> list[SessionEvent]:
        # Answer 413 and close: the unread body makes the connection unusable.
        self._send(h11.Response(status_code=413, headers=[
            ("content-length", "0"), ("connection", "close")]))
        self._send(h11.EndOfMessage())
        self._closed = True
        error = BodyTooLarge(self._max_body)
        return [StreamFailed(self._stream, error), ConnectionClosed(error)]

    def send_response(self, stream_id: int, response: Response) -> list[SessionEvent]:
        if not self._responding or stream_id != self._stream:
            raise LocalProtocolError(f"HTTP/1.1: no request {stream_id} awaiting a response")
        headers = [(k, v) for k, v in response.headers if k not in ("content-length",)]
        headers.append(("content-length", str(len(response.body))))
        self._send(h11.Response(status_code=response.status, headers=headers))
        if response.body:
            self._send(h11.Data(data=response.body))
        self._send(h11.EndOfMessage())
        self._responding = False
        self._request = None
        self._stream += 2
        if self._conn.our_state is h11.DONE and self._conn.their_state is h11.DONE:
            self._conn.start_next_cycle()
            return self._events()
        self._closed = True
        return [ConnectionClosed(None)]
