"""Text renderings of the forensic model: the replay timeline, the state at an instant, a control's
story, and why the limits in force at an instant were what they were.

Every line shows server time (UTC) and the site's local time. The log does not record the site's
time zone, so the operator names it (``--tz``: an IANA zone such as ``Australia/Adelaide``, or a
fixed offset such as ``+10:30``); without one the local column is UTC too and says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo

from events.control_events import (
    CancelDelayDrawn,
    ControlGap,
    DeviceWriteResult,
    LimitsInForceChanged,
    ResponseIntended,
    ServerStatusSeen,
)
from events.der_model import ControlSettings, Mode, Program
from events.envelope import Recorded
from events.pricing_events import PriceInterval
from events.times import not_a_date, utc_datetime, zoned
from sep2gw.forensics.compliance import ComplianceSettings, compliance_series, summarise
from sep2gw.forensics.model import Forensics, LimitPeriod, ResponseRow
from sep2gw.humanfmt import BadZone, quantity
from sep2gw.humanfmt import parse_zone as _parse_zone
from sep2gw.rules import rule
from sep2gw.timeline import (
    ShortIds,
    Timeline,
    describe_blocks,
    describe_clamps,
    describe_learned,
    describe_settings,
    rate_name,
    short,
    whole,
)
from statemachines.controls import ControlsCore, ControlsState, CoreConfig
from statemachines.lifecycle import IGNORED, RECEIVED, REJECTED

__all__ = [
    "BadInstant",
    "ForensicTimeline",
    "explain_control",
    "explain_instant",
    "find_mrid",
    "parse_instant",
    "parse_zone",
    "state_text",
    "verification_lines",
]


class BadInstant(ValueError):
    """A time, zone or mRID given on the command line that cannot be used; the message names it."""


def parse_zone(text: str | None) -> tzinfo | None:
    """``--tz``: ``None``/``UTC``: UTC; ``+HH:MM``/``-HHMM``: a fixed offset; else an IANA zone
    name (``sep2gw.humanfmt.parse_zone``, the one reading of a zone)."""
    try:
        return _parse_zone(text)
    except BadZone as exc:
        raise BadInstant(str(exc)) from None


def parse_instant(text: str, zone: tzinfo | None = None) -> float:
    """An instant as epoch seconds, ISO-8601 (``2025-11-26T14:05:00Z``, ``…+10:00``), or ISO-8601
    without an offset, read in the site's zone ``zone`` (UTC when no zone was given)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise BadInstant(
                f"{text!r} is not a time: give epoch seconds or ISO-8601 like 2025-11-26T14:05:00Z"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone or UTC)
        seconds = parsed.timestamp()
    # nan, inf and instants before 1970 or near year 9999 parse, but name no instant a log can
    # hold (and would crash every rendering of a time).
    if not _EARLIEST_S <= seconds <= _LATEST_S:
        raise BadInstant(
            f"{text!r} is not a time a log can hold: it must lie between 1970-01-01 and "
            "9999-12-30 (epoch seconds 0 to 253402128000)"
        )
    return seconds


_EARLIEST_S = 0.0
#: The last second a ``datetime`` (and so every rendered time) can show, less a day of zone offsets.
_LATEST_S = datetime(9999, 12, 30, tzinfo=UTC).timestamp()


