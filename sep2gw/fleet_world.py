"""A simulated fleet (issue 19 point 6): N sites under one aggregator certificate, one simulated
utility server, one virtual clock, in one trio loop — reproducible from a seed.

:func:`run_fleet_world` runs a real :class:`~sep2gw.fleet.Fleet` (one gateway per site, the shared
TLS context and single-flight GETs) against a :class:`~sep2gw.simserver.SimUtilityServer` that knows
the aggregator certificate, each site with its own simulated battery (``"direct"`` path by default:
no Modbus framing, cheap at 1,000 sites) and its own in-memory log. The same seed gives each site a
byte-identical log. A :class:`~sep2gw.invariants.Monitor` per site watches that site's log and the
requests that are that site's own (its ``/edev/{id}/…`` resources, its Responses and mirrors, and
everything a site on its own certificate sends); a violation stops the world and names the site.
Requests on resources the sites share (``/dcap``, ``/tm``, the EndDeviceList, ``/derp/…``) are one
request for several sites when they coalesce, so no one site's poll cadence is judged on them.

Site ``i`` is named ``site-{i:03d}``; the scenario's ``[fleet]`` says which sites have their own
device certificate and which devices fail (``SiteFaultSpec``).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import msgspec
import trio
import trio.testing

from actors.drivers.base import (
    ApplyReport,
    DerDriver,
    DriverError,
    Nameplate,
    Telemetry,
)
from actors.fleet_notifications import FleetListenerStatistics
from actors.hardware import HardwareConfig
from actors.pipe import pipe_connector, pipe_listener
from actors.site_restarts import SiteBackoff
from actors.supervisor import RestartPolicy
from events.der_model import Mode
from events.envelope import Recorded
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.replay import replay
from events.store import EventStore
from sep2gw.config import BatteryConfig, ServerConfig, TlsConfig
from sep2gw.fleet import Fleet, FleetOptions, site_seed
from sep2gw.fleet_config import (
    FleetConfig,
    FleetNotificationsConfig,
    FleetSection,
    SiteEntry,
    SiteIdentity,
    site_identities,
)
from sep2gw.gateway import Gateway
from sep2gw.invariants import Monitor, Violation, same_controls_state
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import SimBatteryDriver, direct_sunspec_driver
from sep2gw.sim.notification_routes import (
    FLEET_NOTIFICATION_HOST,
    FLEET_NOTIFICATION_URL,
    NotificationRoutes,
)
from sep2gw.simserver import Scenario, SimClock, SimUtilityServer
from sep2gw.simserver.notifier import NotificationAttempt
from sep2gw.simserver.scenario import SiteFaultSpec
from sep2gw.simserver.server import RecordedRequest
from sep2gw.status import SiteStatus
from sep2gw.trio_determinism import deterministic_trio
from sep2gw.world import DEFAULT_EPOCH, WorldResult, _Disk, default_duration_s
from statemachines.controls import CONTROLS_PROJECTION, ControlsState
from transport.sep2 import resources as r
from transport.tls import TlsMaterial

__all__ = [
    "FleetBattery",
    "FleetWorldResult",
    "SiteOutcome",
    "check_fleet",
    "check_fleet_expectations",
    "site_world",
    "run_fleet_world",
    "site_name",
]

#: How a fleet site reaches its battery: ``"direct"`` (default) the driver over the battery model;
#: ``"registers"`` the SunSpec driver on the register map in-process.
FleetBattery = Literal["direct", "registers"]

#: A fleet world's sites: name, LFDI, SFDI, NMI and PEN as a fleet file would give them.
_FLEET_NAME: Final = "sim-fleet"
_PEN: Final = 37244


def site_name(index: int) -> str:
    return f"site-{index:03d}"


@dataclass(slots=True)
class SiteOutcome:
    """One site of a finished fleet world."""

    name: str
    lfdi: str
    own_certificate: bool
    store: EventStore
    battery: SimBattery
    monitor: Monitor | None
    #: How many times the fleet started this site's gateway.
    starts: int = 0
    #: The controls actor's state at the end, msgspec JSON (empty: the site was down then).
    live_controls: bytes = b""
    #: The site's status at the end (``Fleet.statuses``; None: the world stopped first).
    status: SiteStatus | None = None

    def log_bytes(self) -> bytes:
        """The site's whole log as stored: what "byte-identical" compares."""
        return b"\n".join(
            msgspec.json.encode(
                (r.seq, r.stream, r.version, r.type, r.server_time, r.monotonic, r.hash.hex())
            )
            + r.body
            for r in self.store.read_raw()
        )


