"""The embedding API: a gateway runtime built on asyncio runs ``async with Gateway(config, driver)``.

This runs under ``asyncio.run`` (not trio), over real loopback sockets: the simulated utility server
speaks 2030.5 over mutual TLS, the simulated battery SunSpec Modbus TCP. It waits (bounded) until the
utility has the gateway's Response 1 for a control, which takes well under a second.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import anyio

from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.config import parse_config
from sep2gw.gateway import Gateway
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.simserver import SimClock, SimUtilityServer, demo_scenario, server_material

CONFIG = """
[server]
url = "https://127.0.0.1:{http_port}"
pin = 111115

[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"

[battery]
driver = "sunspec"
host = "127.0.0.1"
port = {modbus_port}

[log]
path = "site.sep2gw"
"""

A1 = "DE0000000000000000000000000000A1"


def test_gateway_runs_inside_asyncio_run(tmp_path: Path) -> None:
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0

    async def application() -> list[int]:
        clock = SimClock(time.time())
        server = SimUtilityServer(demo_scenario(), server_material(tmp_path / "pki"), clock=clock)
        sim = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=clock.now())
        async with anyio.create_task_group() as group:
            http_port = await group.start(server.serve_tcp)
            modbus_port = await group.start(SimModbusServer(sim, clock=clock.now).serve)
            text = CONFIG.format(http_port=http_port, modbus_port=modbus_port)
            config = parse_config(text, source="embedded", base_dir=tmp_path)
            assert asyncio.get_running_loop() is not None  # really on asyncio
            async with Gateway(config):  # the driver comes from the configuration (SunSpec)
                with anyio.fail_after(30):
                    await server.wait_for(lambda s: 1 in s.response_statuses(A1))
            group.cancel_scope.cancel()
        return server.response_statuses(A1)

    assert asyncio.run(application())[:1] == [1]
    with SqliteEventStore(tmp_path / "site.sep2gw", CATALOGUE, readonly=True) as log:
        assert log.verify().ok
        tags = {CATALOGUE.tag(r.event) for r in log.read()}
    assert {
        "runtime.gateway_started.v1",
        "runtime.gateway_stopped.v1",
        "control.received.v1",
    } <= tags
