"""Issue 16 point 5 on a whole gateway against the simulated utility: a log that fills for a
while is a degraded mode, not an exit. The full disk is injected at the store boundary (the store
raises ``LogFull``, as the SQLite store does on ENOSPC or SQLITE_FULL) for a window of virtual
time on trio's MockClock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from events.control_events import ControlStarted
from events.envelope import Append, Recorded
from events.errors import LogFull
from events.hardware_events import LimitsApplied, TelemetrySampled
from events.log_events import LogShed
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.runtime_events import ActorFailed
from sep2gw.simserver import parse_scenario
from tests.sep2gw.test_gateway_adversarial import MRID, one_control
from tests.sep2gw.world import World, deadline
from transport.sep2 import resources as r

FULL_FROM_S = 40.0
FULL_UNTIL_S = 100.0


class FullForAWhile(MemoryEventStore):
    """Refuses every append between FULL_FROM_S and FULL_UNTIL_S of virtual time."""

    def __init__(self, from_s: float = FULL_FROM_S, until_s: float = FULL_UNTIL_S) -> None:
        super().__init__(CATALOGUE)
        self.t0 = trio.current_time()
        self.window = (from_s, until_s)
        self.refused = 0

    def _full(self) -> bool:
        return self.window[0] <= trio.current_time() - self.t0 < self.window[1]

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        if self._full():
            self.refused += 1
            raise LogFull(self.where, self.head().seq + 1, sum(len(a.events) for a in appends))
        return super().append(appends)

    def space_left(self) -> int | None:
        return 0 if self._full() else None


async def test_issue16_a_full_log_is_a_degraded_mode_and_recording_resumes(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = FullForAWhile()
    world = World(pki, parse_scenario(one_control(), source="test"), store)
    with deadline(3600):
        await world.run(300)
    assert store.refused > 0
    records = list(store.read())
    # No actor failed, the gateway never stopped: the full log did not end the process.
    assert not [x for x in records if isinstance(x.event, ActorFailed)]
    # The control that started while the log was full was decided, recorded once space returned,
    # and only then applied (decide → persist → act).
    t0 = records[0].server_time
    (started,) = [x for x in records if isinstance(x.event, ControlStarted)]
    assert started.event.mrid == MRID
    assert FULL_FROM_S <= started.server_time - t0 < FULL_UNTIL_S  # decided while full
    applied = [
        x.event.at_s - t0
        for x in records
        if isinstance(x.event, LimitsApplied) and x.event.settings.export_limit_w == 1000.0
    ]
    assert applied and min(applied) >= FULL_UNTIL_S  # acted on once it was recorded
    # Telemetry detail was shed and counted; the log says so; samples are recorded again after.
    (shed,) = [x.event for x in records if isinstance(x.event, LogShed)]
    assert shed.counts.get("hardware.telemetry.v1", 0) >= 10
    samples = [x.event.at_s - t0 for x in records if isinstance(x.event, TelemetrySampled)]
    assert not any(FULL_FROM_S + 5 < at < FULL_UNTIL_S - 5 for at in samples)
    assert any(at > FULL_UNTIL_S + 10 for at in samples)
    # The utility was told (PROTOCOL.md §2.9), through the alarm path the DER's alarms take.
    server = world.server
    assert server is not None
    posted = [q.body for q in server.posts_to("/edev/1/lel") if q.status == 201]
    assert any(isinstance(e, r.LogEvent) and "LOG_FULL" in (e.details or "") for e in posted)
    assert store.verify().ok


async def test_issue16_a_log_full_at_start_does_not_stop_the_gateway(
    pki: Path, autojump_clock: trio.abc.Clock, capsys: pytest.CaptureFixture[str]
) -> None:
    """The gateway's own records (start, stop) go straight to the store: a full log there is an
    alarm line on standard error, not an exception out of ``Gateway.run``."""
    store = FullForAWhile(0.0, 20.0)
    world = World(pki, parse_scenario(one_control(), source="test"), store)
    with deadline(3600):
        await world.run(120)
    assert store.refused > 0
    err = capsys.readouterr().err
    assert "ALARM: not recorded (GatewayStarted)" in err
    assert "ALARM: the event log is full" in err
    assert any(isinstance(x.event, ControlStarted) for x in store.read())
