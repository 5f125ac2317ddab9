"""Fleet worlds (issue 19 points 1 and 6): many sites under one aggregator certificate against one
simulated server, each with its own battery, log and invariant monitor."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import pytest

from actors.https import PeerInfo
from actors.pipe import byte_stream_pair
from actors.site_restarts import SiteBackoff
from actors.supervisor import RestartPolicy
from events.fleet_events import SiteIdentityRecorded
from events.hardware_events import LimitsApplied
from events.runtime_events import GatewayStarted, GatewayStopped
from events.subscription_events import NotificationReceived
from sep2gw.fleet import Fleet
from sep2gw.fleet_world import (
    FleetWorldResult,
    SiteOutcome,
    check_fleet,
    check_fleet_expectations,
    fleet_config,
    run_fleet_world,
)
from sep2gw.simserver import Scenario, SlowResponses
from sep2gw.simserver.library import library
from transport.http.messages import Request


def scenario(file: str) -> Scenario:
    return next(e.scenario for e in library() if e.file == file)


def responses(result: FleetWorldResult, mrid: int) -> dict[str, list[int]]:
    by_lfdi = result.server.state.responses_by_end_device(mrid)
    return {name: by_lfdi.get(int(o.lfdi, 16), []) for name, o in result.sites.items()}


def assert_clean(result: FleetWorldResult, s: Scenario) -> None:
    assert check_fleet(result) == []
    assert check_fleet_expectations(s, result) == []


def test_a_shared_control_is_applied_and_answered_by_every_end_device(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    result = run_fleet_world(s, seed=7, sites=4, site=pki)
    assert_clean(result, s)
    assert responses(result, 0xF1) == {name: [1, 2, 3] for name in result.sites}
    # the retailer program is assigned to site-001 alone
    assert responses(result, 0xF2) == {
        "site-000": [],
        "site-001": [1, 2, 3],
        "site-002": [],
        "site-003": [],
    }
    for outcome in result.sites.values():  # Fleet.statuses(): each site's own status fold
        assert outcome.status is not None and outcome.status.registration == "registered"
        assert outcome.status.limits.export_limit_w == 5000  # the network default again
    devices = result.server.state.devices
    assert len(devices) == 4
    assert {d.registered_by for d in devices} == {int(result.aggregator_lfdi, 16)}
    # every Response went to the shared program's replyTo, on the aggregator certificate
    posted = [q for q in result.server.requests if q.method == "POST" and q.path == "/rsps/1/rsp"]
    assert {q.lfdi.upper() for q in posted} == {result.aggregator_lfdi.upper()}
    assert {result.site_of(q) for q in posted} == set(result.sites)


def test_discovery_once_n_sites_read_device_capability_once_at_start(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    result = run_fleet_world(s, seed=3, sites=6, site=pki, seconds=20)
    start = result.server.start
    at_start = [q for q in result.server.requests if q.time == start]
    assert [q.path for q in at_start if q.path == "/dcap"] == ["/dcap"]
    assert [q.path for q in at_start if q.path == "/.well-known/csipaus"] == [
        "/.well-known/csipaus"
    ]
    assert result.shared_gets_joined > 0


def test_each_sites_log_begins_with_who_it_is_about(pki: Path) -> None:
    s = scenario("fleet_mixed_identity.toml")
    result = run_fleet_world(s, seed=5, site=pki, seconds=30)
    for name, outcome in result.sites.items():
        first, second = [rec.event for rec in outcome.store.read(1, 2)]
        assert isinstance(first, GatewayStarted)
        assert isinstance(second, SiteIdentityRecorded)
        assert (second.fleet, second.site, second.lfdi) == ("sim-fleet", name, outcome.lfdi)
        assert second.server_url == "https://utility.sim:443"
        expected = "" if outcome.own_certificate else result.aggregator_lfdi
        assert second.aggregator_lfdi == expected


def test_a_mixed_fleet_site_on_its_own_certificate_registers_itself(pki: Path) -> None:
    s = scenario("fleet_mixed_identity.toml")
    result = run_fleet_world(s, seed=11, site=pki)
    assert_clean(result, s)
    own = result.sites["site-002"]
    assert own.own_certificate and not result.sites["site-000"].own_certificate
    device = result.server.state.device_by_lfdi(int(own.lfdi, 16))
    assert device is not None and device.registered_by is None  # its own certificate's
    others = [result.server.state.device_by_lfdi(int(o.lfdi, 16)) for o in result.sites.values()]
    assert sum(1 for d in others if d is not None and d.registered_by is not None) == 2
    assert responses(result, 0xF1) == {name: [1, 2, 3] for name in result.sites}


def test_one_failing_site_never_stalls_another(pki: Path) -> None:
    s = scenario("fleet_site_fails.toml")
    result = run_fleet_world(
        s,
        seed=13,
        site=pki,
        # the broken site's supervisor gives up soon, so the fleet's own restart is seen
        restart=RestartPolicy(max_restarts=2, window_s=600, backoff_initial_s=1, backoff_max_s=2),
        site_backoff=SiteBackoff(initial_s=20, max_s=60),
    )
    assert_clean(result, s)
    healthy = ("site-000", "site-003")
    for mrid in (0xF1, 0xF2):
        got = responses(result, mrid)
        assert all(got[name] == [1, 2, 3] for name in healthy), (hex(mrid), got)
    # site-001's gateway gave up (recorded in its own log), and the fleet started it again
    broken = result.sites["site-001"]
    assert broken.starts > 1 and result.stops["site-001"]
    reasons = [
        rec.event.reason
        for rec in broken.store.read(types=("runtime.gateway_stopped.v1",))
        if isinstance(rec.event, GatewayStopped)
    ]
    assert any(reason.startswith("gave up:") for reason in reasons)
    assert responses(result, 0xF2)["site-001"] == [1, 2, 3]  # back once its driver works
    # the hung device held only its own site: the others posted readings all along
    for name in healthy:
        lfdi = int(result.sites[name].lfdi, 16)
        mirrors = [m for m in result.server.state.mirrors if m.owner_lfdi == lfdi]
        assert mirrors and sum(len(m.readings) for m in mirrors) >= 5
    assert result.sites["site-000"].starts == 1 and result.sites["site-002"].starts == 1


def test_same_seed_same_log_per_site(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    one = run_fleet_world(s, seed=21, sites=3, site=pki, seconds=150)
    two = run_fleet_world(s, seed=21, sites=3, site=pki, seconds=150)
    other = run_fleet_world(s, seed=22, sites=3, site=pki, seconds=150)
    for name in one.sites:
        assert one.sites[name].log_bytes() == two.sites[name].log_bytes(), name
    assert any(one.sites[n].log_bytes() != other.sites[n].log_bytes() for n in one.sites)
    # the sites' logs are their own: no two alike
    assert len({o.log_bytes() for o in one.sites.values()}) == 3


def test_a_fleet_world_needs_a_site(pki: Path) -> None:
    with pytest.raises(ValueError, match="at least one site"):
        run_fleet_world(scenario("fleet_shared_controls.toml"), seed=1, sites=0, site=pki)


def test_a_site_whose_answers_are_slow_holds_no_other_site(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    first = run_fleet_world(s, seed=17, sites=3, site=pki, seconds=20)
    slow_site = "site-002"
    lfdi = int(first.sites[slow_site].lfdi, 16)
    [device] = [d for d in first.server.state.devices if d.lfdi == lfdi]
    # the same seed registers the same way; from +30 s every answer about site-002's EndDevice
    # is held 25 s by the server
    slowed = msgspec.structs.replace(
        s,
        actions=[
            *s.actions,
            SlowResponses(at_s=30, duration_s=240, delay_s=25, paths=[f"/edev/{device.id}/"]),
        ],
    )
    result = run_fleet_world(slowed, seed=17, sites=3, site=pki)
    assert result.server.state.device_by_lfdi(lfdi) is not None
    assert result.server.state.device_by_lfdi(lfdi).id == device.id  # type: ignore[union-attr]
    start = result.server.start
    answered: dict[str, float] = {}
    for q in result.server.responses_for(0xF1):
        name = result.site_of(q)
        if q.status == 201 and q.body is not None and q.body.status == 2 and name:  # type: ignore[attr-defined]
            answered[name] = q.time - start
    # F1 starts at +90 s: the healthy sites say so within the loop's seconds, the slow one later
    assert answered["site-000"] <= 95 and answered["site-001"] <= 95, answered
    assert answered[slow_site] > answered["site-000"], answered
    assert check_fleet(result) == []


def test_an_unmet_expectation_names_the_site(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    assert s.expect is not None
    # F2 is the retailer program's, assigned to site-001 alone: the others never answer it
    demanding = msgspec.structs.replace(
        s, expect=msgspec.structs.replace(s.expect, responses={"F2": [1, 2, 3]})
    )
    result = run_fleet_world(demanding, seed=7, sites=3, site=pki, seconds=330)
    found = check_fleet_expectations(demanding, result)
    assert sorted({name for name, _ in found}) == ["site-000", "site-002"]
    assert all(v.invariant == "expect.responses" for _, v in found)


def test_sites_registered_out_of_band_are_found_in_the_list_without_a_post(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    out_of_band = msgspec.structs.replace(
        s, server=msgspec.structs.replace(s.server, pre_registered=True)
    )
    result = run_fleet_world(out_of_band, seed=9, sites=3, site=pki, seconds=150)
    assert check_fleet(result) == []
    assert result.server.posts_to("/edev") == []
    assert all(not d.in_band for d in result.server.state.devices)
    assert all(
        o.status is not None and o.status.registration == "registered"
        for o in result.sites.values()
    )


def test_a_long_benchmark_world_may_keep_no_request_record(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    result = run_fleet_world(
        s, seed=2, sites=2, site=pki, seconds=230, monitor=False, keep_requests=False
    )
    assert result.server.requests == []
    assert responses(result, 0xF1) == {"site-000": [1, 2, 3], "site-001": [1, 2, 3]}


def test_each_end_device_answers_to_the_reply_to_it_was_given(pki: Path) -> None:
    # envoy paths: programs under /edev/{id}/derp, each EndDevice's replyTo its own
    s = scenario("fleet_shared_controls.toml")
    envoy = msgspec.structs.replace(
        s,
        quirks=msgspec.structs.replace(s.quirks, path_style="envoy", one_item_default_paging=True),
    )
    result = run_fleet_world(envoy, seed=4, sites=3, site=pki)
    assert_clean(result, envoy)
    state = result.server.state
    for q in result.server.requests:
        if q.method == "POST" and "/rsps/" in q.path:
            name = result.site_of(q)
            assert name is not None
            device = state.device_by_lfdi(int(result.sites[name].lfdi, 16))
            assert device is not None and q.path.startswith(f"/edev/{device.id}/rsps/"), q.path
    assert responses(result, 0xF1) == {name: [1, 2, 3] for name in result.sites}


# --- notifications for a fleet (issue 19 points 3 and 6, decision 0022g) -----------------------

NOTIFIED = "5C0000000000000000000000000000F1"


def notification_to_limit_s(outcome: SiteOutcome, export_limit_w: float, start: float) -> float:
    """Seconds (server time) from the site's first accepted notification (or the control's
    ``start``, when later) to the first battery write carrying ``export_limit_w``: what
    ``benchmarks/fleet_bench.py`` reads."""
    notified_at = next(
        rec.server_time
        for rec in outcome.store.read()
        if isinstance(rec.event, NotificationReceived)
        and rec.event.http_status == 201
        and rec.event.status == 0
    )
    written_at = next(
        rec.server_time
        for rec in outcome.store.read()
        if isinstance(rec.event, LimitsApplied)
        and rec.event.settings.export_limit_w == export_limit_w
    )
    return written_at - max(notified_at, start)


def test_a_notified_shared_control_reaches_every_sites_battery_within_one_control_period(
    pki: Path,
) -> None:
    s = scenario("fleet_notifications.toml")
    result = run_fleet_world(s, seed=11, sites=4, site=pki)
    assert_clean(result, s)
    assert responses(result, int(NOTIFIED, 16)) == {name: [1, 2, 3] for name in result.sites}
    assert result.notification_statistics is not None
    assert result.notification_statistics.unknown_paths == 0
    delivered = [a for a in result.server.notifier.attempts if a.outcome == "delivered"]
    # every site was notified at its own notificationURI, on the fleet's one listener
    assert {a.uri for a in delivered} == {
        f"https://fleet.sim/notify/{name}" for name in result.sites
    }
    for outcome in result.sites.values():
        received = [
            rec.event for rec in outcome.store.read() if isinstance(rec.event, NotificationReceived)
        ]
        assert received and all(event.http_status == 201 for event in received)
        assert {e.peer_lfdi for e in received} == {received[0].peer_lfdi}  # the utility's
        # the control starts at +130 s; the notification came at +125 s
        assert 0 <= notification_to_limit_s(outcome, 1000, result.server.start + 130) <= 1.0


def test_without_notifications_the_fleet_waits_for_its_polls(pki: Path) -> None:
    """The same scenario without the fleet's notifications fails its expectations: the limit at
    +131 s is only explained by the notification."""
    s = scenario("fleet_notifications.toml")
    polled = msgspec.structs.replace(s, fleet=msgspec.structs.replace(s.fleet, notifications=False))
    result = run_fleet_world(polled, seed=11, sites=2, site=pki)
    found = check_fleet_expectations(polled, result)
    assert {(name, v.invariant) for name, v in found} >= {
        ("site-000", "expect.limits"),
        ("site-001", "expect.limits"),
    }
    assert result.notification_statistics is None


def test_lost_notifications_every_site_still_gets_the_control_by_its_next_poll(pki: Path) -> None:
    s = scenario("fleet_notification_loss_polling_recovers.toml")
    result = run_fleet_world(s, seed=5, sites=3, site=pki)
    assert_clean(result, s)
    outcomes = {a.outcome for a in result.server.notifier.attempts}
    assert {"dropped", "delivered"} <= outcomes
    for mrid in (0x5C0000000000000000000000000000B1, 0x5C0000000000000000000000000000B2):
        assert responses(result, mrid) == {name: [1, 2, 3] for name in result.sites}


def test_same_seed_same_log_per_site_with_notifications(pki: Path) -> None:
    s = scenario("fleet_notification_loss_polling_recovers.toml")
    first = run_fleet_world(s, seed=9, sites=3, site=pki, seconds=420)
    second = run_fleet_world(s, seed=9, sites=3, site=pki, seconds=420)
    for name in first.sites:
        assert first.sites[name].log_bytes() == second.sites[name].log_bytes(), name
    assert any(
        isinstance(rec.event, NotificationReceived) for rec in first.sites["site-000"].store.read()
    )


async def test_a_fleet_without_notifications_closes_a_stream_handed_in(pki: Path) -> None:
    s = scenario("fleet_shared_controls.toml")
    fleet = Fleet(fleet_config(s, pki, ["site-000"]))
    near, far = byte_stream_pair()
    with anyio.fail_after(5):
        await fleet.serve_notification_stream(far)
        with pytest.raises(
            (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError)
        ):
            await near.receive()


async def test_the_fleet_routes_each_sites_path_and_a_site_not_running_answers_503(
    pki: Path,
) -> None:
    s = scenario("fleet_notifications.toml")
    fleet = Fleet(fleet_config(s, pki, ["site-000", "site-001"]))
    assert fleet.notification_handler("/notify/site-002") is None  # no such site
    assert fleet.notification_handler("/notify") is None
    handler = fleet.notification_handler("/notify/site-001")
    assert handler is not None
    # not started yet: the utility is told to come again, nothing is recorded anywhere
    answer = await handler(Request("POST", "/notify/site-001"), PeerInfo(b"", "AB" * 20, 0, "h2"))
    assert answer.status == 503 and answer.header("retry-after") == "1"


LONG_MIRROR_LIST = """
name = "an aggregator's MirrorUsagePointList longer than a page, lost once"
[fleet]
sites = 52
[server]
poll_rate_s = 60
post_rate_s = 60
[[programs]]
id = "retailer"
primacy = 20
[[actions]]
at_s = 250
kind = "lose_mirrors"
"""


def test_sites_read_only_the_first_page_of_an_aggregators_long_mirror_list(pki: Path) -> None:
    """52 sites, 104 MirrorUsagePoints: more than a page (100). Each site's poll of the list reads
    its first page only (paging through every site's MirrorUsagePoints at every pollRate made the
    fleet's reads grow with the square of its sites); a MirrorUsagePoint the server lost is still
    created again, learnt from the 404 of its next reading, and the readings go on."""
    from sep2gw.simserver import parse_scenario

    s = parse_scenario(LONG_MIRROR_LIST, source="test")
    result = run_fleet_world(s, seed=11, site=pki, seconds=420, monitor=False)
    start = result.server.start
    polls = [q for q in result.server.requests if q.method == "GET" and q.path == "/mup"]
    settled = [q for q in polls if q.time - start > 120]  # after every site created its own
    assert settled, "the sites poll the list"
    assert all("s=0&" in q.target for q in settled), sorted({q.target for q in settled})
    created = [q.time - start for q in result.server.posts_to("/mup") if q.status == 201]
    assert len([t for t in created if t > 250]) == 104, created  # every one, once, after the loss
    late = [
        q for q in result.server.requests
        if q.method == "POST" and q.path.startswith("/mup/") and q.time - start > 330
    ]
    assert late and all(q.status == 201 for q in late)
