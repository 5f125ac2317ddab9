"""The server-side audits (``sep2gw.simserver.audit``): each fires on a bad request sequence and
stays quiet on a good one (issue 14, "What to build" 4). Sequences are built by hand: what the
simulated server records, without a world."""

from __future__ import annotations

import msgspec

from sep2gw.simserver.audit import (
    LimitStep,
    RateTimeline,
    audit_curtailment,
    audit_der_info,
    audit_duplicate_puts,
    audit_poll_cadence,
    audit_reading_lateness,
    mandatory_elements,
    rate_key,
)
from sep2gw.simserver.server import RecordedRequest
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary8, HexBinary32, HexBinary128

T0 = 1_000_000.0


def q(
    at: float, method: str, target: str, body: msgspec.Struct | None = None, status: int = 200
) -> RecordedRequest:
    return RecordedRequest(
        time=T0 + at,
        method=method,
        target=target,
        path=target.partition("?")[0],
        status=status,
        lfdi="AB",
        body=body,
        location=None,
        reason="",
        alpn="http/1.1",
    )


def gets(path: str, times: list[float]) -> list[RecordedRequest]:
    return [q(t, "GET", path) for t in times]


def cadence(requests: list[RecordedRequest], **kwargs: object) -> list[str]:
    options: dict[str, object] = {
        "rates": RateTimeline(60),
        "disturbances": [],
        "start_s": T0,
        "end_s": T0 + 310,
    }
    options.update(kwargs)
    return [f.detail for f in audit_poll_cadence(requests, **options)]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- poll cadence


def test_rule_2_7_a_resource_is_re_read_at_its_own_or_its_lists_rate() -> None:
    assert rate_key("/dcap") == "dcap"
    assert rate_key("/edev/1") == "edev"
    assert rate_key("/edev/1/der") == "der"
    assert rate_key("/edev/1/derp/2/derc") == "derp"
    assert rate_key("/derp/2/actderc") == "derp"
    assert rate_key("/mup") == "mup"
    assert rate_key("/edev/1/der/1/ders") is None  # PUT by the client, not polled


def test_rule_4_15_polls_at_the_advertised_rate_pass_the_cadence_audit() -> None:
    requests = gets("/dcap", [0, 60, 120, 180, 240, 300]) + gets(
        "/edev/1/der", [1, 61, 121, 181, 241]
    )
    assert cadence(sorted(requests, key=lambda x: x.time)) == []


def test_rule_2_7_a_resource_read_once_and_never_again_is_a_missed_poll() -> None:
    findings = cadence(gets("/dcap", [0]) + gets("/tm", [0, 60, 120, 180, 240, 300]))
    assert len(findings) == 1
    assert "/dcap read at +0 s, then never read again" in findings[0]


def test_rule_4_15_a_gap_beyond_one_and_a_half_rates_is_a_missed_poll() -> None:
    findings = cadence(gets("/tm", [0, 60, 160, 220, 280]))
    assert findings == [
        "/tm read at +60 s, then read again only 100.0 s later; pollRate is 60 s (a missed poll)"
    ]


def test_rule_4_15_polling_more_often_than_asked_is_an_extra_poll() -> None:
    findings = cadence(gets("/edev/1/rg", [0, 60, 61, 120, 180, 240, 300]))
    assert len(findings) == 1 and "an extra poll" in findings[0]
    # later pages of one poll are the same poll
    paged = gets("/edev/1/derp/1/derc?s=0&l=1", [0, 60, 120, 180, 240, 300])
    paged.insert(1, q(0.5, "GET", "/edev/1/derp/1/derc?s=1&l=1"))
    assert cadence(paged) == []


def test_rule_4_15_gaps_touching_a_disturbance_and_rate_changes_are_not_misjudged() -> None:
    outage = gets("/tm", [0, 60, 250, 300 + 10])
    assert cadence(outage) != []
    assert cadence(outage, disturbances=[(T0 + 100, T0 + 200)]) == []
    # the rate drops to 20 s at +100: the cycle under way ends on the old rate
    faster = gets("/tm", [0, 60, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300])
    assert cadence(faster, rates=RateTimeline(60, [(T0 + 100, "all", 20)])) == []
    assert cadence(faster) != []  # without the change those are extra polls