@dataclass(slots=True)
class FleetWorldResult:
    seed: int
    scenario: str
    seconds: float
    server: SimUtilityServer
    sites: dict[str, SiteOutcome]
    aggregator_lfdi: str
    #: The first invariant a site's monitor saw violated (the run stopped there): (site, violation).
    violation: tuple[str, Violation] | None = None
    #: GETs the sites sent through the shared single-flight table, and GETs they joined.
    shared_gets_sent: int = 0
    shared_gets_joined: int = 0
    stops: dict[str, list[str]] = field(default_factory=dict)
    #: The fleet listener's counts (``Fleet.notification_statistics``; None: notifications off).
    notification_statistics: FleetListenerStatistics | None = None
    #: The site a recorded request is that site's own (``None``: a request on shared resources).
    site_of: Callable[[RecordedRequest], str | None] = lambda q: None
    #: The sites a ``[fleet]`` fault hits (judged by the invariants only, not by ``[expect]``).
    faulty: frozenset[str] = frozenset()


class _FaultyDriver:
    """A site's driver with the scenario's faults of that site (``SiteFaultSpec``) on the device's
    clock; outside its windows it is the inner driver."""

    def __init__(
        self, inner: DerDriver, faults: list[SiteFaultSpec], start: float, now: Callable[[], float]
    ) -> None:
        self._inner = inner
        self._windows = [(start + f.at_s, start + f.at_s + f.duration_s, f.kind) for f in faults]
        self._now = now

    async def _fault(self, what: str) -> None:
        now = self._now()
        for begin, end, kind in self._windows:
            if begin <= now < end:
                if kind == "driver_fails":
                    raise DriverError(f"simulated: the site's device does not answer ({what})")
                if kind == "gateway_fails" and what == "telemetry":
                    raise RuntimeError(f"simulated: the site's driver broke ({what})")
                if kind == "gateway_fails":
                    return
                await anyio.sleep(end - now)  # driver_hangs: the caller's deadline cuts it

    def dispatchable_modes(self) -> frozenset[Mode]:
        return self._inner.dispatchable_modes()

    async def read_nameplate(self) -> Nameplate:
        await self._fault("nameplate")
        return await self._inner.read_nameplate()

    async def read_telemetry(self, *, now: float) -> Telemetry:
        await self._fault("telemetry")
        return await self._inner.read_telemetry(now=now)

    async def apply(
        self, limits: Any, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        await self._fault("apply")
        return await self._inner.apply(limits, now=now, reading=reading)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:  # optional driver methods (prices_changed, …)
        return getattr(self._inner, name)


def _own_pki(site: Path, name: str) -> Path:
    """A device PKI of its own for ``name`` (``sep2gw certs init``), made once per site folder."""
    folder = site / "pki-own" / name
    if not (folder / "device.pem").is_file():
        from sep2gw.cli import main

        with contextlib.redirect_stdout(io.StringIO()):
            if main(["certs", "init", str(folder)]) != 0:
                raise OSError(f"could not create a device PKI in {folder}")
    return folder


def _server_ca(site: Path, own: list[str]) -> Path:
    """The roots the simulated server trusts: the world's, and each own-certificate site's."""
    parts = [(site / "pki" / "ca.pem").read_bytes()]
    parts += [(site / "pki-own" / name / "ca.pem").read_bytes() for name in own]
    if not own:
        return site / "pki" / "ca.pem"
    path = site / "fleet-ca.pem"
    data = b"".join(parts)
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)
    return path


