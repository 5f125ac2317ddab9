"""Every rejection is visible in the forensic tools (issue 15 point 4): ``explain --at`` says
whether the link held a resource back at the instant and why, and lists the server faults recorded
around it; ``report`` has a "Server faults" table."""

from __future__ import annotations

from events.control_events import ControlReceived, ControlRejected, DefaultRefused, ProgramsChanged
from events.der_model import Control, ControlSettings, DefaultControl, Program, ResponseStatus
from events.link_events import LinkBackedOff, ListCapped
from events.memory_store import MemoryEventStore
from events.registration_events import TimeRefused
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted
from sep2gw.forensics import analyse
from sep2gw.forensics.compliance import ComplianceSettings
from sep2gw.forensics.render import ForensicTimeline, explain_control, explain_instant
from sep2gw.forensics.report import render_report

T0 = 1_764_115_200.0  # 2025-11-26T00:00:00Z


def _log_with_server_faults() -> MemoryEventStore:
    store = MemoryEventStore(CATALOGUE)
    started = GatewayStarted(software_version="t", rng_seed=1, clock_synced=True)
    store.append_events("runtime", [started], server_time=T0, monotonic=0.0)
    hold = LinkBackedOff(
        method="GET",
        path="/derp/1/derc",
        error="TruncatedBody",
        reason="the body ended before its Content-Length",
        http_status=None,
        body_bytes=None,
        failures=3,
        hold_s=40.0,
        until_s=T0 + 140.0,
        at_s=T0 + 100.0,
    )
    store.append_events("link", [hold], server_time=T0 + 100.0, monotonic=100.0)
    capped = ListCapped(
        path="/derp/1/derc",
        reason="all=1000000 beyond the 5000 a list may hold",
        kept=100,
        at_s=T0 + 200.0,
    )
    store.append_events("link", [capped], server_time=T0 + 200.0, monotonic=200.0)
    refused_clock = TimeRefused(
        current_time=9_223_372_036_854_775_807, reason="beyond the year 2100", at_s=T0 + 210.0
    )
    store.append_events("registration", [refused_clock], server_time=T0 + 210.0, monotonic=210.0)
    refused_default = DefaultRefused(
        program_id="P1",
        received=DefaultControl(program_id="P1", settings=ControlSettings(export_limit_w=-5000.0)),
        reason="opModExpLimW is negative",
        at_s=T0 + 220.0,
    )
    programs = ProgramsChanged(programs=(Program(program_id="P1", primacy=1),), at_s=T0 + 220.0)
    store.append_events(
        "controls", [programs, refused_default], server_time=T0 + 220.0, monotonic=220.0
    )
    return store


def test_explain_at_an_instant_says_the_link_was_held_back_and_why() -> None:
    model = analyse(_log_with_server_faults(), at=[T0 + 120.0, T0 + 150.0, T0 + 5000.0])
    tl = ForensicTimeline(None)
    held = "\n".join(explain_instant(model, T0 + 120.0, tl))
    free = "\n".join(explain_instant(model, T0 + 150.0, tl))
    assert "link: HELD BACK from GET /derp/1/derc until 2025-11-26 00:02:20Z" in held
    assert (
        "(record 2): TruncatedBody: the body ended before its Content-Length "
        "(failure 3 in a row)" in held
    )
    assert "HELD BACK" not in free and "no resource was held back" in free


def test_explain_at_an_instant_lists_the_server_faults_recorded_around_it() -> None:
    model = analyse(_log_with_server_faults(), at=[T0 + 150.0, T0 + 5000.0])
    tl = ForensicTimeline(None)
    near = "\n".join(explain_instant(model, T0 + 150.0, tl))
    far = "\n".join(explain_instant(model, T0 + 5000.0, tl))
    assert "list cut at a cap: /derp/1/derc: all=1000000 beyond the 5000" in near
    assert "server clock refused: Time.currentTime: beyond the year 2100" in near
    assert "default refused: program P1: opModExpLimW is negative" in near
    assert "server faults" not in far


def test_the_report_has_a_server_faults_table() -> None:
    model = analyse(_log_with_server_faults())
    html = render_report(model, source="t.db", zone=None, settings=ComplianceSettings())
    assert "<h2>Server faults</h2>" in html
    table = html.split("id='server-faults'", 1)[1].split("</table>", 1)[0]
    assert table.count("<tr data-seq=") == 3
    assert "list cut at a cap" in table and "server clock refused" in table
    assert "default refused" in table and "opModExpLimW is negative" in table
    assert "held resources back 1 times" in html


def test_explain_of_a_refused_control_gives_its_253_and_the_reason() -> None:
    """A control that cannot be carried out is refused with 253 and a logged reason (PROTOCOL.md §4
    rules 6 and 16): ``explain MRID`` shows both."""
    store = _log_with_server_faults()
    control = Control(
        mrid="C" * 32,
        program_id="P1",
        creation_time_s=int(T0),
        start_s=int(T0) + 300,
        duration_s=600,
        settings=ControlSettings(export_limit_w=-1000.0),
    )
    store.append_events(
        f"control:{control.mrid}",
        [
            ControlReceived(control=control, at_s=T0 + 230.0),
            ControlRejected(
                mrid=control.mrid,
                status=ResponseStatus.INVALID_EVENT,
                reason="opModExpLimW is negative: no DER can carry it out",
                at_s=T0 + 230.0,
            ),
        ],
        server_time=T0 + 230.0,
        monotonic=230.0,
    )
    text = "\n".join(explain_control(analyse(store), control.mrid, ForensicTimeline(None)))
    assert "rejected with 253" in text
    assert "why: opModExpLimW is negative: no DER can carry it out" in text
