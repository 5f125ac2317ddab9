"""A simulated world: the gateway, the simulated utility server and the simulated battery in one
event loop on a virtual clock, reproducible from a seed (issue 8, first increment).

Everything talks over in-memory pipes (mutual TLS, HTTP and Modbus unchanged), time is trio's
``MockClock`` with autojump, and every source of randomness is seeded: the gateway's RandomSource,
the battery's load and PV, and trio's own scheduler (which shuffles tasks that wake together). With
the same site identity, the same seed gives a byte-identical log.

After the run, :func:`check` looks for violations of the protocol's invariants in what the utility
received and what the log recorded.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final, Literal, get_args

import msgspec
import trio
import trio.testing

from actors.drivers.base import DerDriver
from actors.drivers.composite import CompositeDriver, DerMember
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareConfig
from actors.pipe import pipe_connector, pipe_listener
from events.der_model import ResponseStatus
from events.envelope import Append, RawRecord, Recorded
from events.memory_store import MemoryEventStore
from events.pricing_events import PriceInForce
from events.registry import CATALOGUE
from events.replay import replay
from events.store import EventStore, Head, plan_append
from sep2gw.config import Config, parse_config
from sep2gw.gateway import Gateway, GatewayOptions
from sep2gw.invariants import Monitor, Violation, recovery_s, same_controls_state
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import SimBatteryDriver, direct_sunspec_driver
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.sim.multi_der import BATTERY_ONLY, SwitchableDriver
from sep2gw.sim.notification_routes import NOTIFICATION_HOST, NOTIFICATION_URL, NotificationRoutes
from sep2gw.simserver import (
    BatteryFault,
    CrashGateway,
    FailRequests,
    ModbusTimeout,
    OperatorCommand,
    Scenario,
    SimClock,
    SimUtilityServer,
    TlsFail,
    server_material,
)
from sep2gw.simserver.hostile import HostileUtilityServer
from sep2gw.simserver.scenario import DerDisconnect
from sep2gw.trio_determinism import deterministic_trio
from statemachines.controls import CONTROLS_PROJECTION, ControlsState
from statemachines.responses import legal_next
from transport.sep2 import resources as r

__all__ = [
    "DEFAULT_EPOCH",
    "BatteryPath",
    "Violation",
    "default_duration_s",
    "WorldResult",
    "boot_seed",
    "check",
    "run_world",
]

#: How the gateway reaches the simulated battery: ``"sunspec"`` (default) SunSpec over Modbus TCP
#: framing on an in-memory pipe, as on a site; ``"registers"`` the same SunSpec driver on the
#: device's register map in-process (no framing, no pipe); ``"direct"`` a driver over the battery
#: model itself (``sep2gw.sim.direct_driver``), for long runs (``benchmarks/sim_bench.py``); see
#: ARCHITECTURE.md. A ``modbus_timeout`` fault needs the ``"sunspec"`` path (there is no Modbus
#: server on the others); a ``battery_fault`` on the ``"direct"`` path trips the physics only
#: (the register map, which reports the trip and refuses writes, is not on that path).
BatteryPath = Literal["sunspec", "registers", "direct"]

#: 2025-11-26T00:00:00Z: worlds start at a fixed instant unless the scenario names one.
DEFAULT_EPOCH: Final = 1_764_115_200

_CONFIG = """
[server]
url = "https://utility.sim:443"
{pin}profile = "csip-aus"
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "battery.sim"
[rates]
default_post_s = {post}
[log]
path = "world.sep2gw"
"""


class WorldResult(msgspec.Struct, kw_only=True):
    seed: int
    scenario: str
    seconds: float
    store: EventStore
    server: SimUtilityServer
    #: The controls actor's state at the end, msgspec JSON (empty: no gateway was running then).
    live_controls: bytes
    battery: SimBattery | None = None
    boots: int = 1  # gateway starts (1 + the crashes that restarted it)
    #: The first invariant the continuous monitor saw violated (the run stopped there).
    violation: Violation | None = None
    monitor: Monitor | None = None

    def log_bytes(self) -> bytes:
        """The whole log as stored (bodies, times, hashes): what 'byte-identical' compares."""
        return b"\n".join(
            msgspec.json.encode(
                (r.seq, r.stream, r.version, r.type, r.server_time, r.monotonic, r.hash.hex())
            )
            + r.body
            for r in self.store.read_raw()
        )


def _config(site: Path, scenario: Scenario) -> Config:
    pin = scenario.gateway.configured_pin(scenario.server)
    text = _CONFIG.format(
        pin="" if pin is None else f"pin = {pin}\n", post=scenario.server.post_rate_s
    )
    versions = scenario.gateway.csipaus_versions
    if versions:
        text = text.replace(
            "[tls]", "csipaus_versions = [" + ", ".join(f'"{v}"' for v in versions) + "]\n[tls]"
        )
    if scenario.server.nmi is not None:
        text += f'[site]\nnmi = "{scenario.server.nmi}"\n'
    if scenario.server.subscriptions != "none":
        # The gateway's notification listener: reached through the world's NotificationRoutes, so
        # it names the URL only and listens on no socket.
        text += f'[notifications]\nurl = "{NOTIFICATION_URL}"\n'
    if scenario.batteries:
        # Several batteries behind the site meter: the gateway lists them as [[ders]].
        ders = "".join(
            f'[[ders]]\nname = "{name}"\ndriver = "sunspec"\nhost = "{name}.sim"\n'
            for name in _der_names(scenario)
        )
        text = text.replace('[battery]\ndriver = "sunspec"\nhost = "battery.sim"\n', ders)
    return parse_config(text, source=f"world of {scenario.name}", base_dir=site)


def _der_names(scenario: Scenario) -> list[str]:
    """The names of the site's DER in the gateway's configuration: ``battery``, ``battery-2``, …"""
    return ["battery"] + [f"battery-{n}" for n in range(2, len(scenario.batteries) + 2)]


class _Disk(EventStore):
    """One boot's view of the world's log: the gateway writes through it to the shared in-memory
    store (the "disk"), which outlives the process. :meth:`kill` is the SIGKILL instant: every
    append after it is lost (planned, so callers still get records, but never stored), which is
    what happens to what a log writer had not committed when its process dies."""

    def __init__(
        self, disk: MemoryEventStore, on_records: Callable[[list[Recorded]], None]
    ) -> None:
        self.disk = disk
        self.catalogue = disk.catalogue
        self.alive = True
        self._on_records = on_records

    def kill(self) -> None:
        self.alive = False

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        if not self.alive:
            return plan_append(
                appends, self.catalogue, self.disk.head(), self.disk.stream_version
            ).records
        records = self.disk.append(appends)
        self._on_records(records)
        return records

    def read(
        self,
        from_seq: int = 1,
        to_seq: int | None = None,
        *,
        stream: str | None = None,
        types: Iterable[str] | None = None,
    ) -> Iterator[Recorded]:
        return self.disk.read(from_seq, to_seq, stream=stream, types=types)

    def read_raw(self, from_seq: int = 1) -> Iterator[RawRecord]:
        return self.disk.read_raw(from_seq)

    def head(self) -> Head:
        return self.disk.head()

    def first_seq_since(self, server_time: float) -> int:
        return self.disk.first_seq_since(server_time)

    def stream_version(self, stream: str) -> int:
        return self.disk.stream_version(stream)

    def latest_snapshot(
        self, projection: str, *, at_or_before: int | None = None
    ) -> Recorded | None:
        return self.disk.latest_snapshot(projection, at_or_before=at_or_before)


def default_duration_s(scenario: Scenario) -> float:
    """How long a world runs when not told: to the scenario's last instant and a minute more —
    and, after its last fault that cuts the gateway off (``fail``, ``tls_fail``, ``crash``), for
    as long as the protocol's recovery may take (the walk's longest back-off, then a poll cycle:
    ``recovery_s``), so outcomes that follow recovery (the Responses owed) can be seen."""
    end = scenario.duration_s()
    cut_off = [
        a.at_s + (a.down_s if isinstance(a, CrashGateway) else a.duration_s)
        for a in scenario.actions
        if isinstance(a, FailRequests | TlsFail | CrashGateway)
    ]
    if cut_off:
        end = max(end, max(cut_off) + recovery_s(scenario.server.poll_rate_s))
    return end + 60


def boot_seed(seed: int, boot: int) -> int:
    """The gateway's RandomSource seed for its ``boot``-th start (0: the world's seed itself)."""
    return seed if boot == 0 else random.Random(f"{seed}:boot:{boot}").getrandbits(63)


async def _device_faults(
    scenario: Scenario, device: SimClock, start: float, modbus: SimModbusServer, sim: SimBattery
) -> None:
    """Carry out ``modbus_timeout`` and ``battery_fault`` windows and ``operator`` commands on the
    device's clock (world faults follow the device's time, which a ``clock_skew`` of the utility
    does not move). Overlapping windows of one kind nest: the fault lasts until the last of them
    ends."""
    changes: list[tuple[float, int, str, int]] = []  # (time, order, what, +1 start / -1 end)
    operator: dict[int, OperatorCommand] = {}
    for index, action in scenario.timeline():
        if isinstance(action, OperatorCommand):
            operator[index] = action
            changes.append((start + action.at_s, index, "operator", 0))
        if isinstance(action, ModbusTimeout | BatteryFault):
            what = "modbus" if isinstance(action, ModbusTimeout) else "battery"
            changes.append((start + action.at_s, index, what, +1))
            changes.append((start + action.at_s + action.duration_s, index, what, -1))
    depth = {"modbus": 0, "battery": 0}
    for at, index, what, delta in sorted(changes, key=lambda c: (c[0], -c[3], c[1])):
        await device.sleep_until(at)
        if what == "operator":
            sim.advance(device.now())  # the physics up to the command runs on the old state
            command = operator[index]
            sim.operator(inverter=command.inverter, connect=command.connect)
            continue
        depth[what] += delta
        if what == "modbus":
            modbus.faults.unresponsive = depth[what] > 0
        else:
            sim.advance(device.now())  # the physics up to the trip runs on the old state
            sim.tripped = depth[what] > 0


def _crashes(scenario: Scenario) -> list[CrashGateway]:
    return sorted(
        (a for a in scenario.actions if isinstance(a, CrashGateway)), key=lambda a: a.at_s
    )


async def _der_faults(
    scenario: Scenario, device: SimClock, start: float, site: Sequence[SimBattery], down: list[bool]
) -> None:
    """Carry out ``der_disconnect`` windows on the device's clock: the DER goes off the AC side
    and its controller stops answering (``down``), and both come back at the window's end."""
    changes: list[tuple[float, int, int, bool]] = []
    for index, action in scenario.timeline():
        if isinstance(action, DerDisconnect):
            changes.append((start + action.at_s, index, action.der - 1, True))
            changes.append((start + action.at_s + action.duration_s, index, action.der - 1, False))
    for at, _, number, going in sorted(changes):
        await device.sleep_until(at)
        site[0].advance(device.now())  # the physics up to the change runs on the old state
        site[number].operator(connect=not going)
        down[number] = going