def fleet_config(scenario: Scenario, site: Path, names: list[str]) -> FleetConfig:
    """The fleet file a fleet world runs, as structs (a fleet of ``names``)."""
    own = set(scenario.fleet.own_certificate)
    pin = scenario.gateway.configured_pin(scenario.server)
    return FleetConfig(
        fleet=FleetSection(name=_FLEET_NAME, pen=_PEN),
        server=ServerConfig(
            url="https://utility.sim:443",
            pin=pin,
            profile="csip-aus",
            csipaus_versions=tuple(scenario.gateway.csipaus_versions),
        ),
        tls=TlsConfig(certificate="pki/device.pem", key="pki/device.key", ca="pki/ca.pem"),
        notifications=FleetNotificationsConfig(
            url=FLEET_NOTIFICATION_URL if scenario.fleet.notifications else ""
        ),
        sites=[
            SiteEntry(
                name=name,
                battery=BatteryConfig(driver="simulated"),
                nmi=scenario.server.nmi,
                certificate=f"pki-own/{name}/device.pem" if name in own else None,
                key=f"pki-own/{name}/device.key" if name in own else None,
            )
            for name in names
        ],
        base_dir=str(site),
    )


class _Router:
    """Hands each request the server recorded to the monitor of the site it is that site's own."""

    def __init__(
        self, server_state: Any, monitors: dict[str, Monitor], identities: list[SiteIdentity]
    ):
        self._state = server_state
        self._monitors = monitors
        self._by_lfdi = {int(i.lfdi, 16): i.name for i in identities}
        self._own_certificate = {i.lfdi.upper(): i.name for i in identities if i.own_certificate}

    def site_of(self, q: RecordedRequest) -> str | None:
        own = self._own_certificate.get((q.lfdi or "").upper())
        if own is not None:
            return own
        body = q.body
        if isinstance(body, r.Response):
            return self._by_lfdi.get(int(body.endDeviceLFDI))
        if isinstance(body, r.MirrorUsagePoint):
            return self._by_lfdi.get(int(body.deviceLFDI))
        parts = q.path.split("/")
        if len(parts) >= 3 and parts[1] == "edev" and parts[2].isdigit():
            devices = self._state.devices
            index = int(parts[2]) - 1
            return self._by_lfdi.get(devices[index].lfdi) if 0 <= index < len(devices) else None
        if len(parts) >= 3 and parts[1] == "mup" and parts[2].isdigit():
            mirrors = self._state.mirrors
            index = int(parts[2]) - 1
            return (
                self._by_lfdi.get(mirrors[index].owner_lfdi) if 0 <= index < len(mirrors) else None
            )
        return None

    def on_request(self, q: RecordedRequest) -> None:
        name = self.site_of(q)
        if name is not None and name in self._monitors:
            self._monitors[name].on_request(q)

    def on_action(self, at: float, action: Any) -> None:
        for monitor in self._monitors.values():
            monitor.on_action(at, action)

    def on_notification(self, attempt: NotificationAttempt) -> None:
        name = notified_site(attempt.uri)
        if name is not None and name in self._monitors:
            self._monitors[name].on_notification(attempt)


def notified_site(uri: str) -> str | None:
    """The fleet world's site a notificationURI is (``<FLEET_NOTIFICATION_URL>/<site>``)."""
    base = FLEET_NOTIFICATION_URL + "/"
    return uri[len(base) :] if uri.startswith(base) else None


