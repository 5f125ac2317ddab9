"""A whole world for end-to-end gateway tests: the simulated utility server and battery, and the
gateway between them, inside one event loop on trio's autojump clock, over in-memory pipes.

Shared by ``test_gateway_e2e`` and ``test_gateway_adversarial``. Two guards run with every world:
a real-time limit (a busy loop stops trio's autojump clock, so a virtual deadline would never fire)
and, at the end of every gateway run, a check that the actors' live state is the fold of the log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import msgspec
import trio
import trio.testing

import sep2gw.gateway as gateway_module
from actors.drivers.base import DerDriver
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareConfig
from actors.pipe import pipe_connector, pipe_listener
from actors.supervisor import RestartPolicy
from events.replay import replay
from events.store import EventStore
from sep2gw.config import Config, parse_config
from sep2gw.gateway import Gateway, GatewayOptions, driver_from_config
from sep2gw.invariants import same_controls_state
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.simserver import Scenario, SimClock, SimUtilityServer, server_material
from statemachines.controls import CONTROLS_PROJECTION
from statemachines.polling import POLL_PROJECTION
from statemachines.pricing import PRICING_PROJECTION

__all__ = [
    "CONFIG",
    "EPOCH",
    "REAL_TIME_LIMIT_S",
    "World",
    "assert_live_state_is_the_fold",
    "config_for",
    "deadline",
    "real_time_limit",
]

EPOCH = 1_764_158_400.0  # 2025-11-26T12:00:00Z
#: Real seconds a world may take; a world that spins (no virtual time passes) hits this.
REAL_TIME_LIMIT_S = 60.0

CONFIG = """
[server]
url = "https://utility.example:443"
dcap_path = "/dcap"
{pin}profile = "csip-aus"