def _flag(flags: list[bool], index: int) -> Callable[[], bool]:
    return lambda: flags[index]


def _site_driver(
    battery: BatteryPath,
    site: Sequence[SimBattery],
    device: SimClock,
    modbus_sends: Sequence[Any],
    names: Sequence[str],
    down: list[bool],
) -> DerDriver:
    """A site of several batteries: one driver per battery (each through the path asked for),
    each able to stop answering (``down``), composed as the configuration names them."""
    members = [
        DerMember(
            name=name,
            driver=SwitchableDriver(
                _driver(battery, sim, device, send),
                is_down=_flag(down, number),
            ),
        )
        for number, (name, sim, send) in enumerate(zip(names, site, modbus_sends, strict=True))
    ]
    return CompositeDriver(members)


def _driver(battery: BatteryPath, sim: SimBattery, device: SimClock, modbus_send: Any) -> DerDriver:
    """A new driver for one gateway boot (a restarted process opens its own connection)."""
    if battery == "direct":
        return SimBatteryDriver(sim, clock=device.now)
    if battery == "registers":
        return direct_sunspec_driver(sim, clock=device.now)
    return SunSpecDriver(ModbusTcpClient("battery.sim", 502, connector=pipe_connector(modbus_send)))


async def _run(
    scenario: Scenario,
    seed: int,
    seconds: float,
    site: Path,
    monitor: Monitor | None,
    progress: Callable[[float], None] | None,
    hardware: HardwareConfig | None,
    battery: BatteryPath,
) -> WorldResult:
    epoch = float(scenario.server.epoch if scenario.server.epoch is not None else DEFAULT_EPOCH)
    clock = SimClock(epoch)  # the utility's clock (a clock_skew fault steps it)
    device = SimClock(epoch)  # the device's: the battery's physics and the world's faults
    battery_params = BatteryParams(**scenario.battery.overrides())
    sim = SimBattery(battery_params, SiteParams(), seed=seed, start_s=epoch)
    # More batteries behind the same meter (issue 19 point 2): battery-only, metered by ``sim``.
    sim.shared_with = [
        SimBattery(BatteryParams(**extra.overrides()), BATTERY_ONLY, seed=seed + n, start_s=epoch)
        for n, extra in enumerate(scenario.batteries, start=1)
    ]
    site_batteries = [sim, *sim.shared_with]
    der_down = [False] * len(site_batteries)
    # A scenario with [[hostile]] windows gets the hostile server; every other the normal one.
    server_class = HostileUtilityServer if scenario.hostile else SimUtilityServer
    routes = NotificationRoutes()
    server = server_class(
        scenario,
        server_material(site / "pki"),
        clock=clock,
        on_request=None if monitor is None else monitor.on_request,
        on_action=None if monitor is None else monitor.on_action,
        seed=seed,
        notification_connector=routes.connect,
        on_notification=None if monitor is None else monitor.on_notification,
    )
    disk = MemoryEventStore(CATALOGUE)
    http_send, http_accept = pipe_listener()
    modbus_send, modbus_accept = pipe_listener()
    modbus = SimModbusServer(sim, clock=device.now)
    more_modbus = [
        (SimModbusServer(extra, clock=device.now), *pipe_listener()) for extra in sim.shared_with
    ]
    config = _config(site, scenario)

    def on_records(records: list[Recorded]) -> None:
        # Fed synchronously from the log's appends: no task of its own, so watching a world
        # (monitor, progress bar) never changes how trio schedules it.
        if monitor is not None:
            monitor.on_records(records)
        if progress is not None:
            progress(device.now())

    live = b""
    boots = 0
    async with trio.open_nursery() as nursery:
        if monitor is not None:
            monitor.attach(server=server, battery=sim, stop=nursery.cancel_scope.cancel)
            modbus.on_write = monitor.on_hardware_write
        if server.notifications_possible:  # else no task: older worlds schedule as they did
            await nursery.start(routes.serve)
        await nursery.start(server.serve_pipes, http_accept)
        if battery == "sunspec":
            await nursery.start(modbus.serve_pipes, modbus_accept)
            for server_of, _, accept in more_modbus:
                await nursery.start(server_of.serve_pipes, accept)
        nursery.start_soon(_device_faults, scenario, device, epoch, modbus, sim)
        if scenario.batteries:
            nursery.start_soon(_der_faults, scenario, device, epoch, site_batteries, der_down)
        end = epoch + seconds
        crashes = [c for c in _crashes(scenario) if c.at_s < seconds]
        up_at = epoch
        for boot in range(len(crashes) + 1):
            crash = crashes[boot] if boot < len(crashes) else None
            if crash is not None and epoch + crash.at_s < up_at:
                continue  # it would crash a gateway that is still down: nothing to kill
            view = _Disk(disk, on_records)
            driver = (
                _site_driver(
                    battery,
                    site_batteries,
                    device,
                    [modbus_send, *(send for _, send, _ in more_modbus)],
                    _der_names(scenario),
                    der_down,
                )
                if scenario.batteries
                else _driver(battery, sim, device, modbus_send)
            )
            options = GatewayOptions(
                wall_at_start=device.now(),
                seed=boot_seed(seed, boot),
                store=view,
                http_connector=pipe_connector(http_send),
                hardware=hardware
                or HardwareConfig(sample_period_s=5.0, post_interval_s=scenario.server.post_rate_s),
                # the gateway writes the namespace the simulated server serves (issue 18)
            )
            gateway = Gateway(config, driver, options=options)
            boots += 1
            async with gateway:
                routes.attach(NOTIFICATION_HOST, gateway)
                if monitor is not None:
                    monitor.gateway_up(gateway)
                stop_at = end if crash is None else epoch + crash.at_s
                await device.sleep_until(stop_at)
                if crash is None:
                    core = gateway.actors["controls"].core
                    live = b"" if core is None else msgspec.json.encode(core.state)
                else:
                    view.kill()  # SIGKILL: from this instant nothing more reaches the disk
                    if monitor is not None:
                        monitor.gateway_down(device.now())
                routes.detach(NOTIFICATION_HOST)
            with trio.CancelScope(shield=True):
                await driver.aclose()  # the dead process's sockets close with it
            if crash is not None:
                up_at = epoch + crash.at_s + crash.down_s
                await device.sleep_until(min(up_at, end))
                if up_at >= end:
                    break
        if monitor is not None:
            monitor.finish(device.now())
        nursery.cancel_scope.cancel()
    return WorldResult(
        seed=seed,
        scenario=scenario.name,
        seconds=seconds,
        store=disk,
        server=server,
        live_controls=live,
        battery=sim,
        boots=boots,
        violation=None if monitor is None else monitor.violation,
        monitor=monitor,
    )