async def _run(
    scenario: Scenario,
    seed: int,
    seconds: float,
    site: Path,
    names: list[str],
    monitor: bool,
    battery: FleetBattery,
    hardware: HardwareConfig | None,
    site_backoff: SiteBackoff | None,
    restart: RestartPolicy | None,
    keep_requests: bool,
    store_of: Callable[[str], EventStore] | None,
    at: Sequence[tuple[float, Callable[[], None]]],
) -> FleetWorldResult:
    epoch = float(scenario.server.epoch if scenario.server.epoch is not None else DEFAULT_EPOCH)
    clock = SimClock(epoch)
    device = SimClock(epoch)
    own = [n for n in names if n in set(scenario.fleet.own_certificate)]
    for name in own:
        _own_pki(site, name)
    config = fleet_config(scenario, site, names)
    identities = site_identities(config)
    by_name = {i.name: i for i in identities}
    aggregator_lfdi = _aggregator_lfdi(config)
    monitors: dict[str, Monitor] = {}
    router_holder: list[_Router] = []

    def on_request(q: RecordedRequest) -> None:
        router_holder[0].on_request(q)

    def on_action(at: float, action: Any) -> None:
        router_holder[0].on_action(at, action)

    def on_notification(attempt: NotificationAttempt) -> None:
        router_holder[0].on_notification(attempt)

    routes = NotificationRoutes()
    notifications = scenario.fleet.notifications

    server = SimUtilityServer(
        scenario,
        TlsMaterial(
            str(site / "pki" / "server.pem"),
            str(site / "pki" / "server.key"),
            str(_server_ca(site, own)),
        ),
        clock=clock,
        on_request=on_request if monitor else None,
        on_action=on_action if monitor else None,
        aggregators=(int(aggregator_lfdi, 16),),
        site_lfdis={i.name: int(i.lfdi, 16) for i in identities},
        keep_requests=keep_requests,
        seed=seed,
        notification_connector=routes.connect if notifications else None,
        on_notification=on_notification if monitor and notifications else None,
    )
    battery_params = BatteryParams(**scenario.battery.overrides())
    faults: dict[str, list[SiteFaultSpec]] = {}
    for fault in scenario.fleet.faults:
        faults.setdefault(fault.site, []).append(fault)
    outcomes: dict[str, SiteOutcome] = {}
    drivers: dict[str, DerDriver] = {}
    stores: dict[str, EventStore] = {}
    for name in names:
        sim = SimBattery(battery_params, SiteParams(), seed=site_seed(seed, name, 0), start_s=epoch)
        watcher = Monitor(scenario) if monitor else None
        if watcher is not None:
            monitors[name] = watcher
            for fault in faults.get(name, []):
                watcher.add_device_fault(fault.at_s, fault.duration_s)
        disk: EventStore
        if store_of is None:
            disk = MemoryEventStore(CATALOGUE)
            stores[name] = _Disk(disk, watcher.on_records if watcher is not None else _ignore)
        else:  # a benchmark's own log per site (an SQLite file); no monitor reads it
            disk = stores[name] = store_of(name)
        inner: DerDriver = (
            SimBatteryDriver(sim, clock=device.now)
            if battery == "direct"
            else direct_sunspec_driver(sim, clock=device.now)
        )
        drivers[name] = (
            _FaultyDriver(inner, faults[name], epoch, device.now) if name in faults else inner
        )
        outcomes[name] = SiteOutcome(
            name=name,
            lfdi=by_name[name].lfdi,
            own_certificate=by_name[name].own_certificate,
            store=disk,
            battery=sim,
            monitor=watcher,
        )
    router_holder.append(_Router(server.state, monitors, identities))
    http_send, http_accept = pipe_listener()

    def site_up(name: str, gateway: Gateway) -> None:
        watcher = monitors.get(name)
        if watcher is not None:
            watcher.gateway_up(gateway)

    def site_down(name: str) -> None:
        watcher = monitors.get(name)
        if watcher is not None and not finished:
            watcher.gateway_down(device.now())

    finished = False
    stops: dict[str, list[str]] = {}
    statuses: dict[str, SiteStatus | None] = {}
    async with trio.open_nursery() as nursery:
        for name, watcher in monitors.items():
            watcher.attach(
                server=server, battery=outcomes[name].battery, stop=nursery.cancel_scope.cancel
            )
        if notifications:  # else no task: fleet worlds without it schedule as they did
            await nursery.start(routes.serve)
        await nursery.start(server.serve_pipes, http_accept)
        fleet = Fleet(
            config,
            drivers,
            identities=identities,
            options=FleetOptions(
                wall_at_start=device.now(),
                seed=seed,
                stores=stores,
                http_connector=pipe_connector(http_send),
                hardware=hardware
                or HardwareConfig(sample_period_s=5.0, post_interval_s=scenario.server.post_rate_s),
                restart=restart,
                site_backoff=site_backoff,
                log_in_thread=False,
                on_console=lambda line: None,
                on_site_up=site_up,
                on_site_down=site_down,
            ),
        )
        async with fleet:
            if notifications:
                routes.attach(FLEET_NOTIFICATION_HOST, fleet)
            for offset, call in sorted(at, key=lambda item: item[0]):
                await device.sleep_until(epoch + offset)
                call()
            await device.sleep_until(epoch + seconds)
            statuses = fleet.statuses()
            for watcher in monitors.values():
                watcher.finish(device.now())
            finished = True
            routes.detach(FLEET_NOTIFICATION_HOST)
        nursery.cancel_scope.cancel()
    for name, run in fleet.sites.items():
        outcome = outcomes[name]
        outcome.status = statuses.get(name)
        outcome.starts = run.starts
        stops[name] = list(run.stops or [])
        gateway = run.gateway
        controls = None if gateway is None else gateway.actors.get("controls")
        core = None if controls is None else controls.core
        outcome.live_controls = b"" if core is None else msgspec.json.encode(core.state)
    violation = next(
        ((name, m.violation) for name, m in monitors.items() if m.violation is not None), None
    )
    statistics = fleet.shared_gets.statistics()
    listened = fleet.notification_statistics()
    return FleetWorldResult(
        seed=seed,
        scenario=scenario.name,
        seconds=seconds,
        server=server,
        sites=outcomes,
        aggregator_lfdi=aggregator_lfdi,
        violation=violation,
        shared_gets_sent=statistics.sent,
        shared_gets_joined=statistics.joined,
        stops=stops,
        site_of=router_holder[0].site_of,
        faulty=frozenset(faults),
        notification_statistics=listened,
    )


