"""The whole gateway against a utility server that misbehaves: refusals, failing optional
resources, missing optional links, bursts of events, outages noticed by a Response, failing actors.

Each test runs a scenario of the simulated utility server on the autojump clock (see
``tests.sep2gw.world``), and names the rule it checks.
"""

from __future__ import annotations

from pathlib import Path

import trio

from actors.drivers.base import DerDriver, Telemetry
from actors.supervisor import RestartPolicy
from events.control_events import (
    CommsRestored,
    ControlReceived,
    ControlStarted,
    ResponseFailed,
)
from events.memory_store import MemoryEventStore
from events.registration_events import RegistrationHalted, StepDone
from events.registry import CATALOGUE
from events.runtime_events import ActorFailed
from sep2gw.simserver import parse_scenario
from tests.sep2gw.world import EPOCH, World, deadline

MRID = "C0000000000000000000000000000001"

ONE_CONTROL = """
name = "one control"

[server]
pin = 111115
poll_rate_s = 30
post_rate_s = 60
{server}

[[programs]]
id = "network"
primacy = 1
default = {{ opModExpLimW = 5000 }}

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 60
duration_s = 120
modes = {{ opModExpLimW = 1000 }}
{actions}
"""


def one_control(server: str = "", actions: str = "") -> str:
    return ONE_CONTROL.format(server=server, actions=actions)


def started(store: MemoryEventStore, mrid: str) -> list[float]:
    return [
        r.event.at_s
        for r in store.read()
        if isinstance(r.event, ControlStarted) and r.event.mrid == mrid
    ]


