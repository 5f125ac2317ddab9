"""The head-end state model, pure: requests in, replies out, server time as an argument."""

from __future__ import annotations

import msgspec
import pytest
from lxml import etree

from sep2gw.simserver import SimReply, UtilityState, parse_scenario
from transport.sep2 import decode, encode
from transport.sep2 import resources as r

from .helpers import LFDI, OTHER_LFDI, START, end_device, registered, xsd_2018, xsd_csipaus

TWO_PROGRAMS = """
[server]
poll_rate_s = 30
post_rate_s = 120
tz_offset_s = 36000
pin = 222224

[[programs]]
id = "net"
primacy = 1
[[programs]]
id = "ret"
primacy = 5
default = { opModExpLimW = 5000, opModConnect = true }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A2"
program = "ret"
start_s = 300
duration_s = 60
modes = { opModExpLimW = 100 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "ret"
start_s = 100
duration_s = 100
modes = { opModExpLimW = 1000 }
"""


def ok(reply: SimReply, status: int = 200) -> bytes:
    assert reply.status == status, reply.reason
    return reply.body


def get(state: UtilityState, path: str, now: float = START, lfdi: str = LFDI) -> SimReply:
    return state.handle("GET", path, b"", lfdi, now)


def post(state: UtilityState, path: str, obj: msgspec.Struct, now: float = START) -> SimReply:
    return state.handle("POST", path, encode(obj), LFDI, now)


def test_time_reports_the_clock_it_is_given() -> None:
    state = registered(TWO_PROGRAMS)
    time = decode(ok(get(state, "/tm", now=START + 12.7)), r.Time)
    assert time.currentTime == START + 12
    assert (time.tzOffset, time.localTime, time.pollRate) == (36000, START + 12 + 36000, 30)


def test_in_band_registration_answers_201_with_location() -> None:
    state = UtilityState(parse_scenario(TWO_PROGRAMS), start=START)
    reply = state.handle("POST", "/edev", encode(end_device()), LFDI, START)
    assert (reply.status, reply.location) == (201, "/edev/1")
    assert isinstance(reply.parsed, r.EndDevice)
    again = state.handle("POST", "/edev", encode(end_device()), LFDI, START + 5)
    assert (again.status, again.location, len(state.devices)) == (201, "/edev/1", 1)


def test_end_device_list_shows_only_the_requesting_device() -> None:
    state = registered(TWO_PROGRAMS)
    state.handle("POST", "/edev", encode(end_device(OTHER_LFDI)), OTHER_LFDI, START)
    mine = decode(ok(get(state, "/edev")), r.EndDeviceList)
    assert (mine.all, mine.results) == (1, 1)
    assert int(mine.EndDevice[0].lFDI or 0) == int(LFDI, 16)
    assert mine.EndDevice[0].postRate == 120


def test_devices_are_found_by_lfdi_and_sfdi_numerically() -> None:
    state = registered(TWO_PROGRAMS)
    device = state.device_by_lfdi(int(LFDI, 16))
    assert device is not None and state.device_by_sfdi(device.sfdi) is device
    # hexBinary is case-insensitive and servers drop leading zeros: the same device either way
    assert get(state, "/edev/1", lfdi=LFDI.lower().lstrip("0")).status == 200


def test_registration_refuses_an_lfdi_that_is_not_the_certificates() -> None:
    state = UtilityState(parse_scenario(TWO_PROGRAMS), start=START)
    reply = state.handle("POST", "/edev", encode(end_device(OTHER_LFDI)), LFDI, START)
    assert reply.status == 403 and "lFDI" in reply.reason


def test_registration_refuses_an_sfdi_not_derived_from_the_lfdi() -> None:
    state = UtilityState(parse_scenario(TWO_PROGRAMS), start=START)
    reply = state.handle("POST", "/edev", encode(end_device(sfdi=12345)), LFDI, START)
    assert reply.status == 400 and "sFDI" in reply.reason


