"""The telemetry sampler: reads the driver every ``period_s`` (default 5 s) and emits interval
summaries (mean, min, max) per post interval aligned to whole minutes, for the mirror actor.

The decisions (when to sample, which interval a sample belongs to, when an interval closes) are the
pure ``statemachines.telemetry``; this actor only reads the clock it is given, sleeps and does I/O.
A failed read is a gap (counted in :meth:`statistics`), never a made-up number. ``now`` is the
server clock (``actors.clock.Clock.server_time`` in the gateway), so intervals align to the
utility's minutes.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectSendStream

from actors.drivers.base import DerDriver, DriverError
from events.telemetry import IntervalSummary
from statemachines.telemetry import (
    DEFAULT_SAMPLE_PERIOD_S,
    IntervalAggregator,
    LateSample,
    SampleSchedule,
)
from transport.modbus import ModbusError

__all__ = ["SamplerStatistics", "TelemetrySampler"]


class SamplerStatistics(tuple[int, int, int]):
    """``(reads, failed_reads, summaries_sent)``; a read whose sample fell in an interval already
    summarised (server clock stepped back) counts as failed."""

    __slots__ = ()

    @property
    def reads(self) -> int:
        return self[0]

    @property
    def failed_reads(self) -> int:
        return self[1]

    @property
    def summaries_sent(self) -> int:
        return self[2]


class TelemetrySampler:
    def __init__(
        self,
        driver: DerDriver,
        out: MemoryObjectSendStream[list[IntervalSummary]],
        *,
        now: Callable[[], float],
        period_s: float = DEFAULT_SAMPLE_PERIOD_S,
        interval_s: int = 300,
    ) -> None:
        self.driver = driver
        self.out = out
        self.now = now
        self.schedule = SampleSchedule(period_s)
        self.aggregator = IntervalAggregator(interval_s)
        self._reads = self._failed = self._sent = 0

    def statistics(self) -> SamplerStatistics:
        return SamplerStatistics((self._reads, self._failed, self._sent))

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with self.out:
            task_status.started()
            while True:
                now = self.now()
                await anyio.sleep(max(0.0, self.schedule.next_deadline(now) - now))
                now = self.now()
                closed = self.aggregator.close_due(now)
                try:
                    # A read may not overrun the next sample: the period is its deadline.
                    with anyio.fail_after(self.schedule.period_s):
                        telemetry = await self.driver.read_telemetry(now=now)
                except (TimeoutError, ModbusError, DriverError):
                    self._failed += 1
                else:
                    try:
                        closed += self.aggregator.add(telemetry.samples())
                    except LateSample:
                        # The server-time offset moved back into an interval already summarised
                        # (PROTOCOL.md §2: the offset is re-learned): a gap, not a crash.
                        self._failed += 1
                    else:
                        self._reads += 1
                if closed:
                    await self.out.send(closed)
                    self._sent += len(closed)
