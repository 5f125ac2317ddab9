"""Issue 16 point 5 with the actors: while the log is full the battery keeps following the limits
in force, a new decision is acted on only once it is durable (none is lost), telemetry detail is
shed and counted, and full recording resumes when space returns.

The full disk is injected at the store boundary: the store raises ``LogFull``, which is what the
SQLite store raises on ENOSPC or SQLITE_FULL (the batch rolled back)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import trio
import trio.testing

from actors.clock import Clock
from actors.drivers.base import ApplyReport, Nameplate, Telemetry
from actors.hardware import HardwareActor, HardwareConfig
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import ApplyLimits, ControlsInput
from events.control_events import LimitsInForceChanged
from events.der_model import ControlSettings, Mode
from events.envelope import Append, Recorded
from events.errors import LogFull
from events.hardware_events import LimitsApplied, TelemetrySampled
from events.log_events import LogShed
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE

EPOCH = 1_700_000_100.0


class FillingStore(MemoryEventStore):
    def __init__(self) -> None:
        super().__init__(CATALOGUE)
        self.full = False

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        if self.full:
            raise LogFull(self.where, self.head().seq + 1, sum(len(a.events) for a in appends))
        return super().append(appends)

    def space_left(self) -> int | None:
        return 0 if self.full else None


class FollowingDriver:
    """Remembers the export limit of every write, with the (virtual) time of the write."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, float | None]] = []

    def dispatchable_modes(self) -> frozenset[Mode]:
        return frozenset({Mode.EXPORT_LIMIT_W})

    async def read_nameplate(self) -> Nameplate:
        return Nameplate(rated_w=5000.0)

    async def read_telemetry(self, *, now: float) -> Telemetry:
        return Telemetry(at_s=now, site_w=-800.0, der_w=800.0)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        self.writes.append((now, limits.export_limit_w))
        return ApplyReport(
            applied=frozenset({Mode.EXPORT_LIMIT_W}),
            not_applicable=frozenset(),
            setpoint_w=limits.export_limit_w,
            wrote=True,
            site_limit_met=True,
        )

    async def aclose(self) -> None:
        return None


async def test_issue16_the_battery_keeps_following_its_limits_while_the_log_is_full(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = FillingStore()
    alarms: list[str] = []
    log = LogWriter(store, offload=False, inline_when_idle=True, on_alarm=alarms.append)
    driver = FollowingDriver()
    clock = Clock(wall_at_start=EPOCH)
    to_mirror, summaries = anyio.create_memory_object_stream[list[Any]](64)
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](64)
    limits = Latest[ApplyLimits]()
    limits.put(ApplyLimits(settings=ControlSettings(export_limit_w=1000.0), ramps={}, at_s=EPOCH))
    acted_at: list[float] = []

    async def decide_then_act(settings: ControlSettings) -> None:
        """What the controls actor does: persist the decision, then (only then) act on it."""
        reading = clock.read()
        await log.append(
            [
                Append(
                    stream="controls",
                    events=(
                        LimitsInForceChanged(
                            settings=settings,
                            sources={},
                            next_change_s=None,
                            ramps_ended=(),
                            at_s=reading.server_time,
                        ),
                    ),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )
        acted_at.append(clock.server_time())
        limits.put(ApplyLimits(settings=settings, ramps={}, at_s=reading.server_time))

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery, summaries, controls_inbox:
            hardware = HardwareActor(
                driver=driver,  # type: ignore[arg-type]
                log=log,
                clock=clock,
                limits=limits,
                to_controls=to_controls,
                summaries=to_mirror,
                config=HardwareConfig(sample_period_s=5.0, control_period_s=1.0),
                store=store,
            )
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            await trio.sleep(30)
            store.full = True
            full_at = clock.server_time()
            await trio.sleep(10)
            nursery.start_soon(decide_then_act, ControlSettings(export_limit_w=200.0))
            await trio.sleep(290)
            freed_at = clock.server_time()
            store.full = False
            await trio.sleep(60)
            nursery.cancel_scope.cancel()

    # The battery kept its control period (an export limit is a closed loop: a write a second)
    # at the limit in force all the time the log was full: the hardware never waited on the log.
    while_full = [limit for at, limit in driver.writes if full_at <= at < freed_at]
    assert len(while_full) >= 295
    assert set(while_full) == {1000.0}
    # The decision taken while full was acted on only once durable, and it is in the log.
    assert len(acted_at) == 1 and freed_at <= acted_at[0] <= freed_at + 6
    assert driver.writes[-1][1] == 200.0
    decided = [r for r in store.read() if isinstance(r.event, LimitsInForceChanged)]
    assert len(decided) == 1 and decided[0].event.settings.export_limit_w == 200.0
    # Detail was shed and counted, with when; the hardware's observations were held and written.
    (shed,) = [r.event for r in store.read() if isinstance(r.event, LogShed)]
    assert set(shed.counts) == {"hardware.telemetry.v1"}
    assert 55 <= shed.counts["hardware.telemetry.v1"] <= 61  # one sample each 5 s for ~300 s
    assert full_at <= shed.from_s <= full_at + 5 and freed_at - 5 <= shed.to_s <= freed_at
    applied = [r.event.at_s for r in store.read() if isinstance(r.event, LimitsApplied)]
    assert any(full_at <= at < freed_at for at in applied)
    # Full recording resumed: samples after space returned are in the log again.
    samples = [r.event.at_s for r in store.read() if isinstance(r.event, TelemetrySampled)]
    assert not any(full_at + 5 < at < freed_at - 5 for at in samples)
    assert sum(1 for at in samples if at > freed_at + 5) >= 10
    assert len(alarms) == 2
    assert store.verify().ok
