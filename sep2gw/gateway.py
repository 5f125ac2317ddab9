"""The composition root: a running gateway from a configuration and a DER driver.

    async with Gateway(config, driver) as gateway:   # inside an asyncio (or trio) application
        ...                                           # it runs until the block exits
    await run_gateway(config)                         # or run it until cancelled

Every actor is built here and nowhere else. The actors of one gateway form one unit under the
supervisor: if any of them fails, all are rebuilt from the log (their state is the log's fold) after
a bounded back-off, which is simpler and safer than restarting one actor whose peers hold streams to
the old instance.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from actors.checkpoint import CheckpointActor
from actors.clock import Clock
from actors.controls import ControlsActor
from actors.der_status import DerStatusActor
from actors.drivers.base import DerDriver
from actors.drivers.composite import CompositeDriver, DerMember
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareActor, HardwareConfig
from actors.https import Handler, HttpsClient, PeerInfo
from actors.link import Link
from actors.log_writer import LogWriter
from actors.mailbox import Latest, Watch
from actors.messages import (
    ApplyLimits,
    ControlsInput,
    ControlsNews,
    DerSnapshot,
    DerStatusTarget,
    DeviceStatus,
    SendResponse,
    TariffLinks,
)
from actors.mirror import MAX_BACKLOG, POSTED_TAG, TELEMETRY_TAG, DerMirrorActor, MirrorActor
from actors.pricing import PricingActor
from actors.registration import Identity, MirrorTargets, RegistrationActor, WalkSettings
from actors.responder import ResponderActor
from actors.rng import RandomSource
from actors.shared_gets import CoalescingClient, SharedGets
from actors.subscriptions import PollPrompts, SubscriptionActor, SubscriptionTargets
from actors.supervisor import ActorSpec, RestartPolicy, Supervisor, SupervisorGaveUp
from events.base import Event, tag_of
from events.envelope import Append, Recorded
from events.errors import LogFull
from events.log_events import LOG_EVENT_TYPES, PreviousLogSetAside
from events.log_lock import LogHolder, LogLock
from events.pricing_events import PricesInForce
from events.registry import CATALOGUE
from events.runtime_events import RUNTIME_STREAM, ActorFailed, GatewayStarted, GatewayStopped
from events.sqlite_store import SqliteEventStore
from events.store import EventStore
from events.telemetry import IntervalSummary
from sep2gw import __version__
from sep2gw.config import (
    BatteryConfig,
    Config,
    ConfigError,
    der_keys,
    is_loopback,
    parse_listen,
)
from sep2gw.logtrust import CHECKPOINT_EVERY_S, DeviceSigner, set_aside, verify_for_start
from sep2gw.preflight import load_key_password
from sep2gw.profiles import Profile, allowed_versions, profile_named
from sep2gw.record_log import RecordLog
from sep2gw.status import SiteStatus, evolve, status_of_store
from statemachines.controls import CONTROLS_PROJECTION, CoreConfig
from statemachines.polling import POLL_PROJECTION
from statemachines.registration import IN_BAND_PROJECTION, RegistrationConfig
from statemachines.subscriptions import SubscriptionSettings
from transport.http.messages import Request, Response
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der, load_pem_chain, load_private_key
from transport.tls import TlsMaterial, client_context, server_context

if TYPE_CHECKING:
    from actors.http_endpoint import HttpEndpoint
    from actors.notifications import NotificationListener

__all__ = ["Gateway", "GatewayOptions", "composite_from_config", "run_gateway"]

logger = logging.getLogger(__name__)

Connector = Callable[[], Awaitable[anyio.abc.ByteStream]]


class GatewayOptions:
    """What an embedding application, a simulation or a test may replace.

    ``wall_at_start``/``seed``: a reproducible clock anchor and random source. ``store``: a log
    other than the configured file (simulations use the in-memory store). ``http_connector``:
    reach the server through a pipe instead of TCP. ``hardware``: control and sampling periods.
    ``log_in_thread``: the log file's commits and the start-up verification run in a worker thread
    (the default for a file, so the event loop never waits on the disk); tests on trio's autojump
    clock turn it off, because that clock jumps ahead while a thread works. ``on_alarm``: where
    an alarm line goes (the log short of space or full, issue 16 point 5): standard error unless
    replaced. ``detail_commit_s``: commit telemetry detail at most this often rather than with
    every sample (``actors.log_writer``; 0, the default: with every sample); a fleet of sites sets
    it (decision 0022f). ``log_cache_kib``: bound SQLite's page cache for the configured log file
    (default: SQLite's, ~2 MiB); a fleet, with a log per site open, sets it (decision 0022f).

    What a fleet (``sep2gw.fleet``, aggregator mode) hands each of its sites: ``lfdi``, the site's
    EndDevice LFDI when it is not the certificate's (a site on the aggregator certificate; its SFDI
    follows from it); ``tls_context``, the client context shared by the sites on one certificate
    (instead of one loaded from ``[tls]`` per site); ``shared_gets``, the fleet's single-flight
    table for identical GETs (``actors.shared_gets``); ``start_records``, (stream, record) pairs
    appended right after ``runtime.gateway_started.v1`` at each start (the site's
    ``fleet.site_identity.v1``); ``listener_context``, the notification listener's server context
    shared by the sites of one fleet listener (decision 0022g: the fleet serves every site's
    notificationURI on one socket with the aggregator certificate, instead of one loaded from
    ``[tls]`` per site).
    """

    def __init__(
        self,
        *,
        wall_at_start: float | None = None,
        seed: int | None = None,
        store: EventStore | None = None,
        http_connector: Connector | None = None,
        hardware: HardwareConfig | None = None,
        restart: RestartPolicy | None = None,
        log_in_thread: bool = True,
        on_alarm: Callable[[str], None] | None = None,
        lfdi: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        shared_gets: SharedGets | None = None,
        start_records: Sequence[tuple[str, Event]] = (),
        listener_context: ssl.SSLContext | None = None,
        detail_commit_s: float = 0.0,
        log_cache_kib: int | None = None,
    ) -> None:
        self.lfdi = lfdi
        self.listener_context = listener_context
        self.tls_context = tls_context
        self.shared_gets = shared_gets
        self.start_records = tuple(start_records)
        self.wall_at_start = wall_at_start
        self.detail_commit_s = detail_commit_s
        self.log_cache_kib = log_cache_kib
        self.seed = seed
        self.store = store
        self.http_connector = http_connector
        self.hardware = hardware
        self.log_in_thread = log_in_thread
        self.on_alarm = on_alarm or _console_alarm
        self.restart = restart or RestartPolicy(
            max_restarts=10, window_s=600, backoff_initial_s=1, backoff_max_s=60
        )


def driver_from_config(config: Config) -> DerDriver:
    """The SunSpec driver of a one-DER site; a :class:`CompositeDriver` over one per DER of a
    site that lists several (``[[ders]]``)."""
    keyed = der_keys(config)
    drivers = [_sunspec_driver(key, der) for key, der in keyed]
    if config.battery is not None:
        return drivers[0]
    return CompositeDriver(
        [
            DerMember(name=der.name, role=der.role, driver=driver)
            for der, driver in zip(config.ders, drivers, strict=True)
        ]
    )


def composite_from_config(config: Config, drivers: Mapping[str, DerDriver]) -> CompositeDriver:
    """An embedding application's drivers, one per configured DER by name (``[[ders]]``),
    composed into the site (names and roles from the configuration)."""
    ders = config.der_list()
    missing = [d.name for d in ders if d.name not in drivers]
    unknown = sorted(set(drivers) - {d.name for d in ders})
    if missing or unknown:
        raise ValueError(
            "one driver per configured DER: "
            + "; ".join(
                ([f"no driver for {', '.join(missing)}"] if missing else [])
                + ([f"no DER configured as {', '.join(unknown)}"] if unknown else [])
            )
        )
    return CompositeDriver(
        [DerMember(name=d.name, role=d.role, driver=drivers[d.name]) for d in ders]
    )


def _sunspec_driver(key: str, battery: BatteryConfig) -> DerDriver:
    if battery.driver == "sunspec":
        assert battery.host is not None
        client = ModbusTcpClient(
            battery.host, battery.port, unit_id=battery.unit_id, timeout_s=battery.timeout_s
        )
        return SunSpecDriver(client)
    raise ValueError(
        f"{key}.driver {battery.driver!r} needs a driver object from the embedding application "
        "(Gateway(config, driver=...))"
    )


class _Unit:
    """One generation of the gateway's actors, wired together (rebuilt whole on failure)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        g = self.gateway
        config, profile = g.config, g.profile
        offload = isinstance(g.store, SqliteEventStore) and g.options.log_in_thread
        log_alarm: Latest[int] = Latest()
        short_of_space = 0

        def on_log_alarm(line: str) -> None:
            # The writer's change of mode: said on the console, and counted to the registration
            # actor, which reports each time to the server beside the DER's alarms (§2.9).
            nonlocal short_of_space
            g.options.on_alarm(line)
            if log.degraded:
                short_of_space += 1
                log_alarm.put(short_of_space)

        log = LogWriter(
            g.store,
            offload=offload,
            inline_when_idle=not offload,
            on_alarm=on_log_alarm,
            on_records=g.observe,
            detail_commit_s=g.options.detail_commit_s,
        )
        limits: Latest[ApplyLimits] = Latest()
        targets: Latest[MirrorTargets] = Latest()
        device_status: Latest[DeviceStatus] = Latest()
        status_targets: Latest[DerStatusTarget] = Latest()
        # A site of several DER (``[[ders]]``): each DER's status is PUT to its own server DER's
        # DERStatus by its own reporter, fed by the hardware actor (its reading) and the
        # registration actor (its href).
        several = config.battery is None
        member_status = {d.name: Latest[DeviceStatus]() for d in config.ders} if several else {}
        member_targets = {d.name: Latest[DerStatusTarget]() for d in config.ders} if several else {}
        # ... and each DER's readings go to its own MirrorUsagePoint (the site's two unchanged).
        member_streams = {
            name: anyio.create_memory_object_stream[list[IntervalSummary]](16)
            for name in member_status
        }
        member_mirror_targets = {name: Latest[MirrorTargets]() for name in member_status}
        # The actors talk only by messages (never by calling each other): each mailbox has one
        # writer, and ``put`` never blocks, so two actors that command each other cannot deadlock.
        der: Latest[DerSnapshot] = Latest()  # hardware → registration, controls
        news: Latest[ControlsNews] = Latest()  # controls → registration
        tariff_links: Latest[TariffLinks] = Latest()  # registration → pricing
        to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](64)
        to_responder, responder_inbox = anyio.create_memory_object_stream[SendResponse](64)
        to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](16)
        reachable = to_controls.clone()  # link → controls: LinkState on each change
        url = urlsplit(config.server.url)
        client = (
            HttpsClient(
                url.hostname or "",
                url.port or 443,
                g.tls_context,
                request_timeout_s=config.server.request_timeout_s,
                connector=g.options.http_connector,
            )
            if g.options.shared_gets is None
            else CoalescingClient(
                url.hostname or "",
                url.port or 443,
                g.tls_context,
                shared=g.options.shared_gets,
                identity=g.certificate_lfdi,
                request_timeout_s=config.server.request_timeout_s,
                connector=g.options.http_connector,
            )
        )
        link = Link(
            client,
            clock=g.clock,
            reachability=reachable,
            versions=allowed_versions(profile, config.server.csipaus_versions),
            log=log,
            rng=g.rng.fork("link"),
            shared=g.options.shared_gets,
        )
        controls = ControlsActor(
            config=CoreConfig(
                lfdi=g.lfdi,
                device_category=config.site.device_category,
                profile=profile.responses,
                # §4 rule 6: Response 2 only once the battery took the limits; 252 if it refused.
                confirm_writes=True,
            ),
            store=g.store,
            log=log,
            clock=g.clock,
            rng=g.rng.fork("controls"),
            inbox=controls_inbox,
            to_hardware=limits,
            to_responder=to_responder,
            to_registration=news,
            # §4 rule 11: setGradW is a fraction of setMaxW, the DERSettings value we PUT.
            der=der,
        )
        hardware_config = g.options.hardware or HardwareConfig(
            sample_period_s=config.rates.telemetry_sample_s,
            post_interval_s=config.rates.default_post_s,
        )
        hardware = HardwareActor(
            driver=g.driver,
            log=log,
            clock=g.clock,
            limits=limits,
            to_controls=to_controls.clone(),
            summaries=to_mirror,
            config=hardware_config,
            store=g.store,
            status=device_status,
            der=der,
            prices=g.prices,
            member_status=member_status,
            member_summaries={name: send for name, (send, _) in member_streams.items()},
        )
        der_status = DerStatusActor(
            link=link, log=log, clock=g.clock, device=device_status, targets=status_targets
        )
        member_reporters = {
            name: DerStatusActor(
                link=link,
                log=log,
                clock=g.clock,
                device=member_status[name],
                targets=member_targets[name],
            )
            for name in member_status
        }
        responder = ResponderActor(
            link=link, inbox=responder_inbox, report=to_controls.clone(), clock=g.clock
        )
        mirror = MirrorActor(
            link=link,
            log=log,
            clock=g.clock,
            lfdi=g.lfdi,
            pen=config.site.pen,
            profile=profile.identity,
            summaries=summaries,
            targets=targets,
            store=g.store,
            interval_s=hardware_config.post_interval_s,
        )
        subscription_targets: Latest[SubscriptionTargets] | None = None
        poll_prompts: Latest[PollPrompts] | None = None
        subscriptions: SubscriptionActor | None = None
        listener: NotificationListener | None = None
        if g.listener_context is not None:
            # Issue 19 point 3: only a gateway told where it is notified subscribes.
            from actors.notifications import NotificationListener

            notifications = config.notifications
            subscription_targets, poll_prompts = Latest(), Latest()
            subscriptions = SubscriptionActor(
                settings=SubscriptionSettings(
                    notification_uri=notifications.url,
                    max_subscriptions=notifications.max_subscriptions,
                    verify_period_s=notifications.verify_period_s,
                ),
                link=link,
                log=log,
                clock=g.clock,
                store=g.store,
                targets=subscription_targets,
                prompts=poll_prompts,
            )
            listener = NotificationListener(
                context=g.listener_context,
                path=urlsplit(notifications.url).path,
                log=log,
                clock=g.clock,
                sink=subscriptions,
                profile=profile.identity,
                max_connections=notifications.max_connections,
                max_body_bytes=notifications.max_body_bytes,
                connection_timeout_s=notifications.connection_timeout_s,
            )
        registration = RegistrationActor(
            identity=Identity(
                lfdi=g.lfdi, sfdi=g.sfdi, device_category=config.site.device_category
            ),
            walk=WalkSettings(
                dcap_path=config.server.dcap_path,
                well_known=(
                    profile.well_known
                    if config.server.well_known is None
                    else config.server.well_known
                ),
                register_in_band=config.server.register_in_band,
                nmi=config.site.nmi,
                default_post_s=config.rates.default_post_s,
                pen=config.site.pen,
                ders=tuple((d.name, d.href) for d in config.ders),
            ),
            config=RegistrationConfig(pin=config.server.pin, nmi=config.site.nmi),
            link=link,
            store=g.store,
            log=log,
            clock=g.clock,
            rng=g.rng.fork("registration"),
            to_controls=to_controls,
            der=der,
            news=news,
            mirror_targets=targets,
            der_status_target=status_targets,
            log_alarm=log_alarm,
            pricing_targets=tariff_links,
            subscription_targets=subscription_targets,
            poll_prompts=poll_prompts,
            member_status_targets=member_targets,
            member_mirror_targets=tuple(member_mirror_targets.values()),
        )
        member_mirrors = {
            name: DerMirrorActor(
                der=name,
                link=link,
                log=log,
                clock=g.clock,
                lfdi=g.lfdi,
                pen=config.site.pen,
                profile=profile.identity,
                summaries=receive,
                targets=member_mirror_targets[name],
                store=g.store,
                interval_s=hardware_config.post_interval_s,
            )
            for name, (_, receive) in member_streams.items()
        }
        pricing = PricingActor(
            link=link,
            log=log,
            clock=g.clock,
            rng=g.rng.fork("pricing"),
            store=g.store,
            lfdi=g.lfdi,
            profile=profile.responses,
            targets=tariff_links,
            prices=g.prices,
        )
        g.actors = {
            "controls": controls,
            "hardware": hardware,
            "responder": responder,
            "mirror": mirror,
            "der_status": der_status,
            **{f"der_status:{name}": reporter for name, reporter in member_reporters.items()},
            **{f"mirror:{name}": mirror for name, mirror in member_mirrors.items()},
            "registration": registration,
            "pricing": pricing,
            "link": link,
            "log": log,
        }
        if subscriptions is not None and listener is not None:
            g.actors["subscriptions"] = subscriptions
            g.actors["notifications"] = listener
        try:
            async with reachable, anyio.create_task_group() as group:
                await group.start(log.run)
                # Controls first, then hardware: what the log says is in force is applied before
                # the server is even asked for anything (PROTOCOL.md §4 rule 13).
                await group.start(controls.run)
                await group.start(hardware.run)
                await group.start(responder.run)
                await group.start(mirror.run)
                await group.start(der_status.run)
                for reporter in member_reporters.values():
                    await group.start(reporter.run)
                for member_mirror in member_mirrors.values():
                    await group.start(member_mirror.run)
                await group.start(pricing.run)
                if subscriptions is not None and listener is not None:
                    await group.start(subscriptions.run)
                    if config.notifications.listen:
                        g.notifications_port = await group.start(
                            _serve_notifications, listener, config.notifications.listen
                        )
                await group.start(registration.run)
                task_status.started()
        finally:
            # A connection handed in meanwhile is closed, not served by this generation's listener
            # (its log writer is gone); the next generation serves the next one.
            g.actors.pop("notifications", None)
            # On shutdown and before a rebuild: the next generation opens its own connection.
            with anyio.CancelScope(shield=True):
                await link.aclose()


