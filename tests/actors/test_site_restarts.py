"""A fleet site that stops starts again after a bounded back-off (issue 19: one failing site never
stalls another)."""

from __future__ import annotations

import trio

from actors.clock import Clock
from actors.site_restarts import SiteBackoff, keep_site_running


async def test_a_failing_site_starts_again_after_a_doubling_bounded_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    clock = Clock(wall_at_start=0)
    starts: list[float] = []
    said: list[tuple[str, float]] = []

    async def run_once() -> None:
        starts.append(clock.monotonic())
        if len(starts) < 5:
            raise RuntimeError(f"start {len(starts)} failed")
        await trio.sleep_forever()

    with trio.move_on_after(10_000):
        await keep_site_running(
            run_once,
            clock=clock,
            backoff=SiteBackoff(initial_s=30, max_s=100),
            on_stopped=lambda error, delay: said.append((str(error), delay)),
        )
    assert [round(b - a) for a, b in zip(starts, starts[1:], strict=False)] == [30, 60, 100, 100]
    assert said[0] == ("start 1 failed", 30.0)


async def test_a_site_that_returns_on_its_own_is_started_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    clock = Clock(wall_at_start=0)
    starts = 0
    said: list[str] = []

    async def run_once() -> None:
        nonlocal starts
        starts += 1
        if starts > 1:
            await trio.sleep_forever()

    with trio.move_on_after(1_000):
        await keep_site_running(
            run_once,
            clock=clock,
            backoff=SiteBackoff(initial_s=5, max_s=5),
            on_stopped=lambda error, delay: said.append(str(error)),
        )
    assert starts == 2 and said == ["its gateway stopped on its own"]