class ForensicTimeline(Timeline):
    """The live timeline (``sep2gw.timeline``), with the site's zone and the records a dispute also
    turns on that the live view leaves out (Responses intended, device verdicts, gaps, draws)."""

    def __init__(self, zone: tzinfo | None, *, telemetry_every_s: float = 60.0) -> None:
        super().__init__(telemetry_every_s=telemetry_every_s)
        self.zone = zone

    def stamp(self, t: float) -> str:
        utc = utc_datetime(t)
        if utc is None:
            return not_a_date(t)
        local = zoned(utc, self.zone or UTC)
        return f"{utc:%Y-%m-%d %H:%M:%S}Z ({'-' if local is None else f'{local:%H:%M:%S %z}'})"

    def describe(self, record: Recorded) -> str | None:
        e = record.event
        match e:
            case ResponseIntended():
                return (
                    f"response {int(e.status)} ({e.status.name.lower()}) for control {self.ids(e.mrid)} "
                    "intended"
                )
            case DeviceWriteResult():
                verdict = "confirmed" if e.ok else f"REFUSED ({e.detail})"
                return f"battery {verdict} the write for control {', '.join(self.ids(m) for m in e.mrids)}"
            case ControlGap():
                return (
                    f"gap between controls {self.ids(e.before)} and {self.ids(e.after)}: default in force "
                    f"{self.stamp(e.start_s)} .. {self.stamp(e.end_s)}"
                )
            case CancelDelayDrawn():
                return f"control {self.ids(e.mrid)} cancel delay drawn: {e.delay_s} s"
            case ServerStatusSeen():
                return f"control {self.ids(e.mrid)}: server status {int(e.status)} ({e.status.name.lower()})"
            case LimitsInForceChanged():
                return "LIMITS IN FORCE: " + _limits_with_sources(e.settings, e.sources, self.ids)
        return super().describe(record)

    def lines(
        self, records: Iterable[Recorded], start: float | None, end: float | None
    ) -> Iterator[str]:
        """``seq  time  text`` for each described record with ``start <= server time <= end``."""
        for record in records:
            t = record.server_time
            if start is not None and t < start:
                continue
            if end is not None and t > end:
                break
            text = self.describe(record)
            if text is not None:
                yield f"{record.seq:>7}  {self.stamp(t)}  {text}"


def _limits_with_sources(
    settings: object, sources: dict[Mode, str], ids: Callable[[str], str] = short
) -> str:
    parts = []
    for mode in Mode:
        value = getattr(settings, mode.value)
        if value is None:
            continue
        parts.append(
            f"{mode.value}={quantity(mode.value, value)} [{_source(sources.get(mode), ids)}]"
        )
    return ", ".join(parts) if parts else "nothing in force (device's own behaviour)"


def _source(source: str | None, ids: Callable[[str], str] = short) -> str:
    if source is None:
        return "?"
    kind, _, ident = source.partition(":")
    return f"{'control' if kind == 'control' else 'default of program'} {ids(ident)}"


def verification_lines(model: Forensics) -> list[str]:
    """What the integrity check found, first: every output starts with it."""
    report = model.report
    assert report is not None
    if report.ok:
        return [f"log verified: {report.describe()}"]
    lines = [
        "!!! THE LOG DID NOT VERIFY: " + report.describe(),
        "!!! --force: what follows folds records that may have been altered; it proves nothing.",
    ]
    lines += [f"!!! {note}" for note in model.forced_skipped]
    return lines


def _named(program: Program) -> str:
    """A program's description in quotes, or nothing when the server gave none (not ``''``)."""
    return f" '{program.description}'" if program.description else ""


def _outside_log(model: Forensics, t: float, timeline: ForensicTimeline) -> list[str]:
    """A warning when ``t`` lies outside the log's span: the log says nothing of that instant (an
    operator who types ``--at 150`` meaning "150 s in" gets 1970 and must be told so)."""
    if model.first_s is not None and t < model.first_s:
        return [
            f"  NOTE: this instant lies BEFORE the log's first record ({timeline.stamp(model.first_s)})"
        ]
    if model.last_s is not None and t > model.last_s:
        return [
            f"  NOTE: this instant lies AFTER the log's last record ({timeline.stamp(model.last_s)})"
        ]
    return []


