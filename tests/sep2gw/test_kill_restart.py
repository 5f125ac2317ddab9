"""kill -9 of a real gateway process, mid-event, at seeded instants, then a restart on its SQLite log.

The utility (simulated, in this process) and the battery (simulated, in this process) run on
loopback TCP with mutual TLS and Modbus; the gateway runs as ``sep2gw run --config`` in a child
process that is SIGKILLed three times and started again each time. This test waits on real
processes, so its schedule is short (seconds): afterwards every control got 1, 2, 3 exactly once,
each started exactly once, and the log verifies.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from pathlib import Path

import trio

from events.control_events import ControlStarted
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.simserver import SimClock, SimUtilityServer, parse_scenario, server_material

ROOT = Path(__file__).resolve().parents[2]

SCENARIO = """
name = "short controls for a kill test"

[server]
pin = 111115
poll_rate_s = 10
post_rate_s = 60

[[programs]]
id = "network"
primacy = 1

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000011"
program = "network"
start_s = 4
duration_s = 6
modes = { opModTargetW = 1000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000012"
program = "network"
start_s = 12
duration_s = 6
modes = { opModTargetW = -1000 }

[[actions]]
at_s = 6
kind = "create_control"
mrid = "C0000000000000000000000000000013"
program = "network"
start_s = 20
duration_s = 4
modes = { opModTargetW = 500 }
"""

CONFIG = """
[server]
url = "https://127.0.0.1:{http}"
pin = 111115
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "127.0.0.1"
port = {modbus}
[log]
path = "site.sep2gw"
"""


async def test_sigkill_mid_event_loses_and_repeats_nothing(pki: Path, tmp_path: Path) -> None:
    scenario = parse_scenario(SCENARIO, source="kill test")
    clock = SimClock(time.time())
    server = SimUtilityServer(scenario, server_material(pki / "pki"), clock=clock)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=clock.now())
    (tmp_path / "pki").symlink_to(pki / "pki")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = sorted(random.Random(2030).uniform(2.5, 21.0) for _ in range(3))
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            http = await nursery.start(server.serve_tcp)
            modbus = await nursery.start(SimModbusServer(sim, clock=clock.now).serve)
            (tmp_path / "site.toml").write_text(CONFIG.format(http=http, modbus=modbus))
            command = [
                sys.executable,
                "-m",
                "sep2gw",
                "run",
                "--config",
                str(tmp_path / "site.toml"),
                "--quiet",
            ]
            started = trio.current_time()
            for at in [*kills, 28.0]:
                proc = await trio.lowlevel.open_process(command, cwd=ROOT, env=env)
                await trio.sleep_until(started + at)
                proc.send_signal(signal.SIGKILL if at != 28.0 else signal.SIGTERM)
                await proc.wait()
            nursery.cancel_scope.cancel()
    for mrid in (
        "C0000000000000000000000000000011",
        "C0000000000000000000000000000012",
        "C0000000000000000000000000000013",
    ):
        assert server.response_statuses(mrid) == [1, 2, 3], (mrid, kills)
    assert server.duplicate_responses() == []
    with SqliteEventStore(tmp_path / "site.sep2gw", CATALOGUE, readonly=True) as log:
        assert log.verify().ok
        starts = [r.event.mrid for r in log.read() if isinstance(r.event, ControlStarted)]
    assert sorted(starts) == sorted(set(starts)) and len(starts) == 3, (starts, kills)
