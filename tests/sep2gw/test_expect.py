"""``[expect]``: strictly validated (errors name the key), and each expectation a world does not
meet is reported with what was expected and what happened (issue 8, scope 2)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from events.envelope import Append
from events.registration_events import RegistrationHalted, RegistrationStep
from sep2gw.expect import check_expectations
from sep2gw.simserver import Scenario, ScenarioError, parse_scenario
from sep2gw.simserver.library import library
from sep2gw.simserver.server import RecordedRequest
from sep2gw.world import WorldResult, check, run_world
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary8

BASE = """
name = "expect under test"
[server]
poll_rate_s = 20
[[programs]]
id = "retailer"
primacy = 20
default = { opModExpLimW = 5000 }
set_grad_w = 1000
[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "retailer"
start_s = 60
duration_s = 60
modes = { opModExpLimW = 1500 }
[[actions]]
at_s = 180
kind = "set_post_rate"
seconds = 60
"""

HOLDS = """
[expect]
responses = { A1 = [1, 2, 3] }
no_log_events = ["registration.halted.v1"]
halted = false
[[expect.response_times]]
mrid = "A1"
status = 2
at_s = 60
[[expect.response_times]]
mrid = "A1"
status = 3
at_s = 120
[[expect.limits]]
at_s = 90
opModExpLimW = 1500
opModImpLimW = "none"
[[expect.ramps]]
mode = "opModExpLimW"
to = 1500
duration_s = 7
[[expect.der_settings]]
at_s = 30
fields = { setGradW = 1000 }
[[expect.der_status_fields]]
from_s = 0
to_s = 30
fields = { genConnectStatus = 7, operationalModeStatus = 2 }
[[expect.requests]]
method = "POST"
path = "/edev"
status = 201
min_count = 1
max_count = 1
[[expect.poll_intervals]]
path = "/derp/[0-9]+/derc"
min_s = 19.5
max_s = 30
[expect.telemetry]
min_reading_posts = 2
every_interval_once = true
minute_aligned = true
post_intervals = [{ from_s = 0, interval_s = 60 }]
covered_from_s = 60
covered_to_s = 120
min_mirrors_created = 2
"""

BROKEN = """
[expect]
responses = { A1 = [1, 2] }
log_events = ["control.gap.v1"]
halted = true
[[expect.response_times]]
mrid = "A1"
status = 2
at_s = 90
[[expect.adjacent]]
first = "A1"
then = "A1"
[[expect.limits]]
at_s = 90
opModExpLimW = 1400
[[expect.ramps]]
mode = "opModExpLimW"
to = 1500
duration_s = 30
[[expect.der_settings]]
at_s = 30
fields = { setGradW = 7 }
[[expect.der_status_fields]]
from_s = 60
to_s = 62
fields = { operationalModeStatus = 1 }
[[expect.requests]]
method = "POST"
path = "/edev"
min_count = 2
[[expect.poll_intervals]]
path = "/derp/[0-9]+/derc"
max_s = 10
[expect.telemetry]
min_reading_posts = 50
post_intervals = [{ from_s = 0, interval_s = 300 }]
min_mirrors_created = 5
"""


@pytest.fixture(scope="module")
def world(pki: Path) -> WorldResult:
    return run_world(parse_scenario(BASE + HOLDS, source="test"), seed=4, site=pki)


def with_expect(section: str) -> Scenario:
    return parse_scenario(BASE + section, source="test")


def test_every_kind_of_expectation_holds_on_a_world_that_meets_it(world: WorldResult) -> None:
    assert check(world) == []
    assert check_expectations(with_expect(HOLDS), world) == []


def test_every_unmet_expectation_is_reported_with_what_happened(world: WorldResult) -> None:
    found = check_expectations(with_expect(BROKEN), world)
    keys = Counter(v.invariant for v in found)
    assert keys == {
        "expect.responses": 1,
        "expect.limits": 1,
        "expect.telemetry": keys.get("expect.telemetry", 0),
        "expect.requests": 1,
        "expect.poll_intervals": keys.get("expect.poll_intervals", 0),
        "expect.ramps": 1,
        "expect.der_settings": 1,
        "expect.der_status_fields": 1,
        "expect.halted": 1,
        "expect.log_events": 1,
        "expect.response_times": 1,
        "expect.adjacent": 1,
    }
    assert keys["expect.telemetry"] >= 3 and keys["expect.poll_intervals"] >= 1
    details = {v.invariant: v.detail for v in found}
    assert details["expect.responses"] == "mRID A1: expected [1, 2], the server accepted [1, 2, 3]"
    assert details["expect.limits"].startswith(
        "at +90 s opModExpLimW: expected 1400.0, in force 1500"
    )
    assert (
        details["expect.der_settings"]
        == "at +30 s setGradW: expected 7, last DERSettings accepted has 1000"
    )
    assert details["expect.der_status_fields"] == (
        "+60..+62 s: expected a DERStatus with {'operationalModeStatus': 1}, accepted none"
    )
    assert details["expect.halted"] == "no registration.halted record"
    assert details["expect.log_events"] == "no control.gap.v1 record"
    assert details["expect.response_times"] == (
        "mRID A1 status 2: expected at +90 s (+1 s), accepted at ['+60 s']"
    )
    assert details["expect.adjacent"] == "A1 starts at +60 s, A1 ends at +120 s"


def test_a_scenario_without_expectations_expects_nothing(world: WorldResult) -> None:
    assert check_expectations(parse_scenario(BASE, source="test"), world) == []


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("[expect]\nresponse = { A1 = [1] }\n", "expect.response: unknown key (misspelt?)"),
        (
            "[expect]\nresponses = { B9 = [1] }\n",
            "expect.responses.B9: no create_control action creates B9",
        ),
        (
            "[expect]\nresponses = { A1 = [1, 300] }\n",
            "expect.responses.A1[1]: 300 is not a Response status",
        ),
        (
            "[[expect.limits]]\nat_s = 5\nopModExpLimitW = 5\n",
            "expect.limits[0].opModExpLimitW: unknown key",
        ),
        ("[[expect.limits]]\nat_s = 5\n", "expect.limits[0]: names no mode to check"),
        ('[[expect.limits]]\nat_s = 5\nopModExpLimW = "nil"\n', "expect.limits[0].opModExpLimW"),
        (
            '[[expect.requests]]\nmethod = "FETCH"\npath = "/x"\n',
            "expect.requests[0].method: 'FETCH' is not an HTTP method",
        ),
        (
            '[[expect.requests]]\nmethod = "GET"\npath = "("\n',
            "expect.requests[0].path: '(' is not a regular expression",
        ),
        (
            '[[expect.requests]]\nmethod = "GET"\npath = "/x"\nmin_count = 3\nmax_count = 1\n',
            "expect.requests[0].max_count: 1 is below min_count",
        ),
        (
            '[[expect.poll_intervals]]\npath = "/x"\nfrom_s = 50\nto_s = 10\n',
            "expect.poll_intervals[0].to_s: 10 is not after from_s 50",
        ),
        (
            '[[expect.ramps]]\nmode = "opModVoltVar"\nto = 1\nduration_s = 1\n',
            "expect.ramps[0].mode: 'opModVoltVar' is not one of",
        ),
        (
            '[expect]\nlog_events = ["control.nothing.v1"]\n',
            "expect.log_events[0]: 'control.nothing.v1' is not a record type of the log",
        ),
        (
            "[expect.telemetry]\ncovered_from_s = 5\n",
            "expect.telemetry.covered_to_s: covered_from_s and covered_to_s go together",
        ),
        (
            "[expect.telemetry]\npost_intervals = [{ from_s = 0, interval_s = 0 }]\n",
            "expect.telemetry.post_intervals[0].interval_s: must be positive",
        ),
        (
            '[[expect.response_times]]\nmrid = "B2"\nstatus = 2\nat_s = 1\ntolerance_s = -1\n',
            "expect.response_times[0].mrid: no create_control action creates B2",
        ),
        (
            '[[expect.adjacent]]\nfirst = "A1"\nthen = "G"\n',
            "expect.adjacent[0].then: 'G' is not an mRID",
        ),
        (
            "[[expect.der_settings]]\nat_s = 1\nfields = {}\n",
            "expect.der_settings[0].fields: names no field to check",
        ),
        (
            "[[expect.der_status_fields]]\nfrom_s = 1\nto_s = 5\nfields = { opModeStatus = 1 }\n",
            "expect.der_status_fields[0].fields.opModeStatus: not a DERStatus field",
        ),
        (
            "[[expect.der_status_fields]]\nfrom_s = 5\nto_s = 1\nfields = { inverterStatus = 1 }\n",
            "expect.der_status_fields[0].to_s: 1 is not after from_s 5",
        ),
        (
            '[[expect.compliance]]\nmode = "opModTargetW"\n',
            "expect.compliance[0].mode: 'opModTargetW' is not one of",
        ),
        (
            '[[expect.compliance]]\nmode = "opModExpLimW"\ntolerance_w = -5\n',
            "expect.compliance[0].tolerance_w: must be a finite number >= 0",
        ),
        (
            "[expect.audit]\nreading_lateness = { grace_s = -1 }\n",
            "expect.audit.reading_lateness.grace_s: must be a finite number >= 0, got -1",
        ),
        (
            "[expect.audit]\npoll_cadence = { late_factor = 0.5 }\n",
            "expect.audit.poll_cadence.late_factor: a poll is late only after its pollRate",
        ),
        (
            "[expect.audit]\npoll_cadence = { from_s = 50, to_s = 10 }\n",
            "expect.audit.poll_cadence.to_s: 10 is not after from_s 50",
        ),
        ("[expect.audit]\nschema = {}\n", "expect.audit.schema: unknown key"),
        ("[[expect.der_status]]\nat_s = 5\n", "expect.der_status[0]: names no status to check"),
        (
            "[[expect.der_status]]\nat_s = 5\nwithin_s = -1\nconnected = true\n",
            "expect.der_status[0]: at_s and within_s must be finite and not negative",
        ),
    ],
)
def test_a_bad_expectation_is_refused_naming_its_key(section: str, problem: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        with_expect(section)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


COMPLIANCE = """
[[expect.compliance]]
mode = "opModExpLimW"
from_s = 60
to_s = 120
tolerance_w = 150
grace_s = 10
{extra}
"""


def test_compliance_is_judged_as_the_dispute_report_judges_it(world: WorldResult) -> None:
    """§5: the export limit of A1 (1.5 kW, +60..+120 s) held; it fires when the window allows no
    response time (the samples as the limit changes) or when the limit is said to have bound for
    longer than the window lasts."""
    assert check_expectations(with_expect(COMPLIANCE.format(extra="")), world) == []
    found = check_expectations(
        with_expect(COMPLIANCE.format(extra="min_seconds_binding = 61")), world
    )
    assert [v.invariant for v in found] == ["expect.compliance"]
    assert "the limit never mattered" in found[0].detail


def test_compliance_counts_the_seconds_over_a_limit_that_binds(pki: Path) -> None:
    """The library's envelope over a commanded discharge: met once the battery had 10 s to
    respond; judged from the instant the limit changed (no grace), the seconds before the battery
    followed are over, and are reported."""
    scenario = next(e.scenario for e in library() if e.file == "export_limit_caps_discharge.toml")
    result = run_world(scenario, seed=3, site=pki)
    assert check_expectations(scenario, result) == []
    expect = scenario.expect
    assert expect is not None
    strict = msgspec.structs.replace(expect.compliance[0], grace_s=0.0, min_seconds_binding=0.0)
    found = check_expectations(
        msgspec.structs.replace(
            scenario, expect=msgspec.structs.replace(expect, compliance=[strict])
        ),
        result,
    )
    assert [v.invariant for v in found] == ["expect.compliance"]
    assert "over the limit by more than 150 W" in found[0].detail


AUDITS = """
[expect.audit]
poll_cadence = {}
der_info = {}
duplicate_puts = {}
reading_lateness = {}
curtailment = {}
"""


def test_the_server_audits_named_in_expect_fail_the_world_on_what_they_find(pki: Path) -> None:
    """Issue 14: the audits a strict server runs are expectations; each finding is a violation
    ``audit.<name>`` naming what was wrong. The recorded traffic is doctored after the run with
    requests no client may send (an empty DERStatus, a poll one second after the last, the same
    DERStatus again), so what is found does not depend on how the gateway behaves today."""
    result = run_world(parse_scenario(BASE, source="test"), seed=4, site=pki)
    scenario = with_expect(AUDITS)
    before = {(v.invariant, v.detail) for v in check_expectations(scenario, result)}
    server = result.server
    last_tm = [q for q in server.requests if q.method == "GET" and q.path == "/tm"][-1]
    empty = r.DERStatus(readingTime=int(last_tm.time))
    server.requests.append(dataclasses.replace(last_tm, time=last_tm.time + 1))
    for delay in (2, 3):
        server.requests.append(
            RecordedRequest(
                time=last_tm.time + delay,
                method="PUT",
                target="/edev/1/der/1/ders",
                path="/edev/1/der/1/ders",
                status=204,
                lfdi=last_tm.lfdi,
                body=empty,
                location=None,
                reason="",
                alpn=last_tm.alpn,
            )
        )
    after = check_expectations(scenario, result)
    new = [v for v in after if (v.invariant, v.detail) not in before]
    at = last_tm.time - server.start
    assert {v.invariant for v in new} == {
        "audit.poll_cadence",
        "audit.der_info",
        "audit.duplicate_puts",
    }
    details: dict[str, str] = {}
    for v in new:
        details.setdefault(v.invariant, v.detail)  # the first of each
    assert details["audit.poll_cadence"].startswith(f"/tm read again 1.0 s after +{at:g} s")
    assert details["audit.der_info"] == (
        f"DERStatus PUT to /edev/1/der/1/ders at +{at + 2:g} s lacks genConnectStatus, "
        "operationalModeStatus"
    )
    assert details["audit.duplicate_puts"].startswith(
        f"DERStatus PUT to /edev/1/der/1/ders at +{at + 3:g} s unchanged since the one accepted "
        f"at +{at + 2:g} s"
    )


def put_status(at: float, like: RecordedRequest, value: int, mode: int) -> RecordedRequest:
    stamp = int(at)
    body = r.DERStatus(
        readingTime=stamp,
        genConnectStatus=r.ConnectStatusType(dateTime=stamp, value=HexBinary8(value)),
        operationalModeStatus=r.OperationalModeStatusType(dateTime=stamp, value=mode),
    )
    path = "/edev/1/der/1/ders"
    return dataclasses.replace(
        like, time=at, method="PUT", target=path, path=path, body=body, status=204
    )


def test_der_status_expectation_wants_the_change_reported_within_its_window(pki: Path) -> None:
    """§2 step 7: DERStatus follows the device. After the run a disconnected, not operating
    DERStatus (genConnectStatus 0x2, mode 1) is recorded as accepted at +400 s; an expectation
    for it holds in a window around it and fails, naming what was seen, in one before it."""
    result = run_world(parse_scenario(BASE, source="test"), seed=4, site=pki)
    server = result.server
    server.requests.append(put_status(server.start + 400, server.requests[-1], 0x2, 1))
    holds = with_expect(
        "[[expect.der_status]]\nat_s = 395\nwithin_s = 10\nconnected = false\n"
        "available = true\noperating = false\noperational_mode = 1\n"
    )
    assert [
        v for v in check_expectations(holds, result) if v.invariant == "expect.der_status"
    ] == []
    early = with_expect("[[expect.der_status]]\nat_s = 396\nwithin_s = 10\nfault = true\n")
    found = [
        v.detail for v in check_expectations(early, result) if v.invariant == "expect.der_status"
    ]
    assert found == [
        "no DERStatus with fault=true accepted in [+396, +406] s; accepted there: +400 s "
        "(genConnectStatus 0x2, operationalModeStatus 1)"
    ]


def test_the_poll_cadence_audit_ends_where_registration_halted(pki: Path) -> None:
    """§2 step 4: after a halt (PIN mismatch) the client stops all traffic, so nothing it read is
    overdue afterwards. Doctored: the traffic after +150 s is dropped and a halt recorded there;
    the audit then judges exactly what an audit ending at +150 s judges."""
    result = run_world(parse_scenario(BASE, source="test"), seed=4, site=pki)
    server = result.server
    halt = server.start + 150
    server.requests[:] = [q for q in server.requests if q.time <= halt]

    def polls(section: str) -> list[str]:
        found = check_expectations(with_expect(section), result)
        return [v.detail for v in found if v.invariant == "audit.poll_cadence"]

    audit = "[expect.audit]\npoll_cadence = {}\n"
    until_halt = polls("[expect.audit]\npoll_cadence = { to_s = 150 }\n")
    silent = polls(audit)
    assert any(d.startswith("/tm read at +") and "never read again" in d for d in silent)
    assert not any(d.startswith("/tm ") for d in until_halt)
    halted = RegistrationHalted(step=RegistrationStep.REGISTRATION, reason="PIN", at_s=halt)
    monotonic = list(result.store.read())[-1].monotonic + 1
    result.store.append(
        [Append(stream="registration", events=(halted,), server_time=halt, monotonic=monotonic)]
    )
    assert polls(audit) == until_halt


def test_a_battery_off_its_storage_target_is_reported_with_how_long_and_how_far(
    pki: Path,
) -> None:
    """``[[expect.storage]]``: the storage world's battery runs at its 4 kW target, so an
    expectation of 3 kW fails for the whole window, naming the worst sample; the one it states
    holds."""
    entry = next(e for e in library() if e.file == "conformance_storage_target_export_limit.toml")
    result = run_world(entry.scenario, seed=3, site=pki)
    assert check_expectations(entry.scenario, result) == []
    assert entry.scenario.expect is not None
    wrong = msgspec.structs.replace(
        entry.scenario,
        expect=msgspec.structs.replace(
            entry.scenario.expect,
            storage=[msgspec.structs.replace(entry.scenario.expect.storage[0], der_w=3000.0)],
        ),
    )
    (violation,) = [v for v in check_expectations(wrong, result) if v.invariant == "expect.storage"]
    assert violation.detail.startswith("in +70..+180 s the battery ran 110 s more than 150 W off")
    assert "worst 4000 W" in violation.detail
