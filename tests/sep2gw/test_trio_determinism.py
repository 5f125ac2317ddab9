"""The simulation's seeded schedule rests on trio internals (sep2gw.trio_determinism): a trio
release that changes them must fail here, by name, not as worlds that silently stop repeating."""

from __future__ import annotations

import trio
import trio.testing

from sep2gw.trio_determinism import deterministic_trio, private_api_problems


def test_the_installed_trio_has_what_the_adapter_uses() -> None:
    assert private_api_problems() == [], f"trio {trio.__version__}: {private_api_problems()}"


def _wake_order(seed: int) -> list[int]:
    order: list[int] = []

    async def sleeper(n: int) -> None:
        await trio.sleep_until(5.0)  # every task wakes at the same instant
        order.append(n)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for n in range(12):
                nursery.start_soon(sleeper, n)

    with deterministic_trio(seed):
        trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return order


def test_equal_deadlines_wake_in_an_order_set_by_the_seed_alone() -> None:
    assert _wake_order(3) == _wake_order(3)
    assert len({tuple(_wake_order(seed)) for seed in range(6)}) > 1