class Gateway:
    """A running gateway; see the module docstring."""

    def __init__(
        self,
        config: Config,
        driver: DerDriver | None = None,
        *,
        options: GatewayOptions | None = None,
    ) -> None:
        self.config = config
        self.options = options or GatewayOptions()
        self.profile: Profile = profile_named(config.server.profile)
        #: A driver made here from the configuration is the gateway's to close; one handed in
        #: stays the embedding application's.
        self._owns_driver = driver is None
        self.driver = driver or driver_from_config(config)
        if len(config.ders) > 1 and not isinstance(self.driver, CompositeDriver):
            raise ConfigError(
                "ders",
                [
                    f"the configuration lists {len(config.ders)} DER: hand the gateway one "
                    "driver per DER composed by sep2gw.gateway.composite_from_config"
                ],
            )
        chain = load_pem_chain(
            config.path(config.tls.certificate).read_bytes(), source=config.tls.certificate
        )
        #: The LFDI of the certificate the gateway talks on (an aggregator's, in a fleet).
        self.certificate_lfdi = lfdi_from_der(certificate_der(chain[0]), self.profile.identity)
        #: The site's EndDevice identity: the certificate's, or the one a fleet gives the site.
        self.lfdi = self.options.lfdi or self.certificate_lfdi
        self.sfdi = sfdi_from_lfdi(self.lfdi)
        # A configured variable that is unset or empty is refused (PreflightFailed), never prompted.
        password = load_key_password(config, os.environ)
        self.tls_context: ssl.SSLContext = self.options.tls_context or client_context(
            TlsMaterial(
                str(config.path(config.tls.certificate)),
                str(config.path(config.tls.key)),
                str(config.path(config.tls.ca)),
                password,
            ),
            alpn=("h2", "http/1.1") if config.server.http2 else ("http/1.1",),
            extra_ciphers=tuple(config.tls.extra_ciphers),
        )
        self.log_path = Path(config.path(config.log.path))
        #: The configured log file is evidence and the gateway's own: locked for one writer for the
        #: gateway's life (a second gateway is refused at once, naming this one), verified before
        #: it is trusted, its head signed with the device key, closed when the gateway stops. A
        #: store handed in (a simulation's in-memory log) is none of these.
        self._evidence = self.options.store is None
        self._lock = (
            LogLock.acquire(
                self.log_path,
                LogHolder(
                    pid=os.getpid(),
                    started=Clock(wall_at_start=self.options.wall_at_start).server_time(),
                    host=socket.gethostname(),
                ),
            )
            if self._evidence
            else None
        )
        self._signer = (
            DeviceSigner(
                load_private_key(
                    config.path(config.tls.key).read_bytes(), password, source=config.tls.key
                ),
                certificate_der(chain[0]),
            )
            if self._evidence
            else None
        )
        #: The log; a configured file is opened by :meth:`run`, once it has been verified.
        self.store: EventStore
        if self.options.store is not None:
            self.store = self.options.store
        self.actors: dict[str, Any] = {}
        #: The status fold over every record written (sep2gw.status), and its readers' view.
        self._status = SiteStatus()
        self._status_watch: Watch[SiteStatus] = Watch(self._status)
        self._record_log = RecordLog()
        #: The port ``/metrics`` and ``/health`` are served on once running (None: not served).
        self.metrics_port: int | None = None
        #: Pricing → hardware (and the embedding runtime, by :meth:`prices_in_force`): the price in
        #: force per rate, as the log records it. Outlives a rebuild of the actors.
        self.prices: Latest[PricesInForce] = Latest()
        self._group: anyio.abc.TaskGroup | None = None
        #: Issue 19 point 3: the notification listener's TLS (our certificate as the server's, the
        #: utility's client certificate verified against the same CA); None: no subscriptions.
        self.listener_context: ssl.SSLContext | None = None
        if config.notifications.url:
            self.listener_context = self.options.listener_context or server_context(
                TlsMaterial(
                    str(config.path(config.tls.certificate)),
                    str(config.path(config.tls.key)),
                    str(config.path(config.tls.ca)),
                    password,
                ),
                alpn=("h2", "http/1.1"),
                extra_ciphers=tuple(config.tls.extra_ciphers),
            )
        #: The port the notification listener is served on once running (None: not served).
        self.notifications_port: int | None = None
        self.clock: Clock
        self.rng: RandomSource

    def _open_log(self) -> SqliteEventStore:
        return SqliteEventStore(
            self.log_path,
            CATALOGUE,
            max_bytes=self.config.log.max_bytes,
            cache_kib=self.options.log_cache_kib,
        )

    async def _open_trusted_log(self) -> SqliteEventStore:
        """Issue 16: a log is folded into decisions only if it verifies, and it is verified before
        the writer opens it (a writer's connection would checkpoint its WAL into it). One that does
        not verify is kept, untouched, under another name as evidence; a new log starts with a
        record naming it and what was wrong, and the gateway rediscovers everything from the
        server. A file that is not ours, or of a newer schema, is refused as before."""
        if not self.log_path.exists():
            return self._open_log()
        check = functools.partial(
            verify_for_start,
            self.log_path,
            CATALOGUE,
            certificate_der=None if self._signer is None else self._signer.certificate_der,
            folded=_start_folded_tags(),
            recent=(TELEMETRY_TAG, POSTED_TAG),
            recent_s=max(_RECENT_READS_S, (MAX_BACKLOG + 2) * self.config.rates.default_post_s),
        )
        if self.options.log_in_thread:
            verdict = await anyio.to_thread.run_sync(check)
        else:
            verdict = check()
        if verdict.ok:
            return self._open_log()
        kept = set_aside(self.log_path, now=self.clock.server_time())
        store = self._open_log()
        reading = self.clock.read()
        store.append(
            [
                Append(
                    stream=RUNTIME_STREAM,
                    events=(
                        PreviousLogSetAside(
                            kept_as=str(kept),
                            verified_records=verdict.records,
                            verified_head_hash=verdict.head.hash.hex(),
                            finding=verdict.finding or "",
                        ),
                    ),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )
        return store

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; a clean stop is recorded in the log."""
        self.clock = Clock(wall_at_start=self.options.wall_at_start)
        self.rng = RandomSource(self.options.seed)
        if self._evidence:
            self.store = await self._open_trusted_log()
        # What the log already says (the last run's polls, writes, alarms), before anything new.
        if isinstance(self.store, SqliteEventStore) and self.options.log_in_thread:
            self._status = await anyio.to_thread.run_sync(status_of_store, self.store)
        else:
            self._status = status_of_store(self.store)
        self._status_watch.put(self._status)
        logger.info(
            "gateway starting: server %s%s, LFDI %s, log %s",
            self.config.server.url,
            self.config.server.dcap_path,
            self.lfdi,
            self.log_path if self._evidence else "handed in by the embedding application",
        )
        self._append(
            GatewayStarted(software_version=__version__, rng_seed=self.rng.seed, clock_synced=False)
        )
        for stream, record in self.options.start_records:
            self._append(record, stream=stream)
        supervisor = Supervisor(
            [ActorSpec(name="gateway", factory=lambda: _Unit(self), policy=self.options.restart)],
            clock=self.clock,
            record=self._record_failure,
        )
        signer = self._signer
        checkpoints = (
            None
            if signer is None
            else CheckpointActor(
                store=self.store,
                clock=self.clock,
                sign=lambda head, with_certificate: signer.checkpoint(
                    head, with_certificate=with_certificate
                ),
                every_s=CHECKPOINT_EVERY_S,
            )
        )
        endpoint = self._metrics_endpoint()
        reason = "stopped"
        try:
            async with anyio.create_task_group() as group:
                if endpoint is not None:
                    # Outside the supervised unit: a scrape still answers while actors restart.
                    self.metrics_port = await group.start(self._serve_metrics, endpoint)
                if checkpoints is not None:
                    await group.start(checkpoints.run)
                await supervisor.run(task_status=task_status)
                group.cancel_scope.cancel()
        except* SupervisorGaveUp as gave_up:
            # The log's last word says why the gateway stopped, not "stopped" as for a Ctrl-C.
            reason = f"gave up: {_first_leaf(gave_up)}"
            raise
        except* Exception as failed:
            # An actor that failed while starting (before the supervisor restarts anything):
            # the gateway did not stop by request either.
            leaf = _first_leaf(failed)
            reason = f"failed: {type(leaf).__name__}: {leaf}"
            raise
        finally:
            self._append(GatewayStopped(reason=reason))  # synchronous: survives cancellation
            self._status_watch.close()  # state_changes() ends after the stop record
            if checkpoints is not None:
                checkpoints.checkpoint_now()  # the last records are signed too
            if self._evidence:
                self.store.close()
                assert self._lock is not None
                self._lock.release()  # another gateway may take the log now
            if self._owns_driver:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await self.driver.aclose()

    def _metrics_endpoint(self) -> HttpEndpoint | None:
        """The configured ``/metrics`` and ``/health`` endpoint (issue 20 point 2), or None."""
        metrics = self.config.metrics
        if not metrics.listen:
            return None
        # Only a gateway that serves metrics loads them (start-up budget, issue #7 scope 11).
        from actors.http_endpoint import HttpEndpoint
        from sep2gw.metrics import router

        address = parse_listen(metrics.listen)
        if not is_loopback(address.host):
            logger.warning(
                "metrics: serving on %s, not loopback (metrics.allow_remote): anyone who reaches "
                "the port reads the site's state",
                address,
            )

        def log_statistics() -> Any:
            writer = self.actors.get("log")
            return None if writer is None else writer.statistics()

        route = router(
            lambda: self._status,
            lambda: self.clock.server_time(),
            identity={
                "version": __version__,
                "lfdi": self.lfdi,
                "profile": self.config.server.profile,
                "nmi": self.config.site.nmi or "",
            },
            log=log_statistics,
        )
        return HttpEndpoint(address.host, address.port, route)

    async def _serve_metrics(
        self, endpoint: HttpEndpoint, *, task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            await endpoint.run(task_status=task_status)
        except OSError as exc:
            raise ConfigError(
                "metrics.listen",
                [f"cannot serve on {endpoint.host}:{endpoint.port}: {exc.strerror or exc}"],
            ) from None

    def _append(self, event: Event, *, stream: str = RUNTIME_STREAM) -> None:
        """Record the process's own story. A full log does not stop the gateway (issue 16 point
        5): the record is not written and the alarm line says so."""
        reading = self.clock.read()
        try:
            records = self.store.append(
                [
                    Append(
                        stream=stream,
                        events=(event,),
                        server_time=reading.server_time,
                        monotonic=reading.monotonic,
                    )
                ]
            )
        except LogFull as exc:
            self.options.on_alarm(f"not recorded ({type(event).__name__}): {exc}")
        else:
            self.observe(records)

    def observe(self, records: Sequence[Recorded]) -> None:
        """Fold records just made durable into the status (the log writer calls it; so does the
        gateway's own append): one source for ``status``, the metrics and ``state_changes``."""
        status = self._status
        for record in records:
            status = evolve(status, record)
        self._status = status
        self._status_watch.put(status)
        self._record_log.emit(records)

    @property
    def status(self) -> SiteStatus:
        """The status as of the newest record written (``sep2gw.status.SiteStatus``)."""
        return self._status

    def state_changes(self) -> AsyncIterator[SiteStatus]:
        """The status now, then each time records change it (issue 20 point 2)::

            async for status in gateway.state_changes():
                print(status.registration, status.comms, status.limits)

        Latest-value semantics: a consumer slower than the gateway sees only the newest status
        when it asks again, never a queue; it never holds the gateway up. Any number of consumers
        may follow at once. The iteration ends when the gateway stops, after the status that
        holds its stop record."""
        return self._status_watch.follow()

    async def _record_failure(self, event: ActorFailed) -> None:
        self._append(event)

    async def serve_notification_stream(self, stream: anyio.abc.ByteStream) -> None:
        """Serve one connection to the notification listener (issue 19 point 3): TLS server side
        with the gateway's certificate, requiring the utility's client certificate, then HTTP/1.1
        or h2 by ALPN. Simulated worlds hand in pipe streams; an embedding application may hand in
        connections it accepted itself. Closed at once when notifications are not configured or
        the gateway's actors are being rebuilt."""
        listener = self.actors.get("notifications")
        if listener is None:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
            return
        await listener.serve_connection(stream)

    def notification_route(self) -> tuple[str, Handler] | None:
        """``(path, handler)`` of this gateway's notifications (None: not configured), for one
        listener serving many sites (aggregator mode: a route per site's notificationURI path on
        one ``actors.https.HttpsServer``). The handler is the current generation's; while the
        actors are rebuilt it answers 503 with Retry-After (the server notifies again)."""
        if self.listener_context is None:
            return None

        async def handle(request: Request, peer: PeerInfo) -> Response:
            listener = self.actors.get("notifications")
            if listener is None:
                return Response(503, (("retry-after", "1"),))
            response: Response = await listener.handle(request, peer)
            return response

        return urlsplit(self.config.notifications.url).path, handle

    def prices_in_force(self) -> PricesInForce | None:
        """The utility's price in force for every rate it offers this site (IEEE 2030.5 Pricing),
        as the log records it; None until the pricing actor has read any. A battery runtime that
        decides when to charge reads it here (or through a driver's ``prices_changed``)."""
        return self.prices.peek()

    async def __aenter__(self) -> Gateway:
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


async def run_gateway(
    config: Config, driver: DerDriver | None = None, *, options: GatewayOptions | None = None
) -> None:
    """Run a gateway until cancelled (Ctrl-C, SIGTERM handled by the caller's loop)."""
    await Gateway(config, driver, options=options).run()


async def _serve_notifications(
    listener: NotificationListener,
    listen: str,
    *,
    task_status: TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
) -> None:
    address = parse_listen(listen)
    try:
        await listener.run(host=address.host, port=address.port, task_status=task_status)
    except OSError as exc:
        raise ConfigError(
            "notifications.listen",
            [f"cannot serve on {address}: {exc.strerror or exc}"],
        ) from None


#: How far back at least the start reads telemetry and posted readings (the mirror's backlog of
#: ``MAX_BACKLOG`` post intervals, the hardware's interval in progress), with a margin.
_RECENT_READS_S = 2 * 86400.0


def _start_folded_tags() -> frozenset[str] | None:
    """The tags a start folds over the whole log (the controls, poll and in-band registration
    folds; the log's own records), legacy tags included as replay reads them; None if a fold
    reads every type (then only a whole verification will do)."""
    types: list[type[Event]] = list(LOG_EVENT_TYPES)
    for projection in (CONTROLS_PROJECTION, POLL_PROJECTION, IN_BAND_PROJECTION):
        if projection.types is None:
            return None
        types.extend(projection.types)
    legacy = CATALOGUE.tags - {tag_of(t) for t in CATALOGUE.current_types}
    return frozenset({tag_of(t) for t in types} | legacy)


def _console_alarm(line: str) -> None:
    print(f"ALARM: {line}", file=sys.stderr, flush=True)


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first exception of a (possibly nested) group: what actually happened."""
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