def test_unregistered_lfdi_sees_only_discovery_and_registration() -> None:
    state = registered(TWO_PROGRAMS)
    assert get(state, "/dcap", lfdi=OTHER_LFDI).status == 200
    assert get(state, "/tm", lfdi=OTHER_LFDI).status == 200
    assert decode(ok(get(state, "/edev", lfdi=OTHER_LFDI)), r.EndDeviceList).all == 0
    for path in ("/edev/1", "/edev/1/fsa", "/derp/1", "/derp/2/derc", "/mup"):
        reply = get(state, path, lfdi=OTHER_LFDI)
        assert reply.status == 403, path
        assert "no EndDevice" in reply.reason


def test_a_device_cannot_read_another_devices_end_device() -> None:
    state = registered(TWO_PROGRAMS)
    state.handle("POST", "/edev", encode(end_device(OTHER_LFDI)), OTHER_LFDI, START)
    assert get(state, "/edev/2", lfdi=LFDI).status == 403
    assert get(state, "/edev/2/rg", lfdi=LFDI).status == 403
    assert get(state, "/edev/2", lfdi=OTHER_LFDI).status == 200


def test_malformed_xml_is_400_naming_the_problem() -> None:
    state = UtilityState(parse_scenario(TWO_PROGRAMS), start=START)
    reply = state.handle(
        "POST", "/edev", b"<EndDevice xmlns='urn:ieee:std:2030.5:ns'>", LFDI, START
    )
    assert reply.status == 400 and reply.reason.startswith("MalformedXml")


def test_schema_violation_is_400_naming_the_element() -> None:
    state = UtilityState(parse_scenario(TWO_PROGRAMS), start=START)
    body = b"<EndDevice xmlns='urn:ieee:std:2030.5:ns'><changedTime>1</changedTime></EndDevice>"
    reply = state.handle("POST", "/edev", body, LFDI, START)
    assert reply.status == 400
    assert reply.reason.startswith("SchemaViolation") and "sFDI" in reply.reason


def test_wrong_document_and_empty_body_are_400() -> None:
    state = registered(TWO_PROGRAMS)
    wrong = post(state, "/mup", end_device())
    assert wrong.status == 400 and "UnexpectedDocument" in wrong.reason
    empty = state.handle("POST", "/mup", b"", LFDI, START)
    assert empty.status == 400 and "MirrorUsagePoint" in empty.reason


def test_unknown_path_is_404_and_wrong_method_405() -> None:
    state = registered(TWO_PROGRAMS)
    assert get(state, "/nothing/here").status == 404
    assert get(state, "/derp/9").status == 404
    assert get(state, "/derp/2/derc/7").status == 404
    assert state.handle("DELETE", "/dcap", b"", LFDI, START).status == 405


def test_registration_carries_the_pin() -> None:
    state = registered(TWO_PROGRAMS)
    reg = decode(ok(get(state, "/edev/1/rg")), r.Registration)
    assert reg.pIN == 222224 and reg.dateTimeRegistered == START


def test_program_list_is_ordered_by_primacy_with_links() -> None:
    state = registered(TWO_PROGRAMS)
    fsa = decode(ok(get(state, "/edev/1/fsa")), r.FunctionSetAssignmentsList)
    link = fsa.FunctionSetAssignments[0].DERProgramListLink
    assert link is not None
    programs = decode(ok(get(state, link.href)), r.DERProgramList)
    assert [p.primacy for p in programs.DERProgram] == [1, 5]
    ret = programs.DERProgram[1]
    assert (
        ret.DefaultDERControlLink is not None
        and programs.DERProgram[0].DefaultDERControlLink is None
    )
    assert ret.DERControlListLink is not None and ret.DERControlListLink.all == 2


def test_control_list_is_ordered_by_start_and_paged() -> None:
    state = registered(TWO_PROGRAMS)
    full = decode(ok(get(state, "/derp/2/derc")), r.DERControlList)
    assert [int(c.mRID) for c in full.DERControl] == [0xA1, 0xA2]
    assert (full.all, full.results) == (2, 2)
    page = decode(ok(get(state, "/derp/2/derc?s=1&l=1")), r.DERControlList)
    assert (page.all, page.results, int(page.DERControl[0].mRID)) == (2, 1, 0xA2)
    past = decode(ok(get(state, "/derp/2/derc?s=5")), r.DERControlList)
    assert (past.all, past.results) == (2, 0)