def state_text(model: Forensics, t: float, timeline: ForensicTimeline) -> list[str]:
    """The state rebuilt by the live folds at instant ``t``."""
    state = model.state_at(t)
    lines = [f"state at {timeline.stamp(t)}:", *_outside_log(model, t, timeline)]
    lines.append(f"  gateway running: {'yes' if model.running_at(t) else 'NO'}")
    lines.append(f"  comms with the server: {'down' if model.comms_down_at(t) else 'up'}")
    lines.append("  limits in force: " + _limits_with_sources(state.settings, state.sources))
    live = [state.records[m] for m in state.live]
    lines.append(f"  scheduled and active controls: {len(live)}")
    for rec in live:
        lines.append(
            f"    control {timeline.ids(rec.control.mrid)} {rec.state}: "
            f"{describe_settings(rec.control.settings)}, effective "
            f"{timeline.stamp(rec.effective_start_s)} .. {timeline.stamp(rec.end_s)}"
            + (f", lost {', '.join(sorted(m.value for m in rec.lost))}" if rec.lost else "")
        )
    done: dict[str, int] = {}
    for rec in state.records.values():
        if rec.control.mrid not in state.live:
            done[rec.state] = done.get(rec.state, 0) + 1
    if done:
        lines.append("  other controls: " + ", ".join(f"{n} {s}" for s, n in sorted(done.items())))
    lines.append(f"  Responses not yet acknowledged: {len(state.outbox)}")
    for r in state.outbox:
        lines.append(
            f"    {int(r.status)} ({r.status.name.lower()}) for control {timeline.ids(r.mrid)}"
        )
    lines += price_lines(model, t, timeline)
    sample = _sample_at(model, t)
    if sample is not None:
        at, site, der = sample
        lines.append(f"  measured at {timeline.stamp(at)}: site {_w(site)}, DER {_w(der)}")
    return lines


def _w(value: float) -> str:
    return "n/a" if value != value else f"{whole(value)} W"


def _sample_at(model: Forensics, t: float) -> tuple[float, float, float] | None:
    """The latest sample at or before ``t``."""
    import bisect

    i = bisect.bisect_right(model.sample_t, t) - 1
    if i < 0:
        return None
    return model.sample_t[i], model.sample_site[i], model.sample_der[i]


def find_mrid(model: Forensics, text: str) -> str:
    """The control ``text`` names (case-insensitive): its mRID, or any prefix or tail of it that
    no other control shares, as the timeline shows it (``000000A2``, ``C0000000…``)."""
    known = set(model.stories) | set(model.controls.records)
    found = ShortIds(known).matching(text)  # the stories' ids too: a control never received
    if len(found) == 1:
        return found[0]
    if found:
        raise BadInstant(
            f"{text!r} names {len(found)} controls; give more of the mRID: "
            + ", ".join(f"{m} (shown as {model.ids(m)})" for m in found)
        )
    programs = model.ids.matching(text, "program")
    if programs:
        raise BadInstant(
            f"{text!r} names no control but the program {', '.join(programs)}: explain takes a "
            "control's mRID (the controls: " + (", ".join(sorted(known)) or "none") + ")"
        )
    raise BadInstant(
        f"no control with mRID {text!r} in the log; known: " + (", ".join(sorted(known)) or "none")
    )


