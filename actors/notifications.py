"""The notification listener: where the utility server POSTs Notifications for our subscriptions
(issue 19 point 3; IEEE 2030.5-2018 Subscription/Notification, PROTOCOL.md §2.10).

HTTPS with mutual TLS, on the same PKI rules as the client side (``transport.tls.server_context``:
TLS 1.2, CCM8, the server's client certificate must chain to the configured CA — nothing is trusted
without a verified certificate), HTTP/1.1 or HTTP/2 by ALPN (``actors.https.HttpsServer``).

Bounded against a hostile or broken peer: at most ``max_connections`` at once (more are closed as
soon as they arrive, counted); a body over ``max_body_bytes`` is refused unread (413 on HTTP/1.1,
the stream reset on HTTP/2); every connection ends ``connection_timeout_s`` after it arrived
whatever it is doing (a slow sender cannot hold one open), the TLS handshake and each handler have
their own deadlines. Nothing here waits on the gateway's other actors: an accepted notification is
handed over without blocking (``notified_nowait``).

Bodies: a ``Notification`` decoded strictly (``transport.sep2.decode``); 201 Created when accepted;
400 naming the problem for a malformed body or one whose subscribedResource is not the
subscription's; 404 for a subscriptionURI we hold no subscription at; 415 for a body that is not
``application/sep+xml``. Every one, accepted or refused, is a ``subscription.notification_received.v1``
record (refused ones with the reason).
"""

from __future__ import annotations

import logging
import ssl
from typing import Final, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from actors.clock import Clock
from actors.https import Handler, HttpsServer, PeerInfo, RefusalHook, serve_accepted
from actors.log_writer import LogWriter
from actors.pipe import serve_pipes
from actors.subscriptions import Notified
from events.envelope import Append
from events.subscription_events import SUBSCRIPTION_STREAM, NotificationReceived
from transport.errors import LinkError
from transport.http.messages import SEP_XML, Request, Response
from transport.http.router import Router
from transport.identity import CORE_2030_5, IdentityProfile
from transport.sep2 import Sep2DecodeError, decode
from transport.sep2 import resources as r

__all__ = [
    "BoundedListener",
    "CONNECTION_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "MAX_CONNECTIONS",
    "ListenerStatistics",
    "NotificationListener",
    "NotificationSink",
]

logger = logging.getLogger(__name__)

#: Connections served at once (a utility's notifier opens one or two); more are closed at once.
MAX_CONNECTIONS: Final = 8
#: A Notification carries one resource (or ``limit`` list items): a few KiB; 64 KiB is ample.
MAX_BODY_BYTES: Final = 64 * 1024
#: A connection ends this long after it arrived, whatever it is doing.
CONNECTION_TIMEOUT_S: Final = 30.0
_HANDSHAKE_TIMEOUT_S: Final = 10.0
_HANDLER_TIMEOUT_S: Final = 10.0
_REASON_CHARS: Final = 300


class NotificationSink(Protocol):
    """Who holds the subscriptions (``actors.subscriptions.SubscriptionActor``)."""

    def resource_of(self, subscription: str) -> str | None: ...

    def notified_nowait(self, notification: Notified) -> None: ...


class ListenerStatistics(msgspec.Struct, frozen=True):
    """Counts since the listener was built: connections served and turned away (over
    ``max_connections``), notifications accepted and refused."""

    connections: int
    turned_away: int
    accepted: int
    refused: int


def path_of(uri: str) -> str:
    """A URI as the path (and query) it names: a server may write subscriptionURI or
    subscribedResource absolute (``https://host/sub/1``) or as a path."""
    parts = urlsplit(uri)
    if not parts.scheme:
        return uri
    return parts.path + (f"?{parts.query}" if parts.query else "")