[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"

[battery]
driver = "sunspec"
host = "127.0.0.1"

[log]
path = "site.sep2gw"
{extra}
"""


def config_for(site: Path, pin: int | None = 111115, extra: str = "") -> Config:
    """``pin`` ``None``: no PIN configured (PROTOCOL.md §2.4)."""
    line = "" if pin is None else f"pin = {pin}\n"
    return parse_config(CONFIG.format(pin=line, extra=extra), source="test config", base_dir=site)


@contextmanager
def real_time_limit(seconds: float = REAL_TIME_LIMIT_S) -> Iterator[None]:
    """Fail if the block takes more than ``seconds`` of *real* time: under the autojump clock a task
    that never blocks freezes virtual time, so only a real-time guard can catch a busy loop."""
    token = trio.lowlevel.current_trio_token()
    scope = trio.CancelScope()
    timer = threading.Timer(seconds, lambda: token.run_sync_soon(scope.cancel))
    timer.start()
    try:
        with scope:
            yield
    finally:
        timer.cancel()
    if scope.cancelled_caught:
        raise AssertionError(f"the world took more than {seconds:g} s of real time (a busy loop?)")


def assert_live_state_is_the_fold(gateway: Gateway, store: EventStore) -> None:
    """DESIGN.md: replaying the log through the same folds reproduces the live state exactly."""
    controls = gateway.actors["controls"]
    folded, _ = replay(store, CONTROLS_PROJECTION)
    assert controls.core is not None
    # The invariant the simulation's monitor checks after every controls batch (sets compared
    # regardless of iteration order, which follows string hashing and insertion history).
    assert same_controls_state(controls.core.state, folded), (
        "controls: live state differs from the fold of the log"
    )
    registration = gateway.actors["registration"]
    polls, _ = replay(store, POLL_PROJECTION)
    assert msgspec.json.encode(registration.polls.state.polls) == msgspec.json.encode(
        polls.polls
    ), "registration: live poll schedule differs from the fold of the log"
    pricing = gateway.actors["pricing"]
    prices, _ = replay(store, PRICING_PROJECTION)
    assert pricing.core.state == prices, "pricing: live state differs from the fold of the log"


class World:
    def __init__(
        self,
        site: Path,
        scenario: Scenario,
        store: EventStore | None,
        *,
        pin: int | None = 111115,
        config_extra: str = "",
        driver_wrapper: Callable[[DerDriver], DerDriver] | None = None,
        restart: RestartPolicy | None = None,
        check_fold: bool = True,
        wall_skew_s: float = 0.0,
        own_driver: bool = False,
    ) -> None:
        """``wall_skew_s``: how far the gateway's own wall clock is off the utility's at start.
        ``own_driver``: the gateway makes its driver from the configuration (as ``sep2gw run``
        does) instead of being handed one by the embedding application. ``store`` None: the
        gateway opens its configured log file (``site/site.sep2gw``), as a real site does."""
        self.site = site
        self.scenario = scenario
        self.store = store
        self.config = config_for(site, pin, config_extra)
        self.sim = SimBattery(BatteryParams(), SiteParams(), seed=5, start_s=EPOCH)
        self.server: SimUtilityServer | None = None
        self.driver_wrapper = driver_wrapper
        self.restart = restart
        self.check_fold = check_fold
        self.wall_skew_s = wall_skew_s
        self.own_driver = own_driver
        self.drivers: list[DerDriver] = []
        self.gateways: list[Gateway] = []

    async def run(self, seconds: float) -> None:
        await self.run_with_restarts(seconds, [])

    async def run_with_restarts(self, seconds: float, stops: list[float]) -> None:
        """Run the world for ``seconds``; the gateway is stopped at each of ``stops`` (seconds from
        the start) and started again at once on the same log, while the utility and battery go on."""
        with real_time_limit():
            await self._run(seconds, stops)

    async def _run(self, seconds: float, stops: list[float]) -> None:
        clock = SimClock(EPOCH)
        self.server = server = SimUtilityServer(
            self.scenario, server_material(self.site / "pki"), clock=clock
        )
        http_send, http_accept = pipe_listener()
        modbus_send, modbus_accept = pipe_listener()
        modbus = SimModbusServer(self.sim, clock=clock.now)
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, http_accept)
            await nursery.start(modbus.serve_pipes, modbus_accept)
            for until in [*stops, seconds]:
                options = GatewayOptions(
                    wall_at_start=clock.now() + self.wall_skew_s,
                    seed=7,
                    store=self.store,
                    http_connector=pipe_connector(http_send),
                    hardware=HardwareConfig(sample_period_s=5.0, post_interval_s=60),
                    restart=self.restart,
                    log_in_thread=self.store is not None,
                )
                driver: DerDriver = SunSpecDriver(
                    ModbusTcpClient("battery", 502, connector=pipe_connector(modbus_send))
                )
                if self.driver_wrapper is not None:
                    driver = self.driver_wrapper(driver)
                self.drivers.append(driver)
                if self.own_driver:
                    gateway_module.driver_from_config = _returning(driver)
                try:
                    handed = None if self.own_driver else driver
                    gateway = Gateway(self.config, handed, options=options)
                finally:
                    gateway_module.driver_from_config = driver_from_config
                async with gateway:
                    self.gateways.append(gateway)
                    await clock.sleep_until(EPOCH + until)
                    if self.check_fold:
                        # Compare only while the controls actor waits for input: between an input
                        # and the append of its events the core is ahead of the log by design.
                        for _ in range(1000):
                            await trio.testing.wait_all_tasks_blocked()
                            if gateway.actors["controls"].idle:
                                break
                        assert_live_state_is_the_fold(gateway, gateway.store)
                # A stopped gateway leaves no connection open behind it.
                assert not gateway.actors["link"].connected, (
                    "the stopped gateway left its link open"
                )
            nursery.cancel_scope.cancel()


def _returning(driver: DerDriver) -> Callable[[Config], DerDriver]:
    return lambda config: driver


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    with trio.fail_after(seconds):
        yield