def run_world(
    scenario: Scenario,
    *,
    seed: int,
    seconds: float | None = None,
    site: Path,
    monitor: bool | Monitor = True,
    progress: Callable[[float], None] | None = None,
    hardware: HardwareConfig | None = None,
    battery: BatteryPath = "sunspec",
    instruments: Sequence[trio.abc.Instrument] = (),
) -> WorldResult:
    """Run ``scenario`` for ``seconds`` (default: ``default_duration_s``) in a fresh trio loop.

    ``site`` holds the gateway's PKI (``pki/`` as ``sep2gw certs init`` writes it): certificates are
    signed with random nonces, so a world reuses one identity for its runs to be comparable.
    ``monitor``: check the invariants continuously (``sep2gw.invariants.Monitor``) and stop at the
    first violation (``result.violation``); ``False`` runs without (benchmarks). ``progress`` is
    called with the device's clock (epoch seconds) as the log grows (a progress bar).
    ``hardware``: the hardware actor's periods (default: 5 s samples, posts at the scenario's rate).
    ``battery``: how the gateway reaches the simulated battery (:data:`BatteryPath`).
    ``instruments``: trio instruments for the run (``benchmarks/hostile_bench.py`` times task
    steps with one).
    """
    if battery not in get_args(BatteryPath):
        raise ValueError(f"battery: {battery!r} is not one of {list(get_args(BatteryPath))}")
    if battery != "sunspec" and any(isinstance(a, ModbusTimeout) for a in scenario.actions):
        raise ValueError(
            f"battery: a modbus_timeout fault needs the 'sunspec' path, not {battery!r}"
        )
    duration = seconds if seconds is not None else default_duration_s(scenario)
    watcher = monitor if isinstance(monitor, Monitor) else Monitor(scenario) if monitor else None
    with deterministic_trio(seed):
        clock = trio.testing.MockClock(autojump_threshold=0)
        result: WorldResult = trio.run(
            _run,
            scenario,
            seed,
            duration,
            site,
            watcher,
            progress,
            hardware,
            battery,
            clock=clock,
            instruments=instruments,
        )
    return result


