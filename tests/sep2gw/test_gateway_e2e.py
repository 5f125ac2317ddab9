"""The whole gateway against the simulated utility server and battery, inside one event loop on the
autojump clock: discovery → controls → responses → telemetry, over mutual TLS and Modbus pipes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import trio

from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareConfig
from actors.pipe import pipe_connector, pipe_listener
from events.control_events import LimitsInForceChanged
from events.memory_store import MemoryEventStore
from events.registration_events import RegistrationHalted
from events.registry import CATALOGUE
from events.store import EventStore
from sep2gw.cli import main
from sep2gw.config import Config, parse_config
from sep2gw.gateway import Gateway, GatewayOptions
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.simserver import Scenario, SimClock, SimUtilityServer, demo_scenario, server_material

EPOCH = 1_764_158_400.0  # 2025-11-26T12:00:00Z

CONFIG = """
[server]
url = "https://utility.example:443"
dcap_path = "/dcap"
pin = {pin}
profile = "csip-aus"

[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"

[battery]
driver = "sunspec"
host = "127.0.0.1"

[log]
path = "site.sep2gw"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    assert main(["certs", "init", str(site / "pki")]) == 0
    return site


def config_for(site: Path, pin: int = 111115) -> Config:
    return parse_config(CONFIG.format(pin=pin), source="test config", base_dir=site)


class World:
    def __init__(
        self, site: Path, scenario: Scenario, store: EventStore, *, pin: int = 111115
    ) -> None:
        self.site = site
        self.scenario = scenario
        self.store = store
        self.config = config_for(site, pin)
        self.sim = SimBattery(BatteryParams(), SiteParams(), seed=5, start_s=EPOCH)
        self.server: SimUtilityServer | None = None

    async def run(self, seconds: float) -> None:
        clock = SimClock(EPOCH)
        self.server = server = SimUtilityServer(
            self.scenario, server_material(self.site / "pki"), clock=clock
        )
        http_send, http_accept = pipe_listener()
        modbus_send, modbus_accept = pipe_listener()
        modbus = SimModbusServer(self.sim, clock=clock.now)
        driver = SunSpecDriver(
            ModbusTcpClient("battery", 502, connector=pipe_connector(modbus_send))
        )
        options = GatewayOptions(
            wall_at_start=EPOCH,
            seed=7,
            store=self.store,
            http_connector=pipe_connector(http_send),
            hardware=HardwareConfig(sample_period_s=5.0, post_interval_s=60),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, http_accept)
            await nursery.start(modbus.serve_pipes, modbus_accept)
            async with Gateway(self.config, driver, options=options):
                await trio.sleep(seconds)
            nursery.cancel_scope.cancel()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    with trio.fail_after(seconds):
        yield


async def test_demo_scenario_end_to_end(pki: Path, autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store)
    with deadline(3600):
        await world.run(demo_scenario().duration_s() + 60)
    server = world.server
    assert server is not None
    assert store.verify().ok
    # Registration happened in-band, over mutual TLS, and the gateway found its programs.
    assert server.posts_to("/edev"), "EndDevice was not registered"
    statuses = {m: server.response_statuses(f"DE{'0' * 28}{m}") for m in ("A1", "A2", "B1", "A3")}
    assert statuses["A1"] == [1, 2, 3]
    # A2 runs from 12:03:00; B1 (higher primacy) starts at 12:03:20 and takes its target_w: 7 then.
    assert statuses["A2"] == [1, 2, 7]
    assert statuses["B1"] == [1, 2, 3]
    assert statuses["A3"] == [1, 2, 6]  # cancelled while active
    assert server.duplicate_responses() == []
    limits = [r.event.settings for r in store.read() if isinstance(r.event, LimitsInForceChanged)]
    assert any(s.export_limit_w == 1500 for s in limits)
    # Telemetry reached the utility: readings were posted to the mirror usage points.
    assert any(req.path.startswith("/mup/") and req.method == "POST" for req in server.requests)


async def test_pin_mismatch_halts_all_traffic(pki: Path, autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store, pin=222228)
    with deadline(3600):
        await world.run(300)
    server = world.server
    assert server is not None
    halted = [r.event for r in store.read() if isinstance(r.event, RegistrationHalted)]
    assert halted and "PIN mismatch" in halted[0].reason
    after = [q for q in server.requests if q.time > halted[0].at_s]
    assert after == [], f"traffic after the halt: {[(q.method, q.path) for q in after]}"