def explain_control(
    model: Forensics,
    mrid: str,
    timeline: ForensicTimeline,
    compliance: ComplianceSettings | None = None,
) -> list[str]:
    """The whole story of one control, each step with its reason and the record that says so,
    and how the measured power kept to the limits it supplied."""
    compliance = compliance or ComplianceSettings()
    state = model.controls
    rec = state.records.get(mrid)
    interval = model.price_intervals.get(mrid)
    if interval is not None and rec is None:
        return _price_interval_story(model, interval, timeline)
    lines = [f"control {mrid}"]
    if rec is not None:
        c = rec.control
        program = state.programs.get(c.program_id)
        lines.append(
            f"  program {c.program_id}"
            + (f"{_named(program)} primacy {program.primacy}" if program else "")
        )
        lines.append(f"  modes: {describe_settings(c.settings)}")
        lines.append(
            f"  specified: {timeline.stamp(c.start_s)} for {c.duration_s} s; "
            f"created {timeline.stamp(c.creation_time_s)}"
        )
        if rec.state not in (RECEIVED, IGNORED, REJECTED):
            lines.append(
                f"  effective: {timeline.stamp(rec.effective_start_s)} .. "
                f"{timeline.stamp(rec.end_s)}"
            )
        lines.append(f"  outcome: {rec.state}")
    lines.append("story:")
    for step in model.stories.get(mrid, []):
        lines.append(f"  {step.seq:>7}  {timeline.stamp(step.at_s)}  {step.what}")
        if step.why:
            lines.append(f"{'':>11}why: {step.why}")
    summaries = [
        s
        for s in summarise(compliance_series(model, compliance), compliance)
        if s.source == f"control:{mrid}"
    ]
    if summaries:
        lines.append(
            f"while it supplied a limit in force (measured against it, tolerance "
            f"{compliance.tolerance_w:g} W):"
        )
        for s in summaries:
            over = (
                f"{s.seconds_over:.0f} s over, {s.energy_over_wh:.3f} Wh over, largest excess "
                f"{s.max_over_w:.0f} W, first at {timeline.stamp(s.first_over_s)}"
                if s.first_over_s is not None
                else "never over"
            )
            lines.append(
                f"  {s.mode.value} {s.limit_min_w:.0f} W: {s.samples} samples over {s.seconds:.0f} s, "
                + over
            )
    rows = sorted(
        (r for r in model.responses.values() if r.mrid == mrid), key=lambda r: r.intended_seq
    )
    if rows:
        lines.append("responses:")
        for row in rows:
            lines.append("  " + response_line(row, timeline))
    return lines


def _price_interval_story(
    model: Forensics, interval: PriceInterval, timeline: ForensicTimeline
) -> list[str]:
    """The story of one price interval (IEEE 2030.5 Pricing), each step with its record."""
    rate = model.rates.get(interval.rate_mrid)
    lines = [
        f"price interval {interval.mrid}"
        + (f" '{interval.description}'" if interval.description else ""),
        f"  rate {rate_name(rate) if rate is not None else interval.rate_mrid}: "
        f"{describe_blocks(rate, interval.blocks)} (tier {interval.tou_tier})",
        f"  specified: {timeline.stamp(interval.start)} for {interval.duration} s; created "
        f"{timeline.stamp(interval.creation_time)}",
        "story:",
    ]
    for step in model.stories.get(interval.mrid, []):
        lines.append(f"  {step.seq:>7}  {timeline.stamp(step.at_s)}  {step.what}")
        if step.why:
            lines.append(f"{'':>11}why: {step.why}")
    return lines


def response_line(row: ResponseRow, timeline: ForensicTimeline) -> str:
    parts = [
        f"{int(row.status)} ({row.status.name.lower()}): intended {timeline.stamp(row.intended_s)}"
    ]
    if row.sent_s:
        parts.append(
            f"sent {timeline.stamp(row.sent_s[0])}"
            + (f" ({len(row.sent_s)} attempts)" if len(row.sent_s) > 1 else "")
        )
    for at, what, retry in row.failures:
        if row.undeliverable:
            parts.append(f"not sent ({what})")
            continue
        parts.append(
            f"failed {timeline.stamp(at)} ({what}" + (", retried)" if retry else ", not retried)")
        )
    if row.acked_s is not None:
        parts.append(f"acknowledged {timeline.stamp(row.acked_s)} (HTTP {row.http_status})")
    parts.append(row.outcome.upper() if row.acked_s is None else "")
    return "; ".join(p for p in parts if p)


#: How far either side of an instant ``explain --at`` looks for recorded server faults.
FAULT_WINDOW_S = 600.0