async def test_the_first_walk_hands_over_controls_and_defaults_at_once(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.6 and §4 rules 2, 6, 10: what discovery finds applies at once. The walk used to
    send a program's default and controls before announcing the program, so the controls actor
    dropped them and only saw them one pollRate (here 300 s) later: the control started late."""
    scenario = one_control(server="poll_rate_s = 300").replace(
        "poll_rate_s = 30\n", "", 1
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    received = [r.event for r in store.read() if isinstance(r.event, ControlReceived)]
    assert [e.at_s for e in received] == [EPOCH]
    assert started(store, MRID) == [EPOCH + 60]
    assert server.response_statuses(MRID) == [1, 2, 3]
    assert server.responses_for(MRID)[0].time == EPOCH


async def test_a_response_refused_with_4xx_is_not_retried_and_does_not_spin(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §4 rule 16: a Response refused with 4xx is never retried; the actor must not keep
    a retry deadline for it (a past deadline made the controls actor spin, freezing virtual time)."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 0
kind = "fail"
duration_s = 30
status = 400
paths = ["/rsps"]
methods = ["POST"]
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(300)
    server = world.server
    assert server is not None
    refused = [r.event for r in store.read() if isinstance(r.event, ResponseFailed)]
    assert [(e.status, e.http_status, e.retry) for e in refused] == [(1, 400, False)]
    assert [q.status for q in server.posts_to("/rsps/1/rsp")] == [400, 201, 201]
    assert server.response_statuses(MRID) == [2, 3]
    controls = world.gateways[-1].actors["controls"]
    assert controls.statistics().timers < 50, controls.statistics()


OUTAGE_NOTICED_BY_A_RESPONSE = """
name = "an outage the gateway first notices when a Response fails"

[server]
pin = 111115
poll_rate_s = 300
post_rate_s = 60

[[programs]]
id = "network"
primacy = 1
default = { opModExpLimW = 5000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 60
duration_s = 600
modes = { opModExpLimW = 1000 }

[[actions]]
at_s = 50
kind = "fail"
duration_s = 150
reset = true

[[actions]]
at_s = 100
kind = "create_control"
mrid = "C0000000000000000000000000000002"
program = "network"
start_s = 260
duration_s = 120
modes = { opModExpLimW = 2000 }
"""


async def test_an_outage_noticed_by_a_response_neither_spins_nor_delays_the_re_poll(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §4 rule 12: Responses queue while offline (a failed one's retry instant must not
    make the controls actor spin once it has passed), and on recovery everything is re-polled at
    once: the control created during the outage is seen when the link comes back (a mirror post at
    240 s), not at the next pollRate (300 s), so it starts on time at 260 s."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(OUTAGE_NOTICED_BY_A_RESPONSE, source="test"), store)
    with deadline(3600):
        await world.run(420)
    server = world.server
    assert server is not None
    restored = [r.event.at_s for r in store.read() if isinstance(r.event, CommsRestored)]
    assert restored and EPOCH + 200 <= restored[0] < EPOCH + 260
    second = "C0000000000000000000000000000002"
    assert started(store, second) == [EPOCH + 260]
    assert server.response_statuses(MRID) == [1, 2, 7]  # the later control takes its mode
    assert server.response_statuses(second) == [1, 2, 3]
    assert server.duplicate_responses() == []
    controls = world.gateways[-1].actors["controls"]
    assert controls.statistics().timers < 50, controls.statistics()


async def test_a_refused_der_settings_put_neither_halts_nor_stalls_registration(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.7 is information for the utility, not a registration step that can fail: a
    DERSettings PUT refused with 400 used to halt all traffic (as a 4xx on a walk step does), so
    the gateway never followed its schedule."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 0
kind = "fail"
duration_s = 600
status = 400
paths = ["/edev/1/der/1/derg"]
methods = ["PUT"]
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    assert not [r for r in store.read() if isinstance(r.event, RegistrationHalted)]
    assert started(store, MRID) == [EPOCH + 60]
    assert server.response_statuses(MRID) == [1, 2, 3]
    assert server.puts_to("/edev/1/der/1/ders"), "DERStatus was not reported"


async def test_a_failing_der_capability_put_does_not_keep_the_walk_retrying(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A 503 on DERCapability retried the whole DER step with back-off for as long as it lasted: no
    poll, no mirror meanwhile. The walk goes on; the information is PUT again later."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 0
kind = "fail"
duration_s = 600
status = 503
paths = ["/edev/1/der/1/dercap"]
methods = ["PUT"]
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    steps = [r.event.step for r in store.read() if isinstance(r.event, StepDone)]
    assert steps[-1] == "mirror"  # the walk reached ready
    assert started(store, MRID) == [EPOCH + 60]
    assert len(server.polls_of("/edev/1/der")) == 1  # no re-walks of the DER step


async def test_an_nmi_without_a_connection_point_link_does_not_block_registration(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.5: the CSIP-AUS ConnectionPoint is PUT *when the server offers it*. With an
    NMI configured and no ConnectionPointLink the walk used to treat the absent link as a 404 and
    re-discover forever, never reaching the schedule."""
    scenario = one_control(server="connection_point = false")
    store = MemoryEventStore(CATALOGUE)
    world = World(
        pki,
        parse_scenario(scenario, source="test"),
        store,
        config_extra='[site]\nnmi = "4102345678"\n',
    )
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    assert started(store, MRID) == [EPOCH + 60]
    assert server.response_statuses(MRID) == [1, 2, 3]
    assert len(server.polls_of("/dcap")) == 1  # one walk


async def test_an_nmi_is_put_to_the_connection_point_the_server_offers(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.5 (the other side of the test above): with the link, the NMI is PUT once."""
    store = MemoryEventStore(CATALOGUE)
    world = World(
        pki,
        parse_scenario(one_control(), source="test"),
        store,
        config_extra='[site]\nnmi = "4102345678"\n',
    )
    with deadline(3600):
        await world.run(120)
    server = world.server
    assert server is not None
    assert len(server.puts_to("/edev/1/cp")) == 1
    assert started(store, MRID) == [EPOCH + 60]


TWO_PROGRAMS = """
name = "two programs, one of them with a broken control list"

[server]
pin = 111115
poll_rate_s = 30
post_rate_s = 60

[[programs]]
id = "broken"
primacy = 1

[[programs]]
id = "retailer"
primacy = 2
default = {{ opModExpLimW = 4000 }}

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "retailer"
start_s = 60
duration_s = 120
modes = {{ opModExpLimW = 1000 }}

[[actions]]
at_s = 0
kind = "fail"
duration_s = 600
status = {status}
paths = ["/derp/1/derc"]
methods = ["GET"]
"""


async def test_one_programs_failing_control_list_does_not_hide_the_others(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.6 and §4 rule 15: a 404 (or 503) of one program's DERControlList aborted the
    whole poll; in the walk the 404 re-discovered for as long as it lasted, and the programs listed
    after the broken one were never read: their controls never ran. Now only that program is
    skipped for the cycle, and the walk happens once."""
    for status in (404, 503):
        store = MemoryEventStore(CATALOGUE)
        scenario = parse_scenario(TWO_PROGRAMS.format(status=status), source="test")
        world = World(pki, scenario, store)
        with deadline(3600):
            await world.run(240)
        server = world.server
        assert server is not None
        assert started(store, MRID) == [EPOCH + 60], status
        assert server.response_statuses(MRID) == [1, 2, 3], status
        assert len(server.polls_of("/dcap")) == 1, status
        gaps = server.poll_intervals("/derp/1/derc")
        assert gaps and min(gaps) >= 30 - 1e-6, status  # tried again at the pollRate, no sooner


def burst_of_controls(count: int) -> str:
    actions = "".join(
        f"""
[[actions]]
at_s = 0
kind = "create_control"
mrid = "B{i:031X}"
program = "network"
start_s = {600 + 10 * i}
duration_s = 5
response_required = 1
modes = {{ opModExpLimW = 1000 }}
"""
        for i in range(count)
    )
    return f"""
name = "a burst of controls"

[server]
pin = 111115
poll_rate_s = 300
post_rate_s = 300

[[programs]]
id = "network"
primacy = 1
{actions}
"""


async def test_a_burst_of_responses_cannot_deadlock_controls_and_responder(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Bounded streams, who waits on whom: the controls actor handed Responses to the responder with
    a blocking send while the responder reported outcomes to the controls actor with one. With more
    Responses due at once than both buffers hold (150 Received after the first poll), each waited on
    the other for ever. Every Response must reach the server, once."""
    count = 150
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(burst_of_controls(count), source="test"), store)
    with deadline(3600):
        await world.run(120)
    server = world.server
    assert server is not None
    accepted = [q for q in server.posts_to("/rsps/1/rsp") if q.status == 201]
    assert len(accepted) == count
    assert server.duplicate_responses() == []
