"""The whole gateway against the simulated utility server and battery, inside one event loop on the
autojump clock: discovery → controls → responses → telemetry, over mutual TLS and Modbus pipes."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec
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
from events.registration_events import (
    EndDeviceRegistered,
    LinksChanged,
    PinCase,
    RediscoveryStarted,
    RegistrationHalted,
    RegistrationLinkMissing,
    RegistrationStep,
    ServerPinRecorded,
    StepDone,
)
from events.registry import CATALOGUE
from events.store import EventStore
from sep2gw.simserver import Scenario, SimUtilityServer, demo_scenario, parse_scenario
from tests.sep2gw.world import EPOCH, World, deadline
from transport.sep2 import encode
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


def _out_of_band(scenario: Scenario) -> Scenario:
    """The scenario with the EndDevice registered by an installer, out of band (§2.4)."""
    return msgspec.structs.replace(
        scenario, server=msgspec.structs.replace(scenario.server, pre_registered=True)
    )


async def test_pin_mismatch_halts_all_traffic(pki: Path, autojump_clock: trio.abc.Clock) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, _out_of_band(demo_scenario()), store, pin=222220)
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
pre_registered = true

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


def _reached_the_der(server: SimUtilityServer) -> bool:
    fsa = any(q.method == "GET" and q.path.endswith("/fsa") for q in server.requests)
    der = any(q.method == "PUT" and "/der/" in q.path for q in server.requests)
    return fsa and der


async def test_section2_4_in_band_registration_records_the_server_chosen_pin_and_goes_on(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """The server chose the PIN of the EndDevice this gateway POSTed: nothing to compare; the PIN
    is recorded and the walk reaches the programs and the DER."""
    scenario = demo_scenario()
    scenario = msgspec.structs.replace(
        scenario, server=msgspec.structs.replace(scenario.server, in_band_pin=261582)
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, scenario, store)
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    events = [r.event for r in store.read()]
    assert not [e for e in events if isinstance(e, RegistrationHalted)]
    assert [e.href for e in events if isinstance(e, EndDeviceRegistered)] == ["/edev/1"]
    (pin,) = [e for e in events if isinstance(e, ServerPinRecorded)]
    assert pin.pin == 261582 and pin.case is PinCase.REGISTERED_IN_BAND
    assert _reached_the_der(server)


async def test_section2_4_pin_not_configured_is_a_warning_not_a_halt(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, _out_of_band(demo_scenario()), store, pin=None)
    with deadline(3600):
        await world.run(240)
    assert world.server is not None
    events = [r.event for r in store.read()]
    assert not [e for e in events if isinstance(e, RegistrationHalted)]
    (warning,) = [e for e in events if isinstance(e, ServerPinRecorded)]
    assert warning.case is PinCase.NOT_CONFIGURED and warning.pin == 111115
    assert not [e for e in events if isinstance(e, EndDeviceRegistered)]  # out of band
    assert _reached_the_der(world.server)


async def test_section2_4_no_registration_link_goes_on_to_the_programs_and_der(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    scenario = demo_scenario()
    scenario = msgspec.structs.replace(
        scenario, server=msgspec.structs.replace(scenario.server, registration_link=False)
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, scenario, store)
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    events = [r.event for r in store.read()]
    assert len([e for e in events if isinstance(e, RegistrationLinkMissing)]) == 1
    assert _reached_the_der(server)
    walks = [e for e in events if isinstance(e, StepDone) and e.step is RegistrationStep.END_DEVICE]
    assert len(walks) == 1, f"walked {len(walks)} times in 4 minutes"
    assert not [e for e in events if isinstance(e, RediscoveryStarted)]


async def test_rule_15_a_device_capability_whose_links_changed_is_walked_again(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """§4 rule 15 with §2 (follow hrefs, never build them): DeviceCapability is re-read at its
    pollRate; when the EndDeviceList it links moved, the walk starts again and follows it."""
    from sep2gw.simserver.state import SimReply, UtilityState
    from transport.http.router import Router

    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store)

    def moved_dcap(state: UtilityState, ctx: object) -> SimReply:
        dcap = r.DeviceCapability(
            href="/dcap",
            pollRate=state.poll_rates["dcap"],
            TimeLink=r.TimeLink(href="/tm"),
            EndDeviceListLink=r.EndDeviceListLink(href="/edev?moved=1", all=1),
            MirrorUsagePointListLink=r.MirrorUsagePointListLink(href="/mup", all=0),
        )
        return SimReply(200, encode(dcap))

    async def the_utility_moves_the_end_device_list() -> None:
        await trio.sleep(120)
        assert world.server is not None
        state = world.server.state
        router: Router[Any] = Router()
        for method, template, fn in state._routes():
            router.add(method, template, moved_dcap if template == "/dcap" else fn)
        state.router = router

    with deadline(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(the_utility_moves_the_end_device_list)
            await world.run(300)
    server = world.server
    assert server is not None
    events = [r.event for r in store.read()]
    (changed,) = [e for e in events if isinstance(e, LinksChanged)]
    assert EPOCH + 120 <= changed.at_s <= EPOCH + 120 + 60
    walks = [e for e in events if isinstance(e, StepDone) and e.step is RegistrationStep.END_DEVICE]
    assert len(walks) == 2
    moved = [q for q in server.requests if "moved=1" in q.target]
    assert moved and all(q.time >= changed.at_s for q in moved)


async def test_rule_15_a_der_whose_links_changed_gets_its_information_there(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """§2 step 7 with §4 rule 15: the DERList is re-read at its pollRate; a DER whose links changed
    gets the full DER information set at its new links in that cycle."""
    from sep2gw.simserver.state import SimReply, UtilityState
    from transport.http.router import Router

    store = MemoryEventStore(CATALOGUE)
    world = World(pki, demo_scenario(), store)

    def moved_der_list(state: UtilityState, ctx: Any) -> SimReply:
        der = state._der(state._own_device(ctx))
        moved = msgspec.structs.replace(
            der,
            DERCapabilityLink=r.DERCapabilityLink(href=f"{der.href}/dercap?moved=1"),
        )
        return SimReply(
            200, encode(r.DERList(href="/edev/1/der", all=1, results=1, pollRate=10, DER=(moved,)))
        )

    async def the_utility_moves_the_der_capability() -> None:
        await trio.sleep(120)
        assert world.server is not None
        state = world.server.state
        router: Router[Any] = Router()
        for method, template, fn in state._routes():
            router.add(method, template, moved_der_list if template == "/edev/{e}/der" else fn)
        state.router = router

    with deadline(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(the_utility_moves_the_der_capability)
            await world.run(240)
    server = world.server
    assert server is not None
    moved = [q for q in server.requests if q.method == "PUT" and "moved=1" in q.target]
    assert moved and EPOCH + 120 <= moved[0].time <= EPOCH + 120 + 10, moved
    old = [q for q in server.puts_to("/edev/1/der/1/dercap") if "moved=1" not in q.target]
    assert all(q.time < moved[0].time for q in old)
    availability = [q.time for q in server.puts_to("/edev/1/der/1/derav")]
    assert moved[0].time in availability, availability  # the whole set, in that cycle
