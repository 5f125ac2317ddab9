"""The HTTPS link actors: a 2030.5 client over mutual TLS, and a server that serves a router over
HTTP/1.1 and HTTP/2 (simulated utility server, notification listener).

IEEE 2030.5 §5.5 / §6.11: TLS 1.2 with CCM8 and mutual certificates (contexts from
``transport.tls``); HTTP/1.1 always, HTTP/2 when ALPN selects it; keep-alive. Every connect,
handshake and request runs under a deadline; errors arrive typed (``transport.errors``).
"""

from __future__ import annotations

import logging
import ssl
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from anyio.abc import SocketAttribute
from anyio.streams.memory import MemoryObjectReceiveStream
from anyio.streams.stapled import MultiListener

from actors.pipe import serve_pipes
from actors.tls_stream import TlsStream
from transport.errors import (
    BodyTooLarge,
    ConnectFailed,
    ConnectionReset,
    LinkError,
    LinkTimeout,
)
from transport.http.messages import (
    SEP_XML,
    ConnectionClosed,
    Headers,
    Request,
    RequestComplete,
    Response,
    ResponseComplete,
    SessionEvent,
    StreamFailed,
)
from transport.http.router import Match, Router
from transport.http.session import (
    ClientSession,
    ServerSession,
    new_client_session,
    new_server_session,
)
from transport.identity import CORE_2030_5, IdentityProfile, lfdi_from_der, sfdi_from_lfdi

