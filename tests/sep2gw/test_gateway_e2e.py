"""The whole gateway against the simulated utility server and battery, inside one event loop on the
autojump clock: discovery → controls → responses → telemetry, over mutual TLS and Modbus pipes."""

from __future__ import annotations

import random
from pathlib import Path

import trio

from events.control_events import (
    CommsLost,
    CommsRestored,
    ControlCancelled,
    ControlCompleted,
    ControlStarted,
    ControlSuperseded,
    LimitsInForceChanged,
)
from events.hardware_events import LimitsApplied
from events.memory_store import MemoryEventStore
from events.registration_events import RegistrationHalted
from events.registry import CATALOGUE
from events.store import EventStore
from sep2gw.simserver import demo_scenario, parse_scenario
from tests.sep2gw.world import EPOCH, World, deadline
from transport.sep2 import resources as r


async def test_demo_scenario_end_to_end(pki: Path, autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store)
    with deadline(3600):
        await world.run(demo_scenario().duration_s() + 60)
    server = world.server
    assert server is not None
    assert store.verify().ok
    # Registration happened in-band, over mutual TLS, and the gateway found its programs.
    assert server.posts_to("/edev"), "EndDevice was not registered"
    statuses = {m: server.response_statuses(f"DE{'0' * 28}{m}") for m in ("A1", "A2", "B1", "A3")}
    assert statuses["A1"] == [1, 2, 3]
    # A2 runs from 12:03:00; B1 (higher primacy) starts at 12:03:20 and takes its target_w: 7 then.
    assert statuses["A2"] == [1, 2, 7]
    assert statuses["B1"] == [1, 2, 3]
    assert statuses["A3"] == [1, 2, 6]  # cancelled while active
    assert server.duplicate_responses() == []
    limits = [r.event.settings for r in store.read() if isinstance(r.event, LimitsInForceChanged)]
    assert any(s.export_limit_w == 1500 for s in limits)
    # Telemetry reached the utility: readings were posted to the mirror usage points.
    assert any(req.path.startswith("/mup/") and req.method == "POST" for req in server.requests)


async def test_pin_mismatch_halts_all_traffic(pki: Path, autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store, pin=222228)
    with deadline(3600):
        await world.run(300)
    server = world.server
    assert server is not None
    halted = [r.event for r in store.read() if isinstance(r.event, RegistrationHalted)]
    assert halted and "PIN mismatch" in halted[0].reason
    after = [q for q in server.requests if q.time > halted[0].at_s]
    assert after == [], f"traffic after the halt: {[(q.method, q.path) for q in after]}"


COMMS_LOSS = """
name = "seven minutes of comms loss"

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
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 240
duration_s = 300
modes = { opModExpLimW = 1000 }

[[actions]]
at_s = 60
kind = "fail"
duration_s = 420
reset = true
"""


