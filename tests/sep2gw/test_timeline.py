"""What `sep2gw run` prints from the log as the gateway writes it (sep2gw/timeline.py)."""

from __future__ import annotations

from events.base import Event
from events.envelope import Recorded
from events.link_events import CsipAusFault, CsipAusVersionSettled
from events.log_events import LogShed
from events.registration_events import (
    EndDeviceRegistered,
    PinCase,
    RegistrationLinkMissing,
    ServerPinRecorded,
)
from sep2gw.timeline import Timeline
from statemachines.polling import PollSchedule


def _record(event: Event, seq: int = 1) -> Recorded:
    return Recorded(seq, "registration", seq, 0.0, 0.0, event, b"")


def test_section2_4_an_unconfigured_pin_is_printed_as_a_warning() -> None:
    line = Timeline().line(
        _record(ServerPinRecorded(pin=222220, case=PinCase.NOT_CONFIGURED, at_s=0))
    )
    assert line is not None and "WARNING" in line and "222220" in line and "server.pin" in line


def test_section2_4_registration_cases_each_get_a_line() -> None:
    timeline = Timeline()
    lines = [
        timeline.line(_record(EndDeviceRegistered(href="/edev/1", at_s=0))),
        timeline.line(
            _record(ServerPinRecorded(pin=261582, case=PinCase.REGISTERED_IN_BAND, at_s=0))
        ),
        timeline.line(_record(RegistrationLinkMissing(end_device="/edev/1", at_s=0))),
    ]
    assert all(lines), lines
    assert "in-band" in (lines[0] or "") and "261582" in (lines[1] or "")
    assert "RegistrationLink" in (lines[2] or "")


def test_issue16_a_gap_in_the_log_gets_a_line_naming_what_was_not_recorded_and_when() -> None:
    line = Timeline().line(
        _record(LogShed(counts={"hardware.telemetry.v1": 57}, from_s=3600.0, to_s=3900.0))
    )
    assert line is not None
    assert "log gap" in line and "57 hardware.telemetry.v1" in line
    assert "1970-01-01 01:00:00Z" in line and "1970-01-01 01:05:00Z" in line


def test_issue15_an_absurd_rate_is_one_console_line_per_resource_naming_sent_and_used() -> None:
    schedule, timeline = PollSchedule(), Timeline()
    events = [
        e
        for at in range(0, 600, 60)
        for resource in ("/tm", "/edev/1/der")
        for e in schedule.rate_seen(resource, 1, at)
    ]
    events += schedule.post_rate_seen("mirror", 60, 0, sent_s=1)
    events += schedule.post_rate_seen("mirror", 60, 60, sent_s=1)
    lines = [line for e in events if (line := timeline.line(_record(e))) is not None]
    faults = [line for line in lines if "SERVER FAULT" in line]
    assert len(faults) == 3, lines
    assert "pollRate 1 s for /tm" in faults[0] and "900 s used" in faults[0]
    assert "/edev/1/der" in faults[1]
    assert "postRate 1 s" in faults[2] and "60 s used" in faults[2]


def test_issue18_the_version_in_force_and_how_it_was_learned_get_a_line_each() -> None:
    timeline = Timeline()
    negotiated = timeline.line(
        _record(
            CsipAusVersionSettled(
                version="v1.3",
                namespace="https://csipaus.org/ns/v1.3",
                learned="well-known",
                path="/.well-known/csipaus",
                dcap_path="/v13/dcap",
                offered=("https://csipaus.org/ns/v1.3",),
                at_s=0,
            )
        )
    )
    assert negotiated == (
        "1970-01-01 00:00:00Z  CSIP-AUS v1.3 in force: negotiated by /.well-known/csipaus (offered: "
        "https://csipaus.org/ns/v1.3); DeviceCapability /v13/dcap"
    )
    fell_back = timeline.line(
        _record(
            CsipAusVersionSettled(
                version="v1.2",
                namespace="https://csipaus.org/ns",
                learned="configured",
                dcap_path="/dcap",
                fallback="/.well-known/csipaus malformed: not JSON",
                fallback_kind="malformed",
                at_s=0,
            )
        )
    )
    assert fell_back is not None and "fell back: /.well-known/csipaus malformed" in fell_back
    dropped = timeline.line(
        _record(
            CsipAusFault(
                path="/derp/1/derc",
                kind="unknown-namespace",
                namespace="https://csipaus.org/ns/v9.9",
                in_force="v1.2",
                dropped=("opModExpLimW",),
                at_s=0,
            )
        )
    )
    assert dropped is not None and "  SERVER FAULT: /derp/1/derc" in dropped
    assert "NOT READ: opModExpLimW" in dropped
