"""The simulated utility server on the wire: :class:`UtilityState` behind ``actors.https``.

:class:`SimUtilityServer` serves the state over mutual TLS (HTTP/1.1 and, unless the ``http2``
quirk is off, HTTP/2) on a loopback TCP port or over in-memory pipes, applies the scenario's
timeline as the server clock passes (a task sleeping on the clock it is given), and records every
request — server time, method, target, status, the client's LFDI and the parsed body — for
assertions (:meth:`responses_for`, :meth:`polls_of`, :meth:`posts_to`, :meth:`wait_for`). Like a
strict CSIP-AUS test server it validates every request body against the published schemas of the
namespace it serves (:mod:`sep2gw.simserver.validation`) and answers an invalid one 400.
"""

from __future__ import annotations

import contextvars
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio
import anyio.abc
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.https import Handler, HttpsServer, PeerInfo
from sep2gw.simserver.notifier import NotificationAttempt, NotificationConnector, Notifier
from sep2gw.simserver.scenario import Action, ClockSkew, Scenario, TlsFail
from sep2gw.simserver.state import SimReply, UtilityState
from sep2gw.simserver.validation import ValidationUnavailable, Validator, request_validator
from transport.http.messages import SEP_XML, Headers, Request, Response
from transport.http.router import Router
from transport.identity import CORE_2030_5, IdentityProfile
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, client_context, server_context

__all__ = ["RecordedRequest", "ServerClock", "SimClock", "SimUtilityServer", "server_material"]

_MAX_DEPTH = 10  # deepest path the catch-all routes reach (/edev/1/derp/2/derc/3 is 6)
_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE")
_EPSILON_S = 1e-6
_HANDSHAKE_WAIT_S = 5.0  # how long a failing handshake waits for the ClientHello


def server_material(pki_dir: str | Path, key_password: bytes | None = None) -> TlsMaterial:
    """The server's TLS files in a ``sep2gw certs init`` folder: ``server.pem`` (chain),
    ``server.key``, and ``ca.pem`` (the SERCA its clients must chain to)."""
    folder = Path(pki_dir)
    return TlsMaterial(
        str(folder / "server.pem"), str(folder / "server.key"), str(folder / "ca.pem"), key_password
    )


class ServerClock(Protocol):
    """The utility's clock: server epoch seconds, and a way to sleep until a reading."""

    def now(self) -> float: ...

    async def sleep_until(self, server_time: float) -> None: ...