__all__ = [
    "ClientStatistics",
    "Handler",
    "HttpsClient",
    "HttpsServer",
    "PeerInfo",
    "RefusalHook",
    "ServerStatistics",
    "TlsInfo",
    "serve_accepted",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20  # a large 2030.5 list page is tens of KiB; 1 MiB is ample
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
_ERROR_HISTORY = 32


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What the handshake settled: shown by ``sep2gw probe`` and recorded by the link."""

    version: str
    cipher: str
    alpn: str
    peer_chain_der: tuple[bytes, ...]
    session_reused: bool


def _tls_info(stream: TlsStream) -> TlsInfo:
    obj = stream.ssl_object
    cipher = obj.cipher()
    return TlsInfo(
        version=obj.version() or "",
        cipher=cipher[0] if cipher else "",
        alpn=obj.selected_alpn_protocol() or "http/1.1",
        peer_chain_der=tuple(stream.peer_chain_der()),
        session_reused=stream.session_reused,
    )


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    connections_opened: int
    handshakes_resumed: int
    requests: int
    failures: int


class _Connection:
    __slots__ = ("session", "stream", "tls", "used")

    def __init__(self, stream: TlsStream, session: ClientSession, tls: TlsInfo) -> None:
        self.stream = stream
        self.session = session
        self.tls = tls
        self.used = False


class HttpsClient:
    """One origin, one connection at a time, one request at a time: the link actor is the single
    owner of the connection, so requests are serialised (the 2030.5 client never needs more).

    - Keep-alive: the connection is reused while the session allows it.
    - Resumption: the TLS session of the last handshake is offered on the next connect.
    - Deadlines: ``connect_timeout_s`` covers TCP + TLS; ``request_timeout_s`` (or the per-call
      ``timeout_s``) covers the whole request including any connect.
    - A request on a reused connection that the server had already closed (idle timeout) is sent
      once more on a fresh connection when the method is idempotent.
    """

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        authority: str | None = None,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 30.0,
        max_response_bytes: int = DEFAULT_MAX_BODY_BYTES,
        resume_sessions: bool = True,
        connector: Callable[[], Awaitable[anyio.abc.ByteStream]] | None = None,
    ) -> None:
        """``connector`` replaces the TCP connect under the TLS handshake (simulations connect
        through in-memory pipes; TLS, certificates and HTTP are exactly as on a socket)."""
        self._host = host
        self._connector = connector
        self._port = port
        self._context = context
        literal = f"[{host}]" if ":" in host else host  # RFC 3986: IPv6 literals in brackets
        self._authority = authority or (literal if port == 443 else f"{literal}:{port}")
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._max_response_bytes = max_response_bytes
        self._resume = resume_sessions
        self._conn: _Connection | None = None
        self._tls_session: ssl.SSLSession | None = None
        self._last_tls: TlsInfo | None = None
        # Uncontended in the normal case (one link actor): skip the scheduler round trip.
        self._lock = anyio.Lock(fast_acquire=True)
        self._stats: Counter[str] = Counter()

    async def __aenter__(self) -> HttpsClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        """Whether a connection is open (kept alive between requests until :meth:`aclose`)."""
        return self._conn is not None

    @property
    def tls_info(self) -> TlsInfo | None:
        """The TLS parameters of the most recent handshake."""
        return self._last_tls

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            connections_opened=self._stats["connections"],
            handshakes_resumed=self._stats["resumed"],
            requests=self._stats["requests"],
            failures=self._stats["failures"],
        )

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await self._close(conn)

    async def connect(self) -> TlsInfo:
        """Open the connection now (``sep2gw probe`` reports the handshake before any request)."""
        async with self._lock:
            conn = await self._connection()
            return conn.tls

    async def get(self, target: str, *, timeout_s: float | None = None) -> Response:
        return await self.request(
            "GET", target, headers=(("accept", SEP_XML),), timeout_s=timeout_s
        )

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Headers = (),
        timeout_s: float | None = None,
    ) -> Response:
        """Send one request and return its response (any status: ``transport.http.outcome``
        says what it means). Raises ``LinkError`` subclasses only."""
        if body and not any(k == "content-type" for k, _ in headers):
            headers = (*headers, ("content-type", SEP_XML))
        request = Request(method.upper(), target, headers, body)
        timeout = self._request_timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            self._stats["requests"] += 1
            # move_on_after returns a bare CancelScope with its deadline: same semantics as
            # fail_after, measured ~2x cheaper on the per-request hot path (no generator context
            # manager), and no clock is read here (only actors.clock reads time).
            scope = anyio.move_on_after(timeout)
            try:
                with scope:
                    return await self._exchange_with_retry(request)
            except LinkError:
                self._stats["failures"] += 1
                await self.aclose()
                raise
            self._stats["failures"] += 1
            await self.aclose()  # the connection's state is unknown: never reuse it
            raise LinkTimeout(f"{method} {target}: no complete response within {timeout:g} s")

    async def _exchange_with_retry(self, request: Request) -> Response:
        conn = await self._connection()
        reused = conn.used
        try:
            return await self._exchange(conn, request)
        except ConnectionReset:
            if not (reused and request.method in _IDEMPOTENT):
                raise
            logger.debug("kept-alive connection was closed by the server; reconnecting once")
            await self.aclose()
            return await self._exchange(await self._connection(), request)

    async def _connection(self) -> _Connection:
        if self._conn is not None and self._conn.session.can_send_request:
            return self._conn
        if self._conn is not None:
            await self.aclose()
        stream: TlsStream | None = None
        with anyio.move_on_after(self._connect_timeout_s):
            try:
                tcp = await (
                    self._connector()
                    if self._connector is not None
                    else anyio.connect_tcp(self._host, self._port)
                )
            except OSError as exc:
                raise ConnectFailed(
                    f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}"
                ) from exc
            stream = await TlsStream.handshake(
                tcp,
                self._context,
                server_side=False,
                session=self._tls_session if self._resume else None,
            )
        if stream is None:
            raise LinkTimeout(
                f"connecting to {self._host}:{self._port} (TCP and TLS handshake) "
                f"took longer than {self._connect_timeout_s:g} s"
            )
        self._stats["connections"] += 1
        if stream.session_reused:
            self._stats["resumed"] += 1
        self._tls_session = stream.session
        tls = _tls_info(stream)
        self._last_tls = tls
        session = new_client_session(tls.alpn, max_response_bytes=self._max_response_bytes)
        self._conn = _Connection(stream, session, tls)
        await self._send_pending(self._conn)
        return self._conn

    async def _send_pending(self, conn: _Connection) -> None:
        data = conn.session.data_to_send()
        if data:
            await conn.stream.send(data)

    async def _exchange(self, conn: _Connection, request: Request) -> Response:
        conn.used = True
        stream_id = conn.session.send_request(request, authority=self._authority)
        await self._send_pending(conn)
        while True:
            try:
                data = await conn.stream.receive()
            except anyio.EndOfStream:
                data = b""
            events = conn.session.receive_data(data)
            await self._send_pending(conn)  # h2 acknowledgements, WINDOW_UPDATE, GOAWAY
            for event in events:
                if isinstance(event, ResponseComplete) and event.stream_id == stream_id:
                    if conn.session.closed:
                        await self.aclose()
                    return event.response
                if isinstance(event, StreamFailed) and event.stream_id == stream_id:
                    raise event.error
                if isinstance(event, ConnectionClosed):
                    raise event.error or ConnectionReset(
                        "server closed the connection before responding", by_peer=True
                    )
            if not data:
                raise ConnectionReset(
                    "server closed the connection before responding", by_peer=True
                )

    async def _close(self, conn: _Connection) -> None:
        conn.session.close()
        try:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await self._send_pending(conn)
        except LinkError:
            pass
        await conn.stream.aclose()


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """Who is on the other end of a server connection, from its verified client certificate."""

    certificate_der: bytes
    lfdi: str
    sfdi: int
    alpn: str


Handler = Callable[[Request, PeerInfo], Awaitable[Response]]
#: Told of a request refused before any handler saw it (a body over the limit): what it was, who.
RefusalHook = Callable[[LinkError, PeerInfo], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    connections: int
    requests: int
    errors: dict[str, int] = field(default_factory=dict)


class HttpsServer:
    """Serves a ``Router[Handler]`` over mutual TLS on HTTP/1.1 and HTTP/2 (whichever ALPN picks).

    Connections are handled concurrently (one task each, inside the listener's task group);
    requests on one connection are answered in order. Handshake, idle and handler deadlines
    bound every wait; failures are counted by type and the last few kept for inspection.
    """

    def __init__(
        self,
        router: Router[Handler],
        context: ssl.SSLContext,
        *,
        profile: IdentityProfile = CORE_2030_5,
        max_request_bytes: int = DEFAULT_MAX_BODY_BYTES,
        handshake_timeout_s: float = 10.0,
        idle_timeout_s: float = 120.0,
        handler_timeout_s: float = 30.0,
        on_refused: RefusalHook | None = None,
    ) -> None:
        """``on_refused``: told of each request refused before a handler saw it (a body larger
        than ``max_request_bytes``: 413 on HTTP/1.1, the stream reset on HTTP/2), for a server
        that must record every request (the notification listener)."""
        self._router = router
        self._on_refused = on_refused
        self._context = context
        self._profile = profile
        self._max_request_bytes = max_request_bytes
        self._handshake_timeout_s = handshake_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._handler_timeout_s = handler_timeout_s
        self._stats: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self.recent_errors: deque[LinkError] = deque(maxlen=_ERROR_HISTORY)

    def statistics(self) -> ServerStatistics:
        return ServerStatistics(
            self._stats["connections"], self._stats["requests"], dict(self._errors)
        )

    async def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled; ``task_status.started`` receives the bound port."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener:
            task_status.started(listener.extra(SocketAttribute.local_port))
            await serve_accepted(listener, self.serve_connection)

    async def serve_pipes(
        self,
        accept: MemoryObjectReceiveStream[anyio.abc.ByteStream],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve in-memory connections (``actors.pipe``) until ``accept`` closes or cancelled."""
        await serve_pipes(accept, self.serve_connection, task_status=task_status)

    def _record(self, error: LinkError) -> None:
        self._errors[type(error).__name__] += 1
        self.recent_errors.append(error)
        logger.info("https server: %s: %s", type(error).__name__, error)

    async def serve_connection(self, transport: anyio.abc.ByteStream) -> None:
        """Serve one accepted connection to its end. Never raises (except cancellation): one
        misbehaving client must not take the listener down."""
        self._stats["connections"] += 1
        try:
            await self._serve_connection(transport)
        except Exception:
            logger.exception("https server: connection failed unexpectedly")
            self._errors["InternalError"] += 1
            await transport.aclose()

    async def _serve_connection(self, transport: anyio.abc.ByteStream) -> None:
        try:
            with anyio.fail_after(self._handshake_timeout_s):
                stream = await TlsStream.handshake(transport, self._context, server_side=True)
        except TimeoutError:
            self._record(LinkTimeout("client did not complete the TLS handshake in time"))
            await transport.aclose()
            return
        except LinkError as error:
            self._record(error)
            return
        try:
            await self._serve(stream)
        except LinkError as error:
            self._record(error)
        finally:
            await stream.aclose()

    def _peer(self, stream: TlsStream) -> PeerInfo:
        der = stream.ssl_object.getpeercert(binary_form=True) or b""
        lfdi = lfdi_from_der(der, self._profile) if der else ""
        return PeerInfo(
            der,
            lfdi,
            sfdi_from_lfdi(lfdi) if lfdi else 0,
            stream.ssl_object.selected_alpn_protocol() or "http/1.1",
        )

    async def _serve(self, stream: TlsStream) -> None:
        peer = self._peer(stream)
        session = new_server_session(peer.alpn, max_request_bytes=self._max_request_bytes)
        await self._flush(stream, session)
        pending: deque[SessionEvent] = deque()
        while True:
            while pending:
                event = pending.popleft()
                if isinstance(event, RequestComplete):
                    self._stats["requests"] += 1
                    response = await self._dispatch(event.request, peer)
                    pending.extend(session.send_response(event.stream_id, response))
                    await self._flush(stream, session)
                elif isinstance(event, StreamFailed):
                    self._record(event.error)
                    if self._on_refused is not None and isinstance(event.error, BodyTooLarge):
                        await self._on_refused(event.error, peer)
                elif isinstance(event, ConnectionClosed):
                    if event.error is not None and not isinstance(event.error, BodyTooLarge):
                        self._record(event.error)
                    await self._flush(stream, session)
                    return
            if session.closed:
                await self._flush(stream, session)
                return
            data = b""
            with anyio.move_on_after(self._idle_timeout_s) as idle:
                try:
                    data = await stream.receive()
                except anyio.EndOfStream:
                    pass
            if idle.cancelled_caught:
                session.close()  # idle: say goodbye (GOAWAY on h2) and let the client reconnect
                await self._flush(stream, session)
                return
            pending.extend(session.receive_data(data))
            await self._flush(stream, session)
            if not data and not pending:
                return

    async def _flush(self, stream: TlsStream, session: ServerSession) -> None:
        data = session.data_to_send()
        if data:
            await stream.send(data)

    async def _dispatch(self, request: Request, peer: PeerInfo) -> Response:
        match = self._router.resolve(request.method, request.target)
        if not isinstance(match, Match):
            headers: Headers = (("allow", ", ".join(match.allow)),) if match.allow else ()
            return Response(match.status, headers)
        try:
            with anyio.move_on_after(self._handler_timeout_s):
                return await match.handler(request, peer)
            self._record(LinkTimeout(f"handler for {request.method} {match.path} timed out"))
            return Response(503, (("retry-after", "1"),))
        except Exception as exc:
            # A handler bug must not take the connection (or the server) down: answer 500, log it.
            logger.exception("handler for %s %s failed: %r", request.method, match.path, exc)
            self._errors["HandlerFailed"] += 1
            return Response(500)


#: How long an accept loop pauses after ``accept()`` failed (out of file descriptors, of buffers):
#: connections being served close meanwhile and free what the next accept needs.
ACCEPT_PAUSE_S = 0.1


async def serve_accepted(
    listener: anyio.abc.Listener[anyio.abc.SocketStream],
    handler: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    *,
    pause_s: float = ACCEPT_PAUSE_S,
) -> None:
    """``listener.serve(handler)`` that outlives a failed accept: an ``OSError`` of ``accept()``
    (EMFILE/ENFILE with a thousand sites' connections open, ENOBUFS) is logged, and the loop
    pauses ``pause_s`` and accepts again. ``listener.serve`` raised it, which ended the listener —
    and in a fleet, every site with it. Binding is the caller's: a port that cannot be had is a
    configuration error, raised before this is called. A listener on several addresses (IPv4 and
    IPv6: ``anyio.create_tcp_listener``'s ``MultiListener``) accepts on each."""
    listeners = listener.listeners if isinstance(listener, MultiListener) else [listener]
    async with anyio.create_task_group() as connections:
        for one in listeners:
            if isinstance(one, anyio.abc.SocketListener):
                connections.start_soon(_accept_each, one, handler, connections, pause_s)
            else:  # not a socket: nothing to run out of
                connections.start_soon(one.serve, handler, connections)


async def _accept_each(
    listener: anyio.abc.SocketListener,
    handler: Callable[[anyio.abc.SocketStream], Coroutine[Any, Any, None]],
    connections: anyio.abc.TaskGroup,
    pause_s: float,
) -> None:
    failures = 0
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            failures += 1
            if failures == 1:
                logger.warning(
                    "cannot accept a connection (%s); pausing %g s and accepting again",
                    exc.strerror or exc,
                    pause_s,
                )
            await anyio.sleep(pause_s)
            continue
        if failures:
            logger.info("accepting connections again after %d failed accepts", failures)
            failures = 0
        connections.start_soon(handler, stream)
