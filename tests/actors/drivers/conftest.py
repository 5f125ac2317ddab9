"""A simulated battery served over real loopback Modbus TCP, with a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import trio

from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer

NOON = 1_700_006_400 - 1_700_006_400 % 86_400 + 12 * 3600


class ManualClock:
    """The simulation's clock: tests move it; nothing sleeps on real time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Device:
    sim: SimBattery
    server: SimModbusServer
    clock: ManualClock
    port: int


@pytest.fixture
async def device(nursery: trio.Nursery) -> AsyncIterator[Device]:
    sim = SimBattery(BatteryParams(), SiteParams(), seed=11, start_s=NOON)
    clock = ManualClock(NOON)
    server = SimModbusServer(sim, clock=clock)
    port = await nursery.start(server.serve)
    yield Device(sim=sim, server=server, clock=clock, port=port)
