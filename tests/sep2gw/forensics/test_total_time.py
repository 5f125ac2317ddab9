"""Issue 15 point 5, time is total: a log holding 2030.5 times anywhere in the Int64 range (a
server's control start, creation time, a server clock the gateway once adopted) renders in the live
timeline, ``replay``, ``explain`` and ``report`` without an exception."""

from __future__ import annotations

from datetime import timedelta, timezone

from events.control_events import (
    CommsLost,
    ControlIgnored,
    ControlReceived,
    ControlRejected,
    ControlScheduled,
    DefaultRefused,
    IgnoreReason,
    ProgramsChanged,
)
from events.der_model import Control, ControlSettings, DefaultControl, Program, ResponseStatus
from events.envelope import Recorded
from events.link_events import LinkBackedOff
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted
from sep2gw.forensics import analyse
from sep2gw.forensics.compliance import ComplianceSettings
from sep2gw.forensics.render import ForensicTimeline, explain_control, explain_instant, state_text
from sep2gw.forensics.report import render_report
from sep2gw.timeline import Timeline

T0 = 1_764_115_200.0
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _control(mrid: str, start: int, created: int) -> Control:
    return Control(
        mrid=mrid,
        program_id="P1",
        creation_time_s=created,
        start_s=start,
        duration_s=4294967295,
        settings=ControlSettings(export_limit_w=1000.0),
    )


def _log() -> MemoryEventStore:
    store = MemoryEventStore(CATALOGUE)
    started = GatewayStarted(software_version="t", rng_seed=1, clock_synced=True)
    store.append_events("runtime", [started], server_time=T0, monotonic=0.0)
    programs = ProgramsChanged(programs=(Program(program_id="P1", primacy=1),), at_s=T0)
    store.append_events("controls", [programs], server_time=T0, monotonic=0.0)
    far, past = _control("F" * 32, INT64_MAX, INT64_MIN), _control("A" * 32, INT64_MIN, INT64_MAX)
    store.append_events(
        f"control:{far.mrid}",
        [
            ControlReceived(control=far, at_s=T0),
            ControlRejected(
                mrid=far.mrid, status=ResponseStatus.INVALID_EVENT, reason="far", at_s=T0
            ),
        ],
        server_time=T0,
        monotonic=0.0,
    )
    store.append_events(
        f"control:{past.mrid}",
        [
            ControlReceived(control=past, at_s=T0),
            ControlIgnored(mrid=past.mrid, reason=IgnoreReason.EXPIRED_ON_RECEIPT, at_s=T0),
        ],
        server_time=T0 + 1,
        monotonic=1.0,
    )
    # An old log: a server clock at the Int64 limit was adopted, and records carry it.
    late = _control("B" * 32, 2**62, 0)
    store.append_events(
        f"control:{late.mrid}",
        [
            ControlReceived(control=late, at_s=9.2e18),
            ControlScheduled(
                mrid=late.mrid, effective_start_s=2**62, effective_end_s=2**62 + 60, at_s=9.2e18
            ),
        ],
        server_time=9.2e18,
        monotonic=2.0,
    )
    return store


def test_time_is_total_the_live_timeline_renders_any_int64_time() -> None:
    for timeline in (
        Timeline(),
        Timeline(utc_offset_s=14 * 3600),
        Timeline(utc_offset_s=-12 * 3600),
    ):
        lines = [timeline.line(r) for r in _log().read()]
        assert any(line and "9223372036854775807" in line for line in lines)
    assert Timeline(utc_offset_s=14 * 3600).stamp(253402300799)  # 9999-12-31, +14:00 is year 10000


def test_time_is_total_replay_explain_and_report_render_any_int64_time() -> None:
    store = _log()
    model = analyse(store, at=[T0, T0 + 1])
    for zone in (None, timezone(timedelta(hours=14)), timezone(timedelta(hours=-12))):
        timeline = ForensicTimeline(zone)
        assert list(timeline.lines(store.read(), None, None))
        for mrid in ("F" * 32, "A" * 32, "B" * 32):
            assert explain_control(model, mrid, timeline)
        assert explain_instant(model, T0, timeline)
        assert state_text(model, T0 + 1, timeline)
        html = render_report(model, source="t", zone=zone, settings=ComplianceSettings())
        assert "9223372036854775807" in html or "FFFFFFFF" in html


def test_refusal_a_refused_default_is_on_the_timeline_with_its_reason() -> None:
    refused = DefaultRefused(
        program_id="P1",
        received=DefaultControl(program_id="P1", settings=ControlSettings(export_limit_w=-1.0)),
        reason="export_limit_w=-1.0 refused: a limit is ≥ 0 W",
        at_s=T0,
    )
    line = Timeline().line(Recorded(1, "controls", 1, T0, 0.0, refused, b""))
    assert line is not None and "REFUSED" in line and "a limit is ≥ 0 W" in line


def test_refusal_a_link_hold_is_on_the_timeline_with_the_resource_and_reason() -> None:
    held = LinkBackedOff(
        method="GET",
        path="/derp/1/derc?s=0&l=100",
        error="ConnectionReset",
        reason="server closed the connection before responding",
        failures=3,
        hold_s=8.0,
        jitter_s=1.5,
        until_s=T0 + 9.5,
        at_s=T0,
    )
    line = Timeline().line(Recorded(1, "link", 1, T0, 0.0, held, b""))
    assert line is not None
    assert "GET /derp/1/derc" in line and "ConnectionReset" in line and "10 s" in line
    assert "sep2gw probe" in line


def test_refusal_comms_lost_says_why() -> None:
    """Issue 15 point 4: ``COMMS LOST`` names the link failure recorded before it."""
    held = LinkBackedOff(
        method="GET",
        path="/dcap",
        error="UnknownCA",
        reason="the server's chain does not lead to the configured root",
        failures=1,
        hold_s=2.0,
        until_s=T0 + 2,
        at_s=T0,
    )
    timeline = Timeline()
    timeline.line(Recorded(1, "link", 1, T0, 0.0, held, b""))
    line = timeline.line(Recorded(2, "controls", 1, T0, 0.0, CommsLost(at_s=T0), b""))
    assert line is not None and "COMMS LOST" in line and "GET /dcap: UnknownCA" in line


def test_refusal_a_link_failure_repeating_is_shown_at_most_once_a_minute() -> None:
    """Issue 15 point 4: the console line is rate-limited; a changed failure is shown at once."""
    timeline = Timeline()

    def held(at: float, error: str = "ConnectionReset", path: str = "/dcap") -> str | None:
        event = LinkBackedOff(
            method="GET",
            path=path,
            error=error,
            reason="r",
            failures=1,
            hold_s=16.0,
            until_s=at + 16,
            at_s=at,
        )
        return timeline.line(Recorded(1, "link", 1, at, 0.0, event, b""))

    shown = [held(T0 + 16 * k) for k in range(8)]
    assert [line is not None for line in shown] == [
        True,
        False,
        False,
        False,
        True,
        False,
        False,
        False,
    ]
    assert held(T0 + 130, error="LinkTimeout") is not None
    assert held(T0 + 131, path="/tm") is not None