def test_bad_paging_parameter_is_400_naming_it() -> None:
    state = registered(TWO_PROGRAMS)
    reply = get(state, "/derp/2/derc?l=-1")
    assert reply.status == 400 and "l=" in reply.reason


def test_control_wire_values_come_from_the_scenario() -> None:
    state = registered(TWO_PROGRAMS)
    control = decode(ok(get(state, "/derp/2/derc/2")), r.DERControl)  # A1, created second
    assert int(control.mRID) == 0xA1
    assert control.interval == r.DateTimeInterval(start=START + 100, duration=100)
    assert control.DERControlBase.opModExpLimW == r.ActivePower(value=1000, multiplier=0)
    assert (control.replyTo, int(control.responseRequired or 0)) == ("/rsps/2/rsp", 3)


@pytest.mark.parametrize(
    ("offset", "status"), [(0, 0), (99, 0), (100, 1), (199, 1), (200, 1), (500, 1)]
)
def test_event_status_follows_server_time(offset: int, status: int) -> None:
    state = registered(TWO_PROGRAMS)
    control = decode(ok(get(state, "/derp/2/derc/2", now=START + offset)), r.DERControl)
    assert control.EventStatus.currentStatus == status


def test_cancel_sets_status_2_from_the_cancel_instant() -> None:
    state = registered(
        TWO_PROGRAMS + '[[actions]]\nat_s = 150\nkind = "cancel_control"\nmrid = "A1"\n'
    )
    before = decode(ok(get(state, "/derp/2/derc/2", now=START + 149)), r.DERControl)
    assert before.EventStatus.currentStatus == 1
    state.apply(state.scenario.actions[2], START + 150)
    after = decode(ok(get(state, "/derp/2/derc/2", now=START + 150)), r.DERControl)
    assert (after.EventStatus.currentStatus, after.EventStatus.dateTime) == (2, START + 150)


def test_cancel_with_randomisation_is_status_3() -> None:
    text = TWO_PROGRAMS + (
        '[[actions]]\nat_s = 10\nkind = "cancel_control"\nmrid = "A2"\nrandomized = true\n'
    )
    state = registered(text, now=START + 10)
    control = decode(ok(get(state, "/derp/2/derc/1", now=START + 10)), r.DERControl)
    assert control.EventStatus.currentStatus == 3


def test_active_list_holds_only_running_controls() -> None:
    state = registered(TWO_PROGRAMS)
    assert decode(ok(get(state, "/derp/2/actderc", now=START + 50)), r.DERControlList).all == 0
    active = decode(ok(get(state, "/derp/2/actderc", now=START + 150)), r.DERControlList)
    assert [int(c.mRID) for c in active.DERControl] == [0xA1]


def test_response_post_is_stored_with_location() -> None:
    state = registered(TWO_PROGRAMS)
    response = r.DERControlResponse(
        createdDateTime=START + 1,
        endDeviceLFDI=r.HexBinary160(int(LFDI, 16)),
        status=1,
        subject=r.HexBinary128(0xA1),
    )
    reply = post(state, "/rsps/2/rsp", response, now=START + 1)
    assert (reply.status, reply.location) == (201, "/rsps/2/rsp/1")
    assert state.responses == [(START + 1, response)]


def test_response_for_an_unknown_subject_or_lfdi_is_400() -> None:
    state = registered(TWO_PROGRAMS)
    lfdi = r.HexBinary160(int(LFDI, 16))
    unknown = r.Response(endDeviceLFDI=lfdi, status=1, subject=r.HexBinary128(0xFF))
    assert post(state, "/rsps/2/rsp", unknown).status == 400
    wrong_program = r.Response(endDeviceLFDI=lfdi, status=1, subject=r.HexBinary128(0xA1))
    assert post(state, "/rsps/1/rsp", wrong_program).status == 400
    foreign = r.Response(
        endDeviceLFDI=r.HexBinary160(int(OTHER_LFDI, 16)), status=1, subject=r.HexBinary128(0xA1)
    )
    reply = post(state, "/rsps/2/rsp", foreign)
    assert reply.status == 400 and "endDeviceLFDI" in reply.reason
    assert state.responses == []


