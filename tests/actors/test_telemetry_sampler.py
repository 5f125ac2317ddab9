"""The sampler on the autojump clock: 5 s samples, minute-aligned summaries, gaps for failed reads."""

from __future__ import annotations

import anyio
import pytest
import trio
import trio.testing

from actors.drivers.base import DriverError, Nameplate, Telemetry
from actors.telemetry_sampler import TelemetrySampler
from events.der_model import ControlSettings, Mode
from events.telemetry import IntervalSummary, MeasurementPoint, Quantity

EPOCH = 1_700_000_100.0  # server time at trio time 0 (a whole minute)


class RampDriver:
    """Site power rises by 1 W per second of server time; reads fail when told to."""

    def __init__(self) -> None:
        self.fail_between: tuple[float, float] | None = None

    def dispatchable_modes(self) -> frozenset[Mode]:
        return frozenset()

    async def read_nameplate(self) -> Nameplate:
        return Nameplate()

    async def read_telemetry(self, *, now: float) -> Telemetry:
        if self.fail_between and self.fail_between[0] <= now < self.fail_between[1]:
            raise DriverError("device busy")
        return Telemetry(at_s=now, site_w=now - EPOCH)

    async def apply(self, limits: ControlSettings, *, now: float):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    async def aclose(self) -> None:
        return None


async def collect(
    driver: RampDriver, minutes: int, autojump: trio.testing.MockClock
) -> list[IntervalSummary]:
    send, receive = anyio.create_memory_object_stream[list[IntervalSummary]](0)
    sampler = TelemetrySampler(driver, send, now=lambda: EPOCH + trio.current_time(), interval_s=60)
    got: list[IntervalSummary] = []
    with trio.fail_after(minutes * 60 + 30):
        async with trio.open_nursery() as nursery:
            await nursery.start(sampler.run)
            async with receive:
                while len(got) < minutes:
                    got += await receive.receive()
            nursery.cancel_scope.cancel()
    return got


async def test_five_second_samples_average_into_whole_minute_intervals(
    autojump_clock: trio.testing.MockClock,
) -> None:
    summaries = await collect(RampDriver(), 3, autojump_clock)
    first, second, third = summaries
    assert [s.start_s % 60 for s in summaries] == [0, 0, 0]
    assert (first.point, first.quantity) == (MeasurementPoint.SITE, Quantity.ACTIVE_POWER_W)
    assert first.samples == 11  # 5, 10, …, 55 s (the 0 s instant precedes the first deadline)
    assert (first.minimum, first.maximum, first.mean) == (5, 55, 30)
    assert second.samples == 12 and second.mean == pytest.approx(87.5)
    assert third.start_s == second.start_s + 60


async def test_failed_reads_are_gaps(autojump_clock: trio.testing.MockClock) -> None:
    driver = RampDriver()
    driver.fail_between = (EPOCH + 60, EPOCH + 90)
    summaries = await collect(driver, 2, autojump_clock)
    assert summaries[1].samples == 6 and summaries[1].minimum == 90


async def test_server_clock_stepping_back_drops_samples_instead_of_stopping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The registration actor may move the server-time offset back (PROTOCOL.md §2 step 2); samples
    that then fall in an already-summarised interval are gaps, and sampling goes on."""
    offset = [EPOCH]
    send, receive = anyio.create_memory_object_stream[list[IntervalSummary]](0)
    sampler = TelemetrySampler(
        RampDriver(), send, now=lambda: offset[0] + trio.current_time(), interval_s=60
    )
    got: list[IntervalSummary] = []
    with trio.fail_after(400):
        async with trio.open_nursery() as nursery:
            await nursery.start(sampler.run)

            async def step_back() -> None:
                await trio.sleep(62)
                offset[0] -= 30  # server time goes from +62 s back to +32 s

            nursery.start_soon(step_back)
            async with receive:
                while len(got) < 2:
                    got += await receive.receive()
            nursery.cancel_scope.cancel()
    assert [s.start_s - EPOCH for s in got] == [0, 60]
    # Server times +35…+55 s (taken after the step) belong to the summarised first minute: dropped.
    # The second minute has +60 s twice (before and after the step) and +65…+115 s.
    assert (got[1].samples, got[1].minimum, got[1].maximum) == (13, 60, 115)
    assert sampler.statistics().failed_reads == 5
