"""The clock owner and the random source."""

from __future__ import annotations

import trio

from actors.clock import Clock
from actors.rng import RandomSource

EPOCH = 1_764_000_000.0


async def test_server_time_is_monotonic_plus_offset(autojump_clock: trio.abc.Clock) -> None:
    clock = Clock(wall_at_start=EPOCH)
    assert clock.server_time() == EPOCH and not clock.synced
    await trio.sleep(30)
    reading = clock.read()
    assert reading.server_time == EPOCH + 30
    assert reading.server_time - reading.monotonic == clock.offset_s


async def test_adopting_the_server_offset_moves_server_time_not_monotonic(
    autojump_clock: trio.abc.Clock,
) -> None:
    clock = Clock(wall_at_start=EPOCH)
    before = clock.monotonic()
    clock.adopt_server_offset(clock.offset_s + 90)  # the device clock was 90 s slow
    assert clock.synced
    assert clock.monotonic() == before
    assert clock.server_time() == EPOCH + 90
    assert clock.to_monotonic(EPOCH + 100) == before + 10


async def test_sleep_until_server_time_follows_an_offset_change(
    autojump_clock: trio.abc.Clock,
) -> None:
    clock = Clock(wall_at_start=EPOCH)
    woke: list[float] = []

    async def sleeper() -> None:
        await clock.sleep_until_server_time(EPOCH + 600)
        woke.append(clock.server_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sleeper)
        await trio.sleep(100)
        clock.adopt_server_offset(clock.offset_s + 300)  # server is 5 minutes ahead of us
    assert woke == [EPOCH + 600]
    # Without following the change it would have woken at server time EPOCH + 900.


def test_random_source_is_reproducible_from_its_seed() -> None:
    a, b = RandomSource(42), RandomSource(42)
    assert [a.uniform(0, 10) for _ in range(5)] == [b.uniform(0, 10) for _ in range(5)]
    assert RandomSource().seed != RandomSource().seed


def test_negative_bounds_and_forks() -> None:
    source = RandomSource(7)
    draws = [source.uniform(0, -30) for _ in range(100)]
    assert all(-30 <= d <= 0 for d in draws)
    assert all(-5 <= source.integer(0, -5) <= 0 for _ in range(100))
    left, right = RandomSource(7).fork("battery"), RandomSource(7).fork("server")
    assert left.seed != right.seed
    assert RandomSource(7).fork("battery").seed == left.seed