def test_der_information_put_is_stored_and_served() -> None:
    state = registered(TWO_PROGRAMS)
    settings = r.DERSettings(
        setGradW=100, setMaxW=r.ActivePower(value=5, multiplier=3), updatedTime=START
    )
    reply = state.handle("PUT", "/edev/1/der/1/derg", encode(settings), LFDI, START)
    assert reply.status == 204 and reply.parsed == settings
    served = decode(ok(get(state, "/edev/1/der/1/derg")), r.DERSettings)
    assert served.setMaxW == settings.setMaxW and served.href == "/edev/1/der/1/derg"
    assert get(state, "/edev/1/der/1/dercap").status == 404  # nothing PUT yet
    assert state.handle("PUT", "/edev/1/der/1/nope", b"", LFDI, START).status == 404


def test_connection_point_put_is_stored() -> None:
    state = registered(TWO_PROGRAMS)
    body = encode(r.ConnectionPointType(connectionPointId="4102345678"))
    assert state.handle("PUT", "/edev/1/cp", body, LFDI, START).status == 204
    assert (
        decode(ok(get(state, "/edev/1/cp")), r.ConnectionPointType).connectionPointId
        == "4102345678"
    )
    assert state.devices[0].connection_point is not None


def _mup(mrid: int = 0x10) -> r.MirrorUsagePoint:
    reading_type = r.ReadingType(uom=38, kind=37, flowDirection=19)
    return r.MirrorUsagePoint(
        mRID=r.HexBinary128(mrid),
        roleFlags=r.HexBinary16(0x03),
        serviceCategoryKind=0,
        status=1,
        deviceLFDI=r.HexBinary160(int(LFDI, 16)),
        MirrorMeterReading=(
            r.MirrorMeterReading(mRID=r.HexBinary128(0x11), ReadingType=reading_type),
        ),
    )


def _readings(mrid: int = 0x11) -> r.MirrorMeterReading:
    return r.MirrorMeterReading(
        mRID=r.HexBinary128(mrid),
        MirrorReadingSet=(
            r.MirrorReadingSet(
                mRID=r.HexBinary128(0x12),
                timePeriod=r.DateTimeInterval(start=START, duration=60),
                Reading=(r.Reading(value=1500),),
            ),
        ),
    )


def test_mirror_usage_point_post_creates_it_once() -> None:
    state = registered(TWO_PROGRAMS)
    first = post(state, "/mup", _mup())
    assert (first.status, first.location) == (201, "/mup/1")
    assert post(state, "/mup", _mup()).location == "/mup/1"  # same mRID: the same mirror
    assert post(state, "/mup", _mup(0x20)).location == "/mup/2"
    listed = decode(ok(get(state, "/mup")), r.MirrorUsagePointList)
    assert (listed.all, listed.MirrorUsagePoint[0].postRate) == (2, 120)


def test_readings_posted_to_the_mirror_are_stored() -> None:
    state = registered(TWO_PROGRAMS)
    post(state, "/mup", _mup())
    reply = post(state, "/mup/1", _readings(), now=START + 60)
    assert reply.status == 201
    assert state.mirrors[0].readings == [(START + 60, _readings())]
    unknown = post(state, "/mup/1", _readings(0x99))
    assert unknown.status == 400 and "mRID" in unknown.reason
    assert post(state, "/mup/7", _readings()).status == 404


def test_log_events_are_stored_and_listed() -> None:
    state = registered(TWO_PROGRAMS)
    event = r.LogEvent(
        createdDateTime=START,
        functionSet=0,
        logEventCode=3,
        logEventID=7,
        logEventPEN=37244,
        profileID=2,
        details="inverter fault",
    )
    reply = post(state, "/edev/1/lel", event)
    assert (reply.status, reply.location) == (201, "/edev/1/lel/1")
    listed = decode(ok(get(state, "/edev/1/lel")), r.LogEventList)
    assert listed.all == 1 and listed.LogEvent[0].details == "inverter fault"