# ------------------------------------------------------------------------------ DER information


def status(at: float, *, complete: bool, value: int = 0x7) -> r.DERStatus:
    stamp = int(T0 + at)
    if not complete:
        return r.DERStatus(readingTime=stamp)
    return r.DERStatus(
        readingTime=stamp,
        genConnectStatus=r.ConnectStatusType(dateTime=stamp, value=HexBinary8(value)),
        operationalModeStatus=r.OperationalModeStatusType(dateTime=stamp, value=2),
    )


def test_rule_2_7_mandatory_elements_come_from_the_schema_and_the_profile() -> None:
    assert mandatory_elements("DERStatus") == (
        "readingTime",
        "genConnectStatus",
        "operationalModeStatus",
    )
    assert {"setMaxW", "setGradW", "updatedTime"} <= set(mandatory_elements("DERSettings"))
    assert {"modesSupported", "rtgMaxW", "type"} <= set(mandatory_elements("DERCapability"))


def test_rule_2_7_a_first_der_status_without_its_status_fields_fails_the_audit() -> None:
    bad = [q(0, "PUT", "/edev/1/der/1/ders", status(0, complete=False), 204)]
    findings = audit_der_info(bad, start_s=T0)
    assert [f.detail for f in findings] == [
        "DERStatus PUT to /edev/1/der/1/ders at +0 s lacks genConnectStatus, operationalModeStatus"
    ]
    good = [q(0, "PUT", "/edev/1/der/1/ders", status(0, complete=True), 204)]
    assert audit_der_info(good, start_s=T0) == []


def test_rule_2_7_der_capability_without_doe_modes_fails_the_audit() -> None:
    power = r.ActivePower(value=5000, multiplier=0)
    cap = r.DERCapability(modesSupported=HexBinary32(0x1), rtgMaxW=power, type=80)
    findings = audit_der_info([q(0, "PUT", "/edev/1/der/1/dercap", cap, 204)], start_s=T0)
    assert len(findings) == 1 and "lacks doeModesSupported" in findings[0].detail
    full = msgspec.structs.replace(cap, doeModesSupported=HexBinary8(0xF))
    assert audit_der_info([q(0, "PUT", "/edev/1/der/1/dercap", full, 204)], start_s=T0) == []


def test_rule_2_7_an_unchanged_der_status_put_again_within_a_cycle_is_a_duplicate() -> None:
    path = "/edev/1/der/1/ders"
    twice = [
        q(60, "PUT", path, status(60, complete=True), 204),
        q(61, "PUT", path, status(61, complete=True), 204),  # only the timestamps differ
    ]
    findings = audit_duplicate_puts(twice, rates=RateTimeline(60), start_s=T0)
    assert len(findings) == 1 and "unchanged since the one accepted at +60 s" in findings[0].detail
    changed = [twice[0], q(61, "PUT", path, status(61, complete=True, value=0x1), 204)]
    assert audit_duplicate_puts(changed, rates=RateTimeline(60), start_s=T0) == []
    next_cycle = [twice[0], q(120, "PUT", path, status(120, complete=True), 204)]
    assert audit_duplicate_puts(next_cycle, rates=RateTimeline(60), start_s=T0) == []
    retry = [
        q(60, "PUT", path, status(60, complete=True), 503),
        q(61, "PUT", path, status(61, complete=True), 204),
    ]
    assert audit_duplicate_puts(retry, rates=RateTimeline(60), start_s=T0) == []


# ----------------------------------------------------------------------------------- readings


def readings(at: float, start: float, duration: int = 60) -> RecordedRequest:
    reading_set = r.MirrorReadingSet(
        mRID=HexBinary128(7),
        timePeriod=r.DateTimeInterval(start=int(T0 + start), duration=duration),
    )
    body = r.MirrorMeterReading(mRID=HexBinary128(1), MirrorReadingSet=(reading_set,))
    return q(at, "POST", "/mup/1", body, 201)