def _ignore(records: list[Recorded]) -> None:
    pass


def _aggregator_lfdi(config: FleetConfig) -> str:
    from sep2gw.fleet_config import _certificate_lfdi

    return _certificate_lfdi(config, config.tls.certificate, "tls.certificate")


def fleet_size(scenario: Scenario, sites: int | None) -> int:
    """How many sites a fleet world of ``scenario`` runs (``sites``, else the scenario's, else 3)."""
    if sites is not None:
        return sites
    return scenario.fleet.sites or 3


def run_fleet_world(
    scenario: Scenario,
    *,
    seed: int,
    sites: int | None = None,
    site: Path,
    seconds: float | None = None,
    monitor: bool = True,
    battery: FleetBattery = "direct",
    hardware: HardwareConfig | None = None,
    site_backoff: SiteBackoff | None = None,
    restart: RestartPolicy | None = None,
    keep_requests: bool = True,
    store_of: Callable[[str], EventStore] | None = None,
    at: Sequence[tuple[float, Callable[[], None]]] = (),
    instruments: Sequence[trio.abc.Instrument] = (),
) -> FleetWorldResult:
    """Run ``scenario`` as a fleet of ``sites`` sites (default: the scenario's ``[fleet] sites``,
    else 3) for ``seconds`` (default: ``sep2gw.world.default_duration_s``) in a fresh trio loop on
    a virtual clock. ``site``: the folder of the world's PKI (``pki/``, as ``sep2gw run_world``
    uses; the aggregator certificate is its device certificate) and of own-certificate sites'
    PKIs (``pki-own/<name>/``, made on first use). ``monitor``: a per-site invariant monitor
    (``False`` for benchmarks). ``battery``: :data:`FleetBattery`. ``site_backoff``/``restart``:
    the fleet's per-site restart back-off and each gateway's supervisor policy.
    ``keep_requests=False``: the server keeps no record of requests (``result.server.requests``
    empty; the monitors still see each), for long runs of many sites (``benchmarks``).
    For ``benchmarks/fleet_bench.py``: ``store_of(name)`` each site's log instead of an in-memory
    one (with ``monitor=False``); ``at``, (seconds from the start, call) pairs called at those
    virtual instants while the sites run (a measured window's edges); ``instruments``, trio's."""
    if store_of is not None and monitor:
        raise ValueError("store_of: the per-site monitors read in-memory logs; pass monitor=False")
    if battery not in ("direct", "registers"):
        raise ValueError(f"battery: {battery!r} is not 'direct' or 'registers'")
    count = fleet_size(scenario, sites)
    if count < 1:
        raise ValueError(f"sites: {count} — a fleet world needs at least one site")
    names = [site_name(i) for i in range(count)]
    duration = seconds if seconds is not None else default_duration_s(scenario)
    with deterministic_trio(seed):
        result: FleetWorldResult = trio.run(
            _run,
            scenario,
            seed,
            duration,
            site,
            names,
            monitor,
            battery,
            hardware,
            site_backoff,
            restart,
            keep_requests,
            store_of,
            at,
            clock=trio.testing.MockClock(autojump_threshold=0),
            instruments=list(instruments),
        )
    return result