def link_lines(model: Forensics, t: float, timeline: ForensicTimeline) -> list[str]:
    """Whether the link was holding a resource back at ``t`` and why (the newest
    ``link.backoff.v1`` covering ``t``), and the server faults recorded within
    ``FAULT_WINDOW_S`` of it: every rejection is visible in ``explain`` (issue 15 point 4)."""
    lines: list[str] = []
    version = model.version_at(t)
    if version is not None:
        seq, settled = version
        lines.append(
            f"  CSIP-AUS {settled.version} in force since {timeline.stamp(settled.at_s)} "
            f"(record {seq}): {describe_learned(settled)}"
        )
        fell_back = model.fallback_at(t)
        if fell_back is not None and fell_back[0] != seq:
            lines.append(
                f"  CSIP-AUS service discovery fell back (record {fell_back[0]}): "
                f"{fell_back[1].fallback}; DeviceCapability {fell_back[1].dcap_path}"
            )
    found = model.hold_at(t)
    if found is None:
        lines.append("  link: no resource was held back at this instant")
    else:
        seq, hold = found
        status = "" if hold.http_status is None else f"HTTP {hold.http_status}, "
        lines.append(
            f"  link: HELD BACK from {hold.method} {hold.path} until "
            f"{timeline.stamp(hold.until_s)} (record {seq}): {status}{hold.error}: {hold.reason} "
            f"(failure {hold.failures} in a row)"
        )
    faults = model.faults_around(t, FAULT_WINDOW_S)
    if faults:
        lines.append(f"  server faults recorded within {FAULT_WINDOW_S / 60:.0f} min:")
        lines += [
            f"    {timeline.stamp(f.at_s)} (record {f.seq}) {f.kind}: {f.resource}: {f.reason}"
            for f in faults
        ]
    return lines


def price_lines(model: Forensics, t: float, timeline: ForensicTimeline) -> list[str]:
    """The utility's price in force at ``t`` per rate, as recorded (IEEE 2030.5 Pricing)."""
    out = []
    for seq, event in model.prices_at(t):
        rate = model.rates.get(event.rate_mrid)
        name = rate_name(rate) if rate is not None else short(event.rate_mrid)
        if event.interval_mrid is None:
            what = "none"
        else:
            what = (
                f"{describe_blocks(rate, event.blocks)} (tier {event.tou_tier}, interval "
                f"{short(event.interval_mrid)})"
            )
        out.append(
            f"  price in force, {name}: {what} since {timeline.stamp(event.at_s)} (record {seq})"
        )
    return out


def explain_instant(model: Forensics, t: float, timeline: ForensicTimeline) -> list[str]:
    """Why the limits in force at ``t`` were what they were: per mode, the winner or the default,
    the events it beat, and a check that the live arbitration over the fold agrees."""
    state = model.state_at(t)
    period = model.limit_at(t)
    lines = [f"at {timeline.stamp(t)}:", *_outside_log(model, t, timeline)]
    if not model.running_at(t):
        lines.append(
            "  the gateway was NOT RUNNING: the battery kept whatever it was last told "
            "(see the writes before this instant)"
        )
    if model.comms_down_at(t):
        lines.append(
            f"  comms with the server were DOWN: the known schedule was being followed ({rule(12)})"
        )
    lines += link_lines(model, t, timeline)
    if period is None:
        lines.append("  no limits had been recorded in force yet")
    else:
        lines.append(
            f"  limits in force since {timeline.stamp(period.start_s)} (record {period.seq}):"
        )
        lines += _per_mode(state, period, t, timeline)
    for ramp in model.ramps:
        if ramp.start_s <= t < ramp.end_s and (period is None or ramp.at_s >= period.start_s):
            fraction = (t - ramp.start_s) / (ramp.end_s - ramp.start_s)
            now = ramp.from_value + (ramp.to_value - ramp.from_value) * fraction
            lines.append(
                f"  {ramp.mode.value} was ramping {quantity(ramp.mode.value, ramp.from_value)} -> "
                f"{quantity(ramp.mode.value, ramp.to_value)} "
                f"over {timeline.stamp(ramp.start_s)} .. {timeline.stamp(ramp.end_s)}: "
                f"{quantity(ramp.mode.value, now)} at this instant ({rule(11)})"
            )
    core = ControlsCore(CoreConfig(lfdi="", device_category=0), state)
    arbitration = core.arbitration(t)
    # With nothing recorded in force yet, what arbitration must agree with is "no limits".
    recorded = (ControlSettings(), {}) if period is None else (period.settings, period.sources)
    if arbitration.settings() != recorded[0] or dict(arbitration.sources) != dict(recorded[1]):
        lines.append(
            "  NOTE: arbitrating the fold's state at this instant gives "
            + _limits_with_sources(arbitration.settings(), arbitration.sources)
            + ": the recorded limits had not been re-decided yet (the gateway was not running "
            "or had not reached this instant's deadline)"
        )
    else:
        lines.append(
            "  check: the live arbitration over the fold's state at this instant gives the same "
            "limits and suppliers"
        )
    lines += price_lines(model, t, timeline)
    sample = _sample_at(model, t)
    if sample is not None:
        at, site, der = sample
        lines.append(f"  measured at {timeline.stamp(at)}: site {_w(site)}, DER {_w(der)}")
    write = None
    for w in model.writes:
        if w.at_s > t:
            break
        write = w
    if write is not None:
        e = write.event
        lines.append(
            f"  battery last told at {timeline.stamp(write.at_s)} (record {write.seq}): "
            f"{describe_settings(e.settings)}"
            + ("" if e.setpoint_w is None else f", setpoint {e.setpoint_w:.0f} W")
            + (", setpoint written and read back" if e.wrote else ", no setpoint written")
            + (f"; clamped: {clamps}" if (clamps := describe_clamps(e)) else "")
        )
    return lines