async def test_comms_loss_keeps_the_schedule_and_sends_queued_responses_after(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §4 rule 12: the server is unreachable from 60 s to 480 s; the control starts at
    240 s anyway, its Response 2 waits for the link, and everything is re-polled on recovery."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(COMMS_LOSS, source="test"), store)
    with deadline(3600):
        await world.run(900)
    server = world.server
    assert server is not None
    events = [r.event for r in store.read()]
    started = next(e for e in events if isinstance(e, ControlStarted))
    assert started.at_s == EPOCH + 240  # on the server clock, with the server unreachable
    lost = next(e for e in events if isinstance(e, CommsLost))
    assert lost.reason.startswith(("ConnectFailed", "ConnectionReset", "LinkTimeout")), lost
    restored = next(e for e in events if isinstance(e, CommsRestored))
    assert EPOCH + 60 <= lost.at_s < started.at_s < EPOCH + 480 <= restored.at_s
    applied = [
        e for e in events if isinstance(e, LimitsApplied) and e.settings.export_limit_w == 1000
    ]
    assert applied and applied[0].at_s == started.at_s  # the battery was told while offline
    mrid = "C0000000000000000000000000000001"
    assert server.response_statuses(mrid) == [1, 2, 3]
    accepted_2 = next(
        q for q in server.responses_for(mrid) if q.status == 201 and q.body.status == 2
    )
    assert accepted_2.time >= EPOCH + 480  # queued during the outage, sent after it
    assert server.duplicate_responses() == []
    assert [
        q for q in server.requests if q.status == 201 and EPOCH + 60 <= q.time < EPOCH + 480
    ] == []
    # Re-polled at once on recovery, never more often than the pollRate otherwise.
    after = [
        q.time
        for q in server.polls_of("/edev/1/fsa/1/derp")
        if q.status == 200 and q.time >= EPOCH + 480
    ]
    assert after and after[0] - (EPOCH + 480) <= 30
    gaps = [b - a for a, b in zip(after, after[1:], strict=False)]
    assert all(g >= 30 - 1e-6 for g in gaps)


async def test_restarts_mid_event_change_no_decision_and_lose_or_repeat_no_response(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A gateway stopped at random instants and started again on its log decides what an
    uninterrupted gateway decides, and the utility sees every Response exactly once."""
    scenario = demo_scenario()
    horizon = scenario.duration_s() + 60

    def decisions(store: EventStore) -> list[tuple[str, str, float]]:
        kinds = (ControlStarted, ControlCompleted, ControlCancelled, ControlSuperseded)
        return sorted(
            (type(r.event).__name__, r.event.mrid, r.event.at_s)
            for r in store.read()
            if isinstance(r.event, kinds)
        )

    reference = MemoryEventStore(CATALOGUE)
    with deadline(3600):
        await World(pki, scenario, reference).run(horizon)

    rng = random.Random(2030)
    for _ in range(3):
        stops = sorted(rng.uniform(20, horizon - 20) for _ in range(3))
        store = MemoryEventStore(CATALOGUE)
        world = World(pki, scenario, store)
        with deadline(3600):
            await world.run_with_restarts(horizon, stops)
        server = world.server
        assert server is not None
        assert decisions(store) == decisions(reference), f"stops at {stops}"
        for m in ("A1", "A2", "B1", "A3"):
            mrid = f"DE{'0' * 28}{m}"
            assert (
                server.response_statuses(mrid)
                == {"A1": [1, 2, 3], "A2": [1, 2, 7], "B1": [1, 2, 3], "A3": [1, 2, 6]}[m]
            ), f"{m} with stops at {stops}"
        assert server.duplicate_responses() == []
        assert len(server.posts_to("/edev")) == 1  # registered once, found again after restarts
        assert store.verify().ok


PIN_CHANGE = """
name = "the utility changes the registration PIN"

[server]
pin = 111115
poll_rate_s = 30

[[programs]]
id = "network"
primacy = 1

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000002"
program = "network"
start_s = 600
duration_s = 300
modes = { opModExpLimW = 1000 }

[[actions]]
at_s = 120
kind = "set_pin"
pin = 222228
"""


async def test_a_pin_changed_while_running_halts_all_traffic(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """§2.4 holds after registration too: the Registration is re-read at its pollRate, and a PIN
    that no longer matches stops every request, as a mismatch found during the walk does."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(PIN_CHANGE, source="test"), store)
    with deadline(3600):
        await world.run(900)
    server = world.server
    assert server is not None
    halted = [r.event for r in store.read() if isinstance(r.event, RegistrationHalted)]
    assert len(halted) == 1 and "server has 222228" in halted[0].reason
    assert EPOCH + 120 <= halted[0].at_s <= EPOCH + 120 + 60  # within a pollRate or two
    after = [q for q in server.requests if q.time > halted[0].at_s]
    assert after == [], f"traffic after the halt: {[(q.method, q.path) for q in after]}"


async def test_a_mirror_usage_point_the_server_lost_is_created_again(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """§2.8: a 404 from our MirrorUsagePoint means the server lost it: create it again and go on
    posting readings there."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store)

    async def server_loses_its_mirrors() -> None:
        await trio.sleep(300)
        assert world.server is not None
        world.server.state.mirrors.clear()

    with deadline(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server_loses_its_mirrors)
            await world.run(600)
    server = world.server
    assert server is not None
    created = [q for q in server.posts_to("/mup") if q.status == 201]
    assert len(created) == 4  # site and DER at the start, both again after the loss
    assert created[2].time >= EPOCH + 300
    later = [
        q
        for q in server.requests
        if q.method == "POST" and q.path.startswith("/mup/") and q.time > EPOCH + 420
    ]
    assert later and all(q.status == 201 for q in later)
    assert len(server.state.mirrors) == 2


LONG_OUTAGE = """
name = "a twenty-minute outage with a restart in it"

[server]
pin = 111115
poll_rate_s = 60
post_rate_s = 60

[[programs]]
id = "network"
primacy = 1

[[actions]]
at_s = 60
kind = "fail"
duration_s = 1140
reset = true
"""


async def test_readings_of_an_outage_survive_a_restart_and_are_posted_once(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """§2.8: every interval average is posted, once. The server is unreachable from 60 s to 1200 s
    and the gateway restarts at 600 s: the intervals measured before the restart are rebuilt from
    the log's samples and posted after recovery with the rest, none twice."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(LONG_OUTAGE, source="test"), store)
    with deadline(7200):
        await world.run_with_restarts(1800, [600])
    server = world.server
    assert server is not None
    posted: dict[tuple[str, int, int], int] = {}
    for q in server.requests:
        if q.method == "POST" and q.path.startswith("/mup/") and q.status == 201:
            body = q.body
            assert isinstance(body, r.MirrorMeterReading)
            for reading_set in body.MirrorReadingSet:
                assert reading_set.timePeriod is not None
                key = (q.path, int(body.mRID), reading_set.timePeriod.start)
                posted[key] = posted.get(key, 0) + 1
    assert posted and all(n == 1 for n in posted.values()), "an interval was posted twice"
    starts = {start - int(EPOCH) for (_, _, start) in posted}
    # Every minute of the outage, before and after the restart, reached the utility.
    assert set(range(120, 1200, 60)) <= starts, sorted(starts)
