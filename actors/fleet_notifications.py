"""One notification listener for a whole fleet (issue 19 points 3 and 1 together; decision 0022g).

An aggregator gives the utility one notificationURI per site — ``<notifications.url>/<site name>``
— and serves them all on ONE socket: HTTPS with mutual TLS on the aggregator certificate (the
utility's client certificate must chain to the configured CA, exactly the single-site listener's
PKI rules), HTTP/1.1 or HTTP/2 by ALPN (``actors.https.HttpsServer``). Each POST is routed by its
path to the site's own handler (``Gateway.notification_route()``), which records it in that site's
log and prompts that site's poll; nothing of one site's notifications touches another's.

A path that is no site's (``route_of`` answers None) is answered 404 and recorded in no site's
log — it names no site, and a site must never be told of a notification it was not sent — but
counted here (:meth:`FleetNotificationListener.statistics`, ``unknown_paths``) and said once per
path on the fleet's console, so an operator sees a utility notifying a stale or mistyped URI.

Bounded as the single-site listener (``actors.notifications``): at most ``max_connections`` at once
for the whole fleet (more are closed as they arrive, counted), a body over ``max_body_bytes`` is
refused unread (413 on HTTP/1.1, the stream reset on HTTP/2; counted, as it names no site), every
connection ends ``connection_timeout_s`` after it arrived, the handshake and each handler have
their own deadlines.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Final

import anyio
import anyio.abc
import msgspec

from actors.https import Handler, PeerInfo
from actors.notifications import (
    CONNECTION_TIMEOUT_S,
    MAX_BODY_BYTES,
    BoundedListener,
)
from transport.errors import LinkError
from transport.http.messages import Request, Response
from transport.http.router import Router
from transport.identity import CORE_2030_5, IdentityProfile

__all__ = [
    "FLEET_MAX_CONNECTIONS",
    "FleetListenerStatistics",
    "FleetNotificationListener",
    "MAX_PATH_SEGMENTS",
]

logger = logging.getLogger(__name__)

#: Connections served at once for the whole fleet (a utility's notifier keeps one or a few open per
#: origin; all the fleet's sites share one origin).
FLEET_MAX_CONNECTIONS: Final = 64
#: The deepest notificationURI path served (``/a/b/…``): deeper targets are 404 by the router.
MAX_PATH_SEGMENTS: Final = 8
#: A site's own handler (its log, its subscriptions) gets this long per POST; then 503. Far below
#: the connection's handler deadline, so one site with a slow log cannot hold the connection all
#: the fleet's notifications share.
_SITE_ROUTE_TIMEOUT_S: Final = 2.0
#: Distinct unknown paths remembered (and said on the console once each); beyond, only counted.
_UNKNOWN_PATHS_KEPT: Final = 64

#: The handler of the site a path is the notificationURI of; None: no site's.
RouteOf = Callable[[str], Handler | None]


class FleetListenerStatistics(msgspec.Struct, frozen=True):
    """Counts since the listener was built: connections served and turned away (over the fleet's
    ``max_connections``), POSTs routed to a site, POSTs to a path that is no site's, bodies refused
    as too large (before any site could be told), POSTs a site did not take in time."""

    connections: int
    turned_away: int
    routed: int
    unknown_paths: int
    too_large: int
    #: POSTs a site did not take within its route's deadline (answered 503).
    site_timeouts: int = 0


class FleetNotificationListener(BoundedListener):
    """See the module docstring."""

    def __init__(
        self,
        *,
        context: ssl.SSLContext,
        route_of: RouteOf,
        on_console: Callable[[str], None],
        profile: IdentityProfile = CORE_2030_5,
        max_connections: int = FLEET_MAX_CONNECTIONS,
        max_body_bytes: int = MAX_BODY_BYTES,
        connection_timeout_s: float = CONNECTION_TIMEOUT_S,
    ) -> None:
        """``context``: a server context with the aggregator certificate and the CA the utility's
        client certificate must chain to. ``route_of(path)``: the handler of the site whose
        notificationURI has that path, looked up per request (a site restarted since is served by
        its new gateway)."""
        self._route_of = route_of
        self._on_console = on_console
        router: Router[Handler] = Router()
        # Every POST target reaches the dispatcher, so a path that is no site's is counted.
        for depth in range(1, MAX_PATH_SEGMENTS + 1):
            router.add("POST", "/" + "/".join(f"{{p{i}}}" for i in range(depth)), self.handle)
        super().__init__(
            router,
            context=context,
            profile=profile,
            max_connections=max_connections,
            max_body_bytes=max_body_bytes,
            connection_timeout_s=connection_timeout_s,
            on_refused=self._too_large,
        )
        self._routed = 0
        self._unknown = 0
        self._too_large_count = 0
        self._site_timeouts = 0
        self._unknown_seen: set[str] = set()

    def statistics(self) -> FleetListenerStatistics:
        return FleetListenerStatistics(
            self._connections,
            self._turned_away,
            self._routed,
            self._unknown,
            self._too_large_count,
            self._site_timeouts,
        )

    async def _too_large(self, error: LinkError, peer: PeerInfo) -> None:
        self._too_large_count += 1
        logger.info("fleet notification refused (413) from %s: %s", peer.lfdi, error)

    async def handle(self, request: Request, peer: PeerInfo) -> Response:
        """Route one POST by its path to its site's handler; 404 for a path that is no site's."""
        path = request.target.partition("?")[0]
        handler = self._route_of(path)
        if handler is None:
            self._unknown += 1
            if path not in self._unknown_seen and len(self._unknown_seen) < _UNKNOWN_PATHS_KEPT:
                self._unknown_seen.add(path)
                self._on_console(
                    f"notifications: a POST to {path[:200]!r} (from LFDI {peer.lfdi}) is no "
                    "site's notificationURI; answered 404 (said once per path)"
                )
            return Response(
                404,
                (("content-type", "text/plain"),),
                f"no site's notificationURI is {path[:200]!r}\n".encode(),
            )
        self._routed += 1
        with anyio.move_on_after(_SITE_ROUTE_TIMEOUT_S):
            response: Response = await handler(request, peer)
            return response
        self._site_timeouts += 1
        logger.warning(
            "fleet notification to %s not handled within %.0f s; answered 503",
            path[:200],
            _SITE_ROUTE_TIMEOUT_S,
        )
        return Response(
            503,
            (("content-type", "text/plain"), ("retry-after", "10")),
            b"the site did not take the notification in time\n",
        )