def _per_mode(
    state: ControlsState, period: LimitPeriod, t: float, timeline: ForensicTimeline
) -> list[str]:
    lines = []
    ordered = sorted(state.programs.values(), key=lambda p: (p.primacy, p.program_id))
    for mode in Mode:
        value = getattr(period.settings, mode.value)
        if value is None:
            continue
        source = period.sources.get(mode, "?")
        kind, _, ident = source.partition(":")
        lines.append(f"    {mode.value} = {quantity(mode.value, value)}")
        if kind == "control":
            rec = state.records.get(ident)
            if rec is not None:
                program = state.programs.get(rec.control.program_id)
                lines.append(
                    f"      from control {ident} of program {timeline.ids(rec.control.program_id)}"
                    + (f" (primacy {program.primacy})" if program else "")
                    + f", created {timeline.stamp(rec.control.creation_time_s)}, effective "
                    f"{timeline.stamp(rec.effective_start_s)} .. {timeline.stamp(rec.end_s)}"
                )
            lines.append(
                f"      why: the highest-ranked event in effect setting this mode ({rule(7)})"
            )
        else:
            program = state.programs.get(ident)
            lines.append(
                f"      from the DefaultDERControl of program {ident}"
                + (f"{_named(program)} (primacy {program.primacy})" if program else "")
            )
            better = [p for p in ordered if program is not None and p.primacy < program.primacy]
            lines.append(
                "      why: no event in effect sets this mode, and this is the program of lowest "
                f"primacy value whose default sets it ({rule(10)})"
                + (
                    f"; programs of higher priority without such a default: "
                    f"{', '.join(timeline.ids(p.program_id) for p in better)}"
                    if better
                    else ""
                )
            )
        for other in state.records.values():
            c = other.control
            if (
                mode not in other.modes
                or other.state in (RECEIVED, IGNORED, REJECTED)
                or source == f"control:{c.mrid}"
                or not other.effective_start_s <= t < other.effective_end_s
            ):
                continue
            if mode in other.lost:
                why = "lost this mode to a higher-ranked event (superseded, it never comes back)"
            elif other.state in ("cancelled", "completed", "removed", "superseded"):
                why = f"no longer in effect: {other.state}"
            elif other.state == "scheduled":
                why = "scheduled, not yet started"
            else:
                why = "outranked (lower priority program or older creationTime)"
            lines.append(f"      also covering this instant: control {timeline.ids(c.mrid)}: {why}")
    return lines