def test_rule_2_8_an_interval_posted_a_cycle_after_it_closed_is_late() -> None:
    late = [readings(120, 0), readings(180, 60)]
    findings = audit_reading_lateness(late, disturbances=[], start_s=T0)
    assert [f.detail for f in findings] == [
        "/mup/1: 2 interval(s) posted more than 10 s after they closed: +0..+60 s posted at "
        "+120 s; +60..+120 s posted at +180 s"
    ]
    on_time = [readings(61, 0), readings(125, 60)]
    assert audit_reading_lateness(on_time, disturbances=[], start_s=T0) == []
    # an interval that closed during an outage is the backlog's business
    assert audit_reading_lateness(late, disturbances=[(T0 + 50, T0 + 200)], start_s=T0) == []


# -------------------------------------------------------------------------------- curtailment


def settings(grad: int) -> list[tuple[float, r.DERSettings]]:
    doc = r.DERSettings(
        setGradW=grad, setMaxW=r.ActivePower(value=5000, multiplier=0), updatedTime=int(T0)
    )
    return [(T0, doc)]


def test_rule_4_11_curtailment_slower_than_the_declared_gradient_fails_the_audit() -> None:
    # 5 kW at 4 kW export, new limit 1 kW from +60 s; setGradW 1000 = 500 W/s: 6 s allowed + 10 s
    step = LimitStep(
        label="control 1A", mode="opModExpLimW", at_s=T0 + 60, until_s=T0 + 300, limit_w=1000
    )
    slow = [(T0 + t, 4000.0 if t < 90 else 1000.0, None) for t in range(0, 200, 5)]
    findings = audit_curtailment([step], samples=slow, settings=settings(1000), start_s=T0)
    assert len(findings) == 1
    assert "reached after 30 s; allowed 6 s (3000 W at the declared 500 W/s) + 10 s" in (
        findings[0].detail
    )
    prompt = [(T0 + t, 4000.0 if t < 70 else 1000.0, None) for t in range(0, 200, 5)]
    assert audit_curtailment([step], samples=prompt, settings=settings(1000), start_s=T0) == []


def test_rule_4_11_a_control_ramp_time_overrides_the_gradient_in_the_audit() -> None:
    step = LimitStep(
        label="control 1B",
        mode="opModGenLimW",
        at_s=T0 + 60,
        until_s=T0 + 300,
        limit_w=0,
        ramp_s=30,
    )
    samples = [(T0 + t, None, 3000.0 if t < 95 else 0.0) for t in range(0, 200, 5)]
    assert audit_curtailment([step], samples=samples, settings=settings(1000), start_s=T0) == []
    never = [(T0 + t, None, 3000.0) for t in range(0, 200, 5)]
    findings = audit_curtailment([step], samples=never, settings=settings(1000), start_s=T0)
    assert len(findings) == 1 and "reached never; allowed 30 s (rampTms 30 s)" in (
        findings[0].detail
    )
    # already below the new limit before it starts: nothing to curtail
    low = [(T0 + t, None, -50.0) for t in range(0, 200, 5)]
    assert audit_curtailment([step], samples=low, settings=settings(1000), start_s=T0) == []


def test_rule_4_15_reading_a_list_again_while_creating_in_it_is_not_an_extra_poll() -> None:
    creating = [
        q(120, "GET", "/mup"),
        q(120, "POST", "/mup", status=201),
        q(120.5, "GET", "/mup"),
        q(121, "POST", "/mup", status=201),
        *gets("/mup", [180, 240, 300]),
    ]
    assert cadence(creating, start_s=T0 + 100) == []
    assert cadence([c for c in creating if c.method == "GET"], start_s=T0 + 100) != []


def test_rule_2_8_a_late_interval_is_reported_when_it_arrived() -> None:
    late = [readings(61, 0), readings(180, 60), readings(240, 120)]
    (finding,) = audit_reading_lateness(late, disturbances=[], start_s=T0)
    assert finding.at_s == T0 + 180