def check(result: WorldResult) -> list[Violation]:
    """Invariants over a finished world (PROTOCOL.md §4 rules 15 and 16, the log's integrity, replay);
    the continuous monitor's first violation, if any, comes first."""
    violations: list[Violation] = [] if result.violation is None else [result.violation]
    server = result.server
    if result.monitor is not None:
        # The monitor judged every Response as it was accepted, knowing what the gateway had
        # logged as acknowledged by then (a repeat after a lost answer is not a violation).
        return violations + _log_checks(result)
    for q in server.schema_invalid():
        violations.append(
            Violation(
                invariant="requests schema-valid",
                detail=f"{q.method} {q.path}: {q.schema_error}",
                at_s=q.time,
            )
        )
    for key in server.duplicate_responses():
        violations.append(
            Violation(
                invariant="no duplicate responses",
                detail=f"(mRID, status, LFDI) {key} accepted twice",
            )
        )
    mrids = {
        int(body.subject)
        for q in server.requests
        if q.method == "POST" and q.status == 201 and isinstance(body := q.body, r.Response)
    }
    for mrid in sorted(mrids):
        sent: list[ResponseStatus] = []
        for code in server.response_statuses(mrid):
            status = ResponseStatus(code)
            if not legal_next(sent, status):
                violations.append(
                    Violation(
                        invariant="legal response sequences",
                        detail=f"mRID {mrid:032X}: {code} after {[int(s) for s in sent]}",
                    )
                )
            sent.append(status)
    return violations + _log_checks(result)