class BoundedListener:
    """The HTTPS listener a utility notifies (mutual TLS, HTTP/1.1 and h2 by ALPN), bounded so a
    peer cannot grow memory or stall the loop: at most ``max_connections`` at once (more are
    closed at once and counted), ``max_body_bytes`` a request, each connection closed
    ``connection_timeout_s`` after it arrived, and deadlines on the handshake and each handler.
    A site's listener and a fleet's (``actors.fleet_notifications``) are this, with their routes."""

    def __init__(
        self,
        router: Router[Handler],
        *,
        context: ssl.SSLContext,
        profile: IdentityProfile,
        max_connections: int,
        max_body_bytes: int,
        connection_timeout_s: float,
        on_refused: RefusalHook,
    ) -> None:
        self._max_connections = max_connections
        self._connection_timeout_s = connection_timeout_s
        self.server = HttpsServer(
            router,
            context,
            profile=profile,
            max_request_bytes=max_body_bytes,
            handshake_timeout_s=_HANDSHAKE_TIMEOUT_S,
            idle_timeout_s=connection_timeout_s,
            handler_timeout_s=_HANDLER_TIMEOUT_S,
            on_refused=on_refused,
        )
        self._active = 0
        self._connections = 0
        self._turned_away = 0

    async def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on TCP until cancelled; ``task_status.started`` receives the bound port."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener:
            task_status.started(int(listener.extra(anyio.abc.SocketAttribute.local_port)))
            await serve_accepted(listener, self.serve_connection)  # a failed accept ends nothing

    async def serve_pipes(
        self,
        accept: MemoryObjectReceiveStream[anyio.abc.ByteStream],
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve in-memory connections (simulated worlds) until ``accept`` closes."""
        await serve_pipes(accept, self.serve_connection, task_status=task_status)

    async def serve_connection(self, transport: anyio.abc.ByteStream) -> None:
        """Serve one connection (TLS, then HTTP/1.1 or h2) to its end or its deadline; never
        raises but cancellation. Over ``max_connections`` it is closed at once."""
        if self._active >= self._max_connections:
            self._turned_away += 1
            with anyio.CancelScope(shield=True):
                await transport.aclose()
            return
        self._active += 1
        self._connections += 1
        try:
            with anyio.move_on_after(self._connection_timeout_s):
                await self.server.serve_connection(transport)
        finally:
            self._active -= 1
            with anyio.CancelScope(shield=True):
                await transport.aclose()


class NotificationListener(BoundedListener):
    def __init__(
        self,
        *,
        context: ssl.SSLContext,
        path: str,
        log: LogWriter,
        clock: Clock,
        sink: NotificationSink,
        profile: IdentityProfile = CORE_2030_5,
        max_connections: int = MAX_CONNECTIONS,
        max_body_bytes: int = MAX_BODY_BYTES,
        connection_timeout_s: float = CONNECTION_TIMEOUT_S,
    ) -> None:
        """``context``: a server context (``transport.tls.server_context``) with the gateway's
        certificate and the CA the utility's client certificate must chain to. ``path``: the path
        of the notificationURI given to the server (the only one served)."""
        self._log = log
        self._clock = clock
        self._sink = sink
        self.path = path
        router: Router[Handler] = Router()
        router.add("POST", path, self.handle)
        super().__init__(
            router,
            context=context,
            profile=profile,
            max_connections=max_connections,
            max_body_bytes=max_body_bytes,
            connection_timeout_s=connection_timeout_s,
            on_refused=self._too_large,
        )
        self._accepted = 0
        self._refused = 0

    def statistics(self) -> ListenerStatistics:
        return ListenerStatistics(
            self._connections, self._turned_away, self._accepted, self._refused
        )

    async def _record(self, event: NotificationReceived) -> int:
        """Record ``event`` as an observation: it never waits on a full log (held, written when
        space returns), so the answer the handler gives is the one recorded. Its seq, or 0 when
        the record is held (not yet written: no seq is known)."""
        reading = self._clock.read()
        records = await self._log.append(
            [
                Append(
                    stream=SUBSCRIPTION_STREAM,
                    events=(event,),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ],
            observation=True,
        )
        if event.http_status < 300:
            self._accepted += 1
        else:
            self._refused += 1
        return records[0].seq if records else 0

    async def _refuse(
        self,
        status: int,
        reason: str,
        peer: PeerInfo,
        body_bytes: int,
        notification: r.Notification | None = None,
    ) -> Response:
        reason = reason[:_REASON_CHARS]
        logger.info("notification refused (%d): %s", status, reason)
        await self._record(
            NotificationReceived(
                # A refused body is the peer's: its URIs are cut like the reason, so refused POSTs
                # cannot grow the log by their size.
                subscription=(
                    "" if notification is None else notification.subscriptionURI[:_REASON_CHARS]
                ),
                resource=(
                    "" if notification is None else notification.subscribedResource[:_REASON_CHARS]
                ),
                status=None if notification is None else notification.status,
                inline=notification is not None and notification.Resource is not None,
                body_bytes=body_bytes,
                http_status=status,
                reason=reason,
                peer_lfdi=peer.lfdi,
                at_s=self._clock.server_time(),
            )
        )
        return Response(status, (("content-type", "text/plain"),), f"{reason}\n".encode())

    async def _too_large(self, error: LinkError, peer: PeerInfo) -> None:
        await self._refuse(413, str(error), peer, getattr(error, "limit", 0))

    async def handle(self, request: Request, peer: PeerInfo) -> Response:
        """One Notification (IEEE 2030.5 Subscription/Notification): see the module docstring.
        Also the route a server of many sites' notifications (aggregator mode) dispatches to."""
        body = request.body
        content_type = (request.header("content-type") or "").partition(";")[0].strip().lower()
        if content_type and content_type != SEP_XML:
            return await self._refuse(
                415, f"content type {content_type!r}; a Notification is {SEP_XML}", peer, len(body)
            )
        try:
            notification = decode(body, r.Notification)
        except Sep2DecodeError as exc:
            return await self._refuse(400, f"not a valid Notification: {exc}", peer, len(body))
        subscription = path_of(notification.subscriptionURI)
        resource = self._sink.resource_of(subscription)
        if resource is None:
            return await self._refuse(
                404, f"no subscription of ours at {subscription!r}", peer, len(body), notification
            )
        if path_of(notification.subscribedResource) != resource:
            return await self._refuse(
                400,
                f"subscribedResource {notification.subscribedResource!r} is not the resource of "
                f"the subscription at {subscription!r} ({resource!r})",
                peer,
                len(body),
                notification,
            )
        at_s = self._clock.server_time()
        seq = await self._record(
            NotificationReceived(
                subscription=subscription,
                resource=resource,
                status=notification.status,
                inline=notification.Resource is not None,
                body_bytes=len(body),
                http_status=201,
                reason="",
                peer_lfdi=peer.lfdi,
                at_s=at_s,
            )
        )
        self._sink.notified_nowait(
            Notified(
                seq=seq,
                subscription=subscription,
                resource=resource,
                status=notification.status,
                at_s=at_s,
            )
        )
        return Response(201)
