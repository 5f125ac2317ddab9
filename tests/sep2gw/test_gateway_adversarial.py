"""The whole gateway against a utility server that misbehaves: refusals, failing optional
resources, missing optional links, bursts of events, outages noticed by a Response, failing actors.

Each test runs a scenario of the simulated utility server on the autojump clock (see
``tests.sep2gw.world``), and names the rule it checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio

from actors.drivers.base import ApplyReport, DerDriver, DriverError, Nameplate, Telemetry
from actors.responder import RESPONSE_PACE_S
from actors.supervisor import RestartPolicy, SupervisorGaveUp
from events.control_events import (
    CommsRestored,
    ControlCancelled,
    ControlCompleted,
    ControlReceived,
    ControlStarted,
    ControlSuperseded,
    ResponseFailed,
)
from events.der_model import ControlSettings, Mode
from events.hardware_events import LimitsApplied, TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registration_events import (
    BackoffDrawn,
    RediscoveryStarted,
    RegistrationHalted,
    StepDone,
)
from events.registry import CATALOGUE
from events.runtime_events import ActorFailed, GatewayStopped
from sep2gw.simserver import demo_scenario, parse_scenario
from sep2gw.simserver.state import DeviceRecord, SimReply, UtilityState
from tests.sep2gw.world import EPOCH, World, deadline
from transport.sep2 import decode
from transport.sep2 import resources as r

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
    scenario = one_control(server="poll_rate_s = 300").replace("poll_rate_s = 30\n", "", 1)
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
    # no re-walks of the DER step (the DERList itself is re-read at its pollRate, §4 rule 15)
    assert not [
        r.event for r in store.read() if isinstance(r.event, BackoffDrawn) and r.event.step == "der"
    ]
    assert walks(store) == 1


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
    assert walks(store) == 1


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
        assert walks(store) == 1, status
        gaps = server.poll_intervals("/derp/1/derc")
        assert gaps and min(gaps) >= 30 - 1e-6, status  # tried again at the pollRate, no sooner


def walks(store: MemoryEventStore) -> int:
    """How many discovery walks began (DeviceCapability is also re-read at its pollRate, so its
    GETs do not count walks)."""
    return len(
        [
            r
            for r in store.read()
            if isinstance(r.event, StepDone) and r.event.step == "device_capability"
        ]
    )


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
        await world.run(120 + count * RESPONSE_PACE_S)  # the responder paces its POSTs
    server = world.server
    assert server is not None
    accepted = [q for q in server.posts_to("/rsps/1/rsp") if q.status == 201]
    assert len(accepted) == count
    assert server.duplicate_responses() == []


class FailsOnce:
    """A driver whose telemetry read raises an unexpected error once, from ``at_s`` on: a bug in
    an actor's collaborator, which only the supervisor can recover from."""

    def __init__(self, inner: DerDriver, at_s: float) -> None:
        self.inner = inner
        self.at_s = at_s
        self.failed = False

    def dispatchable_modes(self) -> frozenset[Mode]:
        return self.inner.dispatchable_modes()

    async def read_nameplate(self) -> Nameplate:
        return await self.inner.read_nameplate()

    async def read_telemetry(self, *, now: float) -> Telemetry:
        if not self.failed and now >= self.at_s:
            self.failed = True
            raise RuntimeError("driver bug: unexpected register layout")
        return await self.inner.read_telemetry(now=now)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        return await self.inner.apply(limits, now=now, reading=reading)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_an_actor_failure_mid_run_is_recorded_and_the_gateway_goes_on_from_its_log(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """DESIGN.md (supervisor): a failure is recorded as runtime.actor_failed.v1, the actors are
    rebuilt from the log after the back-off, and the run decides and answers exactly as one
    without the failure (mid-event: A2 runs, B1 is about to supersede it)."""
    scenario = demo_scenario()
    horizon = scenario.duration_s() + 60
    reference = MemoryEventStore(CATALOGUE)
    await World(pki, scenario, reference).run(horizon)

    store = MemoryEventStore(CATALOGUE)
    world = World(
        pki,
        scenario,
        store,
        # A sampling instant between two poll instants (polls fall on multiples of 10 s): which
        # polls of a shared instant run before the crash is scheduling order, and a poll the crash
        # cut off moves by the back-off, legitimately but unlike the reference run.
        driver_wrapper=lambda inner: FailsOnce(inner, EPOCH + 195),
        restart=RestartPolicy(max_restarts=3, window_s=600, backoff_initial_s=1),
    )
    with deadline(3600):
        await world.run(horizon)
    server = world.server
    assert server is not None
    failures = [r.event for r in store.read() if isinstance(r.event, ActorFailed)]
    assert len(failures) == 1
    failure = failures[0]
    assert (failure.actor, failure.error_type, failure.gave_up) == (
        "gateway",
        "RuntimeError",
        False,
    )
    assert "driver bug" in failure.error and failure.restart_in_s == 1
    assert decisions(store) == decisions(reference)
    for m, expected in DEMO_RESPONSES.items():
        assert server.response_statuses(f"DE{'0' * 28}{m}") == expected, m
    assert server.duplicate_responses() == []
    assert store.verify().ok


DEMO_RESPONSES = {"A1": [1, 2, 3], "A2": [1, 2, 7], "B1": [1, 2, 3], "A3": [1, 2, 6]}


def decisions(store: MemoryEventStore) -> list[tuple[str, str, float]]:
    kinds = (ControlStarted, ControlCompleted, ControlCancelled, ControlSuperseded)
    return sorted(
        (type(r.event).__name__, r.event.mrid, r.event.at_s)
        for r in store.read()
        if isinstance(r.event, kinds)
    )


async def test_the_walk_waits_as_long_as_retry_after_says(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """429 with Retry-After: 120 (and 503 the same): the walk's own back-off (2 s, 4 s, 8 s, …) must
    not ask again before the server said it may; it asked six times inside the two minutes."""
    for status in (429, 503):
        scenario = one_control(
            actions=f"""
[[actions]]
at_s = 0
kind = "fail"
duration_s = 100
status = {status}
retry_after_s = 120
paths = ["/tm"]
"""
        ).replace("start_s = 60", "start_s = 200")
        store = MemoryEventStore(CATALOGUE)
        world = World(pki, parse_scenario(scenario, source="test"), store)
        with deadline(3600):
            await world.run(400)
        server = world.server
        assert server is not None
        times = [q.time - EPOCH for q in server.polls_of("/tm")]
        # Asked once, then not before the Retry-After ended (Time is polled at its pollRate after).
        assert times[0] == 0 and times[1] >= 120, (status, times)
        assert started(store, MRID) == [EPOCH + 200]


async def test_readings_refused_at_one_mirror_neither_block_the_other_nor_repeat(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.8 with §4 rule 16's retry rule: the site MirrorUsagePoint refuses every
    reading with 400. A refused reading is not retried (it never becomes acceptable), and the DER
    mirror's readings still go out at every post: the refusal at the site used to abort the post,
    so the DER's readings were never sent, and the site's first reading blocked its queue."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 0
kind = "fail"
duration_s = 3600
status = 400
paths = ["/mup/1"]
methods = ["POST"]
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(400)
    server = world.server
    assert server is not None
    assert [q.path for q in server.posts_to("/mup")][:2] == ["/mup", "/mup"]  # site, then DER
    der = [q for q in server.posts_to("/mup/2") if q.status == 201]
    assert len({q.time for q in der}) >= 5  # at every post instant (60 s) once readings exist
    mirror = world.gateways[-1].actors["mirror"]
    refused = server.posts_to("/mup/1")
    assert refused and all(q.status == 400 for q in refused)
    assert len(refused) == mirror.statistics().dropped  # each refused reading tried once


async def test_the_demo_runs_the_same_against_a_quirky_server(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2: follow hrefs (envoy paths, replies under /edev/1/rsps), page lists (one item
    unless asked), compare echoed hex numerically (leading zeros dropped), speak HTTP/1.1 when that
    is all the server offers, and treat the server's status 4 (superseded) as informational."""
    quirks = msgspec.structs.replace(
        demo_scenario().quirks,
        one_item_default_paging=True,
        drop_hex_leading_zeros=True,
        path_style="envoy",
        http2=False,
        status_superseded=True,
    )
    scenario = msgspec.structs.replace(demo_scenario(), quirks=quirks)
    reference = MemoryEventStore(CATALOGUE)
    await World(pki, demo_scenario(), reference).run(scenario.duration_s() + 60)
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, scenario, store)
    with deadline(3600):
        await world.run(scenario.duration_s() + 60)
    server = world.server
    assert server is not None
    # Status 4 on A2 (from B1's creation at 90 s) is "treat as 7" (§4 rule 8): A2 never starts.
    assert [d for d in decisions(store) if d[1][-2:] != "A2"] == [
        d for d in decisions(reference) if d[1][-2:] != "A2"
    ]
    for m, expected in {**DEMO_RESPONSES, "A2": [1, 7]}.items():
        mrid = f"DE{'0' * 28}{m}"
        assert server.response_statuses(mrid) == expected, m
        assert {q.path for q in server.responses_for(mrid)} <= {
            "/edev/1/rsps/1/rsp",
            "/edev/1/rsps/2/rsp",
        }
    assert {q.alpn for q in server.requests} == {"http/1.1"}
    assert len(server.posts_to("/edev")) == 1
    assert server.duplicate_responses() == []


async def test_a_changed_post_rate_is_followed(pki: Path, autojump_clock: trio.abc.Clock) -> None:
    """PROTOCOL.md §2.8: readings go at the server's postRate (EndDevice.postRate). The utility
    changes it from 60 s to 180 s at 100 s; the EndDevice was read once, during the walk, so the
    change was never seen and the gateway went on posting every minute."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 100
kind = "set_post_rate"
seconds = 180
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(900)
    server = world.server
    assert server is not None
    instants = sorted({q.time - EPOCH for q in server.posts_to("/mup/2") if q.status == 201})
    later = [t for t in instants if t > 200]
    assert later and all(t % 180 == 0 for t in later), instants
    gaps = server.poll_intervals("/edev/1")
    assert gaps and min(gaps) >= 30 - 1e-6  # the EndDevice is read at its list's pollRate


async def test_der_information_is_put_when_a_control_takes_effect_and_when_settings_change(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.7 and §4 rule 10: DER information is re-PUT after each control takes effect
    (here at 60 s, long before the next poll at 300 s; DERStatus once the device was sampled under
    the control — within a sample period, 5 s — and a second's debounce), and DERSettings again when the default's setGradW changes
    (at the poll that sees it). Only the walk used to PUT them."""
    scenario = one_control(
        server="poll_rate_s = 300",
        actions="""
[[actions]]
at_s = 400
kind = "change_default"
program = "network"
modes = { opModExpLimW = 5000 }
set_grad_w = 500
""",
    ).replace("poll_rate_s = 30\n", "", 1)
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(700)
    server = world.server
    assert server is not None
    status_puts = [q.time - EPOCH for q in server.puts_to("/edev/1/der/1/ders")]
    assert any(60 <= t <= 66 for t in status_puts), status_puts
    settings = [q for q in server.puts_to("/edev/1/der/1/derg") if q.status == 204]
    assert [q.body.setGradW for q in settings if q.time - EPOCH >= 400][:1] == [500]
    assert settings[-1].time - EPOCH == 600  # the poll that saw the new default


class RefusesExportLimit:
    """A battery whose controller refuses one export limit (a firmware that rejects the value)."""

    def __init__(self, inner: DerDriver, refused_w: float) -> None:
        self.inner = inner
        self.refused_w = refused_w

    def dispatchable_modes(self) -> frozenset[Mode]:
        return self.inner.dispatchable_modes()

    async def read_nameplate(self) -> Nameplate:
        return await self.inner.read_nameplate()

    async def read_telemetry(self, *, now: float) -> Telemetry:
        return await self.inner.read_telemetry(now=now)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        if limits.export_limit_w == self.refused_w:
            raise DriverError(f"export limit {limits.export_limit_w} W refused by the controller")
        return await self.inner.apply(limits, now=now, reading=reading)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_control_the_device_refuses_is_answered_with_a_rejection_not_started(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §4 rule 6: "apply, then Response 2 … if the device write fails, send the matching
    rejection code instead of 2". The gateway answered 2 (and 3) whatever the battery said."""
    store = MemoryEventStore(CATALOGUE)
    world = World(
        pki,
        parse_scenario(one_control(), source="test"),
        store,
        driver_wrapper=lambda inner: RefusesExportLimit(inner, 1000),
    )
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    assert server.response_statuses(MRID) == [1, 252]
    applied = [r.event for r in store.read() if isinstance(r.event, LimitsApplied)]
    assert applied[-1].settings.export_limit_w == 5000  # back on the default


async def test_restarts_and_re_walks_do_not_poll_a_list_twice_within_its_poll_rate(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §4 rule 15: never more often than pollRate. The walk after a restart must read
    the FunctionSetAssignmentsList and our EndDevice (links are learned, not remembered), but it
    did not count that read as their poll, so the old schedule's poll followed 15 s later."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(one_control(), source="test"), store)
    restarts = [75, 150]
    with deadline(3600):
        await world.run_with_restarts(300, restarts)
    server = world.server
    assert server is not None
    for path in ("/edev/1/fsa", "/edev/1/fsa/1/derp", "/derp/1/derc", "/edev/1"):
        times = [q.time - EPOCH for q in server.polls_of(path)]
        gaps = [b - a for a, b in zip(times, times[1:], strict=False) if b not in restarts]
        assert gaps and min(gaps) >= 30 - 1e-6, (path, times)
    assert server.response_statuses(MRID) == [1, 2, 3]


class AlwaysFails(FailsOnce):
    async def read_telemetry(self, *, now: float) -> Telemetry:
        if now >= self.at_s:
            raise RuntimeError("driver bug: unexpected register layout")
        return await self.inner.read_telemetry(now=now)


async def test_a_gateway_that_gives_up_says_so_in_its_log(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """DESIGN.md (supervisor: restarts with bounded back-off, then gives up). The last record of
    the log must say the gateway gave up and why; it said "stopped", as for a clean Ctrl-C."""
    store = MemoryEventStore(CATALOGUE)
    world = World(
        pki,
        parse_scenario(one_control(), source="test"),
        store,
        driver_wrapper=lambda inner: AlwaysFails(inner, EPOCH + 30),
        restart=RestartPolicy(max_restarts=2, window_s=600, backoff_initial_s=1),
        check_fold=False,
    )
    with deadline(3600), pytest.RaisesGroup(SupervisorGaveUp, flatten_subgroups=True):
        await world.run(300)
    failures = [r.event for r in store.read() if isinstance(r.event, ActorFailed)]
    assert [f.gave_up for f in failures] == [False, False, True]
    last = list(store.read())[-1].event
    assert isinstance(last, GatewayStopped)
    assert "gave up" in last.reason and "RuntimeError" in last.reason, last.reason


async def test_adopting_the_server_clock_backwards_does_not_pause_the_battery_loop(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §2.2: the gateway's clock was 10 minutes fast; the Time resource sets it back.
    The hardware actor's next sample and next write were instants on the old reading, so telemetry
    and the closed export-limit loop stopped for the 10 minutes it took the new clock to get
    there. Sampling goes on at its period whatever the offset does."""
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(one_control(), source="test"), store, wall_skew_s=600)
    with deadline(3600):
        await world.run(240)
    sampled = [r.monotonic for r in store.read() if isinstance(r.event, TelemetrySampled)]
    gaps = [b - a for a, b in zip(sampled, sampled[1:], strict=False)]
    assert sampled and max(gaps) <= 10, max(gaps)
    assert started(store, MRID) == [EPOCH + 60]  # on the server's clock


async def test_a_program_list_no_longer_referenced_is_no_longer_polled(
    pki: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROTOCOL.md §2 (follow hrefs) and §4 rule 4: from 100 s the FunctionSetAssignments link a
    new DERProgramList. The old list kept its own poll for ever, and each poll put its programs
    back among the ones our FSAs reference (a dropped program would never stop applying)."""
    original = UtilityState._fsa
    moved_at = EPOCH + 100

    def moving_fsa(self: UtilityState, device: DeviceRecord) -> r.FunctionSetAssignments:
        fsa = original(self, device)
        if world.server is None or world.server.clock.now() < moved_at:
            return fsa
        link = msgspec.structs.replace(
            fsa.DERProgramListLink, href=f"/edev/{device.id}/fsa/1/derp?v=2"
        )
        return msgspec.structs.replace(fsa, DERProgramListLink=link)

    monkeypatch.setattr(UtilityState, "_fsa", moving_fsa)
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(one_control(), source="test"), store)
    with deadline(3600):
        await world.run(300)
    server = world.server
    assert server is not None
    old = [
        q.time - EPOCH
        for q in server.polls_of("/edev/1/fsa/1/derp")
        if q.target.startswith("/edev/1/fsa/1/derp?s=")
    ]
    new = [q.time - EPOCH for q in server.polls_of("/edev/1/fsa/1/derp") if "v=2" in q.target]
    assert new and max(old) <= 120, old  # the FSA poll at 120 s is the first to see the move
    assert server.response_statuses(MRID) == [1, 2, 3]


async def test_a_server_without_der_or_mirror_links_still_gets_the_schedule_followed(
    pki: Path, autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PROTOCOL.md §2.7, §2.8: DERList and MirrorUsagePointList are optional links; without them the
    walk reaches ready and the schedule is followed (nothing is PUT or POSTed there)."""
    end_device, get_dcap = UtilityState._end_device, UtilityState._get_dcap

    def no_der(self: UtilityState, device: DeviceRecord) -> r.EndDevice:
        return msgspec.structs.replace(end_device(self, device), DERListLink=None)

    def no_mup(self: UtilityState, ctx: Any) -> SimReply:
        reply = get_dcap(self, ctx)
        dcap = decode(reply.body, r.DeviceCapability)
        return self._doc(msgspec.structs.replace(dcap, MirrorUsagePointListLink=None))

    monkeypatch.setattr(UtilityState, "_end_device", no_der)
    monkeypatch.setattr(UtilityState, "_get_dcap", no_mup)
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(one_control(), source="test"), store)
    with deadline(3600):
        await world.run(240)
    server = world.server
    assert server is not None
    assert started(store, MRID) == [EPOCH + 60]
    assert server.response_statuses(MRID) == [1, 2, 3]
    assert not [q for q in server.requests if q.path.startswith(("/mup", "/edev/1/der"))]


async def test_a_response_answered_503_with_retry_after_waits_that_long(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """PROTOCOL.md §4 rule 16 (retried on 5xx) with RFC 9110 Retry-After: the Response is offered
    again when the server said, not every 30 s meanwhile (four refused POSTs in two minutes)."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 0
kind = "fail"
duration_s = 100
status = 503
retry_after_s = 120
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
    posts = [(q.time - EPOCH, q.status) for q in server.posts_to("/rsps/1/rsp")]
    assert [p for p in posts if p[1] == 503] == [(0.0, 503)], posts
    assert server.response_statuses(MRID) == [1, 2, 3]
    assert server.duplicate_responses() == []


class ClosedOnce(RefusesExportLimit):
    """Records whether the gateway closed it."""

    def __init__(self, inner: DerDriver) -> None:
        super().__init__(inner, refused_w=-1.0)
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


async def test_the_gateway_closes_the_driver_it_made_and_only_that_one(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """A gateway made from a configuration (``sep2gw run``, ``run_gateway(config)``) owns its battery
    connection and must close it when it stops; it stayed open. A driver the embedding application
    passed in stays the application's."""
    for own in (True, False):
        store = MemoryEventStore(CATALOGUE)
        world = World(
            pki,
            parse_scenario(one_control(), source="test"),
            store,
            driver_wrapper=ClosedOnce,
            own_driver=own,
        )
        with deadline(3600):
            await world.run_with_restarts(120, [60])
        assert [d.closed for d in world.drivers if isinstance(d, ClosedOnce)] == [own, own]


class RaisesAlarm(RefusesExportLimit):
    """A battery that raises a fault alarm from ``at_s`` on."""

    def __init__(self, inner: DerDriver, at_s: float) -> None:
        super().__init__(inner, refused_w=-1.0)
        self.at_s = at_s

    async def read_telemetry(self, *, now: float) -> Telemetry:
        telemetry = await self.inner.read_telemetry(now=now)
        if now < self.at_s:
            return telemetry
        return msgspec.structs.replace(telemetry, alarms=("ground_fault",))


async def test_a_device_fault_is_reported_once_as_a_log_event(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Issue 7 (mirror: LogEvents for device faults) and PROTOCOL.md §2.9: an alarm the battery
    raises is POSTed once to our EndDevice's LogEventList (profileID 2, the DER function set);
    nothing was ever POSTed there."""
    store = MemoryEventStore(CATALOGUE)
    world = World(
        pki,
        parse_scenario(one_control(), source="test"),
        store,
        driver_wrapper=lambda inner: RaisesAlarm(inner, EPOCH + 100),
    )
    with deadline(3600):
        await world.run(300)
    server = world.server
    assert server is not None
    posted = [q for q in server.posts_to("/edev/1/lel") if q.status == 201]
    assert len(posted) == 1
    event = posted[0].body
    assert isinstance(event, r.LogEvent)
    assert (event.profileID, event.functionSet) == (2, 11)
    assert event.details is not None and "ground_fault" in event.details
    assert 100 <= posted[0].time - EPOCH <= 130  # at the first poll cycle after it was sampled


async def test_a_burst_of_responses_to_retry_waits_for_the_responder_without_spinning(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """150 Responses refused with 503, retried 30 s later: more than the responder's buffer holds
    are due at once. Those that do not fit wait for an outcome to free a place; their retry instants,
    already past, must not make the controls actor spin meanwhile."""
    count = 150
    scenario = (
        burst_of_controls(count)
        + """
[[actions]]
at_s = 0
kind = "fail"
duration_s = 10
status = 503
paths = ["/rsps"]
methods = ["POST"]
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(120 + count * RESPONSE_PACE_S)  # the responder paces its POSTs
    server = world.server
    assert server is not None
    accepted = [q for q in server.posts_to("/rsps/1/rsp") if q.status == 201]
    assert len(accepted) == count
    assert server.duplicate_responses() == []
    controls = world.gateways[-1].actors["controls"]
    assert controls.statistics().timers < 50, controls.statistics()


async def test_a_mirror_usage_point_list_that_cannot_be_read_neither_halts_nor_re_walks(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    """§4 rule 15 re-reads the MirrorUsagePointList; a server that refuses that GET (here 404 and
    403 for a while) has not moved its links: no re-walk, no halt, and the list is read again
    after the refusals end."""
    scenario = one_control(
        actions="""
[[actions]]
at_s = 150
kind = "fail"
duration_s = 60
status = 404
paths = ["/mup"]
methods = ["GET"]

[[actions]]
at_s = 210
kind = "fail"
duration_s = 60
status = 403
paths = ["/mup"]
methods = ["GET"]
"""
    )
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(scenario, source="test"), store)
    with deadline(3600):
        await world.run(360)
    server = world.server
    assert server is not None
    events = [r.event for r in store.read()]
    assert not [e for e in events if isinstance(e, RegistrationHalted | RediscoveryStarted)]
    assert walks(store) == 1
    refused = [q for q in server.polls_of("/mup") if q.status in (403, 404)]
    assert refused and any(
        q.status == 200 and q.time > EPOCH + 270 for q in server.polls_of("/mup")
    )
