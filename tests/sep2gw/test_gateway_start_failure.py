"""A gateway whose actors fail while starting says so in its log's last word (issue 19: a fleet
reports each site's stop from the site's own log), not "stopped" as for a requested stop."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.drivers.base import Nameplate
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.runtime_events import GatewayStopped
from sep2gw.gateway import Gateway, GatewayOptions
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import SimBatteryDriver
from tests.sep2gw.world import config_for


class BrokenDriver(SimBatteryDriver):
    async def read_nameplate(self) -> Nameplate:
        raise RuntimeError("the vendor library crashed")


async def test_a_start_failure_is_the_logs_last_word(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=1_764_115_200)
    driver = BrokenDriver(sim, clock=lambda: 1_764_115_200.0)

    async def unreachable() -> trio.abc.Stream:
        raise ConnectionRefusedError("no server in this test")

    gateway = Gateway(
        config_for(pki),
        driver,
        options=GatewayOptions(
            wall_at_start=1_764_115_200,
            seed=1,
            store=store,
            http_connector=unreachable,
            log_in_thread=False,
        ),
    )
    with pytest.raises(BaseExceptionGroup):
        await gateway.run()
    last = list(store.read())[-1].event
    assert isinstance(last, GatewayStopped)
    assert last.reason == "failed: RuntimeError: the vendor library crashed"