class SimClock:
    """Server epoch seconds on the event loop's clock (virtual under trio's ``MockClock``):
    ``epoch`` at construction, advancing ``speed`` times as fast as the loop's clock, plus the
    steps made by :meth:`step` (a ``clock_skew`` fault). Make it inside the event loop."""

    def __init__(self, epoch: float, *, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self._epoch = epoch
        self._speed = speed
        self._t0 = anyio.current_time()
        self._skew = 0.0
        self._stepped = anyio.Event()

    @classmethod
    def for_scenario(cls, scenario: Scenario, wall: float, *, speed: float = 1.0) -> SimClock:
        """A clock reading the scenario's ``server.epoch`` now when it sets one (reproducible
        runs), else ``wall`` (the caller's reading of real time)."""
        epoch = scenario.server.epoch
        return cls(float(epoch) if epoch is not None else wall, speed=speed)

    @property
    def skew_s(self) -> float:
        """The sum of the steps so far (server clock minus the clock it would read without them)."""
        return self._skew

    def now(self) -> float:
        return self._epoch + self._skew + (anyio.current_time() - self._t0) * self._speed

    def step(self, seconds: float) -> None:
        """Step the clock by ``seconds`` (positive: ahead); sleepers recompute their wake-up."""
        self._skew += seconds
        self._stepped.set()
        self._stepped = anyio.Event()

    async def sleep_until(self, server_time: float) -> None:
        while True:
            stepped = self._stepped
            deadline = self._t0 + (server_time - self._epoch - self._skew) / self._speed
            with anyio.CancelScope(deadline=deadline) as scope:
                await stepped.wait()
            if scope.cancelled_caught:
                return


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the server saw and answered it. ``status`` 0: the connection was reset.
    ``schema_error``: why the body was not schema-valid (answered 400), else empty."""

    time: float
    method: str
    target: str
    path: str
    status: int
    lfdi: str
    body: msgspec.Struct | None
    location: str | None
    reason: str
    alpn: str
    schema_error: str = ""


class _Resettable(anyio.abc.ByteStream):
    """A connection the handler can drop: after ``abort`` the next send closes the transport
    instead of answering (the client sees a connection reset)."""

    def __init__(self, inner: anyio.abc.ByteStream) -> None:
        self._inner = inner
        self.aborted = False

    async def send(self, item: bytes) -> None:
        if self.aborted:
            await self._inner.aclose()
            raise anyio.BrokenResourceError("scenario: connection reset")
        await self._inner.send(item)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self._inner.receive(max_bytes)

    async def send_eof(self) -> None:
        await self._inner.send_eof()

    async def aclose(self) -> None:
        await self._inner.aclose()


_CONNECTION: contextvars.ContextVar[_Resettable] = contextvars.ContextVar("sim_connection")


class SimUtilityServer:
    """A simulated IEEE 2030.5 utility server driven by a :class:`Scenario`.

    ``tls``: the server's certificate chain, key and the CA its clients must chain to (for
    example ``transport.pki`` / ``sep2gw certs init``: ``server.pem``, ``server.key``,
    ``ca.pem``). ``clock``: the utility's clock (``SimClock.for_scenario`` starts it at the
    scenario's ``server.epoch`` when one is set); ``start``: the server time the scenario's offsets
    count from (default: the clock's reading now).
    """

    def __init__(
        self,
        scenario: Scenario,
        tls: TlsMaterial,
        *,
        clock: ServerClock,
        start: float | None = None,
        profile: IdentityProfile = CORE_2030_5,
        idle_timeout_s: float = 120.0,
        on_request: Callable[[RecordedRequest], None] | None = None,
        on_action: Callable[[float, Action], None] | None = None,
        validate: bool = True,
        seed: int = 0,
        notification_connector: NotificationConnector | None = None,
        on_notification: Callable[[NotificationAttempt], None] | None = None,
        aggregators: Iterable[int] = (),
        site_lfdis: Mapping[str, int] | None = None,
        keep_requests: bool = True,
    ) -> None:
        """``on_request`` / ``on_action`` / ``on_notification`` are called (synchronously, never
        awaited) with each recorded request, each applied action and each notification attempt,
        e.g. to print a live timeline. ``validate``: check every request body against the schemas
        (when they are installed; if not, :attr:`validation_off` says why, for the caller to print
        once). ``seed``: the world's, for the notification faults' draws.
        ``notification_connector(host, port)``: how the notifier reaches a notificationURI's host
        (a simulated world's pipes; default TCP). ``aggregators`` and ``site_lfdis``: see
        :class:`UtilityState` (a fleet world's aggregator certificate and its sites' LFDIs).
        ``keep_requests=False``: :attr:`requests` stays empty (``on_request`` still sees each one),
        for long fleet benchmarks whose record would outgrow what they measure."""
        self._keep_requests = keep_requests
        self.scenario = scenario
        self.clock = clock
        if start is None:
            start = clock.now()
        self.state = UtilityState(
            scenario, start=start, aggregators=aggregators, site_lfdis=site_lfdis
        )
        self.state.notification_seed = seed
        self.requests: list[RecordedRequest] = []
        #: Checks request bodies against the served namespace's schemas (None: not validating).
        self.validator: Validator | None = None
        #: Why requests are not validated (empty when they are).
        self.validation_off = "requests are not schema-validated (validate=False)"
        if validate:
            try:
                self.validator = request_validator(scenario.quirks.csipaus_ns)
                self.validation_off = ""
            except ValidationUnavailable as exc:
                self.validation_off = str(exc)
        self.applied: list[tuple[float, Action]] = []
        self._on_request = on_request
        self._on_action = on_action
        #: Connections hung up on during ``tls_fail`` windows.
        self.tls_refused = 0
        self._connections: set[_Resettable] = set()
        self._next_action = 0
        self._timeline = scenario.timeline()
        self._changed = anyio.Event()
        router: Router[Handler] = Router()
        for depth in range(_MAX_DEPTH + 1):
            template = "/" + "/".join(f"{{s{i}}}" for i in range(depth))
            for method in _METHODS:
                router.add(method, template, self._handle)
        self._context = server_context(tls, alpn=scenario.quirks.alpn)
        #: POSTs the state's notifications, as a TLS client with the server's own certificate.
        self._on_notification = on_notification
        self.notifier = Notifier(
            client_context(tls, alpn=scenario.quirks.alpn),
            clock,
            connector=notification_connector,
            on_attempt=self._notification_attempted,
        )
        self.https = HttpsServer(
            router,
            self._context,
            profile=profile,
            idle_timeout_s=idle_timeout_s,
        )

    @property
    def notifications_possible(self) -> bool:
        """Whether any certificate may subscribe here (else no notifier task runs, and a world
        without subscriptions is scheduled exactly as before they existed)."""
        settings = self.scenario.server
        return settings.subscriptions == "all" or (
            settings.subscriptions == "aggregator" and bool(self.state.aggregators)
        )

    @property
    def start(self) -> float:
        """Server time of the scenario start (offsets ``at_s``/``start_s`` count from here)."""
        return self.state.start

    @property
    def ssl_context(self) -> ssl.SSLContext:
        return self._context

    # ----------------------------------------------------------------------------------- serving

    async def serve_tcp(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0: any free port) and run the timeline until cancelled;
        ``task_status.started`` receives the bound port."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener, anyio.create_task_group() as group:
            if self.notifications_possible:
                await group.start(self.notifier.run)
            self._apply_due()
            group.start_soon(self.run_timeline)
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._serve_connection)

    async def serve_pipes(
        self,
        accept: MemoryObjectReceiveStream[anyio.abc.ByteStream],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve in-memory connections (``actors.pipe.pipe_listener``) and run the timeline until
        ``accept`` closes or the task is cancelled."""
        async with accept, anyio.create_task_group() as group:
            timeline = anyio.CancelScope()
            notifier = anyio.CancelScope()

            async def run_notifier(*, task_status: anyio.abc.TaskStatus[None]) -> None:
                with notifier:
                    await self.notifier.run(task_status=task_status)

            async def run_timeline() -> None:
                with timeline:
                    await self.run_timeline()

            if self.notifications_possible:
                await group.start(run_notifier)
            self._apply_due()
            group.start_soon(run_timeline)
            task_status.started()
            async with anyio.create_task_group() as connections:
                async for transport in accept:
                    connections.start_soon(self._serve_connection, transport)
            timeline.cancel()
            notifier.cancel()

    async def run_timeline(self) -> None:
        """Apply the scenario's actions as the server clock reaches them; returns after the last."""
        while self._next_action < len(self._timeline):
            _, action = self._timeline[self._next_action]
            await self.clock.sleep_until(self.start + action.at_s)
            self._apply_due()

    def _apply_due(self) -> None:
        now = self.clock.now()
        while self._next_action < len(self._timeline):
            _, action = self._timeline[self._next_action]
            due = self.start + action.at_s
            # Tolerance: a clock scaled by `speed` may read a hair before the instant it slept to.
            if due > now + _EPSILON_S:
                break
            at = max(now, due)  # never stamp an action (a cancel instant…) before its own time
            self.state.apply(action, at)
            if isinstance(action, TlsFail):
                # Open connections drop too (the next answer on each is a reset), so the client
                # must handshake again inside the window.
                for open_connection in self._connections:
                    open_connection.aborted = True
            if isinstance(action, ClockSkew) and isinstance(self.clock, SimClock):
                self.clock.step(action.seconds)
                now = self.clock.now()
            self.applied.append((at, action))
            self._next_action += 1
            if self._on_action is not None:
                self._on_action(at, action)
        self.notifier.submit(self.state.take_outbox())
        self._notify()

    async def _serve_connection(self, transport: anyio.abc.ByteStream) -> None:
        if self.state.tls_fails(self.clock.now()):
            # A ``tls_fail`` window: take the ClientHello, then hang up without a ServerHello.
            with anyio.move_on_after(_HANDSHAKE_WAIT_S):
                try:
                    await transport.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
            self.tls_refused += 1
            await transport.aclose()
            return
        connection = _Resettable(transport)
        _CONNECTION.set(connection)  # this task's context: the handler finds its connection
        self._connections.add(connection)
        try:
            await self.https.serve_connection(connection)
        finally:
            self._connections.discard(connection)

    async def _handle(self, request: Request, peer: PeerInfo) -> Response:
        self._apply_due()  # actions due now are visible to a request at the same instant
        now = self.clock.now()
        delay = self.state.delay_for(request.method, request.target.partition("?")[0], now)
        if delay > 0:
            await self.clock.sleep_until(now + delay)  # a ``slow`` window: held, then handled
            self._apply_due()
            now = self.clock.now()
        connection = _CONNECTION.get(None)
        if connection is not None and connection.aborted:
            # Dropped (a tls_fail began): the request is not handled, the client sees a reset.
            self._record(now, request, peer, SimReply(0, reset=True, reason="connection dropped"))
            return Response(500)
        content_type = request.header("content-type")
        schema_error = self._schema_error(request, content_type)
        if schema_error:
            # A strict server refuses before acting on it (issue 14: "all requests XSD-valid").
            reply = SimReply(400, reason=schema_error)
            self.state.audit_schema_refusal(
                request.method, request.target.partition("?")[0], peer.lfdi, schema_error, now
            )
        else:
            reply = self.state.handle(
                request.method,
                request.target,
                request.body,
                peer.lfdi,
                now,
                content_type=content_type,
            )
        self._record(now, request, peer, reply, schema_error)
        if reply.reset:
            connection = _CONNECTION.get(None)
            if connection is not None:
                connection.aborted = True
            # Never sent when the connection was accepted by serve_tcp/serve_pipes (it drops);
            # a connection served some other way gets a bare 500 instead.
            return Response(500)
        return _response(reply)

    def _schema_error(self, request: Request, content_type: str | None) -> str:
        """Why the body of a POST/PUT in 2030.5 XML is not valid against the served schemas
        (empty: valid, no body, or not validating). Another media type is the state's 415."""
        if self.validator is None or not request.body or request.method not in ("POST", "PUT"):
            return ""
        if content_type is not None and content_type.partition(";")[0].strip().lower() != SEP_XML:
            return ""
        return self.validator.check(request.body) or ""

    # --------------------------------------------------------------------------------- recording

    def _record(
        self, now: float, request: Request, peer: PeerInfo, reply: SimReply, schema_error: str = ""
    ) -> None:
        record = RecordedRequest(
            time=now,
            method=request.method,
            target=request.target,
            path=request.target.partition("?")[0],
            status=0 if reply.reset else reply.status,
            lfdi=peer.lfdi,
            body=reply.parsed,
            location=reply.location,
            reason=reply.reason,
            alpn=peer.alpn,
            schema_error=schema_error,
        )
        if self._keep_requests:
            self.requests.append(record)
        if self._on_request is not None:
            self._on_request(record)
        self._notify()

    def _notification_attempted(self, attempt: NotificationAttempt) -> None:
        if self._on_notification is not None:
            self._on_notification(attempt)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_for(self, predicate: Callable[[SimUtilityServer], bool]) -> None:
        """Wait until ``predicate(self)`` holds, re-checked after every request, action and
        notification attempt (the caller bounds the wait, e.g. with ``anyio.fail_after``)."""
        while not predicate(self):
            await self._changed.wait()

    def schema_invalid(self) -> list[RecordedRequest]:
        """Every request whose body was not valid against the served schemas (answered 400)."""
        return [q for q in self.requests if q.schema_error]

    def polls_of(self, path: str) -> list[RecordedRequest]:
        """Every GET of ``path`` (query ignored), in order."""
        return [q for q in self.requests if q.method == "GET" and q.path == path]

    def posts_to(self, path: str) -> list[RecordedRequest]:
        """Every POST to ``path`` (e.g. a MirrorUsagePoint's href), in order."""
        return [q for q in self.requests if q.method == "POST" and q.path == path]

    def puts_to(self, path: str) -> list[RecordedRequest]:
        return [q for q in self.requests if q.method == "PUT" and q.path == path]

    def responses_for(
        self, mrid: int | str, *, end_device: int | str | None = None
    ) -> list[RecordedRequest]:
        """Every Response POST whose subject is ``mrid`` (hex compared numerically), in order;
        with ``end_device``, only those naming that EndDevice LFDI (a shared control's)."""
        wanted = int(mrid, 16) if isinstance(mrid, str) else mrid
        device = int(end_device, 16) if isinstance(end_device, str) else end_device
        return [
            q
            for q in self.requests
            if q.method == "POST"
            and isinstance(q.body, r.Response)
            and int(q.body.subject) == wanted
            and (device is None or int(q.body.endDeviceLFDI) == device)
        ]

    def duplicate_responses(self) -> list[tuple[int, int, str]]:
        """(mRID, status, EndDevice LFDI) keys accepted more than once: a client must never repeat
        a Response (PROTOCOL.md §4 rule 16). Keyed by the Response's endDeviceLFDI, which is the
        certificate's for a device and one of its EndDevices' for an aggregator."""
        seen: dict[tuple[int, int, str], int] = {}
        for q in self.requests:
            if q.method == "POST" and q.status == 201 and isinstance(q.body, r.Response):
                key = (int(q.body.subject), q.body.status or 0, f"{int(q.body.endDeviceLFDI):040X}")
                seen[key] = seen.get(key, 0) + 1
        return [key for key, count in seen.items() if count > 1]

    def poll_intervals(self, path: str) -> list[float]:
        """Server seconds between consecutive GETs of ``path`` (to check the client polls at
        the advertised pollRate, neither missing nor over-polling: PROTOCOL.md §4 rule 15)."""
        times = [q.time for q in self.polls_of(path)]
        return [b - a for a, b in zip(times, times[1:], strict=False)]

    def response_statuses(
        self, mrid: int | str, *, end_device: int | str | None = None
    ) -> list[int]:
        """The Response codes the server accepted (201) for ``mrid``, in order (1, 2, 3, …);
        with ``end_device``, those of that EndDevice only."""
        return [
            q.body.status or 0
            for q in self.responses_for(mrid, end_device=end_device)
            if q.status == 201 and isinstance(q.body, r.Response)
        ]


def _response(reply: SimReply) -> Response:
    headers: list[tuple[str, str]] = []
    body = reply.body
    if body:
        headers.append(("content-type", reply.content_type or SEP_XML))
    elif reply.reason and reply.status >= 400:
        headers.append(("content-type", "text/plain; charset=utf-8"))
        body = reply.reason.encode()
    if reply.location is not None:
        headers.append(("location", reply.location))
    if reply.retry_after_s is not None:
        headers.append(("retry-after", str(reply.retry_after_s)))
    result: Headers = tuple(headers)
    return Response(reply.status, result, body)
