"""The hardware actor's sampling on the autojump clock: 5 s samples, minute-aligned summaries for
the mirror with min/max kept, failed reads as gaps, and every sample in the log."""

from __future__ import annotations

import anyio
import pytest
import trio
import trio.testing

from actors.clock import Clock
from actors.drivers.base import ApplyReport, DriverError, Nameplate, Telemetry
from actors.hardware import HardwareActor, HardwareConfig
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import ApplyLimits, ControlsInput
from events.der_model import ControlSettings, Mode
from events.hardware_events import DeviceUnreachable, TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.telemetry import IntervalSummary, MeasurementPoint, Quantity

EPOCH = 1_700_000_100.0  # server time at the start (a whole minute)


class RampDriver:
    """Site power rises by 1 W per second of server time; reads fail when told to."""

    def __init__(self) -> None:
        self.fail_between: tuple[float, float] | None = None

    def dispatchable_modes(self) -> frozenset[Mode]:
        return frozenset()

    async def read_nameplate(self) -> Nameplate:
        return Nameplate(rated_w=5000.0)

    async def read_telemetry(self, *, now: float) -> Telemetry:
        if self.fail_between and self.fail_between[0] <= now < self.fail_between[1]:
            raise DriverError("device busy")
        return Telemetry(at_s=now, site_w=now - EPOCH)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        return ApplyReport(
            applied=frozenset(), not_applicable=frozenset(), setpoint_w=None, wrote=False
        )

    async def aclose(self) -> None:
        return None


async def collect(
    driver: RampDriver, minutes: int, *, store: MemoryEventStore | None = None, start: float = EPOCH
) -> tuple[list[IntervalSummary], MemoryEventStore]:
    store = store or MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](16)
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](16)
    got: list[IntervalSummary] = []
    with trio.fail_after(minutes * 60 + 30):
        async with trio.open_nursery() as nursery:
            clock = Clock(wall_at_start=start)
            hardware = HardwareActor(
                driver=driver,
                log=log,
                clock=clock,
                limits=Latest[ApplyLimits](),
                to_controls=to_controls,
                summaries=to_mirror,
                config=HardwareConfig(sample_period_s=5.0, post_interval_s=60),
                store=store,
            )
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            async with summaries, controls_inbox:
                while len(got) < minutes:
                    got += await summaries.receive()
            nursery.cancel_scope.cancel()
    return got, store


async def test_five_second_samples_average_into_whole_minute_intervals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    summaries, store = await collect(RampDriver(), 3)
    first, second, third = summaries
    assert [s.start_s % 60 for s in summaries] == [0, 0, 0]
    assert (first.point, first.quantity) == (MeasurementPoint.SITE, Quantity.ACTIVE_POWER_W)
    assert first.samples == 11  # 5, 10, …, 55 s (the 0 s instant precedes the first deadline)
    assert (first.minimum, first.maximum, first.mean) == (5, 55, 30)
    assert second.samples == 12 and second.mean == pytest.approx(87.5)
    assert third.start_s == second.start_s + 60
    samples = [r.event for r in store.read() if isinstance(r.event, TelemetrySampled)]
    assert [s.site_w for s in samples[:3]] == [5, 10, 15]  # the log keeps every sample


async def test_failed_reads_are_gaps(autojump_clock: trio.testing.MockClock) -> None:
    driver = RampDriver()
    driver.fail_between = (EPOCH + 60, EPOCH + 90)
    summaries, store = await collect(driver, 2)
    assert summaries[1].samples == 6 and summaries[1].minimum == 90
    failures = [r.event for r in store.read() if isinstance(r.event, DeviceUnreachable)]
    assert len(failures) == 1 and failures[0].operation == "read telemetry"


class CountingStore(MemoryEventStore):
    """Counts the records handed out by ``read`` (each one decoded on a real store)."""

    read_records = 0

    def read(self, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for record in super().read(*args, **kwargs):  # type: ignore[arg-type]
            self.read_records += 1
            yield record


async def test_a_restart_reads_only_the_recent_samples_not_the_whole_history(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Ten days of samples before the restart: the actor decodes an hour's worth at most."""
    store = CountingStore(CATALOGUE)
    day = 86_400
    for minute in range(10 * day // 60):
        t = EPOCH - 10 * day + minute * 60
        store.append_events(
            "hardware", [TelemetrySampled(at_s=t, site_w=1.0)], server_time=t, monotonic=0.0
        )
    store.append_events(
        "hardware", [TelemetrySampled(at_s=EPOCH + 5, site_w=7.0)], server_time=EPOCH + 5, monotonic=0.0
    )
    summaries, _ = await collect(RampDriver(), 1, store=store, start=EPOCH + 30)
    assert summaries[0].samples == 6 and summaries[0].minimum == 7  # 5 s from the log, 35..55 s
    assert store.read_records <= 61 + 1 + 10


async def test_a_restart_inside_an_interval_keeps_its_earlier_samples(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The gateway stopped 30 s into a minute: the samples it took before are in the log, and the
    restarted actor's summary of that minute includes them (posted once, whole)."""
    store = MemoryEventStore(CATALOGUE)
    store.append_events(
        "hardware",
        [TelemetrySampled(at_s=EPOCH + t, site_w=float(t)) for t in (5, 10, 15, 20, 25)],
        server_time=EPOCH + 25,
        monotonic=0.0,
    )
    summaries, _ = await collect(RampDriver(), 1, store=store, start=EPOCH + 30)
    (first,) = summaries
    assert first.start_s == EPOCH
    assert first.samples == 10  # 5..25 s from the log, 35..55 s after the restart
    assert (first.minimum, first.maximum) == (5, 55)