def test_removing_a_program_drops_it_from_the_fsa() -> None:
    state = registered(
        TWO_PROGRAMS + '[[actions]]\nat_s = 5\nkind = "remove_program"\nprogram = "net"\n'
    )
    state.apply(state.scenario.actions[2], START + 5)
    programs = decode(ok(get(state, "/edev/1/fsa/1/derp", now=START + 5)), r.DERProgramList)
    assert [p.primacy for p in programs.DERProgram] == [5]


def test_pin_and_rates_change_with_the_timeline() -> None:
    text = TWO_PROGRAMS + (
        '[[actions]]\nat_s = 5\nkind = "set_pin"\npin = 333333\n'
        '[[actions]]\nat_s = 5\nkind = "set_poll_rate"\nresource = "derp"\nseconds = 7\n'
        '[[actions]]\nat_s = 5\nkind = "set_post_rate"\nseconds = 9\n'
    )
    state = registered(text, now=START + 5)
    assert decode(ok(get(state, "/edev/1/rg")), r.Registration).pIN == 333333
    assert decode(ok(get(state, "/edev/1/fsa/1/derp")), r.DERProgramList).pollRate == 7
    assert decode(ok(get(state, "/edev/1/fsa")), r.FunctionSetAssignmentsList).pollRate == 30
    assert decode(ok(get(state, "/edev/1")), r.EndDevice).postRate == 9


def test_changed_default_is_served_with_a_new_version_and_removable() -> None:
    text = TWO_PROGRAMS + (
        '[[actions]]\nat_s = 5\nkind = "change_default"\nprogram = "ret"\n'
        "modes = { opModExpLimW = 2500 }\nset_grad_w = 50\n"
        '[[actions]]\nat_s = 9\nkind = "change_default"\nprogram = "ret"\nmodes = {}\n'
    )
    state = registered(text, now=START + 5)
    default = decode(ok(get(state, "/derp/2/dderc")), r.DefaultDERControl)
    assert default.DERControlBase.opModExpLimW == r.ActivePower(value=2500, multiplier=0)
    assert (default.version, default.setGradW) == (1, 50)
    state.apply(state.scenario.actions[3], START + 9)
    assert get(state, "/derp/2/dderc").status == 404


def test_failure_window_answers_its_status_on_matching_paths_then_recovers() -> None:
    text = TWO_PROGRAMS + (
        '[[actions]]\nat_s = 10\nkind = "fail"\nduration_s = 20\nstatus = 503\n'
        'retry_after_s = 5\npaths = ["/derp"]\n'
    )
    state = registered(text, now=START + 10)
    failed = get(state, "/derp/2/derc", now=START + 10)
    assert (failed.status, failed.retry_after_s) == (503, 5)
    assert get(state, "/dcap", now=START + 10).status == 200  # another path
    assert get(state, "/derp/2/derc", now=START + 30).status == 200  # the window is over


def test_reset_window_asks_for_a_dropped_connection() -> None:
    text = TWO_PROGRAMS + '[[actions]]\nat_s = 1\nkind = "fail"\nduration_s = 5\nreset = true\n'
    state = registered(text)
    state.apply(state.scenario.actions[2], START + 1)
    assert get(state, "/dcap", now=START + 1).reset
    assert not get(state, "/dcap", now=START + 6).reset


