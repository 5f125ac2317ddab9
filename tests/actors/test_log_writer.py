"""The log actor: durable before it answers, group commit, isolated conflicts, flush on shutdown."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from actors.log_writer import FULL_RETRY_S, LogWriter
from events.base import Event, InvalidEventTag
from events.envelope import Append, Recorded
from events.errors import ConcurrencyConflict, LogFull
from events.hardware_events import TelemetrySampled
from events.log_events import LogShed, LogShort
from events.memory_store import MemoryEventStore
from events.sqlite_store import SqliteEventStore
from tests.events.eventtypes import TEST_CATALOGUE, Deposited


class Stray(Event, frozen=True, kw_only=True, tag="test.stray.v1"):
    """An event type no catalogue knows."""


def append_to(stream: str, amount: int, expected: int | None = None) -> list[Append]:
    return [
        Append(
            stream=stream,
            events=[Deposited(account=stream, amount=amount)],
            server_time=1_764_000_000.0 + amount,
            monotonic=float(amount),
            expected_version=expected,
        )
    ]


async def test_concurrent_appends_are_group_committed_and_gapless(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False)
    results: dict[int, list[Recorded]] = {}

    async def producer(i: int) -> None:
        results[i] = await writer.append(append_to(f"s{i % 5}", i))

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            async with trio.open_nursery() as producers:
                for i in range(50):
                    producers.start_soon(producer, i)
            nursery.cancel_scope.cancel()
    assert sorted(r[0].seq for r in results.values()) == list(range(1, 51))
    for i, records in results.items():
        assert records[0].event == Deposited(account=f"s{i % 5}", amount=i)
    stats = writer.statistics()
    assert stats.events == 50
    assert stats.commits < 50  # requests that arrived together shared a transaction
    assert store.verify().ok


async def test_a_conflict_fails_only_the_request_at_fault(autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False)
    outcomes: dict[str, object] = {}

    async def attempt(name: str, appends: list[Append]) -> None:
        try:
            outcomes[name] = await writer.append(appends)
        except ConcurrencyConflict as exc:
            outcomes[name] = exc

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            async with trio.open_nursery() as clients:
                clients.start_soon(attempt, "good-1", append_to("a", 1, expected=0))
                clients.start_soon(attempt, "stale", append_to("b", 2, expected=7))
                clients.start_soon(attempt, "good-2", append_to("c", 3))
            nursery.cancel_scope.cancel()
    assert isinstance(outcomes["stale"], ConcurrencyConflict)
    assert isinstance(outcomes["good-1"], list) and isinstance(outcomes["good-2"], list)
    assert store.head().seq == 2
    assert store.stream_version("b") == 0


class FillingStore(MemoryEventStore):
    """A store whose disk can fill: the fault injected at the store boundary is what the SQLite
    store raises on ENOSPC / SQLITE_FULL (``LogFull``, batch rolled back); ``left`` is what its
    ``space_left`` reports."""

    def __init__(self) -> None:
        super().__init__(TEST_CATALOGUE)
        self.full = False
        self.left: int | None = None
        self.refused = 0

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        if self.full:
            self.refused += 1
            raise LogFull(self.where, self.head().seq + 1, sum(len(a.events) for a in appends))
        return super().append(appends)

    def space_left(self) -> int | None:
        return 0 if self.full else self.left


def sample(at: float) -> list[Append]:
    return [
        Append(
            stream="hardware",
            events=[TelemetrySampled(at_s=at, site_w=1.0)],
            server_time=at,
            monotonic=at,
        )
    ]


async def test_issue16_disk_full_sheds_detail_holds_observations_and_decisions_wait_for_space(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 16 point 5: a full log is a degraded mode. Detail is shed and counted; an observation
    returns at once and is written when space returns; a decision waits until it is durable, then
    the log records the gap (log.shed.v1) and full recording resumes."""
    store = FillingStore()
    alarms: list[str] = []
    writer = LogWriter(store, offload=False, on_alarm=alarms.append)
    decided: list[list[Recorded]] = []

    async def decide() -> None:
        decided.append(await writer.append(append_to("decisions", 7)))

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.append(append_to("decisions", 1))
            store.full = True
            assert await writer.append(sample(100.0)) == []  # shed
            assert writer.degraded
            nursery.start_soon(decide)
            assert await writer.append(append_to("hw", 2), observation=True) == []  # held
            for at in (101.0, 102.0, 103.0):
                assert await writer.append(sample(at)) == []
            await trio.sleep(60)
            assert decided == []  # no decision is acted on before it is durable
            assert store.head().seq == 1
            store.full = False
            await trio.sleep(FULL_RETRY_S + 1)
            assert [r[0].event for r in decided] == [Deposited(account="decisions", amount=7)]
            assert not writer.degraded
            assert [r.seq for r in await writer.append(sample(200.0))] == [store.head().seq]
            nursery.cancel_scope.cancel()
    kinds = [(r.stream, type(r.event).__name__) for r in store.read()]
    assert kinds == [
        ("decisions", "Deposited"),
        ("decisions", "Deposited"),  # the waiting decision first, then what was held
        ("hw", "Deposited"),
        ("log", "LogShed"),
        ("hardware", "TelemetrySampled"),
    ]
    shed = [r.event for r in store.read() if isinstance(r.event, LogShed)]
    assert shed == [LogShed(counts={"hardware.telemetry.v1": 4}, from_s=100.0, to_s=103.0)]
    assert store.refused >= 2  # the first refusal and at least one retry while full
    assert writer.statistics().shed == 4 and writer.statistics().failed_requests == 0
    assert len(alarms) == 2 and "full" in alarms[0] and "writable again" in alarms[1]
    assert store.verify().ok


