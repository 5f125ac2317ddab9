"""The actors' messages carry what one actor's decision means for another (issue 17): here the
controls actor's news to the registration actor (``actors.messages.ControlsNews``), checked end to
end in a simulated world, since no actor may call another's methods to make it happen."""

from __future__ import annotations

from pathlib import Path

import trio

from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.simserver import parse_scenario
from tests.sep2gw.test_gateway_adversarial import one_control
from tests.sep2gw.world import EPOCH, World, deadline


async def test_der_information_is_re_put_when_a_control_takes_effect_not_at_the_next_poll(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.7: re-PUT the DER information after each control takes effect. The control
    starts at 60 s; the lists are polled every 300 s, so a DERCapability and DERAvailability PUT
    at 60 s is the controls actor's news reaching the registration actor (ControlsNews)."""
    scenario = one_control(server="poll_rate_s = 300").replace("poll_rate_s = 30\n", "", 1)
    world = World(pki, parse_scenario(scenario, source="test"), MemoryEventStore(CATALOGUE))
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    for resource in ("dercap", "derav"):
        instants = [q.time - EPOCH for q in server.puts_to(f"/edev/1/der/1/{resource}")]
        assert [t for t in instants if 0 < t < 300] == [60], (resource, instants)
