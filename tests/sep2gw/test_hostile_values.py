"""Issue 15 point 1, no server input can fail an actor: a control the site cannot carry out is
refused with 253 (PROTOCOL.md §4 rules 2 and 16) and the rest of the program goes on; the
gateway never stops (``opModMaxLimW`` 655 % made ``InvalidLimit`` escape the hardware actor until
the supervisor gave up). The whole gateway against the simulated utility server on the autojump clock
(``tests.sep2gw.world``)."""

from __future__ import annotations

from pathlib import Path

import trio

from events.control_events import ControlRejected, ControlStarted
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.runtime_events import ActorFailed
from sep2gw.simserver import parse_scenario
from tests.sep2gw.world import World, deadline

SCENARIO = """
name = "absurd values"

[server]
pin = 111115
poll_rate_s = 30
post_rate_s = 60

[[programs]]
id = "network"
primacy = 1
default = { opModExpLimW = 5000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000002"
program = "network"
start_s = 60
duration_s = 120
modes = { opModMaxLimW = 655.35 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000004"
program = "network"
start_s = 90
duration_s = 120
modes = { opModImpLimW = 2000 }
"""


async def test_refusal_an_absurd_control_is_answered_253_and_the_program_goes_on(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(SCENARIO, source="test"), store)
    with deadline(3600):
        await world.run(300)
    server = world.server
    assert server is not None
    events = [r.event for r in store.read()]
    assert not [e for e in events if isinstance(e, ActorFailed)]
    rejected = {e.mrid[-1]: e.reason for e in events if isinstance(e, ControlRejected)}
    assert set(rejected) == {"2"} and "max_limit_pct" in rejected["2"]
    assert server.response_statuses("C0000000000000000000000000000002") == [253]
    assert [e.mrid[-1] for e in events if isinstance(e, ControlStarted)] == ["4"]
    assert server.response_statuses("C0000000000000000000000000000004") == [1, 2, 3]