async def test_issue16_below_the_reserve_detail_is_shed_while_decisions_are_still_written(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 16 point 5: a reserve is kept for decisions: below it, detail is shed (and a
    log.short_of_space.v1 record says so); when space is back above it, the gap is recorded."""
    store = FillingStore()
    store.left = 10_000_000
    writer = LogWriter(store, offload=False, inline_when_idle=True, reserve_bytes=1000)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.append(sample(1.0))
            store.left = 500
            await writer.append(append_to("decisions", 1))  # written; the writer notices
            assert writer.degraded
            assert await writer.append(sample(2.0)) == []
            assert len(await writer.append(append_to("decisions", 2))) == 1
            assert len(await writer.append(append_to("hw", 3), observation=True)) == 1
            store.left = 5000
            await writer.append(append_to("decisions", 4))
            assert not writer.degraded
            nursery.cancel_scope.cancel()
    types = [type(r.event).__name__ for r in store.read()]
    assert types == [
        "TelemetrySampled",
        "Deposited",
        "LogShort",
        "Deposited",
        "Deposited",
        "Deposited",
        "LogShed",
    ]
    short = next(r.event for r in store.read() if isinstance(r.event, LogShort))
    assert short.space_left_bytes == 500
    assert [r.event for r in store.read() if isinstance(r.event, LogShed)] == [
        LogShed(counts={"hardware.telemetry.v1": 1}, from_s=2.0, to_s=2.0)
    ]


async def test_issue16_a_batch_too_big_for_max_bytes_waits_and_the_writer_goes_on(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A decision the SQLite store's max_bytes refuses (SQLITE_FULL) is not failed: it waits for
    space; observations and detail behind it are not held up."""
    store = SqliteEventStore(tmp_path / "tiny.sep2gw", TEST_CATALOGUE, max_bytes=256 * 1024)
    writer = LogWriter(store, offload=False)
    big = [
        Append(
            stream="a",
            events=[Deposited(account="x" * 1000, amount=i) for i in range(400)],
            server_time=1.0,
            monotonic=1.0,
        )
    ]
    waited = False
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            with trio.move_on_after(30):
                await writer.append(big)
            waited = True
            assert writer.degraded
            assert await writer.append(append_to("hw", 1), observation=True) == []
            assert await writer.append(sample(5.0)) == []
            nursery.cancel_scope.cancel()
    assert waited
    # The big batch never fit; on the way out what was held and the account of what was shed are.
    assert [r.stream for r in store.read()] == ["hw", "log"]
    assert writer.statistics().failed_requests == 1  # the waiting decision, failed on shutdown
    store.close()


async def test_other_store_errors_still_reach_the_callers_and_the_writer_goes_on(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            with pytest.raises(InvalidEventTag):
                await writer.append(
                    [Append(stream="a", events=[Stray()], server_time=1.0, monotonic=1.0)]
                )
            records = await writer.append(append_to("a", 1))
            nursery.cancel_scope.cancel()
    assert records[0].seq == 1
    assert writer.statistics().failed_requests == 1


async def test_shutdown_commits_what_was_already_queued(autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(10):
                nursery.start_soon(writer.append, append_to("s", i))
            await trio.sleep(1)  # virtual time: every producer has queued its request
            # The writer is cancelled at its very first checkpoint, before its normal loop ran.
            nursery.start_soon(writer.run)
            nursery.cancel_scope.cancel()
    assert store.head().seq == 10
    assert writer.statistics().commits == 1


async def test_offloaded_commits_to_sqlite_are_durable_on_return(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    store = SqliteEventStore(path, TEST_CATALOGUE)
    writer = LogWriter(store, offload=True)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            async with trio.open_nursery() as clients:
                for i in range(20):
                    clients.start_soon(writer.append, append_to(f"s{i % 3}", i))
            nursery.cancel_scope.cancel()
    store.close()
    # A second connection (another process, in effect) sees every acknowledged record.
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as reader:
        assert reader.head().seq == 20
        assert reader.verify().ok


async def test_an_idle_writer_lets_the_caller_commit_inline_in_call_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    """inline_when_idle: with nothing handed to the writer, each append is committed by its caller
    (one commit each, no round trip); appends made before the writer ran are queued and committed
    first, and none made later overtakes them."""
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False, inline_when_idle=True)
    order: list[int] = []

    async def producer(i: int) -> None:
        records = await writer.append(append_to("s", i))
        order.append(records[0].seq)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(producer, i)
            await trio.sleep(1)  # queued: the writer is not running yet
            await nursery.start(writer.run)
            await producer(3)  # handed-over requests are still uncommitted: it queues behind
            for i in range(4, 8):
                await producer(i)  # the writer is idle now: committed inline
            nursery.cancel_scope.cancel()
    amounts = [r.event.amount for r in store.read() if isinstance(r.event, Deposited)]
    assert sorted(amounts[:3]) == [0, 1, 2]  # the queued ones, in the scheduler's order
    assert amounts[3:] == list(range(3, 8))
    assert sorted(order) == list(range(1, 9))
    assert writer.statistics().commits >= 5  # the last four were one commit each
    assert store.verify().ok


async def test_an_inline_commit_error_reaches_its_caller_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False, inline_when_idle=True)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.append(append_to("a", 1, expected=0))
            with pytest.raises(ConcurrencyConflict):
                await writer.append(append_to("a", 2, expected=0))
            records = await writer.append(append_to("b", 3))
            nursery.cancel_scope.cancel()
    assert records[0].seq == 2
    assert writer.statistics().failed_requests == 1


def test_inline_commits_need_a_synchronous_store() -> None:
    with pytest.raises(ValueError, match="offload=False"):
        LogWriter(MemoryEventStore(TEST_CATALOGUE), offload=True, inline_when_idle=True)


async def test_issue16_a_log_found_full_on_the_way_out_fails_the_waiting_decisions(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Shutdown commits what was queued; a log that refuses it then fails those callers with
    LogFull (they are being cancelled) and the writer leaves cleanly, with no retry timer."""
    store = FillingStore()
    writer = LogWriter(store, offload=False)
    outcomes: list[object] = []

    async def decide() -> None:
        # Hears the outcome though its scope is cancelled (and gives up if none ever comes).
        with trio.CancelScope(shield=True), trio.fail_after(5):
            try:
                outcomes.append(await writer.append(append_to("s", 1)))
            except LogFull as exc:
                outcomes.append(exc)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(decide)
            await trio.sleep(1)  # queued before the writer ever ran
            store.full = True
            nursery.start_soon(writer.run)
            nursery.cancel_scope.cancel()
    assert len(outcomes) == 1 and isinstance(outcomes[0], LogFull)
    assert store.head().seq == 0


async def _write_day(detail_commit_s: float, store: MemoryEventStore) -> list[list[Recorded]]:
    """Samples a second apart with a decision every 7 s, through an inline writer (as a gateway
    on the in-memory store runs it); returns what each append returned."""
    writer = LogWriter(store, offload=False, inline_when_idle=True, detail_commit_s=detail_commit_s)
    returned: list[list[Recorded]] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        for second in range(1, 40):
            returned.append(await writer.append(sample(float(second))))
            if second % 7 == 0:
                returned.append(await writer.append(append_to("decisions", second)))
            await trio.sleep(1)
        nursery.cancel_scope.cancel()
    return returned


async def test_issue19_detail_committed_in_groups_leaves_the_same_log(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Decision 0022f: with ``detail_commit_s`` the samples wait for a group commit, and the log
    holds the same records in the same order with the same hashes as with a commit per sample;
    each decision is written after the samples before it and returns its own records only."""
    every_sample, grouped = MemoryEventStore(TEST_CATALOGUE), MemoryEventStore(TEST_CATALOGUE)
    with trio.fail_after(600):
        await _write_day(0.0, every_sample)
        returned = await _write_day(10.0, grouped)
    assert list(grouped.read_raw()) == list(every_sample.read_raw())
    assert grouped.verify().ok
    decisions = [r for r in returned if r and isinstance(r[0].event, Deposited)]
    assert [len(r) for r in decisions] == [1] * 5
    assert all(r[0].stream == "decisions" for r in decisions)
    # Most samples returned nothing: they waited for their group.
    assert sum(1 for r in returned if not r) > 25


async def test_issue19_waiting_detail_is_written_when_due_and_on_the_way_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False, inline_when_idle=True, detail_commit_s=10.0)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            for second in range(0, 10):
                assert await writer.append(sample(float(second))) == []
            assert store.head().seq == 0  # nothing older than 10 s yet: all wait
            written = await writer.append(sample(10.0))
            assert [r.event.at_s for r in written] == [float(s) for s in range(11)]
            assert await writer.append(sample(11.0)) == []
            nursery.cancel_scope.cancel()
    # The writer's last act: what still waited is in the log.
    assert store.head().seq == 12


def test_issue19_detail_commit_s_cannot_be_negative() -> None:
    with pytest.raises(ValueError, match="detail_commit_s"):
        LogWriter(MemoryEventStore(TEST_CATALOGUE), offload=False, detail_commit_s=-1.0)


async def test_issue19_waiting_detail_never_lets_a_later_append_overtake_an_earlier_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """With the writer task doing the commits (a gateway on a file), an append that flushes the
    waiting detail queues that detail and then itself, without waiting for the detail's commit in
    between: a second task appending after it is written after it (it was written first when the
    first append waited for the detail's commit)."""
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False, inline_when_idle=False, detail_commit_s=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(writer.run)
        await writer.append(sample(1.0))  # detail: waits for its group

        async def first() -> None:
            await writer.append(append_to("A", 2))

        async def second() -> None:
            await trio.lowlevel.checkpoint()  # appends after the first has
            await writer.append(append_to("B", 3))

        nursery.start_soon(first)
        nursery.start_soon(second)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    streams = [r.stream for r in store.read(1)]
    assert streams.index("A") < streams.index("B"), streams
    assert len(streams) == 3  # the sample, A and B: nothing lost


async def test_issue19_waiting_detail_and_the_append_after_it_are_one_commit(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Written in the caller's task, the detail that waited and the append that flushes it go in
    one transaction (as the writer task's group commit makes of two requests taken in turn): one
    sync, not two. A decision the store refuses (a concurrency conflict) is refused on its own:
    the detail before it is still written."""
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False, inline_when_idle=True, detail_commit_s=10.0)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            for second in range(1, 4):
                assert await writer.append(sample(float(second))) == []
            before = writer.statistics().commits
            written = await writer.append(append_to("decisions", 5))
            assert [r.stream for r in written] == ["decisions"]
            assert writer.statistics().commits == before + 1
            assert [r.stream for r in store.read(1)] == ["hardware"] * 3 + ["decisions"]

            assert await writer.append(sample(6.0)) == []
            with pytest.raises(ConcurrencyConflict):
                await writer.append(append_to("decisions", 7, expected=0))
            assert [r.stream for r in store.read(5)] == ["hardware"]
            assert writer.statistics().failed_requests == 1
            nursery.cancel_scope.cancel()
    assert store.verify().ok


async def test_held_records_are_written_in_order_with_the_next_append_or_a_flush(
    autojump_clock: trio.abc.Clock,
) -> None:
    """``hold``: records an actor makes one by one (the mirror's answers of a post instant) wait
    and are written in one transaction with the next append, whoever makes it, before it (the
    log's order is the order they were made in), or by ``flush``; with or without telemetry
    detail grouping."""
    for detail_commit_s in (0.0, 10.0):
        store = MemoryEventStore(TEST_CATALOGUE)
        writer = LogWriter(
            store, offload=False, inline_when_idle=True, detail_commit_s=detail_commit_s
        )
        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                await nursery.start(writer.run)
                writer.hold(append_to("mirror", 1))
                writer.hold(append_to("mirror", 2))
                assert store.head().seq == 0
                written = await writer.append(append_to("other actor", 3))
                assert [r.stream for r in written] == ["other actor"]
                assert [r.stream for r in store.read(1)] == ["mirror", "mirror", "other actor"]
                assert writer.statistics().commits == 1

                writer.hold(append_to("mirror", 4))
                await writer.flush()
                assert store.head().seq == 4
                await writer.flush()  # nothing waits: nothing written
                assert writer.statistics().commits == 2
                nursery.cancel_scope.cancel()
        assert store.verify().ok


async def test_held_records_are_written_by_a_writer_on_its_way_out(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(TEST_CATALOGUE)
    writer = LogWriter(store, offload=False, inline_when_idle=True)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            writer.hold(append_to("mirror", 1))
            nursery.cancel_scope.cancel()
    assert [r.stream for r in store.read(1)] == ["mirror"]


async def test_held_records_are_not_lost_to_a_full_log(autojump_clock: trio.abc.Clock) -> None:
    """A post instant's answers held while the log fills are kept as observations (the mirror
    goes on) and written once space returns: a full log sheds detail, never them."""
    store = FillingStore()
    writer = LogWriter(store, offload=False)
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            await writer.append(append_to("decisions", 1))
            store.full = True
            writer.hold(append_to("mirror", 2))
            writer.hold(append_to("mirror", 3))
            await writer.flush()  # returns at once: held, not written, not lost
            assert store.head().seq == 1
            store.full = False
            await trio.sleep(FULL_RETRY_S + 1)
            nursery.cancel_scope.cancel()
    streams = [r.stream for r in store.read()]
    assert streams[:3] == ["decisions", "mirror", "mirror"]
    assert store.verify().ok