def site_world(result: FleetWorldResult, name: str) -> WorldResult:
    """One site of a fleet world as a single-site :class:`~sep2gw.world.WorldResult`: its log,
    battery and monitor, and the server as that site saw it (its own requests and the shared
    ones; other sites' Responses, mirrors and EndDevice resources left out), so the single-site
    judges (``sep2gw.expect.check_expectations``) apply per site."""
    outcome = result.sites[name]
    view = copy.copy(result.server)
    view.requests = [q for q in result.server.requests if result.site_of(q) in (name, None)]
    if result.notification_statistics is not None:
        # Notifications as this site saw them: its own notificationURI's attempts, and the
        # subscriptions its EndDevice holds (a refusal names no site: every site sees it).
        held = _subscriptions_of(result, name)
        view.notifier = copy.copy(result.server.notifier)
        view.notifier.attempts = [
            a for a in result.server.notifier.attempts if notified_site(a.uri) == name
        ]
        view.state = copy.copy(result.server.state)
        view.state.subscription_audit = [
            a
            for a in result.server.state.subscription_audit
            if (a.subscription in held) or (a.subscription is None)
        ]
    return WorldResult(
        seed=result.seed,
        scenario=result.scenario,
        seconds=result.seconds,
        store=outcome.store,
        server=view,
        live_controls=outcome.live_controls,
        battery=outcome.battery,
        boots=outcome.starts,
        violation=None,
        monitor=outcome.monitor,
    )


def _subscriptions_of(result: FleetWorldResult, name: str) -> set[int]:
    """The ids of the subscriptions site ``name``'s EndDevice was given (the Locations
    ``/edev/{id}/sub/{n}`` the server answered its POSTs with)."""
    lfdi = int(result.sites[name].lfdi, 16)
    devices = {str(d.id) for d in result.server.state.devices if d.lfdi == lfdi}
    held: set[int] = set()
    for q in result.server.requests:
        parts = (q.location or "").split("/")
        if q.method == "POST" and len(parts) == 5 and parts[1:4:2] == ["edev", "sub"]:
            if parts[2] in devices and parts[4].isdigit():
                held.add(int(parts[4]))
    return held


def check_fleet_expectations(
    scenario: Scenario, result: FleetWorldResult
) -> list[tuple[str, Violation]]:
    """The scenario's ``[expect]`` judged for every site a ``[fleet]`` fault leaves alone (an
    expectation describes a healthy site; a faulty one is judged by the invariants)."""
    from sep2gw.expect import check_expectations

    found: list[tuple[str, Violation]] = []
    for name in result.sites:
        if name not in result.faulty:
            found += [(name, v) for v in check_expectations(scenario, site_world(result, name))]
    return found


def check_fleet(result: FleetWorldResult) -> list[tuple[str, Violation]]:
    """Invariants over a finished fleet world, per site: the monitor's first violation, then each
    site's log verifying, its fold equal to its live controls state, and no Response accepted
    twice for one EndDevice."""
    found: list[tuple[str, Violation]] = [] if result.violation is None else [result.violation]
    for name, outcome in result.sites.items():
        report = outcome.store.verify()
        if not report.ok:
            found.append((name, Violation(invariant="log verifies", detail=report.describe())))
        replayed, _ = replay(outcome.store, CONTROLS_PROJECTION)
        if outcome.live_controls and not same_controls_state(
            msgspec.json.decode(outcome.live_controls, type=ControlsState), replayed
        ):
            found.append(
                (
                    name,
                    Violation(invariant="replay equals live state", detail="controls differ"),
                )
            )
    by_lfdi = {o.lfdi.upper(): name for name, o in result.sites.items()}
    for mrid, status, lfdi in result.server.duplicate_responses():
        found.append(
            (
                by_lfdi.get(lfdi.upper(), lfdi),
                Violation(
                    invariant="no duplicate responses",
                    detail=f"Response {status} for mRID {mrid:032X} accepted twice",
                ),
            )
        )
    return found
