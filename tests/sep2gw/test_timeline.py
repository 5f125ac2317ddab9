"""What `sep2gw run` prints from the log as the gateway writes it (sep2gw/timeline.py)."""

from __future__ import annotations

from events.base import Event
from events.der_events import DerListMatched, DerMatch, DerMemberStatus
from events.envelope import Recorded
from events.link_events import CsipAusFault, CsipAusVersionSettled
from events.log_events import LogShed
from events.registration_events import (
    EndDeviceRegistered,
    PinCase,
    RegistrationLinkMissing,
    ServerPinRecorded,
)
from events.telemetry import OperatingState
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


def test_limits_are_shown_rounded_with_their_units() -> None:
    """Issue 20: a closed-loop value printed as ``export_limit_w=4991.169952955278``."""
    from events.control_events import LimitsInForceChanged
    from events.der_model import ControlSettings

    settings = ControlSettings(export_limit_w=4991.169952955278, max_limit_pct=55.0, connect=True)
    line = Timeline().line(
        _record(
            LimitsInForceChanged(
                at_s=0, settings=settings, sources={}, next_change_s=None, ramps_ended=()
            )
        )
    )
    assert line is not None
    assert "export_limit_w=4991.2 W" in line and "max_limit_pct=55 %" in line
    assert "connect=True" in line and "4991.16" not in line


def test_the_sites_zone_is_shown_beside_server_time() -> None:
    """``site.time_zone`` reaches the live console (it was ignored)."""
    from pathlib import Path

    from sep2gw.commands.run import _timeline
    from sep2gw.config import parse_config
    from tests.sep2gw.test_config import GOOD

    text = GOOD.replace("[site]", '[site]\ntime_zone = "Australia/Adelaide"', 1)
    config = parse_config(text, source="site.toml", base_dir=Path("."), check_files=False)
    stamp = _timeline(config=config).stamp(1764115200.0)  # 2025-11-26 00:00 UTC, ACDT
    assert stamp == "2025-11-26 00:00:00Z (10:30:00 +1030)"
    assert _timeline().stamp(1764115200.0) == "2025-11-26 00:00:00Z"


def test_a_battery_line_says_why_the_battery_was_not_told_what_was_asked() -> None:
    """A clamp (the DER's range, the site limit) is the reason a limit was not met: the line says
    it in words, and an old log's text that is not the v1 repr is shown as recorded."""
    from events.der_model import ControlSettings, Mode
    from events.hardware_events import Clamp, LimitsApplied

    applied = LimitsApplied(
        at_s=0,
        settings=ControlSettings(export_limit_w=5000.0),
        applied=(Mode.EXPORT_LIMIT_W,),
        setpoint_w=5000.0,
        wrote=True,
        site_limit_met=False,
        clamps=(Clamp(mode="hold", requested=6123.456, applied=5000.0, bound="max_discharge_w"),),
        unparsed_clamps=("something else",),
    )
    line = Timeline().line(_record(applied))
    assert line is not None and line.endswith(
        "; clamped: hold 6123.5 W held at 5000 W by max_discharge_w; something else (as recorded)"
    )


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


def test_issue19_a_der_left_out_of_the_split_and_a_derlist_finding_get_a_line() -> None:
    timeline = Timeline()
    left = timeline.line(
        _record(
            DerMemberStatus(
                at_s=0,
                der="battery-2",
                available=False,
                reachable=False,
                reason="read telemetry: TimeoutError: ",
                connected=True,
                state=OperatingState.OPERATING,
            )
        )
    )
    assert left is not None
    assert "DER battery-2: LEFT OUT of the site's split (read telemetry: TimeoutError: )" in left
    matched = timeline.line(
        _record(
            DerListMatched(
                at_s=0,
                list_href="/edev/1/der",
                matches=(DerMatch(der="battery", href="/edev/1/der/1", by="order"),),
                unmatched_ders=("battery-2",),
                finding="the DERList has 1 DER for 2 configured: no server DER for battery-2",
            )
        )
    )
    assert matched is not None
    assert "battery as /edev/1/der/1; FINDING: the DERList has 1 DER" in matched
