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

import heapq
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal, get_args

import msgspec
import trio
import trio.testing

from actors.drivers.base import DerDriver
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareConfig
from actors.pipe import pipe_connector, pipe_listener
from events.der_model import ResponseStatus
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.replay import replay
from events.store import EventStore
from sep2gw.config import Config, parse_config
from sep2gw.gateway import Gateway, GatewayOptions
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import SimBatteryDriver, direct_sunspec_driver
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.simserver import Scenario, SimClock, SimUtilityServer, server_material
from statemachines.controls import CONTROLS_PROJECTION
from statemachines.responses import legal_next
from transport.sep2 import resources as r

__all__ = ["DEFAULT_EPOCH", "BatteryPath", "Violation", "WorldResult", "check", "run_world"]

#: How the gateway reaches the simulated battery: ``"sunspec"`` (default) SunSpec over Modbus TCP
#: framing on an in-memory pipe, as on a site; ``"registers"`` the same SunSpec driver on the
#: device's register map in-process (no framing, no pipe); ``"direct"`` a driver over the battery
#: model itself (``sep2gw.sim.direct_driver``), for long runs (``benchmarks/sim_bench.py``); see
#: ARCHITECTURE.md.
BatteryPath = Literal["sunspec", "registers", "direct"]

#: 2025-11-26T00:00:00Z: worlds start at a fixed instant unless the scenario names one.
DEFAULT_EPOCH: Final = 1_764_115_200

_CONFIG = """
[server]
url = "https://utility.sim:443"
pin = {pin}
profile = "csip-aus"
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


class Violation(msgspec.Struct, frozen=True, kw_only=True):
    invariant: str
    detail: str


class WorldResult(msgspec.Struct, kw_only=True):
    seed: int
    scenario: str
    seconds: float
    store: EventStore
    server: SimUtilityServer
    live_controls: bytes  # the controls actor's state at the end, msgspec JSON

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
    text = _CONFIG.format(pin=scenario.server.pin, post=scenario.server.post_rate_s)
    return parse_config(text, source=f"world of {scenario.name}", base_dir=site)


async def _run(
    scenario: Scenario,
    seed: int,
    seconds: float,
    site: Path,
    hardware: HardwareConfig | None,
    battery: BatteryPath,
) -> WorldResult:
    epoch = float(scenario.server.epoch if scenario.server.epoch is not None else DEFAULT_EPOCH)
    clock = SimClock(epoch)
    server = SimUtilityServer(scenario, server_material(site / "pki"), clock=clock)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=seed, start_s=epoch)
    store = MemoryEventStore(CATALOGUE)
    http_send, http_accept = pipe_listener()
    modbus_send, modbus_accept = pipe_listener()
    driver: DerDriver
    if battery == "direct":
        driver = SimBatteryDriver(sim, clock=clock.now)
    elif battery == "registers":
        driver = direct_sunspec_driver(sim, clock=clock.now)
    else:
        driver = SunSpecDriver(
            ModbusTcpClient("battery.sim", 502, connector=pipe_connector(modbus_send))
        )
    options = GatewayOptions(
        wall_at_start=epoch,
        seed=seed,
        store=store,
        http_connector=pipe_connector(http_send),
        hardware=hardware
        or HardwareConfig(sample_period_s=5.0, post_interval_s=scenario.server.post_rate_s),
    )
    live = b""
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_pipes, http_accept)
        if battery == "sunspec":
            await nursery.start(SimModbusServer(sim, clock=clock.now).serve_pipes, modbus_accept)
        gateway = Gateway(_config(site, scenario), driver, options=options)
        async with gateway:
            await clock.sleep_until(epoch + seconds)
            live = msgspec.json.encode(gateway.actors["controls"].core.state)
        nursery.cancel_scope.cancel()
    return WorldResult(
        seed=seed,
        scenario=scenario.name,
        seconds=seconds,
        store=store,
        server=server,
        live_controls=live,
    )


@contextmanager
def _deterministic_trio(seed: int) -> Iterator[None]:
    """Make trio's scheduling a function of the seed alone.

    trio orders the tasks that wake together as they were woken, which follows iteration over sets
    of tasks (cancel delivery), i.e. memory addresses; with its deterministic mode on (the one its
    Hypothesis plugin uses) it sorts them by creation order and shuffles them with a module-level
    generator, which is seeded here. It also breaks
    ties between equal deadlines by ``id()`` of the cancel scope, i.e. by memory address — under a
    virtual clock many tasks sleep until the very same instant, so that alone reorders a run. For
    the simulation the tie is broken by registration order instead (deterministic, because
    everything before it is).
    """
    run_module: Any = trio._core._run
    original = run_module.Deadlines.add
    order = itertools.count()

    def add(self: Any, deadline: float, cancel_scope: Any) -> None:
        heapq.heappush(self._heap, (deadline, next(order), cancel_scope))
        self._active += 1

    run_module.Deadlines.add = add
    shuffle_by_seed = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = True
    run_module._r.seed(seed)
    try:
        yield
    finally:
        run_module.Deadlines.add = original
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = shuffle_by_seed


def run_world(
    scenario: Scenario,
    *,
    seed: int,
    seconds: float | None = None,
    site: Path,
    hardware: HardwareConfig | None = None,
    battery: BatteryPath = "sunspec",
) -> WorldResult:
    """Run ``scenario`` for ``seconds`` (default: its duration plus a minute) in a fresh trio loop.

    ``site`` holds the gateway's PKI (``pki/`` as ``sep2gw certs init`` writes it): certificates are
    signed with random nonces, so a world reuses one identity for its runs to be comparable.
    ``hardware``: the hardware actor's periods (default: 5 s samples, posts at the scenario's rate).
    ``battery``: how the gateway reaches the simulated battery (:data:`BatteryPath`).
    """
    if battery not in get_args(BatteryPath):
        raise ValueError(f"battery: {battery!r} is not one of {list(get_args(BatteryPath))}")
    duration = seconds if seconds is not None else scenario.duration_s() + 60
    with _deterministic_trio(seed):
        clock = trio.testing.MockClock(autojump_threshold=0)
        result: WorldResult = trio.run(
            _run, scenario, seed, duration, site, hardware, battery, clock=clock
        )
    return result


def check(result: WorldResult) -> list[Violation]:
    """Invariants over a finished world (PROTOCOL.md §4 rules 15 and 16, the log's integrity, replay)."""
    violations: list[Violation] = []
    server = result.server
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
    report = result.store.verify()
    if not report.ok:
        violations.append(Violation(invariant="log verifies", detail=report.describe()))
    replayed, _ = replay(result.store, CONTROLS_PROJECTION)
    if msgspec.json.encode(replayed) != result.live_controls:
        violations.append(
            Violation(invariant="replay equals live state", detail="controls state differs")
        )
    return violations
