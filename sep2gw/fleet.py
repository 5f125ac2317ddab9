"""Aggregator mode (issue 19 point 1): many sites (EndDevices) in one process.

    fleet = Fleet(load_fleet_config("fleet.toml"))     # or drivers={"site-a": driver, ...}
    await fleet.run()                                   # until cancelled, or:
    async with Fleet(config, drivers) as fleet:         # inside an asyncio (or trio) application
        print(fleet.statuses())                         # each site's status (sep2gw.status)

The unit stays the single-site :class:`~sep2gw.gateway.Gateway`: a fleet runs one per site in one
task group (decision 0022a). What the sites share is what one aggregator has once — the TLS client
context of the aggregator certificate, the process, and the single-flight table of identical GETs
(:mod:`actors.shared_gets`: discovery once) — never their state: each site has its own log
(``<log.dir>/<name>.sep2gw``, beginning with ``fleet.site_identity.v1``), actors, driver,
connection and decisions. A site whose gateway gives up (or cannot start) is recorded in its own
log, said on the console, and started again after a bounded back-off while the others run
(:mod:`actors.site_restarts`); a site's hung driver or slow answers wait in that site's tasks only.

Notifications (decision 0022g): with ``[notifications] url`` each site subscribes with its own
notificationURI ``<url>/<site name>``, and the fleet runs ONE listener for all of them
(:class:`actors.fleet_notifications.FleetNotificationListener`: one socket on ``listen``, mutual TLS
with the aggregator certificate) that routes each POST by its path to its site's current gateway
(``Gateway.notification_route()``); worlds hand it connections with
:meth:`Fleet.serve_notification_stream`.
"""

from __future__ import annotations

import hashlib
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from actors.clock import Clock
from actors.drivers.base import DerDriver
from actors.fleet_notifications import FleetListenerStatistics, FleetNotificationListener
from actors.hardware import HardwareConfig
from actors.https import Handler, PeerInfo, serve_accepted
from actors.shared_gets import SharedGets
from actors.site_restarts import SiteBackoff, keep_site_running
from actors.supervisor import RestartPolicy
from events.fleet_events import FLEET_STREAM, SiteIdentityRecorded
from events.store import EventStore
from sep2gw.config import ConfigError, parse_listen
from sep2gw.fleet_config import FleetConfig, SiteIdentity, site_identities
from sep2gw.gateway import Connector, Gateway, GatewayOptions
from sep2gw.preflight import tls_key_password
from sep2gw.profiles import profile_named
from sep2gw.status import SiteStatus
from transport.http.messages import Request, Response
from transport.identity import lfdi_from_der
from transport.pki import certificate_der, load_pem_chain
from transport.tls import TlsMaterial, client_context, server_context

__all__ = ["Fleet", "FleetOptions", "SiteRun", "site_seed"]


class FleetOptions:
    """What a simulation, a test or an embedding application may replace (see
    :class:`~sep2gw.gateway.GatewayOptions`, whose fields these are per site): ``stores`` a log per
    site name instead of the files; ``http_connector`` the way to the server; ``seed`` the fleet's
    seed, from which each site's is derived (:func:`site_seed`); ``site_backoff`` how long a site
    that stopped waits before it starts again; ``on_console`` where a site's stop is said;
    ``detail_commit_s`` and ``log_cache_kib`` each site's (decision 0022f: telemetry detail
    committed in groups at most this often, the page cache of each site's open log bounded), on by
    default in a fleet because a commit per sample per site was most of a site's CPU and SQLite's
    default cache is ~2 MiB a log."""

    def __init__(
        self,
        *,
        wall_at_start: float | None = None,
        seed: int | None = None,
        stores: Mapping[str, EventStore] | None = None,
        http_connector: Connector | None = None,
        hardware: HardwareConfig | None = None,
        restart: RestartPolicy | None = None,
        site_backoff: SiteBackoff | None = None,
        log_in_thread: bool = True,
        on_console: Callable[[str], None] | None = None,
        tls_context: ssl.SSLContext | None = None,
        on_site_up: Callable[[str, Gateway], None] | None = None,
        on_site_down: Callable[[str], None] | None = None,
        detail_commit_s: float = 10.0,
        log_cache_kib: int | None = 64,
    ) -> None:
        self.wall_at_start = wall_at_start
        self.detail_commit_s = detail_commit_s
        self.log_cache_kib = log_cache_kib
        self.seed = seed
        self.stores = stores
        self.http_connector = http_connector
        self.hardware = hardware
        self.restart = restart
        self.site_backoff = site_backoff or SiteBackoff()
        self.log_in_thread = log_in_thread
        self.on_console = on_console or _console
        #: The aggregator's client context (default: made once from ``[tls]``).
        self.tls_context = tls_context
        #: Called with a site's name and gateway once its actors run, and with its name when that
        #: gateway stopped (a simulation's per-site invariant monitor follows them).
        self.on_site_up = on_site_up
        self.on_site_down = on_site_down


