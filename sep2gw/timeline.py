"""A readable line per meaningful record: what `sep2gw run` prints live and replay prints later.

Telemetry is summarised (one line per ``every_s`` of battery power) so the timeline stays readable;
everything a dispute turns on — controls, limits in force, writes, responses, registration — gets
its own line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import timedelta, timezone, tzinfo

from events.control_events import (
    CommsLost,
    CommsRestored,
    ControlCancelled,
    ControlCompleted,
    ControlIgnored,
    ControlReceived,
    ControlRejected,
    ControlRemoved,
    ControlScheduled,
    ControlStarted,
    ControlSuperseded,
    DefaultChanged,
    DefaultRefused,
    LimitsInForceChanged,
    ProgramsChanged,
    RandomizationDrawn,
    ResponseAcked,
    ResponseFailed,
    ResponseSent,
    ServerFault,
)
from events.der_events import DerListMatched, DerMemberStatus
from events.der_model import ControlSettings
from events.der_status_events import DerStatusPut
from events.envelope import Recorded
from events.hardware_events import (
    AlarmsChanged,
    DeviceStatusChanged,
    DeviceUnreachable,
    LimitsApplied,
    RampStarted,
    TelemetrySampled,
)
from events.link_events import CsipAusFault, CsipAusVersionSettled, LinkBackedOff
from events.log_events import (
    LogSetAsideReported,
    LogShed,
    PreviousLogArchived,
    PreviousLogSetAside,
)
from events.pricing_events import (
    IntervalCancelDrawn,
    IntervalCancelled,
    IntervalCompleted,
    IntervalContentChanged,
    IntervalIgnored,
    IntervalReceived,
    IntervalRemoved,
    IntervalStarted,
    IntervalSuperseded,
    PriceBlock,
    PriceInForce,
    PriceResponseAcked,
    PriceResponseFailed,
    PriceResponseIntended,
    PricingCapped,
    RateDetails,
    RateSeen,
    price_per_kwh,
)
from events.registration_events import (
    EndDeviceRegistered,
    PinCase,
    PollsShifted,
    RateBounded,
    RegistrationHalted,
    RegistrationLinkMissing,
    ServerPinRecorded,
    StepDone,
    TimeOffsetLearned,
    TimeRefused,
)
from events.runtime_events import ActorFailed, GatewayStarted, GatewayStopped
from events.subscription_events import (
    ControlsNotified,
    NotificationReceived,
    SubscriptionAccepted,
    SubscriptionEnded,
    SubscriptionLost,
    SubscriptionRefused,
)
from events.times import not_a_date, utc_datetime, zoned
from sep2gw.humanfmt import quantity

__all__ = [
    "LINK_LINE_EVERY_S",
    "ShortIds",
    "Timeline",
    "describe_clamps",
    "describe_learned",
    "describe_settings",
    "short",
    "whole",
]

#: The same link failure of a resource is shown at most this often (the log keeps every one).
LINK_LINE_EVERY_S = 60.0
_LINK_LINES_KEPT = 256


def whole(value: float) -> str:
    """``value`` rounded to a whole number for display; a small negative reading shows as 0, not
    the ``-0`` that ``format(-0.3, ".0f")`` gives."""
    text = f"{value:.0f}"
    return "0" if text == "-0" else text


def describe_learned(e: CsipAusVersionSettled) -> str:
    """How a CSIP-AUS version came to be in force, in words (issue 18 point 2)."""
    offered = f" (offered: {', '.join(e.offered)})" if e.offered else ""
    if e.learned == "well-known":
        return f"negotiated by {e.path}{offered}; DeviceCapability {e.dcap_path}"
    if e.learned == "namespaces":
        return f"the server's documents are in {e.namespace} (first {e.path})"
    if e.fallback:
        return (
            f"service discovery fell back: {e.fallback}{offered}; DeviceCapability "
            f"{e.dcap_path}, the profile's first version until the server's namespaces say"
        )
    return "the profile's first version, until the server's namespaces say"


def short(mrid: str) -> str:
    """An mRID as people say it: its significant tail (the full value is in the log). Where other
    ids are known, :class:`ShortIds` makes the tail unique among them."""
    return mrid.lstrip("0")[-_SHORT:] or "0"


class ShortIds:
    """Each id as people say it, unique among the known ids of its kind (controls' mRIDs,
    programs' ids): its tail as :func:`short` gives it, lengthened until no other id of that kind
    ends with it; or, when that tail grows long and a prefix is shorter, its shortest unique prefix
    and ``…`` (git-style).
    Kinds are told apart by the word every line puts before the id (``control 00000001``,
    ``program 00000001``). An id not known shows as :func:`short`."""

    __slots__ = ("_heads", "_kind_of", "_kinds", "_shown", "_tails")

    def __init__(self, ids: Iterable[str] = (), *, kind: str = "control") -> None:
        self._kinds: dict[str, set[str]] = {}
        self._kind_of: dict[str, str] = {}
        self._tails: dict[tuple[str, int], Counter[str]] = {}
        self._heads: dict[tuple[str, int], Counter[str]] = {}
        self._shown: dict[str, str] = {}
        for ident in ids:
            self.add(ident, kind)

    def __contains__(self, ident: object) -> bool:
        return ident in self._kind_of

    def add(self, ident: str, kind: str = "control") -> None:
        """Know ``ident`` from now on (the short forms of others of its kind may lengthen)."""
        if ident in self._kind_of:
            return
        self._kind_of[ident] = kind
        self._kinds.setdefault(kind, set()).add(ident)
        self._tails.clear()
        self._heads.clear()
        self._shown.clear()

    def __call__(self, ident: str) -> str:
        shown = self._shown.get(ident)
        if shown is None:
            shown = self._shown[ident] = self._shorten(ident)
        return shown

    def _unique(self, kind: str, n: int, part: str, *, tail: bool) -> bool:
        table = self._tails if tail else self._heads
        counts = table.get((kind, n))
        if counts is None:
            ids = self._kinds[kind]
            counts = table[kind, n] = Counter(i[-n:] if tail else i[:n] for i in ids)
        return counts[part] == 1

    def _shorten(self, ident: str) -> str:
        base = short(ident)
        kind = self._kind_of.get(ident)
        if kind is None or len(ident) <= len(base):
            return base
        tail_n = next(
            n
            for n in range(len(base), len(ident) + 1)
            if self._unique(kind, n, ident[-n:], tail=True)
        )
        if tail_n == len(base):
            return base
        head_n = next(
            n
            for n in range(min(_SHORT, len(ident)), len(ident) + 1)
            if self._unique(kind, n, ident[:n], tail=False)
        )
        if min(head_n, tail_n) >= len(ident):
            return ident
        # tails are what people are used to (and what the log's own lines end with): kept while
        # readable, a prefix only when it is shorter than a long tail
        if tail_n <= _LONGEST_TAIL or tail_n <= head_n:
            return ident[-tail_n:]
        return ident[:head_n] + "…"

    def matching(self, text: str, kind: str | None = None) -> list[str]:
        """The known ids (of ``kind``, or any) ``text`` names, case-insensitive: the id itself, or
        any prefix or tail of it, as shown (a leading or trailing ``…`` is allowed)."""
        wanted = text.strip().strip("…").upper()
        if not wanted:
            return []
        ids = self._kind_of if kind is None else self._kinds.get(kind, set())
        exact = [i for i in ids if i.upper() == wanted]
        if exact:
            return exact
        bare = wanted.lstrip("0") or "0"
        return sorted(
            i
            for i in ids
            if i.upper().startswith(wanted)
            or i.upper().endswith(wanted)
            or (i.upper().lstrip("0") or "0") == bare
        )


#: How many characters of an id people are shown at least.
_SHORT = 8
#: A unique tail up to this long is shown rather than a shorter prefix.
_LONGEST_TAIL = 12


def describe_clamps(event: LimitsApplied) -> str:
    """Why the battery was not told what was asked, in words: each clamp's mode, the value asked,
    the value applied and what held it (a storage target of 4 kW held at 1.5 kW by the export
    limit: ``storage_target_w 4000 W held at 1507.4 W by export_limit_w``); a clamp text an old
    log held that is not the v1 repr, as it was. Empty when none."""
    parts = [
        f"{c.mode} {quantity(_unit_name(c.mode), c.requested)} held at "
        f"{quantity('x_w', c.applied)} by {c.bound}"
        for c in event.clamps
    ]
    parts += [f"{text} (as recorded)" for text in event.unparsed_clamps]
    return "; ".join(parts)


def _unit_name(mode: str) -> str:
    """The name whose suffix gives a clamped mode's unit (a percent mode is asked in %)."""
    return mode if mode.endswith(("_w", "_pct")) else "x_w"


def describe_settings(settings: ControlSettings) -> str:
    """The modes a control, default or write sets, rounded with their units
    (``export_limit_w=4991.2 W``, not ``4991.169952955278``)."""
    parts = []
    for name in settings.__struct_fields__:
        value = getattr(settings, name)
        if value is None:
            continue
        parts.append(f"{name}={quantity(name, value)}")
    return ", ".join(parts) if parts else "nothing in force (device's own behaviour)"


class Timeline:
    """Turns records into lines. ``zone`` (the site's, ``site.time_zone``) or ``utc_offset_s``
    adds the site's local time beside server time."""

    def __init__(
        self,
        *,
        zone: tzinfo | None = None,
        utc_offset_s: int | None = None,
        telemetry_every_s: float = 60.0,
    ) -> None:
        if zone is None and utc_offset_s is not None:
            zone = timezone(timedelta(seconds=utc_offset_s))
        self._tz = zone
        #: the ids seen so far, each shown by its shortest unique form
        self.ids = ShortIds()
        self._every = telemetry_every_s
        self._last_telemetry: float | None = None
        self._last_write: tuple[float, ControlSettings, float | None] | None = None
        self._last_link_failure = ""
        self._link_lines: dict[tuple[str, str], tuple[float, str]] = {}
        self._rates: dict[str, RateDetails] = {}

    def stamp(self, t: float) -> str:
        """``t`` as UTC (and site-local) text; total over every number (issue 15: time is total)."""
        utc = utc_datetime(t)
        if utc is None:
            return not_a_date(t)
        text = utc.strftime("%Y-%m-%d %H:%M:%S") + "Z"
        if self._tz is not None:
            local = zoned(utc, self._tz)
            text += " (" + ("-" if local is None else local.strftime("%H:%M:%S %z")) + ")"
        return text

    def _link_line_due(self, e: LinkBackedOff, what: str) -> bool:
        """Rate limit of the console (issue 15 point 4): a resource's link failure is shown when
        it changes or at most once a minute; the log keeps every hold."""
        key = (e.method, e.path.partition("?")[0])
        last = self._link_lines.get(key)
        if last is not None and last[1] == what and e.at_s - last[0] < LINK_LINE_EVERY_S:
            return False
        if key not in self._link_lines and len(self._link_lines) >= _LINK_LINES_KEPT:
            del self._link_lines[next(iter(self._link_lines))]
        self._link_lines[key] = (e.at_s, what)
        return True

    def line(self, record: Recorded) -> str | None:
        what = self.describe(record)
        return None if what is None else f"{self.stamp(record.server_time)}  {what}"

    def _write_worth_a_line(self, e: LimitsApplied) -> bool:
        """Closed-loop corrections come every second: show a write when what is in force changed,
        the setpoint moved by 100 W or more, or a minute passed (the log keeps every write)."""
        last = self._last_write
        if (
            last is not None
            and e.settings == last[1]
            and e.at_s - last[0] < 60
            and (e.setpoint_w is None) == (last[2] is None)
            and (e.setpoint_w is None or last[2] is None or abs(e.setpoint_w - last[2]) < 100)
        ):
            return False
        self._last_write = (e.at_s, e.settings, e.setpoint_w)
        return True

    def learn(self, event: object) -> None:
        """Know the ids a record names, so the lines after it tell them apart."""
        match event:
            case ControlReceived():
                self.ids.add(event.control.mrid, "control")
                self.ids.add(event.control.program_id, "program")
            case ProgramsChanged():
                for program in event.programs:
                    self.ids.add(program.program_id, "program")
            case DefaultChanged() | DefaultRefused():
                self.ids.add(event.program_id, "program")

    def describe(self, record: Recorded) -> str | None:
        e = record.event
        self.learn(e)
        match e:
            case GatewayStarted():
                return f"gateway started (sep2gw {e.software_version}, seed {e.rng_seed})"
            case GatewayStopped():
                return f"gateway stopped: {e.reason}"
            case PreviousLogSetAside():
                return (
                    f"ALARM: the log did not verify ({e.finding}); kept untouched as {e.kept_as} "
                    f"({e.verified_records} records verified); started this new log, nothing of "
                    "the old one is used: rediscovering from the server"
                )
            case PreviousLogArchived():
                return (
                    f"log rotated: this log continues {e.archived_as} (records 1-{e.head_seq}, "
                    f"head hash {e.head_hash[:16]}…, verified when archived)"
                )
            case LogSetAsideReported():
                if e.refused_status is not None:
                    return (
                        f"the log-set-aside alarm was refused by the server (HTTP "
                        f"{e.refused_status} from {e.href}); not sent again"
                    )
                return f"the log-set-aside alarm was reported to the server ({e.href}: {e.details})"
            case LogShed():
                counts = ", ".join(f"{n} {tag}" for tag, n in e.counts.items())
                return (
                    f"log gap: not recorded while the log was short of space, from "
                    f"{self.stamp(e.from_s)} to {self.stamp(e.to_s)}: {counts}"
                )
            case ActorFailed():
                return f"actor {e.actor} failed: {e.error_type}: {e.error}" + (
                    " — gave up" if e.gave_up else f" — restarting in {e.restart_in_s:g} s"
                )
            case TimeOffsetLearned():
                return f"clock synchronised to the server (offset {e.offset_s:+.3f} s)"
            case LinkBackedOff():
                what = f"HTTP {e.http_status}" if e.http_status is not None else e.error
                self._last_link_failure = f"{e.method} {e.path}: {what}"
                if not self._link_line_due(e, what):
                    return None
                if e.body_bytes is not None:
                    what += f", {e.body_bytes} bytes"
                return (
                    f"LINK: {e.method} {e.path} failed ({what}: {e.reason}); not asked again "
                    f"for {e.hold_s + e.jitter_s:.0f} s (failure {e.failures} in a row)"
                    + (" — `sep2gw probe` checks the link" if e.http_status is None else "")
                )
            case TimeRefused():
                return f"SERVER FAULT: {e.reason}"
            case CsipAusVersionSettled():
                return f"CSIP-AUS {e.version} in force: {describe_learned(e)}"
            case CsipAusFault(kind="unknown-namespace"):
                dropped = ", ".join(e.dropped) or "no elements"
                return (
                    f"SERVER FAULT: {e.path} is in CSIP-AUS namespace {e.namespace}, which this "
                    f"gateway does not know: NOT READ: {dropped}"
                )
            case CsipAusFault(kind="not-allowed"):
                return (
                    f"SERVER FAULT: {e.path} is in {e.namespace}, a CSIP-AUS version the profile "
                    f"does not allow; writing {e.in_force}"
                )
            case CsipAusFault():
                return (
                    f"SERVER FAULT: {e.path} is in {e.namespace} while {e.in_force} is in force "
                    "(kept)"
                )
            case RateBounded():
                # Recorded once per change of the rate used, so shown at most once per resource
                # while the server keeps sending the same rate.
                return (
                    f"SERVER FAULT: {e.kind}Rate {e.sent_s} s for {e.resource} is outside "
                    f"[{e.low_s} s, {e.high_s} s]: {e.used_s} s used"
                )
            case PollsShifted():
                return f"poll schedule moved {e.by_s:+.0f} s with the server's clock"
            case StepDone():
                return f"registration: {e.step.value} done"
            case RegistrationHalted():
                return f"REGISTRATION HALTED at {e.step.value}: {e.reason}"
            case EndDeviceRegistered():
                return f"registration: EndDevice registered in-band at {e.href}"
            case ServerPinRecorded() if e.case is PinCase.NOT_CONFIGURED:
                return (
                    f"WARNING: no registration PIN configured (server.pin): the server's PIN "
                    f"{e.pin:06d} was not checked"
                )
            case ServerPinRecorded():
                return f"registration: server's PIN {e.pin:06d} recorded (registered in-band)"
            case RegistrationLinkMissing():
                return "registration: the EndDevice has no RegistrationLink (no PIN to check)"
            case ControlReceived():
                c = e.control
                return (
                    f"control {self.ids(c.mrid)} received: {describe_settings(c.settings)} from "
                    f"{self.stamp(c.start_s)} for {c.duration_s} s (program {self.ids(c.program_id)})"
                )
            case RandomizationDrawn():
                return f"control {self.ids(e.mrid)} randomisation drawn: start {e.start_offset_s:+d} s, duration {e.duration_offset_s:+d} s"
            case ControlScheduled():
                why = f", adjacent to control {self.ids(e.adjacent_to)}" if e.adjacent_to else ""
                return f"control {self.ids(e.mrid)} scheduled {self.stamp(e.effective_start_s)} .. {self.stamp(e.effective_end_s)}{why}"
            case ControlStarted():
                return f"control {self.ids(e.mrid)} STARTED" + (
                    " (discovered late)" if e.late else ""
                )
            case ControlSuperseded():
                modes = ", ".join(m.value for m in e.modes_lost)
                by = "the server" if e.by == "server" else f"control {self.ids(e.by)}"
                return f"control {self.ids(e.mrid)} superseded by {by} on {modes}" + (
                    "" if e.fully else " (keeps its other modes)"
                )
            case ControlCancelled():
                return f"control {self.ids(e.mrid)} CANCELLED by the server (status {int(e.server_status)})"
            case ControlCompleted():
                return f"control {self.ids(e.mrid)} completed"
            case ControlIgnored():
                return f"control {self.ids(e.mrid)} ignored: {e.reason.value}"
            case ControlRejected():
                return f"control {self.ids(e.mrid)} rejected ({int(e.status)}): {e.reason}"
            case ControlRemoved():
                return f"control {self.ids(e.mrid)} stopped: its program is no longer assigned"
            case ServerFault():
                return f"control {self.ids(e.mrid)}: SERVER FAULT — content changed under the same mRID"
            case DefaultRefused():
                return (
                    f"default of program {self.ids(e.program_id)} REFUSED (server fault, the default "
                    f"in force stays): {e.reason}"
                )
            case DefaultChanged():
                what = "removed" if e.default is None else describe_settings(e.default.settings)
                return f"default of program {self.ids(e.program_id)}: {what}"
            case LimitsInForceChanged():
                return f"LIMITS IN FORCE: {describe_settings(e.settings)}"
            case LimitsApplied():
                if not self._write_worth_a_line(e):
                    return None
                setpoint = "" if e.setpoint_w is None else f", setpoint {e.setpoint_w:.0f} W"
                # Say what the battery was told ("battery: in force" alone left the reader of a
                # dispute to find the limits in an earlier line), in explain's words.
                told = (
                    "no limits"
                    if e.settings == ControlSettings()
                    else describe_settings(e.settings)
                )
                verdict = f"{told} applied, " + (
                    "setpoint written and read back equal"
                    if e.wrote
                    else "no setpoint written (the DER's own output was within them)"
                )
                na = (
                    f", not applicable: {', '.join(m.value for m in e.not_applicable)}"
                    if e.not_applicable
                    else ""
                )
                clamps = describe_clamps(e)
                return f"battery: {verdict}{setpoint}{na}" + (
                    f"; clamped: {clamps}" if clamps else ""
                )
            case RampStarted():
                where = (
                    f"measured {e.measured:g}"
                    if e.measured is not None
                    else "not measured" + ("" if e.rating is None else f", rating {e.rating:g}")
                )
                return (
                    f"battery: {e.mode.value} ramp from {e.from_value:g} ({where}; planned from "
                    f"{e.planned:g}) to {e.to_value:g} in {e.end_s - e.at_s:.1f} s"
                )
            case DeviceUnreachable():
                return f"battery UNREACHABLE ({e.operation}): {e.error_type}: {e.error}"
            case AlarmsChanged():
                return f"battery alarms: raised {list(e.raised)}, cleared {list(e.cleared)}"
            case DeviceStatusChanged():
                connected = {True: "connected", False: "DISCONNECTED", None: "connection unknown"}
                state = "state unknown" if e.state is None else e.state.value.upper()
                return f"battery reports: {state}, {connected[e.connected]}"
            case DerStatusPut():
                bits = e.status.gen_connect_status or 0
                shown = ", ".join(
                    name
                    for bit, name in enumerate(
                        ("connected", "available", "operating", "test", "fault")
                    )
                    if bits >> bit & 1
                )
                outcome = "acknowledged"
                if e.outcome != "acked":
                    retry = "" if e.retry_in_s is None else f", retry in {e.retry_in_s:g} s"
                    outcome = f"{e.outcome.upper()} ({e.http_status or e.error}){retry}"
                return (
                    f"DERStatus [{shown or 'nothing'}] mode {e.status.operational_mode_status} "
                    f"because {', '.join(e.reasons)}: {outcome}"
                )
            case DerMemberStatus():
                reports = "" if e.state is None else f", reports {e.state.name.lower()}"
                if e.connected is not None:
                    reports += ", connected" if e.connected else ", DISCONNECTED"
                if e.available:
                    return f"DER {e.der}: takes its share of the site's limits{reports}"
                return f"DER {e.der}: LEFT OUT of the site's split ({e.reason}){reports}"
            case DerListMatched():
                matched = ", ".join(f"{m.der} as {m.href}" for m in e.matches) or "none"
                finding = f"; FINDING: {e.finding}" if e.finding else ""
                return f"DERList {e.list_href}: DER reported {matched}{finding}"
            case TelemetrySampled():
                if self._last_telemetry is not None and e.at_s - self._last_telemetry < self._every:
                    return None
                self._last_telemetry = e.at_s
                parts = [
                    f"{name} {whole(getattr(e, key))} {unit}"
                    for key, name, unit in (
                        ("site_w", "site", "W"),
                        ("der_w", "battery", "W"),
                        ("soc_pct", "SoC", "%"),
                    )
                    if getattr(e, key) is not None
                ]
                return "measured: " + ", ".join(parts)
            case ResponseSent():
                return f"response {int(e.status)} ({e.status.name.lower()}) for control {self.ids(e.mrid)} sent"
            case ResponseAcked():
                return f"response {int(e.status)} for control {self.ids(e.mrid)} acknowledged (HTTP {e.http_status})"
            case ResponseFailed(undeliverable=str()):
                return f"response {int(e.status)} for control {self.ids(e.mrid)} not sent: {e.undeliverable}"
            case ResponseFailed():
                status = "network error" if e.http_status is None else f"HTTP {e.http_status}"
                return (
                    f"response {int(e.status)} for control {self.ids(e.mrid)} FAILED ({status})"
                    + (", will retry" if e.retry else "")
                )
            case CommsLost():
                why = e.reason or self._last_link_failure
                return f"COMMS LOST{f' ({why})' if why else ''}: following the known schedule, " + (
                    "responses queued" + ("; `sep2gw probe` checks the link" if why else "")
                )
            case CommsRestored():
                return "comms restored: re-polling, sending queued responses"
            case SubscriptionAccepted():
                return f"subscribed to {e.resource} (subscription {e.location})"
            case SubscriptionRefused():
                status = "no answer" if e.status is None else f"HTTP {e.status}"
                return (
                    f"subscription to {e.resource} REFUSED ({status}: {e.reason}); asked again "
                    f"at {self.stamp(e.retry_at_s)}, polled meanwhile"
                )
            case SubscriptionLost() if e.retry_at_s > e.at_s:
                return (
                    f"subscription to {e.resource} lost: {e.why}; {e.losses} losses in a row, "
                    f"subscribing again at {self.stamp(e.retry_at_s)}"
                )
            case SubscriptionLost():
                return f"subscription to {e.resource} lost: {e.why}; subscribing again"
            case SubscriptionEnded(location=""):
                return f"stopped asking to subscribe to {e.resource} (no longer found by the walk)"
            case SubscriptionEnded():
                return f"unsubscribed from {e.resource} (no longer found by the walk)"
            case NotificationReceived(http_status=201):
                return f"notification: {e.resource} changed (status {e.status}), re-read now"
            case NotificationReceived():
                return f"notification REFUSED (HTTP {e.http_status}): {e.reason}"
            case ControlsNotified():
                controls = ", ".join(self.ids(m) for m in e.first_seen)
                return (
                    f"control {controls} changed by notification at {self.stamp(e.notified_at_s)}"
                    f" (record {e.notification_seq})"
                )
            case RateSeen():
                self._rates[e.rate.rate_mrid] = e.rate
                return f"tariff {rate_name(e.rate)} offered: {rate_terms(e.rate)}"
            case IntervalReceived(interval=iv):
                return (
                    f"price interval {short(iv.mrid)} received: "
                    f"{describe_blocks(self._rates.get(iv.rate_mrid), iv.blocks)}"
                    f" (tier {iv.tou_tier}) from {self.stamp(iv.start + e.rho_start_s)} for "
                    f"{iv.duration + e.rho_duration_s} s"
                )
            case IntervalIgnored():
                return f"price interval {short(e.interval.mrid)} ignored: {e.reason}"
            case IntervalContentChanged():
                return (
                    f"price interval {short(e.mrid)}: SERVER FAULT — {', '.join(e.fields)} changed "
                    "under the same mRID (the first content is kept)"
                )
            case IntervalStarted():
                return f"price interval {short(e.mrid)} started"
            case IntervalCompleted():
                return f"price interval {short(e.mrid)} completed" + (
                    "" if e.started else " (never in force: its period passed unseen)"
                )
            case IntervalCancelDrawn():
                return f"price interval {short(e.mrid)} cancelled with randomisation: stops {self.stamp(e.stop_at_s)}"
            case IntervalCancelled():
                return f"price interval {short(e.mrid)} CANCELLED by the server (status {e.server_status})"
            case IntervalSuperseded(by=None):
                return f"price interval {short(e.mrid)} superseded (server status 4)"
            case IntervalSuperseded():
                return f"price interval {short(e.mrid)} superseded by {short(e.by or '')}"
            case IntervalRemoved():
                return f"price interval {short(e.mrid)} stopped: its tariff is no longer offered"
            case PriceInForce():
                seen = self._rates.get(e.rate_mrid)
                name = rate_name(seen) if seen is not None else short(e.rate_mrid)
                if e.interval_mrid is None:
                    return f"PRICE IN FORCE {name}: none"
                return (
                    f"PRICE IN FORCE {name}: {describe_blocks(seen, e.blocks)} (tier {e.tou_tier},"
                    f" interval {short(e.interval_mrid)})"
                )
            case PricingCapped():
                return f"pricing: SERVER FAULT — {e.what} (bounded work per poll)"
            case PriceResponseIntended():
                return f"price response {int(e.status)} ({e.status.name.lower()}) for {short(e.mrid)} owed"
            case PriceResponseAcked():
                return f"price response {int(e.status)} for {short(e.mrid)} acknowledged (HTTP {e.http_status})"
            case PriceResponseFailed():
                status = "network error" if e.http_status is None else f"HTTP {e.http_status}"
                return f"price response {int(e.status)} for {short(e.mrid)} FAILED ({status})" + (
                    ", will retry" if e.retry else ""
                )
        return None


#: ISO 4217 numeric codes of the currencies a tariff names most often (others print as numbers).
CURRENCIES: dict[int, str] = {36: "AUD", 124: "CAD", 554: "NZD", 826: "GBP", 840: "USD", 978: "EUR"}


def rate_name(rate: RateDetails) -> str:
    label = rate.rate_code or rate.tariff_description or short(rate.tariff_mrid)
    flow = {1: "import", 19: "export"}.get(rate.flow_direction or 0)
    return f"{label} ({flow})" if flow else label


def rate_terms(rate: RateDetails) -> str:
    currency = CURRENCIES.get(rate.currency or -1, f"currency {rate.currency}")
    return f"{currency}, primacy {rate.tariff_primacy}"


def describe_blocks(rate: RateDetails | None, blocks: tuple[PriceBlock, ...]) -> str:
    """Prices per kWh where the rate says what they measure, else the server's integers."""
    if not blocks:
        return "no price given"
    parts = []
    for block in blocks:
        per_kwh = None if rate is None else price_per_kwh(rate, block)
        if per_kwh is not None and rate is not None:
            currency = CURRENCIES.get(rate.currency or -1, "")
            text = f"{per_kwh:.4g} {currency}/kWh".replace(" /", "/")
        else:
            text = "unpriced" if block.price is None else f"{block.price} (server units)"
        parts.append(text if block.start_value == 0 else f"{text} from {block.start_value}")
    return ", ".join(parts)
