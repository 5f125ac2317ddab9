"""``actors.clock.within``: ``anyio.fail_after``'s meaning at a lower cost per use."""

from __future__ import annotations

import pytest
import trio

from actors.clock import within


async def test_a_block_that_overruns_raises_timeout_error(autojump_clock: trio.abc.Clock) -> None:
    began = trio.current_time()
    with pytest.raises(TimeoutError):
        with within(5.0):
            await trio.sleep(10)
    assert trio.current_time() - began == pytest.approx(5.0)


async def test_a_block_that_finishes_in_time_is_left_alone(autojump_clock: trio.abc.Clock) -> None:
    with within(5.0) as scope:
        await trio.sleep(4)
    assert not scope.cancelled_caught


async def test_an_error_inside_goes_on_as_it_came(autojump_clock: trio.abc.Clock) -> None:
    with pytest.raises(KeyError):
        with within(5.0):
            await trio.sleep(1)
            raise KeyError("device")


async def test_a_cancellation_from_outside_is_not_a_timeout(
    autojump_clock: trio.abc.Clock,
) -> None:
    with trio.move_on_after(2) as outer:
        with within(5.0):
            await trio.sleep(10)
    assert outer.cancelled_caught
