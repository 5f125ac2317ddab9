"""The log actor: durable before it answers, group commit, isolated conflicts, flush on shutdown."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from actors.log_writer import LogWriter
from events.envelope import Append, Recorded
from events.errors import ConcurrencyConflict, LogFull
from events.memory_store import MemoryEventStore
from events.sqlite_store import SqliteEventStore
from tests.events.eventtypes import TEST_CATALOGUE, Deposited


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


async def test_store_errors_reach_the_callers_and_the_writer_goes_on(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = SqliteEventStore(tmp_path / "tiny.sep2gw", TEST_CATALOGUE, max_bytes=48 * 1024)
    writer = LogWriter(store, offload=False)
    big = [
        Append(
            stream="a",
            events=[Deposited(account="x" * 1000, amount=i) for i in range(200)],
            server_time=1.0,
            monotonic=1.0,
        )
    ]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            with pytest.raises(LogFull):
                await writer.append(big)
            records = await writer.append(append_to("a", 1))
            nursery.cancel_scope.cancel()
    assert records[0].seq == 1
    assert writer.statistics().failed_requests == 1
    store.close()


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