@dataclass(slots=True)
class SiteRun:
    """One site of a running fleet: who it is, its current gateway and how often it started."""

    index: int
    identity: SiteIdentity
    gateway: Gateway | None = None
    starts: int = 0
    #: Why each earlier start ended (the error), in order.
    stops: list[str] | None = None


def site_seed(seed: int, site: str, start: int) -> int:
    """The RandomSource seed of ``site``'s ``start``-th gateway (0: first) in a fleet seeded with
    ``seed``: independent per site and per start, the same for the same three."""
    digest = hashlib.sha256(f"{seed}:{site}:{start}".encode()).digest()
    return int.from_bytes(digest[:8]) >> 1


class Fleet:
    """A running fleet; see the module docstring."""

    def __init__(
        self,
        fleet: FleetConfig,
        drivers: Mapping[str, DerDriver] | None = None,
        *,
        options: FleetOptions | None = None,
        identities: list[SiteIdentity] | None = None,
    ) -> None:
        """``drivers``: a driver per site name (the others are made from each site's
        ``[sites.battery]``); ``identities``: the sites' identities when already computed
        (:func:`~sep2gw.fleet_config.site_identities`, which reads the certificates)."""
        self.config = fleet
        self.options = options or FleetOptions()
        self._drivers = dict(drivers or {})
        profile = profile_named(fleet.server.profile)
        chain = load_pem_chain(
            fleet.path(fleet.tls.certificate).read_bytes(), source=fleet.tls.certificate
        )
        #: The LFDI of the aggregator certificate.
        self.aggregator_lfdi = lfdi_from_der(certificate_der(chain[0]), profile.identity)
        # The fleet file's own [tls]: a site with its own certificate names its own key's
        # variable in its configuration, so site 0's is not necessarily the aggregator's.
        aggregator_key_password = tls_key_password(fleet.tls, os.environ)
        self.tls_context = self.options.tls_context or client_context(
            TlsMaterial(
                str(fleet.path(fleet.tls.certificate)),
                str(fleet.path(fleet.tls.key)),
                str(fleet.path(fleet.tls.ca)),
                aggregator_key_password,
            ),
            alpn=("h2", "http/1.1") if fleet.server.http2 else ("http/1.1",),
            extra_ciphers=tuple(fleet.tls.extra_ciphers),
        )
        #: Issue 19 point 3 for a fleet (decision 0022g): one listener for every site's
        #: notificationURI, with the aggregator certificate; None: notifications are off.
        self.listener_context: ssl.SSLContext | None = None
        self.notifications: FleetNotificationListener | None = None
        #: The port the fleet's notification listener is served on once running (None: not).
        self.notifications_port: int | None = None
        if fleet.notifications.url:
            self.listener_context = server_context(
                TlsMaterial(
                    str(fleet.path(fleet.tls.certificate)),
                    str(fleet.path(fleet.tls.key)),
                    str(fleet.path(fleet.tls.ca)),
                    aggregator_key_password,
                ),
                alpn=("h2", "http/1.1"),
                extra_ciphers=tuple(fleet.tls.extra_ciphers),
            )
            self.notifications = FleetNotificationListener(
                context=self.listener_context,
                route_of=self.notification_handler,
                on_console=self.options.on_console,
                profile=profile.identity,
                max_connections=fleet.notifications.max_connections,
                max_body_bytes=fleet.notifications.max_body_bytes,
                connection_timeout_s=fleet.notifications.connection_timeout_s,
            )
        self._fleet_clock: Clock | None = None
        self._group: anyio.abc.TaskGroup | None = None
        #: Identical GETs in flight at once go to the server once (discovery once).
        self.shared_gets = SharedGets()
        found = identities if identities is not None else site_identities(fleet)
        self.sites: dict[str, SiteRun] = {
            identity.name: SiteRun(index=i, identity=identity, stops=[])
            for i, identity in enumerate(found)
        }
        #: notificationURI path -> site name (each site's ``<url>/<name>``).
        self._site_of_path: dict[str, str] = {
            urlsplit(fleet.notifications.site_url(name)).path: name for name in self.sites
        }

    def notification_handler(self, path: str) -> Handler | None:
        """The handler of the site whose notificationURI has ``path`` (its current gateway's;
        answers 503 while that site is not running, so the utility notifies again); None: the path
        is no site's (decision 0022g)."""
        name = self._site_of_path.get(path)
        if name is None:
            return None
        gateway = self.sites[name].gateway
        route = None if gateway is None else gateway.notification_route()
        return _site_down if route is None else route[1]

    def notification_statistics(self) -> FleetListenerStatistics | None:
        """The fleet listener's counts (unknown paths among them); None: notifications off."""
        return None if self.notifications is None else self.notifications.statistics()

    async def serve_notification_stream(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one connection to the fleet's notification listener (TLS server side with the
        aggregator certificate, requiring the utility's client certificate, then HTTP/1.1 or h2 by
        ALPN), each POST routed by path to its site. Simulated worlds hand in pipe streams; closed
        at once when notifications are not configured."""
        if self.notifications is None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            return
        await self.notifications.serve_connection(stream)

    def _clock(self) -> Clock:
        assert self._fleet_clock is not None, "Fleet.run starts the sites"
        return self._fleet_clock

    def _options(self, run: SiteRun) -> GatewayOptions:
        o = self.options
        identity = run.identity
        record = SiteIdentityRecorded(
            fleet=self.config.fleet.name,
            site=identity.name,
            lfdi=identity.lfdi,
            sfdi=identity.sfdi,
            nmi=self.config.sites[run.index].nmi or "",
            aggregator_lfdi="" if identity.own_certificate else self.aggregator_lfdi,
            server_url=self.config.server.url,
        )
        return GatewayOptions(
            # a later start of the site begins at the fleet's present, not at the fleet's start
            wall_at_start=None if o.wall_at_start is None else self._clock().server_time(),
            seed=None if o.seed is None else site_seed(o.seed, identity.name, run.starts),
            store=None if o.stores is None else o.stores[identity.name],
            http_connector=o.http_connector,
            hardware=o.hardware,
            restart=o.restart,
            log_in_thread=o.log_in_thread,
            lfdi=None if identity.own_certificate else identity.lfdi,
            # a site on its own certificate makes its own context from its [tls]
            tls_context=None if identity.own_certificate else self.tls_context,
            shared_gets=self.shared_gets,
            start_records=((FLEET_STREAM, record),),
            listener_context=self.listener_context,
            detail_commit_s=o.detail_commit_s,
            log_cache_kib=o.log_cache_kib,
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run every site until cancelled. Started as soon as every site's task is (not once
        every site is up: a site that hangs on start must not hold the others)."""
        clock = Clock(wall_at_start=self.options.wall_at_start)
        self._fleet_clock = clock
        async with anyio.create_task_group() as group:
            listen = self.config.notifications.listen
            if self.notifications is not None and listen:
                self.notifications_port = await group.start(
                    _serve_notifications, self.notifications, listen
                )
            for run in self.sites.values():
                group.start_soon(self._keep, run, clock, name=f"site {run.identity.name}")
            task_status.started()

    def statuses(self) -> dict[str, SiteStatus | None]:
        """Each site's status as of its newest record (``sep2gw.status.SiteStatus``; None: not
        started yet)."""
        return {
            name: None if run.gateway is None else run.gateway.status
            for name, run in self.sites.items()
        }

    async def __aenter__(self) -> Fleet:
        group = anyio.create_task_group()
        await group.__aenter__()
        self._group = group
        try:
            await group.start(self.run)
        except BaseException:
            await group.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._group is not None
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(exc_type, exc, tb)

    async def _keep(self, run: SiteRun, clock: Clock) -> None:
        name = run.identity.name

        def stopped(error: BaseException, delay: float) -> None:
            text = _describe(error)
            assert run.stops is not None
            run.stops.append(text)
            self.options.on_console(f"site {name}: stopped ({text}); starting again in {delay:g} s")

        await keep_site_running(
            lambda: self._run_once(run),
            clock=clock,
            backoff=self.options.site_backoff,
            on_stopped=stopped,
        )

    async def _run_once(self, run: SiteRun) -> None:
        config = self.config.site_config(run.index)
        driver = self._drivers.get(run.identity.name)
        gateway = Gateway(config, driver, options=self._options(run))
        run.gateway = gateway
        run.starts += 1
        name = run.identity.name
        try:
            async with anyio.create_task_group() as group:
                await group.start(gateway.run)
                if self.options.on_site_up is not None:
                    self.options.on_site_up(name, gateway)
        finally:
            if self.options.on_site_down is not None:
                self.options.on_site_down(name)


async def _site_down(request: Request, peer: PeerInfo) -> Response:
    """A site whose gateway is not running (starting, or waiting to start again): the utility
    notifies again later, and the site's polls catch up meanwhile."""
    return Response(503, (("retry-after", "1"),))


async def _serve_notifications(
    listener: FleetNotificationListener,
    listen: str,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    address = parse_listen(listen)
    try:
        tcp = await anyio.create_tcp_listener(local_host=address.host, local_port=address.port)
    except OSError as exc:  # only the bind is configuration: a failed accept is not
        raise ConfigError(
            "notifications.listen", [f"cannot serve on {address}: {exc.strerror or exc}"]
        ) from None
    async with tcp:
        task_status.started(int(tcp.extra(anyio.abc.SocketAttribute.local_port)))
        # A failed accept (EMFILE with a thousand sites' connections open) pauses the listener
        # and is logged; it must not end it, nor — raised in Fleet.run's task group — every site.
        await serve_accepted(tcp, listener.serve_connection)


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


def _console(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