#: Clock rounding between the server's whole seconds and the gateway's float clock.
_PRICE_SLACK_S: Final = 1.0


def price_checks(result: WorldResult) -> tuple[list[Violation], int]:
    """IEEE 2030.5 Pricing: every price the log recorded in force was one the server published for
    that rate, inside its period (randomisation bounds allowed), not cancelled before, with the
    server's blocks. Returns the violations and how many records were judged."""
    intervals = {
        interval.mrid: (tariff, interval)
        for tariff in result.server.state.tariffs
        for interval in tariff.intervals
    }
    violations: list[Violation] = []
    judged = 0
    for rec in result.store.read(types=("pricing.price_in_force.v1",)):
        event = rec.event
        if not isinstance(event, PriceInForce) or event.interval_mrid is None:
            continue
        judged += 1
        found = intervals.get(int(event.interval_mrid, 16))
        problem = None
        if found is None:
            problem = "the server never published it"
        else:
            tariff, iv = found
            rs, rd = iv.randomize_start or 0, iv.randomize_duration or 0
            earliest = iv.start + min(0, rs) - _PRICE_SLACK_S
            latest_end = iv.start + max(0, rs) + iv.duration + max(0, rd) + _PRICE_SLACK_S
            if f"{tariff.rate_mrid:032X}" != event.rate_mrid:
                problem = f"it is not an interval of rate {event.rate_mrid}"
            elif not earliest <= event.at_s < latest_end:
                problem = f"outside its period {iv.start} + {iv.duration} s"
            elif iv.cancelled_at is not None and iv.cancelled_at <= event.at_s - _PRICE_SLACK_S:
                problem = f"the server had cancelled it at {iv.cancelled_at}"
            elif tuple((b.start_value, b.price) for b in event.blocks) != iv.blocks:
                problem = f"blocks {event.blocks} are not the server's {iv.blocks}"
        if problem is not None:
            violations.append(
                Violation(
                    invariant="prices in force were the server's",
                    detail=f"record {rec.seq}: interval {event.interval_mrid} in force: {problem}",
                    at_s=event.at_s,
                )
            )
    return violations, judged


def _log_checks(result: WorldResult) -> list[Violation]:
    """The log verifies, and its fold equals the controls actor's state at the end."""
    violations: list[Violation] = []
    report = result.store.verify()
    if not report.ok:
        violations.append(Violation(invariant="log verifies", detail=report.describe()))
    violations += price_checks(result)[0]
    replayed, _ = replay(result.store, CONTROLS_PROJECTION)
    if result.live_controls and not same_controls_state(
        msgspec.json.decode(result.live_controls, type=ControlsState), replayed
    ):
        violations.append(
            Violation(invariant="replay equals live state", detail="controls state differs")
        )
    return violations
