"""A backlog of readings (PROTOCOL.md §2 step 8): batched as MirrorReadingSets of one
MirrorMeterReading, paced, every interval once — and one set per POST for a server that refuses a
batch."""

from __future__ import annotations

import anyio
import trio
import trio.testing

from actors.clock import Clock
from actors.link import HttpFailure
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.mirror import BACKLOG_PACE_S, MAX_SETS_PER_POST, MirrorActor
from actors.registration import MirrorTargets
from events.memory_store import MemoryEventStore
from events.mirror_events import ReadingPosted
from events.registry import CATALOGUE
from events.telemetry import IntervalSummary, MeasurementPoint, Quantity
from transport.identity import CSIP_AUS
from transport.sep2 import resources as r

T0 = 1_764_115_200
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
TARGET = MirrorTargets(mup_list="/mup", post_rate_s=60)


class FakeServer:
    """A MirrorUsagePoint list that takes MirrorMeterReadings (at most ``max_sets`` sets each)."""

    def __init__(self, clock: Clock, *, max_sets: int | None = None) -> None:
        self.clock = clock
        self.max_sets = max_sets
        self.posts: list[tuple[float, tuple[int, ...]]] = []

    async def get_list(self, path: str, cls: object, item: str) -> tuple[object, list[object]]:
        return None, []

    async def post(self, path: str, body: object) -> str | None:
        if isinstance(body, r.MirrorUsagePoint):
            return "/mup/1"
        assert isinstance(body, r.MirrorMeterReading)
        starts = tuple(s.timePeriod.start for s in body.MirrorReadingSet)
        if self.max_sets is not None and len(starts) > self.max_sets:
            raise HttpFailure("POST", path, 400, why="one MirrorReadingSet per POST")
        self.posts.append((self.clock.monotonic(), starts))
        return "/mup/1"


def backlog(minutes: int) -> list[IntervalSummary]:
    return [
        IntervalSummary(
            point=MeasurementPoint.SITE,
            quantity=Quantity.ACTIVE_POWER_W,
            start_s=T0 + 60 * m,
            interval_s=60,
            mean=100.0 + m,
            minimum=0.0,
            maximum=200.0,
            samples=12,
        )
        for m in range(minutes)
    ]


async def post_backlog(minutes: int, *, max_sets: int | None) -> tuple[FakeServer, list[int]]:
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    clock = Clock(wall_at_start=float(T0 + 60 * minutes + 1))
    server = FakeServer(clock, max_sets=max_sets)
    to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](4)
    targets = Latest[MirrorTargets]()
    targets.put(TARGET)
    mirror = MirrorActor(
        link=server,  # type: ignore[arg-type]
        log=log,
        clock=clock,
        lfdi=LFDI,
        pen=37244,
        profile=CSIP_AUS,
        summaries=summaries,
        targets=targets,
    )
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery, to_mirror, summaries:
            await nursery.start(log.run)
            await nursery.start(mirror.run)
            await to_mirror.send(backlog(minutes))
            await trio.sleep(120)
            nursery.cancel_scope.cancel()
    recorded = [
        rec.event.start_s
        for rec in store.read()
        if isinstance(rec.event, ReadingPosted) and not rec.event.refused
    ]
    return server, recorded


async def test_rule_2_8_a_backlog_is_batched_paced_and_posted_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, recorded = await post_backlog(30, max_sets=None)
    starts = [s for _, sets in server.posts for s in sets]
    assert starts == [T0 + 60 * m for m in range(30)]  # each once, oldest first
    assert [len(sets) for _, sets in server.posts] == [MAX_SETS_PER_POST, MAX_SETS_PER_POST, 6]
    times = [t for t, _ in server.posts]
    assert all(b - a >= BACKLOG_PACE_S for a, b in zip(times, times[1:], strict=False))
    assert recorded == starts


async def test_rule_2_8_a_server_that_refuses_a_batch_is_sent_one_set_per_post(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, recorded = await post_backlog(5, max_sets=1)
    assert [sets for _, sets in server.posts] == [(T0 + 60 * m,) for m in range(5)]
    assert recorded == [T0 + 60 * m for m in range(5)]  # none lost to the refused batch
