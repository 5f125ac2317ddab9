"""Times, zones and instants as an operator types them; a gateway that was not running is said so."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone

import pytest

from events.control_events import DefaultChanged, LimitsInForceChanged, ProgramsChanged
from events.der_model import ControlSettings, DefaultControl, Mode, Program
from events.envelope import Recorded
from events.hardware_events import LimitsApplied, TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted, GatewayStopped
from sep2gw.forensics import analyse
from sep2gw.forensics.render import (
    BadInstant,
    ForensicTimeline,
    explain_instant,
    parse_instant,
    parse_zone,
    state_text,
)
from sep2gw.timeline import whole

T0 = 1_764_115_200.0  # 2025-11-26T00:00:00Z


def test_instants_are_epoch_or_iso_8601_and_naive_ones_are_site_local() -> None:
    adelaide = parse_zone("Australia/Adelaide")  # +10:30 in November (daylight saving)
    assert parse_instant("1764115200") == T0
    assert parse_instant("2025-11-26T00:00:00Z") == T0
    assert parse_instant("2025-11-26T10:30:00+10:30") == T0
    assert parse_instant("2025-11-26T10:30:00", adelaide) == T0
    assert parse_instant("2025-11-26T00:00:00") == T0  # no zone given: UTC


@pytest.mark.parametrize(
    "text", ["nan", "inf", "-1", "1e30", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-10:00"]
)
def test_an_instant_no_log_can_hold_is_refused_naming_it(text: str) -> None:
    """These parse as numbers or dates, but rendering them crashed (OverflowError) or meant nothing."""
    with pytest.raises(BadInstant, match=f"'{re.escape(text)}' is not a time a log can hold"):
        parse_instant(text)


def test_a_small_negative_reading_shows_as_0_not_minus_0() -> None:
    assert (
        whole(-0.3) == "0" and whole(0.4) == "0" and whole(-0.6) == "-1" and whole(1499.6) == "1500"
    )


def test_zones_are_iana_names_or_fixed_offsets() -> None:
    assert parse_zone(None) is None
    assert parse_zone("utc") is UTC
    assert parse_zone("+10:30") == timezone(timedelta(hours=10, minutes=30))
    assert parse_zone("-0500") == timezone(timedelta(hours=-5))
    with pytest.raises(BadInstant, match="'Nowhere/City': not a time zone"):
        parse_zone("Nowhere/City")
    with pytest.raises(BadInstant, match="at most 24 hours"):
        parse_zone("+25:00")
    with pytest.raises(BadInstant, match="'noon' is not a time"):
        parse_instant("noon")


def test_the_timeline_shows_server_time_and_site_local_time() -> None:
    timeline = ForensicTimeline(parse_zone("Australia/Adelaide"))
    assert timeline.stamp(T0) == "2025-11-26 00:00:00Z (10:30:00 +1030)"
    winter = T0 + 200 * 86400  # June: standard time
    assert timeline.stamp(winter).endswith("(09:30:00 +0930)")


def _log_with_a_stop() -> MemoryEventStore:
    store = MemoryEventStore(CATALOGUE)
    limits = ControlSettings(export_limit_w=5000.0)

    def at(t: float, stream: str, *events: object) -> None:
        store.append_events(stream, list(events), server_time=t, monotonic=t - T0)  # type: ignore[arg-type]

    at(T0, "runtime", GatewayStarted(software_version="t", rng_seed=1, clock_synced=True))
    at(
        T0,
        "controls",
        ProgramsChanged(programs=(Program(program_id="P1", primacy=1),), at_s=T0),
        DefaultChanged(
            program_id="P1", default=DefaultControl(program_id="P1", settings=limits), at_s=T0
        ),
        LimitsInForceChanged(
            settings=limits,
            sources={Mode.EXPORT_LIMIT_W: "default:P1"},
            next_change_s=None,
            ramps_ended=(),
            at_s=T0,
        ),
    )
    at(T0 + 5, "hardware", TelemetrySampled(at_s=T0 + 5, site_w=4000.0, der_w=1000.0))
    at(T0 + 60, "runtime", GatewayStopped(reason="power cut"))
    at(T0 + 600, "runtime", GatewayStarted(software_version="t", rng_seed=1, clock_synced=True))
    return store


def test_an_instant_when_the_gateway_was_down_is_said_to_be_so() -> None:
    store = _log_with_a_stop()
    model = analyse(store, at=[T0 + 30, T0 + 300])
    assert [(r.started_s, r.stopped_s, r.stop_reason) for r in model.runs] == [
        (T0, T0 + 60, "power cut"),
        (T0 + 600, None, ""),
    ]
    timeline = ForensicTimeline(None)
    down = "\n".join(explain_instant(model, T0 + 300, timeline))
    up = "\n".join(explain_instant(model, T0 + 30, timeline))
    assert "the gateway was NOT RUNNING" in down
    assert "NOT RUNNING" not in up
    assert "export_limit_w = 5000" in up and "DefaultDERControl of program P1" in up


def test_an_instant_outside_the_log_is_said_to_be_so() -> None:
    """``--at 150`` is epoch 150 (1970): the answer must not read like a finding about the site."""
    store = _log_with_a_stop()
    model = analyse(store, at=[150.0, T0 + 30, T0 + 10_000])
    timeline = ForensicTimeline(None)
    before = "\n".join(explain_instant(model, 150.0, timeline))
    inside = "\n".join(explain_instant(model, T0 + 30, timeline))
    after = "\n".join(state_text(model, T0 + 10_000, timeline))
    assert "lies BEFORE the log's first record (2025-11-26 00:00:00Z" in before
    assert "lies AFTER the log's last record (2025-11-26 00:10:00Z" in after
    assert "NOTE" not in inside


def test_a_program_without_a_description_is_not_shown_with_empty_quotes() -> None:
    store = _log_with_a_stop()
    model = analyse(store, at=[T0 + 30])
    text = "\n".join(explain_instant(model, T0 + 30, ForensicTimeline(None)))
    assert "DefaultDERControl of program P1 (primacy 1)" in text
    assert "''" not in text


def test_with_nothing_recorded_in_force_the_arbitration_check_is_still_made() -> None:
    """A default arrived but the log holds no LimitsInForceChanged (the gateway died first): the
    'check: … gives the same limits' line used to be printed without comparing anything."""
    store = MemoryEventStore(CATALOGUE)
    limits = ControlSettings(export_limit_w=5000.0)
    started = GatewayStarted(software_version="t", rng_seed=1, clock_synced=True)
    store.append_events("runtime", [started], server_time=T0, monotonic=0.0)
    store.append_events(
        "controls",
        [
            ProgramsChanged(programs=(Program(program_id="P1", primacy=1),), at_s=T0),
            DefaultChanged(
                program_id="P1", default=DefaultControl(program_id="P1", settings=limits), at_s=T0
            ),
        ],
        server_time=T0,
        monotonic=0.0,
    )
    store.append_events(
        "runtime", [GatewayStopped(reason="power cut")], server_time=T0 + 60, monotonic=60.0
    )
    model = analyse(store, at=[T0 + 30])
    text = "\n".join(explain_instant(model, T0 + 30, ForensicTimeline(None)))
    assert "no limits had been recorded in force yet" in text
    assert "gives the same limits" not in text
    assert "NOTE: arbitrating the fold's state at this instant gives export_limit_w=5000" in text


def test_a_battery_line_of_the_timeline_says_what_the_battery_was_told() -> None:
    """It read 'battery: in force', naming no limit."""
    timeline = ForensicTimeline(None)
    wrote = LimitsApplied(
        at_s=T0,
        settings=ControlSettings(export_limit_w=1000.0),
        applied=(Mode.EXPORT_LIMIT_W,),
        setpoint_w=-250.0,
        wrote=True,
    )
    kept = LimitsApplied(at_s=T0 + 60, settings=ControlSettings(), applied=())
    lines = list(
        timeline.lines(
            [
                Recorded(1, "hardware", 1, T0, 0.0, wrote, b""),
                Recorded(2, "hardware", 2, T0 + 60, 60.0, kept, b""),
            ],
            None,
            None,
        )
    )
    assert lines[0].endswith(
        "battery: export_limit_w=1000 W applied, setpoint written and read back equal, setpoint -250 W"
    )
    assert lines[1].endswith(
        "battery: no limits applied, no setpoint written (the DER's own output was within them)"
    )
