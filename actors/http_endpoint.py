"""A small local HTTP/1.1 endpoint: the gateway's ``/metrics`` and ``/health`` (issue 20 point 2).

Off by default and on loopback by default (the caller decides; ``sep2gw.config`` refuses another
address unless the site allows it). It serves GET and HEAD only, one request per connection, and
is bounded against slow or hostile clients: at most ``max_connections`` at once (more are closed at
once and counted), every connection closed after ``timeout_s`` whatever it is doing, a request head
larger than ``max_request_bytes`` answered 431, a request with a body 413. Nothing it does can
hold up the gateway: a reply is rendered from the state in memory when asked, and each connection
is its own task.

The HTTP framing is h11's (sans-IO, as the rest of the project's HTTP).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Final

import anyio
import anyio.abc
import h11
import msgspec
from anyio.abc import TaskStatus

__all__ = ["HttpEndpoint", "HttpEndpointStatistics", "Reply"]

#: Connections served at once; more are closed as soon as they are accepted.
MAX_CONNECTIONS: Final = 8
#: A connection is closed this long after it was accepted, whatever it is doing.
TIMEOUT_S: Final = 5.0
#: The largest request head accepted (request line and headers).
MAX_REQUEST_BYTES: Final = 8192
_RECEIVE_BYTES: Final = 4096
#: At most this many reads are discarded after a refusal (64 KiB).
_LINGER_READS: Final = 16


class Reply(msgspec.Struct, frozen=True):
    status: int
    content_type: str
    body: bytes


class HttpEndpointStatistics(msgspec.Struct, frozen=True):
    served: int
    refused: int  # closed at once: too many connections
    failed: int  # timed out, malformed, or the peer went away


Route = Callable[[str], Reply | None]


class HttpEndpoint:
    """Serves ``route(path)`` (``None``: 404) on ``host:port``. ``port`` 0 picks a free port; the
    port bound is what ``task_group.start(endpoint.run)`` returns."""

    def __init__(
        self,
        host: str,
        port: int,
        route: Route,
        *,
        max_connections: int = MAX_CONNECTIONS,
        timeout_s: float = TIMEOUT_S,
        max_request_bytes: int = MAX_REQUEST_BYTES,
    ) -> None:
        self.host = host
        self.port = port
        self._route = route
        self._max_connections = max_connections
        self._timeout_s = timeout_s
        self._max_request_bytes = max_request_bytes
        self._active = 0
        self._served = 0
        self._refused = 0
        self._failed = 0

    def statistics(self) -> HttpEndpointStatistics:
        return HttpEndpointStatistics(self._served, self._refused, self._failed)

    async def run(self, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED) -> None:
        listener = await anyio.create_tcp_listener(local_host=self.host, local_port=self.port)
        async with listener:
            port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
            task_status.started(port)
            await listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        if self._active >= self._max_connections:
            self._refused += 1
            await stream.aclose()
            return
        self._active += 1
        try:
            with anyio.move_on_after(self._timeout_s) as scope:
                ok = await self._serve(stream)
            if scope.cancelled_caught or not ok:
                self._failed += 1
            else:
                self._served += 1
        finally:
            self._active -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    async def _serve(self, stream: anyio.abc.SocketStream) -> bool:
        """One request, one reply; False if there was no proper request to answer."""
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self._max_request_bytes)
        request: h11.Request | None = None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                status = exc.error_status_hint  # 431 for a head too large, else 400
                await self._reply(stream, conn, Reply(status, "text/plain", f"{exc}\n".encode()))
                await _linger(stream)
                return False
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive(_RECEIVE_BYTES)
                except (anyio.EndOfStream, anyio.BrokenResourceError, OSError):
                    return False
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
                if _has_body(event):
                    await self._reply(stream, conn, Reply(413, "text/plain", b"no body\n"))
                    await _linger(stream)
                    return False
                continue
            if isinstance(event, h11.EndOfMessage) and request is not None:
                break
            if isinstance(event, h11.ConnectionClosed):
                return False
        method = request.method.decode("ascii", "replace")
        if method not in ("GET", "HEAD"):
            reply = Reply(405, "text/plain", b"GET or HEAD only\n")
        else:
            path = request.target.decode("ascii", "replace").partition("?")[0]
            reply = self._route(path) or Reply(404, "text/plain", b"not found\n")
        await self._reply(stream, conn, reply, head_only=method == "HEAD")
        return True

    async def _reply(
        self,
        stream: anyio.abc.SocketStream,
        conn: h11.Connection,
        reply: Reply,
        *,
        head_only: bool = False,
    ) -> None:
        headers = [
            ("content-type", reply.content_type),
            ("content-length", str(len(reply.body))),
            ("connection", "close"),
            ("cache-control", "no-store"),
        ]
        if reply.status == 405:
            headers.append(("allow", "GET, HEAD"))
        try:
            data = conn.send(
                h11.Response(
                    status_code=reply.status,
                    headers=headers,
                    reason=HTTPStatus(reply.status).phrase,
                )
            )
            if not head_only:
                data += conn.send(h11.Data(data=reply.body))
            data += conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return  # the request was so broken that h11 will not answer it
        try:
            await stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass  # the scraper went away; nothing to do


async def _linger(stream: anyio.abc.SocketStream) -> None:
    """After refusing a request not read to its end: say we are done and read (a bounded amount
    of) what the client still sends, so closing does not reset the connection before the client
    reads the refusal. The connection's timeout bounds the wait."""
    try:
        await stream.send_eof()
        for _ in range(_LINGER_READS):
            await stream.receive(_RECEIVE_BYTES)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass


def _has_body(request: h11.Request) -> bool:
    for name, value in request.headers:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length" and value.strip() != b"0":
            return True
    return False
