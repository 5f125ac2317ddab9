"""The embedding API's view of a running gateway (issue 20 point 2): ``Gateway.status`` and
``Gateway.state_changes()`` are the status fold over every record the gateway writes, the same
fold ``sep2gw status`` makes of the file."""

from __future__ import annotations

from pathlib import Path

import trio

from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.simserver import demo_scenario
from sep2gw.status import SiteStatus, status_of_store
from tests.sep2gw.world import EPOCH, World, deadline


async def test_state_changes_follow_the_gateway_and_a_slow_consumer_gets_the_newest(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store)
    seen: list[SiteStatus] = []
    late: list[tuple[SiteStatus, SiteStatus]] = []
    last: list[SiteStatus] = []

    async def consumer() -> None:
        await trio.sleep(1)  # virtual: the world has started its gateway by then
        gateway = world.gateways[0]
        async for status in gateway.state_changes():
            seen.append(status)
            if status.registration == "registered" and status.limits_since_s is not None:
                break
        # A consumer busy for a minute and a half: no queue grew; it gets the newest status.
        await trio.sleep(90)
        async for status in gateway.state_changes():
            late.append((status, gateway.status))
            break
        # Followed to the end: the iteration ends with the status holding the stop record.
        async for status in gateway.state_changes():
            last.append(status)

    with deadline(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer)
            await world.run(300)
    assert seen[0].started is not None  # the first status already has the start record
    assert [s.registration for s in seen][-1] == "registered"
    assert all(a.seq < b.seq for a, b in zip(seen, seen[1:], strict=False))
    ((got, newest),) = late
    assert got == newest and got.at_s is not None and got.at_s >= EPOCH + 90
    # Live and from the log: the same status (the gateway's stop record included).
    gateway = world.gateways[0]
    assert gateway.status == status_of_store(store)
    assert gateway.status.stopped is not None
    assert last[-1] == gateway.status  # the consumer's loop ended with the gateway
    assert gateway.status.comms == "up" and gateway.status.last_poll is not None
    assert gateway.status.last_post is not None and gateway.status.last_write is not None
