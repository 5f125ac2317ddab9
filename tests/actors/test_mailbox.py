"""The latest-value mailbox (actors.mailbox.Latest) and the controls actor's news to the registration
actor that travels in one (actors.messages.ControlsNews, issue 17)."""

from __future__ import annotations

import anyio
import trio

from actors.mailbox import Latest
from actors.messages import ControlsNews
from events.control_events import CommsRestored


def test_news_put_before_the_last_was_taken_is_merged_none_is_lost() -> None:
    """PROTOCOL.md §4 rule 12 and §2.7: a CommsRestored and a control taking effect, told while
    the registration actor is busy, both reach it; of two CommsRestored the newer counts."""
    box: Latest[ControlsNews] = Latest()
    box.put_merged(ControlsNews(comms_restored=CommsRestored(at_s=10)), ControlsNews.merged)
    box.put_merged(ControlsNews(control_took_effect=True), ControlsNews.merged)
    box.put_merged(ControlsNews(comms_restored=CommsRestored(at_s=20)), ControlsNews.merged)
    assert box.take_nowait() == ControlsNews(
        comms_restored=CommsRestored(at_s=20), control_took_effect=True
    )
    # Taken: the next news starts afresh, nothing of the old is told twice.
    box.put_merged(ControlsNews(control_took_effect=True), ControlsNews.merged)
    assert box.take_nowait() == ControlsNews(control_took_effect=True)


async def test_wait_returns_once_a_value_is_there_without_taking_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    """An actor sleeping until a deadline or news wakes on the news and then takes it."""
    box: Latest[int] = Latest()
    with anyio.move_on_after(5) as idle:
        await box.wait()
    assert idle.cancelled_caught  # nothing put: it waited until the deadline
    async with anyio.create_task_group() as group:
        group.start_soon(box.wait)
        await anyio.sleep(1)
        box.put(7)
    assert box.fresh
    await box.wait()  # at once: a value is waiting
    assert box.take_nowait() == 7
    assert not box.fresh


async def test_watch_slow_reader_sees_only_the_newest_value_and_never_holds_the_writer(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 20 point 2: the status followed by any number of readers; a reader busy while
    many values are put gets the newest at its next step, and ``put`` never waits."""
    from actors.mailbox import Watch

    watch: Watch[int] = Watch(0)
    fast: list[int] = []
    slow: list[int] = []

    async def follow(into: list[int], pause_s: float) -> None:
        async for value in watch.follow():
            into.append(value)
            if value == 100:
                return
            await anyio.sleep(pause_s)

    async with anyio.create_task_group() as group:
        group.start_soon(follow, fast, 0)
        group.start_soon(follow, slow, 10)
        await anyio.sleep(1)
        for value in range(1, 101):
            watch.put(value)  # synchronous: nothing to wait for, whatever the readers do
            await anyio.sleep(0.5)
    assert fast == list(range(101))
    assert slow[0] == 0 and slow[-1] == 100
    assert len(slow) < 15  # skipped what it was too slow for; no queue grew behind it
    assert slow == sorted(slow)
    assert watch.version == 100 and watch.peek() == 100


async def test_a_closed_watch_ends_its_readers_after_the_last_value(
    autojump_clock: trio.abc.Clock,
) -> None:
    from actors.mailbox import Watch

    watch: Watch[int] = Watch(0)
    seen: list[int] = []

    async def follow() -> None:
        async for value in watch.follow():
            seen.append(value)

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        await anyio.sleep(1)
        watch.put(1)
        watch.put(2)
        watch.close()  # the reader still gets 2, then its loop ends (the group can exit)
    assert seen == [0, 2]


async def test_a_taker_is_woken_only_by_the_values_its_filter_wants(
    autojump_clock: trio.abc.Clock,
) -> None:
    """``wake_only_if``: the other values are kept as the newest without waking the taker."""
    box: Latest[int] = Latest()
    box.wake_only_if(lambda value: value % 10 == 0)
    taken: list[int] = []

    async def taker() -> None:
        while True:
            taken.append(await box.take())

    async with anyio.create_task_group() as group:
        group.start_soon(taker)
        await anyio.sleep(1)
        for value in (1, 2, 3):
            box.put(value)
            await anyio.sleep(1)
        assert taken == [] and box.peek() == 3  # kept, nobody woken
        box.put(10)
        await anyio.sleep(1)
        assert taken == [10]
        group.cancel_scope.cancel()


async def test_a_filter_that_fails_wakes_the_taker_and_never_fails_the_putter(
    autojump_clock: trio.abc.Clock,
) -> None:
    box: Latest[int] = Latest()

    def broken(value: int) -> bool:
        raise ValueError(f"cannot read {value}")

    box.wake_only_if(broken)
    taken: list[int] = []

    async def taker() -> None:
        taken.append(await box.take())

    async with anyio.create_task_group() as group:
        group.start_soon(taker)
        await anyio.sleep(1)
        box.put(1)  # no exception here: the putter goes on
        await anyio.sleep(1)
    assert taken == [1]  # woken, to meet the value in its own task