def test_a_higher_primacy_overlapping_control_marks_the_loser_potentially_superseded() -> None:
    text = TWO_PROGRAMS + (
        '[[actions]]\nat_s = 20\nkind = "create_control"\nmrid = "B1"\nprogram = "net"\n'
        "start_s = 150\nduration_s = 30\nmodes = { opModExpLimW = 0 }\n"
    )
    state = registered(text, now=START + 20)
    loser = decode(ok(get(state, "/derp/2/derc/2", now=START + 160)), r.DERControl)
    assert loser.EventStatus.potentiallySuperseded
    assert loser.EventStatus.potentiallySupersededTime == START + 20
    assert loser.EventStatus.currentStatus == 1  # 4 only under the status_superseded quirk
    other = decode(ok(get(state, "/derp/2/derc/1", now=START + 160)), r.DERControl)
    assert not other.EventStatus.potentiallySuperseded  # A2 does not overlap B1


@pytest.mark.parametrize(
    "path",
    [
        "/dcap",
        "/edev",
        "/edev/1",
        "/edev/1/fsa",
        "/edev/1/fsa/1/derp",
        "/derp/2/derc",
        "/derp/2/dderc",
        "/edev/1/der",
        "/edev/1/rg",
        "/tm",
    ],
)
def test_server_documents_validate_against_the_public_schemas(path: str) -> None:
    """Every document against 2018 + CSIP-AUS v1.2; those without CSIP-AUS elements also against
    the plain 2018 schema."""
    state = registered(TWO_PROGRAMS)
    text = ok(get(state, path, now=START + 150))
    document = etree.fromstring(text)
    schema = xsd_csipaus()
    assert schema.validate(document), (path, schema.error_log.last_error)
    if b"csipaus" not in text:
        plain = xsd_2018()
        assert plain.validate(document), (path, plain.error_log.last_error)


def test_documents_with_csipaus_elements_are_the_extension_ones() -> None:
    state = registered(TWO_PROGRAMS)
    plain = {"/dcap", "/tm", "/edev/1/rg", "/edev/1/fsa", "/edev/1/fsa/1/derp", "/edev/1/der"}
    for path in plain:
        assert b"csipaus" not in ok(get(state, path)), path
    for path in ("/edev", "/edev/1", "/derp/2/derc", "/derp/2/dderc"):
        assert b"csipaus:" in ok(get(state, path)), path


def test_failure_window_can_be_limited_to_methods() -> None:
    text = TWO_PROGRAMS + (
        '[[actions]]\nat_s = 0\nkind = "fail"\nduration_s = 20\nstatus = 500\nmethods = ["post"]\n'
    )
    state = registered(TWO_PROGRAMS)
    state.apply(parse_scenario(text).actions[2], START)
    assert get(state, "/dcap").status == 200
    assert post(state, "/mup", end_device()).status == 500


def test_head_answers_gets_status_without_content() -> None:
    state = registered(TWO_PROGRAMS)
    head = state.handle("HEAD", "/dcap", b"", LFDI, START)
    assert (head.status, head.body) == (200, b"")
    assert state.handle("HEAD", "/nothing", b"", LFDI, START).status == 404


def test_section2_4_a_pre_registered_end_device_carries_the_installers_pin() -> None:
    """Out-of-band registration: the EndDevice is listed from the device's first request (no
    POST) and its Registration carries the scenario's PIN."""
    state = UtilityState(
        parse_scenario("[server]\npin = 222220\npre_registered = true\nin_band_pin = 261582\n"),
        start=START,
    )
    listed = decode(ok(get(state, "/edev")), r.EndDeviceList)
    assert [d.href for d in listed.EndDevice] == ["/edev/1"]
    assert not state.devices[0].in_band
    assert decode(ok(get(state, "/edev/1/rg")), r.Registration).pIN == 222220


def test_section2_4_in_band_registration_gets_the_pin_the_server_chooses() -> None:
    state = UtilityState(
        parse_scenario("[server]\npin = 222220\nin_band_pin = 261582\n"), start=START
    )
    ok(state.handle("POST", "/edev", encode(end_device()), LFDI, START), 201)
    assert decode(ok(get(state, "/edev/1/rg")), r.Registration).pIN == 261582


def test_section2_4_an_end_device_without_a_registration_link() -> None:
    state = registered("[server]\nregistration_link = false\n")
    assert decode(ok(get(state, "/edev/1")), r.EndDevice).RegistrationLink is None
    assert get(state, "/edev/1/rg").status == 404
