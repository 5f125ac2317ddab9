"""Issue 19 point 2 in a simulated world: a site with two batteries behind one meter, the
EndDevice's DERList with a DER for each. The library's ``multi_der_site`` (one battery disconnects
mid-control and comes back) keeps every invariant and expectation on every battery path; each DER's
information, status and readings reach its own server DER and MirrorUsagePoint; a DERList with fewer or more DER than the site has
is a recorded finding, not a crash."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from events.der_events import DerListMatched, DerMemberStatus, DerReadingPosted
from events.der_status_events import DerStatusPut
from events.telemetry import Quantity
from sep2gw.expect import check_expectations
from sep2gw.simserver import CrashGateway, Scenario
from sep2gw.simserver.library import library
from sep2gw.status import fold, problems
from sep2gw.world import BatteryPath, check, run_world

SCENARIO = next(e.scenario for e in library() if e.scenario.name == "multi_der_site")
FAULT = 1 << 4  # genConnectStatus bit 4: fault (here: the DER does not answer)


@pytest.mark.parametrize("path", ["direct", "sunspec"])
def test_one_der_disconnects_mid_control_and_the_site_keeps_the_envelope(
    pki: Path, path: BatteryPath
) -> None:
    result = run_world(SCENARIO, seed=3, site=pki, battery=path)
    violations = check(result) + check_expectations(SCENARIO, result)
    assert not violations, [f"{v.invariant}: {v.detail}" for v in violations]
    start = result.server.start
    second = [
        (e.at_s - start, e.status.gen_connect_status)
        for e in (r.event for r in result.store.read())
        if isinstance(e, DerStatusPut) and e.href == "/edev/1/der/2/ders"
    ]
    # The second DER's status says it stopped answering during its window, and recovered after.
    assert any(600 <= at < 620 and status & FAULT for at, status in second), second
    assert any(900 <= at < 920 and not status & FAULT for at, status in second), second
    first = [
        e.status.gen_connect_status
        for e in (r.event for r in result.store.read())
        if isinstance(e, DerStatusPut) and e.href == "/edev/1/der/1/ders"
    ]
    assert first and not any(status & FAULT for status in first)
    went = [
        e
        for e in (r.event for r in result.store.read())
        if isinstance(e, DerMemberStatus) and e.der == "battery-2" and not e.available
    ]
    assert len(went) == 1 and 600 <= went[0].at_s - start < 610
    (device,) = result.server.state.devices
    assert device.der_capability is not None and device.der_settings is not None
    assert {attr for number, attr in device.more_der if number == 2} == {
        "der_capability",
        "der_settings",
        "der_status",
        "der_availability",
    }
    # Each DER's capability is its own battery's rating, not the site's sum.
    assert device.more_der[(2, "der_capability")].rtgMaxW.value * 10 ** (
        device.more_der[(2, "der_capability")].rtgMaxW.multiplier
    ) == pytest.approx(5000)
    # `sep2gw status` and /health: the DER left out is a problem while it lasts, and only then.
    during = fold(r for r in result.store.read() if r.server_time < start + 700)
    assert not during.ders["battery-2"].available and during.ders["battery"].available
    assert any(p.startswith("DER battery-2 left out of the site's split") for p in problems(during))
    after = fold(result.store.read())
    assert after.ders["battery-2"].available
    assert not any(p.startswith("DER ") for p in problems(after))
    # Readings: the site's two MirrorUsagePoints as before, and one more per DER.
    assert sorted(m.mup.description for m in result.server.state.mirrors) == [
        "sep2gw der",
        "sep2gw der battery",
        "sep2gw der battery-2",
        "sep2gw site",
    ]
    posted = Counter(
        e.der
        for e in (r.event for r in result.store.read())
        if isinstance(e, DerReadingPosted) and e.quantity is Quantity.ACTIVE_POWER_W
    )
    # The second DER was silent for five of the run's 26 minutes: no readings for it then.
    assert posted["battery"] - posted["battery-2"] >= 4


def matched(scenario: Scenario, pki: Path) -> list[DerListMatched]:
    result = run_world(scenario, seed=5, site=pki, battery="direct", seconds=120)
    assert result.violation is None, result.violation
    return [r.event for r in result.store.read() if isinstance(r.event, DerListMatched)]


def test_a_derlist_with_fewer_der_than_the_site_is_a_finding_not_a_crash(pki: Path) -> None:
    scenario = msgspec.structs.replace(
        SCENARIO, server=msgspec.structs.replace(SCENARIO.server, ders=1)
    )
    (record,) = matched(scenario, pki)
    assert [(m.der, m.href) for m in record.matches] == [("battery", "/edev/1/der/1")]
    assert record.unmatched_ders == ("battery-2",)
    assert record.finding == "the DERList has 1 DER for 2 configured: no server DER for battery-2"


def test_a_derlist_with_more_der_than_the_site_leaves_the_extra_alone(pki: Path) -> None:
    scenario = msgspec.structs.replace(
        SCENARIO, server=msgspec.structs.replace(SCENARIO.server, ders=3)
    )
    (record,) = matched(scenario, pki)
    assert record.unmatched_hrefs == ("/edev/1/der/3",)
    assert record.finding == "no configured DER for the server's /edev/1/der/3"


def test_a_restart_posts_each_ders_readings_once_and_keeps_the_envelope(pki: Path) -> None:
    """The DER mirrors rebuild their backlog from the log (``der.member_sampled.v1`` against
    ``der.reading_posted.v1``): a crash mid-control neither loses nor repeats a DER's reading."""
    crash = CrashGateway(at_s=710.0, down_s=40.0)
    scenario = msgspec.structs.replace(SCENARIO, actions=[*SCENARIO.actions, crash])
    result = run_world(scenario, seed=9, site=pki, battery="direct")
    violations = check(result) + check_expectations(scenario, result)
    assert not violations, [f"{v.invariant}: {v.detail}" for v in violations]
    assert result.boots == 2
    keys = [
        (e.der, e.quantity, e.start_s)
        for e in (r.event for r in result.store.read())
        if isinstance(e, DerReadingPosted)
    ]
    assert len(keys) == len(set(keys))
    starts = sorted({s for der, q, s in keys if der == "battery" and q is Quantity.ACTIVE_POWER_W})
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert max(gaps) == 60  # every minute posted, the one of the crash included


def test_the_same_seed_gives_a_byte_identical_log_with_several_ders(pki: Path) -> None:
    """The composite reads and commands its DER concurrently: the log still follows the seed."""
    first = run_world(SCENARIO, seed=21, site=pki, seconds=700, monitor=False)
    again = run_world(SCENARIO, seed=21, site=pki, seconds=700, monitor=False)
    assert first.log_bytes() == again.log_bytes()
