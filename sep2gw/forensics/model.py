"""The forensic model of a log: one verified pass through the live gateway's own folds.

Integrity first: the pass *is* the log's verification (``EventStore.verify``, the same path as
``sep2gw log verify``), with the forensic fold attached as a projection, so every record is decoded
once, checked against the hash chain, and only then folded. The controls state is the live gateway's
fold (``statemachines.controls.CONTROLS_PROJECTION``) and the poll schedule its fold
(``POLL_PROJECTION``): this module never interprets a control a second time. What it adds is
*memory*: the steps of each control's story, the limits in force as periods, the battery's writes,
the measured samples, the Responses' four stages, comms and gateway runs, each tied to the record
(``seq``) that says so, and copies of the fold's state at the instants asked for.

A reason given in a story is read from the fold's state right after the record that caused it (the
drawn offsets, the ``adjacent_to`` of the schedule, the programs' primacy), never re-derived.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from events.base import Event, tag_of
from events.control_events import (
    CONTROL_EVENT_TYPES,
    CancelDelayDrawn,
    CommsLost,
    CommsRestored,
    ControlCancelled,
    ControlCompleted,
    ControlGap,
    ControlIgnored,
    ControlReceived,
    ControlRejected,
    ControlRemoved,
    ControlScheduled,
    ControlStarted,
    ControlSuperseded,
    DefaultChanged,
    DefaultRefused,
    DeviceWriteResult,
    IgnoreReason,
    LimitsInForceChanged,
    ProgramsChanged,
    RampPlanned,
    RandomizationDrawn,
    ResponseAcked,
    ResponseFailed,
    ResponseIntended,
    ResponseSent,
    ServerFault,
    ServerStatusSeen,
)
from events.der_model import ControlSettings, Mode, ResponseStatus
from events.errors import EventLogError
from events.hardware_events import DeviceUnreachable, LimitsApplied, TelemetrySampled
from events.link_events import CsipAusFault, CsipAusVersionSettled, LinkBackedOff, ListCapped
from events.pricing_events import (
    PRICING_EVENT_TYPES,
    IntervalCancelDrawn,
    IntervalCancelled,
    IntervalCompleted,
    IntervalContentChanged,
    IntervalIgnored,
    IntervalReceived,
    IntervalRemoved,
    IntervalStarted,
    IntervalSuperseded,
    PriceInForce,
    PriceInterval,
    PriceResponseAcked,
    PriceResponseFailed,
    PriceResponseIntended,
    PricingCapped,
    RateDetails,
    RateSeen,
)
from events.registration_events import (
    Polled,
    PollRateSeen,
    PollsShifted,
    Posted,
    PostRateSeen,
    TimeRefused,
)
from events.replay import Projection
from events.runtime_events import ActorFailed, GatewayStarted, GatewayStopped
from events.store import EventStore, VerifyReport
from events.subscription_events import ControlsNotified, PollPrompted
from events.times import not_a_date, utc_datetime
from sep2gw.humanfmt import quantity
from sep2gw.projections import PROJECTIONS
from sep2gw.rules import rule
from sep2gw.timeline import ShortIds, describe_clamps, describe_settings
from statemachines.controls import CONTROLS_PROJECTION, ControlsState, owned_copy
from statemachines.polling import POLL_PROJECTION, PollState

__all__ = [
    "FORENSICS_PROJECTION",
    "FoldFailed",
    "CommsPeriod",
    "Forensics",
    "GatewayRun",
    "LimitPeriod",
    "Progress",
    "ResponseRow",
    "ServerFaultRow",
    "Step",
    "Write",
    "analyse",
]

#: The name the forensic fold runs under inside verification (never snapshotted).
FORENSICS_PROJECTION: Final = "forensics"
#: How often (in records) the progress callback is told.
PROGRESS_EVERY: Final = 1 << 15
_PROGRESS_MASK: Final = PROGRESS_EVERY - 1
_NAN: Final = math.nan

#: ``progress(done, total)`` while the pass runs.
Progress = Callable[[int, int], None]

_CONTROL_TYPES: Final = frozenset(CONTROL_EVENT_TYPES)
_POLL_TYPES: Final = frozenset(
    {PollRateSeen, Polled, PollsShifted, PostRateSeen, Posted, CommsRestored, PollPrompted}
)
_FOLDED_TYPES: Final = (
    _CONTROL_TYPES
    | _POLL_TYPES
    | {LimitsApplied, DeviceUnreachable, GatewayStarted, GatewayStopped, ActorFailed}
    | {LinkBackedOff, ListCapped, TimeRefused, CsipAusVersionSettled, CsipAusFault}
    | {ControlsNotified}
    | set(PRICING_EVENT_TYPES)
)
_PRICE_STORY_TYPES: Final = frozenset(PRICING_EVENT_TYPES) - {RateSeen, PriceInForce, PricingCapped}
_UNTIMED_TAGS: Final = (
    "runtime.gateway_started.v1",
    "runtime.gateway_stopped.v1",
    "runtime.actor_failed.v1",
)


class FoldFailed(Exception):
    """A record that verified but that the live folds cannot apply (e.g. a start for an mRID never
    received): the log was written by something other than the gateway, or by a gateway bug."""

    def __init__(self, seq: int, why: str) -> None:
        super().__init__(f"record {seq}: the live folds cannot apply it ({why})")
        self.seq = seq
        self.why = why


class Step(msgspec.Struct, kw_only=True):
    """One step of a control's story: what happened, why, and the record that says so."""

    seq: int
    at_s: float
    what: str
    why: str = ""


class ResponseRow(msgspec.Struct, kw_only=True):
    """A Response through its four recorded stages (PROTOCOL.md §4 rule 16)."""

    mrid: str
    status: ResponseStatus
    intended_s: float
    intended_seq: int
    sent_s: list[float] = msgspec.field(default_factory=list)
    acked_s: float | None = None
    http_status: int | None = None
    #: (when, what happened in words: "HTTP 503", "network error" or why nothing was sent, retried)
    failures: list[tuple[float, str, bool]] = msgspec.field(default_factory=list)
    undeliverable: bool = False

    @property
    def outcome(self) -> str:
        if self.acked_s is not None:
            return "acknowledged"
        if self.undeliverable:
            return "not sent"
        if self.failures and not self.failures[-1][2]:
            return "refused"
        if self.sent_s:
            return "sent, not acknowledged"
        return "queued, never sent"


class LimitPeriod(msgspec.Struct, kw_only=True):
    """The arbitrated limits recorded in force from ``start_s`` (until the next period starts)."""

    seq: int
    start_s: float
    settings: ControlSettings
    sources: dict[Mode, str]
    end_s: float | None = None


class Write(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    seq: int
    at_s: float
    event: LimitsApplied


class CommsPeriod(msgspec.Struct, kw_only=True):
    lost_s: float
    lost_seq: int
    restored_s: float | None = None


class ServerFaultRow(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A server fault the gateway recorded (issue 15 point 4): a list cut at a cap
    (``link.list_capped.v1``), a DefaultDERControl refused (``control.default_refused.v1``), a
    server clock refused (``registration.time_refused.v1``). ``kind`` names it in words,
    ``resource`` what it was about (a path, a program, the server clock)."""

    seq: int
    at_s: float
    kind: str
    resource: str
    reason: str


def csipaus_fault_words(event: CsipAusFault) -> tuple[str, str, str]:
    """A ``link.csipaus_fault.v1`` as (kind, resource, reason) in words."""
    if event.kind == "unknown-namespace":
        dropped = ", ".join(event.dropped) or "no elements"
        return (
            "unknown CSIP-AUS namespace",
            event.path,
            f"{event.namespace}: not read: {dropped}",
        )
    if event.kind == "not-allowed":
        return (
            "CSIP-AUS version not allowed",
            event.path,
            f"{event.namespace}: the profile does not allow it; writing {event.in_force}",
        )
    return (
        "CSIP-AUS versions mixed",
        event.path,
        f"{event.namespace}, while {event.in_force} is in force (kept)",
    )


class GatewayRun(msgspec.Struct, kw_only=True):
    started_seq: int
    started_s: float = math.nan
    stopped_s: float | None = None
    stop_reason: str = ""


class Forensics:
    """Everything one pass learns. ``report`` is the verification's verdict; ``forced`` says the
    records after a failed verification were folded anyway (``--force``)."""

    def __init__(self, at: Iterable[float] = ()) -> None:
        self.report: VerifyReport | None = None
        self.forced = False
        self.forced_skipped: list[str] = []
        self.records = 0
        self.first_s: float | None = None
        self.last_s: float | None = None
        # The model's own copy, folded in place (one copy, not one per record); an instant
        # captured is a copy of it (:meth:`_capture_until`).
        self.controls, self._fold_controls = CONTROLS_PROJECTION.transient(
            CONTROLS_PROJECTION.initial
        )
        self.polls: PollState = POLL_PROJECTION.initial
        self.stories: dict[str, list[Step]] = {}
        self.limits: list[LimitPeriod] = []
        self.ramps: list[RampPlanned] = []
        self.writes: list[Write] = []
        self.unreachable: list[tuple[int, DeviceUnreachable]] = []
        # C arrays of doubles: a month of 5-s samples is 4 MB each, and appending copies the value
        # out of the decoded event instead of keeping a float object alive per sample
        self.sample_t = array("d")
        self.sample_site = array("d")
        self.sample_der = array("d")
        #: the battery's state of charge (%) at each sample, NaN when the sample did not carry it
        self.sample_soc = array("d")
        self.responses: dict[tuple[str, int], ResponseRow] = {}
        self.comms: list[CommsPeriod] = []
        self.runs: list[GatewayRun] = []
        self.actor_failures: list[tuple[int, ActorFailed]] = []
        #: every link hold (``link.backoff.v1``) in log order, with its record
        self.holds: list[tuple[int, LinkBackedOff]] = []
        self.server_faults: list[ServerFaultRow] = []
        #: every CSIP-AUS version put in force (``link.csipaus_version.v1``), with its record
        self.versions: list[tuple[int, CsipAusVersionSettled]] = []
        #: IEEE 2030.5 Pricing: the rates offered and every change of the price in force, by record
        self.rates: dict[str, RateDetails] = {}
        self.prices: list[tuple[int, PriceInForce]] = []
        #: price intervals as first received (their stories are in ``stories``, by mRID)
        self.price_intervals: dict[str, PriceInterval] = {}
        self._at = sorted(set(at))
        self._next_capture = self._at[0] if self._at else math.inf
        self.seq = 0
        self.total = 0
        self.progress: Progress | None = None
        self._append_t = self.sample_t.append
        self._append_site = self.sample_site.append
        self._append_der = self.sample_der.append
        self._append_soc = self.sample_soc.append
        self._captured: dict[float, ControlsState] = {}
        self._untimed: dict[int, list[Any]] = {}
        # per control supplying a limit in force: battery writes since it came into force
        self._writes_since: dict[str, int] = {}
        # the controls supplying some limit in force now (kept with the limit periods)
        self._suppliers: set[str] = set()
        #: every control's and program's id in the log, each told by its shortest unique form
        self.ids = ShortIds()

    # -- queries ---------------------------------------------------------------------------------

    @property
    def verified(self) -> bool:
        return self.report is not None and self.report.ok

    def state_at(self, t: float) -> ControlsState:
        """The controls fold as of instant ``t`` (every record up to the first one later than ``t``)."""
        try:
            return self._captured[t]
        except KeyError:
            raise KeyError(f"instant {t} was not asked for before the pass") from None

    def limit_at(self, t: float) -> LimitPeriod | None:
        """The limits recorded in force at ``t`` (half-open periods)."""
        found = None
        for period in self.limits:
            if period.start_s > t:
                break
            found = period
        return found

    def running_at(self, t: float) -> bool:
        """Whether a gateway process was running at ``t`` (between its start and stop records)."""
        for run in self.runs:
            end = run.stopped_s if run.stopped_s is not None else self.last_s
            if run.started_s <= t and (end is None or t <= end):
                return True
        return not self.runs  # a log without runtime records: assume it ran throughout

    def hold_at(self, t: float) -> tuple[int, LinkBackedOff] | None:
        """The newest link hold covering ``t`` (recorded at or before ``t``, held until after it),
        with its record: why the link was not asking for a resource at ``t`` (issue 15 point 4)."""
        found = None
        for seq, hold in self.holds:
            if hold.at_s > t:
                break
            if hold.until_s > t:
                found = (seq, hold)
        return found

    def version_at(self, t: float) -> tuple[int, CsipAusVersionSettled] | None:
        """The CSIP-AUS version in force at ``t`` (the newest put in force at or before it), with
        its record (issue 18 point 2)."""
        found = None
        for seq, settled in self.versions:
            if settled.at_s > t:
                break
            found = (seq, settled)
        return found

    def fallback_at(self, t: float) -> tuple[int, CsipAusVersionSettled] | None:
        """The newest discovery fallback recorded at or before ``t``, with its record."""
        found = None
        for seq, settled in self.versions:
            if settled.at_s > t:
                break
            if settled.fallback:
                found = (seq, settled)
        return found

    def faults_around(self, t: float, window_s: float) -> list[ServerFaultRow]:
        """The server faults recorded within ``window_s`` of ``t``, in log order."""
        return [f for f in self.server_faults if abs(f.at_s - t) <= window_s]

    def prices_at(self, t: float) -> list[tuple[int, PriceInForce]]:
        """Per rate, the last price-in-force record at or before ``t`` (with its record number)."""
        found: dict[str, tuple[int, PriceInForce]] = {}
        for seq, event in self.prices:
            if event.at_s > t:
                break
            found[event.rate_mrid] = (seq, event)
        return [found[rate] for rate in sorted(found)]

    def comms_down_at(self, t: float) -> bool:
        return any(p.lost_s <= t and (p.restored_s is None or t < p.restored_s) for p in self.comms)

    # -- the fold --------------------------------------------------------------------------------

    def _capture_until(self, t: float) -> None:
        while self._at and self._at[0] < t:
            self._captured[self._at.pop(0)] = owned_copy(self.controls)
        self._next_capture = self._at[0] if self._at else math.inf

    def fold(self, state: None, event: Event) -> None:
        """The projection's evolve inside verification: records arrive in order, each once, after
        it verified, so its position is a count. Telemetry, the bulk of every log, takes the
        shortest path (measured: this is most of what the forensic memory costs)."""
        self.seq = seq = self.seq + 1
        if type(event) is TelemetrySampled:
            self._append_t(event.at_s)
            site, der = event.site_w, event.der_w
            self._append_site(_NAN if site is None else site)
            self._append_der(_NAN if der is None else der)
            soc = event.soc_pct
            self._append_soc(_NAN if soc is None else soc)
        elif type(event) in _FOLDED_TYPES:
            try:
                self.evolve(event, seq)
            except (KeyError, ValueError, AttributeError, TypeError) as exc:
                raise FoldFailed(seq, f"{type(exc).__name__}: {exc}") from exc
        if not seq & _PROGRESS_MASK and self.progress is not None:
            self.progress(seq, self.total)

    def evolve(self, event: Event, seq: int) -> None:
        """Fold one record (``seq``) into the model."""
        kind = type(event)
        if kind is TelemetrySampled:
            assert isinstance(event, TelemetrySampled)
            self.seq = seq - 1
            self.fold(None, event)
            return
        if kind not in _FOLDED_TYPES:
            return  # mirror posts, polls' neighbours, nameplate…: nothing here depends on them
        at = getattr(event, "at_s", None)
        if isinstance(at, float | int) and at > self._next_capture:
            # only these records change the controls state: capturing here is capturing at the
            # first record later than the instant
            self._capture_until(at)
        if kind in _CONTROL_TYPES:
            self.controls = self._fold_controls(self.controls, event)
            self._control(event, seq)
        if kind in _POLL_TYPES:
            self.polls = POLL_PROJECTION.evolve(self.polls, event)
        if kind is ControlsNotified:
            assert isinstance(event, ControlsNotified)
            _on_controls_notified(self, event, seq)
        if kind is LimitsApplied:
            assert isinstance(event, LimitsApplied)
            self.writes.append(Write(seq=seq, at_s=event.at_s, event=event))
            self._write_steps(event, seq)
        elif kind is DeviceUnreachable:
            assert isinstance(event, DeviceUnreachable)
            self.unreachable.append((seq, event))
        elif kind is GatewayStarted:
            run = GatewayRun(started_seq=seq)
            self.runs.append(run)
            self._untimed.setdefault(seq, []).append(run)
            if self.runs[:-1]:
                for mrid in self.controls.live:
                    count = self._writes_since.get(mrid)
                    if count is not None:
                        if count > 1:
                            self._step(mrid, seq, math.nan, _further(count - 1))
                        # the restarted gateway's first write is part of the story again
                        self._writes_since[mrid] = 0
                    self._step(
                        mrid,
                        seq,
                        math.nan,
                        "gateway restarted",
                        "its schedule and drawn offsets were rebuilt from the log before the "
                        f"server was reachable ({rule(13)})",
                    )
        elif kind is GatewayStopped:
            assert isinstance(event, GatewayStopped)
            if self.runs:
                self.runs[-1].stop_reason = event.reason
                self._untimed.setdefault(seq, []).append(("stop", self.runs[-1]))
        elif kind is ActorFailed:
            assert isinstance(event, ActorFailed)
            self.actor_failures.append((seq, event))
        elif kind is LinkBackedOff:
            assert isinstance(event, LinkBackedOff)
            self.holds.append((seq, event))
        elif kind is ListCapped:
            assert isinstance(event, ListCapped)
            self._fault(
                seq,
                event.at_s,
                "list cut at a cap",
                event.path,
                f"{event.reason} ({event.kept} items kept)",
            )
        elif kind is CsipAusVersionSettled:
            assert isinstance(event, CsipAusVersionSettled)
            self.versions.append((seq, event))
            # A server without service discovery (absent) is no fault; the other fallbacks are.
            if event.fallback and event.fallback_kind != "absent":
                self._fault(
                    seq,
                    event.at_s,
                    "CSIP-AUS discovery fell back",
                    event.dcap_path,
                    event.fallback,
                )
        elif kind is CsipAusFault:
            assert isinstance(event, CsipAusFault)
            self._fault(seq, event.at_s, *csipaus_fault_words(event))
        elif kind is TimeRefused:
            assert isinstance(event, TimeRefused)
            self._fault(
                seq,
                event.at_s,
                "server clock refused",
                "Time.currentTime",
                f"{event.reason} (currentTime {event.current_time})",
            )
        elif kind is RateSeen:
            assert isinstance(event, RateSeen)
            self.rates[event.rate.rate_mrid] = event.rate
        elif kind is PriceInForce:
            assert isinstance(event, PriceInForce)
            self.prices.append((seq, event))
        elif kind in _PRICE_STORY_TYPES:
            self._price_step(event, seq)
        if kind is PricingCapped:
            assert isinstance(event, PricingCapped)
            self._fault(seq, event.at_s, "pricing walk cut", "tariffs", event.what)
        if kind is IntervalContentChanged:
            assert isinstance(event, IntervalContentChanged)
            self._fault(
                seq,
                event.at_s,
                "content changed",
                f"price interval {event.mrid}",
                f"{', '.join(event.fields)} changed under the same mRID (the first content is kept)",
            )
        if kind is DefaultRefused:
            assert isinstance(event, DefaultRefused)
            self._fault(
                seq, event.at_s, "default refused", f"program {event.program_id}", event.reason
            )

    def _fault(self, seq: int, at_s: float, kind: str, resource: str, reason: str) -> None:
        self.server_faults.append(
            ServerFaultRow(seq=seq, at_s=at_s, kind=kind, resource=resource, reason=reason)
        )

    # -- stories ---------------------------------------------------------------------------------

    def _price_step(self, event: Event, seq: int) -> None:
        """A price interval's story (IEEE 2030.5 Pricing), told like a control's."""
        at = float(getattr(event, "at_s", math.nan))
        match event:
            case IntervalReceived(interval=iv):
                self.price_intervals[iv.mrid] = iv
                self._step(
                    iv.mrid,
                    seq,
                    at,
                    f"received: tier {iv.tou_tier}, {len(iv.blocks)} block(s), rate {iv.rate_mrid}",
                    f"randomisation drawn once and kept: start {event.rho_start_s:+d} s, "
                    f"duration {event.rho_duration_s:+d} s ({rule('preamble')})",
                )
            case IntervalIgnored(interval=iv):
                self.price_intervals[iv.mrid] = iv
                self._step(iv.mrid, seq, at, "ignored", f"{event.reason} ({rule(3)})")
            case IntervalContentChanged():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    f"SERVER FAULT: {', '.join(event.fields)} changed",
                    f"content must not change under an mRID; the first content is kept ({rule(1)})",
                )
            case IntervalStarted():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    "started: its price in force",
                    f"effective start reached ({rule(6)})",
                )
            case IntervalCompleted():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    "completed" if event.started else "ended unseen",
                    f"effective end reached ({rule(9)})"
                    if event.started
                    else "its whole period passed while the gateway did not run: never in force",
                )
            case IntervalCancelDrawn():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    "cancelled with randomisation",
                    f"stops at the drawn time ({rule(8)})",
                )
            case IntervalCancelled():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    f"cancelled by the server (status {event.server_status})",
                    f"{rule(8)}",
                )
            case IntervalSuperseded():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    "superseded" + (f" by {event.by}" if event.by else " (server status 4)"),
                    f"a newer interval of the same rate overlaps it and has started ({rule(7)})"
                    if event.by
                    else f"{rule(8)}",
                )
            case IntervalRemoved():
                self._step(
                    event.mrid, seq, at, "stopped", f"its rate is no longer offered ({rule(4)})"
                )
            case PriceResponseIntended():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    f"PriceResponse {int(event.status)} ({event.status.name.lower()}) intended",
                )
            case PriceResponseAcked():
                self._step(
                    event.mrid,
                    seq,
                    at,
                    f"PriceResponse {int(event.status)} acknowledged (HTTP {event.http_status})",
                )
            case PriceResponseFailed():
                status = (
                    "network error" if event.http_status is None else f"HTTP {event.http_status}"
                )
                self._step(
                    event.mrid,
                    seq,
                    at,
                    f"PriceResponse {int(event.status)} FAILED ({status})",
                    f"retried ({rule(16)})"
                    if event.retry
                    else f"not retried: refused ({rule(16)})",
                )

    def _step(self, mrid: str, seq: int, at_s: float, what: str, why: str = "") -> None:
        step = Step(seq=seq, at_s=at_s, what=what, why=why)
        self.stories.setdefault(mrid, []).append(step)
        if math.isnan(at_s):
            self._untimed.setdefault(seq, []).append(step)

    def _program(self, program_id: str) -> str:
        program = self.controls.programs.get(program_id)
        if program is None:
            return f"program {self.ids(program_id)} (no longer assigned)"
        name = f" '{program.description}'" if program.description else ""
        return f"program {self.ids(program_id)}{name} (primacy {program.primacy})"

    def _rank_words(self, mrid: str) -> str:
        rec = self.controls.records.get(mrid)
        if rec is None:
            return f"control {self.ids(mrid)} (not received)"
        c = rec.control
        return f"control {self.ids(mrid)} of {self._program(c.program_id)}, created {_utc(c.creation_time_s)}"

    def _control(self, event: Event, seq: int) -> None:
        """Tell the story steps one control record adds (the table ``_CONTROL_STORIES``); programs
        and defaults have none: they are read from the fold's state when explaining."""
        tell = _CONTROL_STORIES.get(type(event))
        if tell is not None:
            tell(self, event, seq)

    def _row(self, mrid: str, status: ResponseStatus) -> ResponseRow | None:
        return self.responses.get((mrid, int(status)))

    def _limit_steps(
        self, before: Mapping[Mode, str], event: LimitsInForceChanged, seq: int
    ) -> None:
        """Tell each control when it began or stopped supplying a mode of the limits in force."""
        gained: dict[str, list[str]] = {}
        lost: dict[str, list[str]] = {}
        for mode, source in event.sources.items():
            if before.get(mode) != source and source.startswith("control:"):
                gained.setdefault(source[8:], []).append(
                    f"{mode.value}={quantity(mode.value, getattr(event.settings, mode.value))}"
                )
        for mode, source in before.items():
            if event.sources.get(mode) != source and source.startswith("control:"):
                lost.setdefault(source[8:], []).append(mode.value)
        for mrid, items in gained.items():
            self._step(
                mrid,
                seq,
                event.at_s,
                f"in force: {', '.join(items)}",
                f"the arbitration winner for these modes ({rule(7, 10)})",
            )
            self._writes_since[mrid] = 0
        for mrid, modes in lost.items():
            self._step(mrid, seq, event.at_s, f"no longer in force on {', '.join(modes)}")

    def _write_steps(self, event: LimitsApplied, seq: int) -> None:
        """The battery's first write after a control came into force is a step of its story; the
        closed loop's later corrections are counted, not listed."""
        suppliers = self._suppliers
        for mrid in list(self._writes_since):
            if mrid not in suppliers:
                count = self._writes_since.pop(mrid)
                if count > 1:
                    self._step(
                        mrid,
                        seq,
                        event.at_s,
                        _further(count - 1),
                        "closed-loop corrections (hardware.limits_applied records)",
                    )
                continue
            count = self._writes_since[mrid] = self._writes_since[mrid] + 1
            if count == 1:
                setpoint = (
                    "" if event.setpoint_w is None else f", setpoint {event.setpoint_w:.0f} W"
                )
                verdict = (
                    "limits applied, setpoint written and read back equal"
                    if event.wrote
                    else "limits applied, no setpoint written (the DER's own output was within them)"
                )
                na = (
                    f"; not applicable on this device: {', '.join(m.value for m in event.not_applicable)}"
                    if event.not_applicable
                    else ""
                )
                met = (
                    ""
                    if event.site_limit_met is None
                    else (
                        "; site limit met"
                        if event.site_limit_met
                        else "; site limit NOT met by the DER's range"
                    )
                )
                clamps = describe_clamps(event)
                met += f"; clamped: {clamps}" if clamps else ""
                self._step(
                    mrid,
                    seq,
                    event.at_s,
                    f"battery: {verdict}{setpoint}",
                    f"{describe_settings(event.settings)}{na}{met}",
                )

    def finish(self, untimed: Mapping[int, float]) -> None:
        """Close the pass: stamp the records that carry no time of their own, capture late instants."""
        for seq, items in self._untimed.items():
            t = untimed.get(seq, math.nan)
            if not math.isnan(t) and (self.last_s is None or t > self.last_s):
                self.last_s = t
            for item in items:
                if isinstance(item, Step):
                    item.at_s = t
                elif isinstance(item, GatewayRun):
                    item.started_s = t
                else:
                    item[1].stopped_s = t
        for mrid, count in self._writes_since.items():
            if count > 1 and self.stories.get(mrid):
                last = self.stories[mrid][-1]
                self._step(
                    mrid,
                    last.seq,
                    last.at_s,
                    _further(count - 1),
                    "closed-loop corrections",
                )
        self._writes_since.clear()
        self._capture_until(math.inf)


# -- control stories: one function per control record type ----------------------------------


def _on_control_received(model: Forensics, event: ControlReceived, seq: int) -> None:
    c = event.control
    at = event.at_s
    model._step(
        c.mrid,
        seq,
        at,
        f"received: {describe_settings(c.settings)}, from {_utc(c.start_s)} for {c.duration_s} s",
        f"first sight of this mRID ({rule(2)}); {model._program(c.program_id)}"
        f", created {_utc(c.creation_time_s)}, randomizeStart {c.randomize_start_s} s, "
        f"randomizeDuration {c.randomize_duration_s} s, responseRequired "
        f"{c.response_required:#04x}",
    )


#: PROTOCOL.md §2 step 10 (not one of the §4 rules ``sep2gw.rules`` maps), in the standard's words.
_NOTIFICATION_RULE: Final = (
    "IEEE 2030.5-2018: Subscription/Notification; polling at pollRate goes on as before"
)


def _on_controls_notified(model: Forensics, event: ControlsNotified, seq: int) -> None:
    """Issue 19 point 3: a control first seen by a read a notification prompted."""
    for mrid in event.first_seen:
        model._step(
            mrid,
            seq,
            event.at_s,
            f"changed by notification at {_utc(event.notified_at_s)}",
            f"first seen by the read the utility's notification (record {event.notification_seq}) "
            f"made due at once, not at the next poll ({_NOTIFICATION_RULE})",
        )


def _on_randomization_drawn(model: Forensics, event: RandomizationDrawn, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    c = model.controls.records[mrid].control
    model._step(
        mrid,
        seq,
        at,
        f"randomisation drawn: start {event.start_offset_s:+d} s, duration "
        f"{event.duration_offset_s:+d} s",
        f"drawn once from {_bounds(c.randomize_start_s)} and "
        f"{_bounds(c.randomize_duration_s)} and persisted: a re-poll or a restart "
        f"reuses it ({rule('preamble')})",
    )


def _on_control_scheduled(model: Forensics, event: ControlScheduled, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    rec = model.controls.records[mrid]
    c = rec.control
    if event.adjacent_to is not None:
        why = (
            f"adjacent: it starts where control {model.ids(event.adjacent_to)} specified its end, "
            f"so it starts at that event's effective end, with no randomisation gap "
            f"({rule(5)})"
        )
    elif rec.start_offset_s:
        why = (
            f"effective start = specified start {_utc(c.start_s)} "
            f"{rec.start_offset_s:+d} s randomisation"
        )
    else:
        why = "effective start = specified start (no randomisation)"
    if rec.duration_offset_s:
        why += f"; end = start + {c.duration_s} s {rec.duration_offset_s:+d} s drawn"
    model._step(
        mrid,
        seq,
        at,
        f"scheduled [{_utc(event.effective_start_s)}, {_utc(event.effective_end_s)})",
        why,
    )


def _on_control_started(model: Forensics, event: ControlStarted, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    rec = model.controls.records[mrid]
    if event.late:
        why = f"discovered already inside its period: started at once ({rule(6)})"
    elif rec.adjacent_to is not None:
        why = f"its effective start, pinned to the effective end of control {model.ids(rec.adjacent_to)} ({rule(5)})"
    elif rec.start_offset_s:
        why = f"its effective start: specified start {rec.start_offset_s:+d} s randomisation ({rule(6)})"
    else:
        why = f"its effective start, the specified start ({rule(6)})"
    delay = at - rec.effective_start_s
    if not event.late and delay >= 1:
        why += f"; {delay:.0f} s after it was due (the gateway was not running then)"
    if event.awaiting_write:
        why += "; Response 2 waits for the device to confirm the write"
    model._step(mrid, seq, at, "STARTED", why)


def _on_device_write_result(model: Forensics, event: DeviceWriteResult, seq: int) -> None:
    mrids = event.mrids
    ok = event.ok
    at = event.at_s
    for mrid in mrids:
        model._step(
            mrid,
            seq,
            at,
            "device confirmed the write" if ok else "device REFUSED the write",
            event.detail,
        )


def _on_control_superseded(model: Forensics, event: ControlSuperseded, seq: int) -> None:
    mrid = event.mrid
    by = event.by
    at = event.at_s
    modes = ", ".join(m.value for m in event.modes_lost)
    if by == "server":
        why = f"the server marked it Superseded (status 4, treated as 7: {rule(8)})"
    else:
        why = (
            f"{model._rank_words(by)} outranks {model._rank_words(mrid)} and their "
            f"effective periods intersect ({rule(7)})"
        )
    winner = "the server" if by == "server" else f"control {model.ids(by)}"
    what = f"superseded by {winner} on {modes}" + (
        "" if event.fully else " (keeps its other modes running)"
    )
    model._step(mrid, seq, at, what, why)
    if by != "server":
        model._step(
            by,
            seq,
            at,
            f"superseded control {model.ids(mrid)} on {modes}",
            f"it outranks that event on these modes ({rule(7)})",
        )


def _on_cancel_delay_drawn(model: Forensics, event: CancelDelayDrawn, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(
        mrid,
        seq,
        at,
        f"cancel delay drawn: {event.delay_s} s",
        f"cancelled with randomisation (status 3): stops after a random delay ({rule(8)})",
    )


def _on_control_cancelled(model: Forensics, event: ControlCancelled, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(
        mrid,
        seq,
        at,
        "CANCELLED",
        f"the server set EventStatus {int(event.server_status)} "
        f"({event.server_status.name.lower()}) ({rule(8)})",
    )


def _on_control_completed(model: Forensics, event: ControlCompleted, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    rec = model.controls.records[mrid]
    if event.by_server:
        why = "the server marked it Completed (status 5)"
    elif not rec.started:
        why = "its whole period passed while the gateway could not act: it never ran"
    else:
        why = f"its effective end {_utc(rec.effective_end_s)} ({rule(9)})"
    model._step(mrid, seq, at, "completed", why)


def _on_control_ignored(model: Forensics, event: ControlIgnored, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(mrid, seq, at, f"ignored: {event.reason.value}", _IGNORED_WHY[event.reason])


def _on_control_rejected(model: Forensics, event: ControlRejected, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(mrid, seq, at, f"rejected with {int(event.status)}", event.reason)


def _on_control_removed(model: Forensics, event: ControlRemoved, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(
        mrid,
        seq,
        at,
        "removed",
        f"program {model.ids(event.program_id)} is no longer referenced by our FSAs: "
        f"it stops silently ({rule(4)})",
    )


def _on_server_fault(model: Forensics, event: ServerFault, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(
        mrid,
        seq,
        at,
        "SERVER FAULT",
        event.reason + f"; the first plan stands ({rule(1)})",
    )


def _on_server_status_seen(model: Forensics, event: ServerStatusSeen, seq: int) -> None:
    mrid = event.mrid
    at = event.at_s
    model._step(
        mrid,
        seq,
        at,
        f"server status now {int(event.status)} ({event.status.name.lower()})",
    )


def _on_control_gap(model: Forensics, event: ControlGap, seq: int) -> None:
    at = event.at_s
    modes = ", ".join(m.value for m in event.modes)
    text = f"gap [{_utc(event.start_s)}, {_utc(event.end_s)}) between controls {model.ids(event.before)} and {model.ids(event.after)} on {modes}"
    for mrid in (event.before, event.after):
        model._step(
            mrid,
            seq,
            at,
            text,
            f"near-adjacent events: the default applies in the gap ({rule(5)})",
        )


def _on_limits_in_force_changed(model: Forensics, event: LimitsInForceChanged, seq: int) -> None:
    at = event.at_s
    previous = model.limits[-1] if model.limits else None
    if previous is not None:
        previous.end_s = at
    model.limits.append(
        LimitPeriod(seq=seq, start_s=at, settings=event.settings, sources=dict(event.sources))
    )
    before = previous.sources if previous is not None else {}
    model._limit_steps(before, event, seq)
    model._suppliers = {s[8:] for s in event.sources.values() if s.startswith("control:")}


def _on_ramp_planned(model: Forensics, event: RampPlanned, seq: int) -> None:
    model.ramps.append(event)


def _on_response_intended(model: Forensics, event: ResponseIntended, seq: int) -> None:
    mrid = event.mrid
    status = event.status
    at = event.at_s
    model.responses[(mrid, int(status))] = ResponseRow(
        mrid=mrid, status=status, intended_s=at, intended_seq=seq
    )
    model._step(
        mrid,
        seq,
        at,
        f"Response {int(status)} ({status.name.lower()}) intended",
        "" if model.controls.online else f"comms are down: queued until they return ({rule(12)})",
    )


def _on_response_sent(model: Forensics, event: ResponseSent, seq: int) -> None:
    mrid = event.mrid
    status = event.status
    at = event.at_s
    row = model._row(mrid, status)
    if row is not None:
        row.sent_s.append(at)
    attempt = "" if row is None or len(row.sent_s) == 1 else f" (attempt {len(row.sent_s)})"
    model._step(mrid, seq, at, f"Response {int(status)} sent{attempt}")


def _on_response_acked(model: Forensics, event: ResponseAcked, seq: int) -> None:
    mrid = event.mrid
    status = event.status
    at = event.at_s
    row = model._row(mrid, status)
    if row is not None:
        row.acked_s, row.http_status = at, event.http_status
    model._step(mrid, seq, at, f"Response {int(status)} acknowledged (HTTP {event.http_status})")


def _on_response_failed(model: Forensics, event: ResponseFailed, seq: int) -> None:
    mrid = event.mrid
    status = event.status
    at = event.at_s
    row = model._row(mrid, status)
    what = failure_words(event)
    if row is not None:
        row.failures.append((at, what, event.retry))
        row.undeliverable = event.undeliverable is not None
    if event.undeliverable is not None:
        model._step(mrid, seq, at, f"Response {int(status)} not sent: {what}")
    else:
        model._step(
            mrid,
            seq,
            at,
            f"Response {int(status)} FAILED ({what})",
            "will be retried (5xx or network)" if event.retry else f"not retried (4xx: {rule(16)})",
        )


def _on_comms_lost(model: Forensics, event: CommsLost, seq: int) -> None:
    at = event.at_s
    model.comms.append(CommsPeriod(lost_s=at, lost_seq=seq))
    for mrid in model.controls.live:
        model._step(
            mrid,
            seq,
            at,
            "comms lost",
            f"the known schedule is kept; Responses queue ({rule(12)})",
        )


def _on_comms_restored(model: Forensics, event: CommsRestored, seq: int) -> None:
    at = event.at_s
    if model.comms and model.comms[-1].restored_s is None:
        model.comms[-1].restored_s = at
    for mrid in model.controls.live:
        model._step(
            mrid,
            seq,
            at,
            "comms restored",
            "queued Responses are sent, everything re-polled",
        )


#: One function per control record type: the story steps that record adds (issue 17).
_CONTROL_STORIES: Final[dict[type[Event], Callable[[Forensics, Any, int], None]]] = {
    ControlReceived: _on_control_received,
    RandomizationDrawn: _on_randomization_drawn,
    ControlScheduled: _on_control_scheduled,
    ControlStarted: _on_control_started,
    DeviceWriteResult: _on_device_write_result,
    ControlSuperseded: _on_control_superseded,
    CancelDelayDrawn: _on_cancel_delay_drawn,
    ControlCancelled: _on_control_cancelled,
    ControlCompleted: _on_control_completed,
    ControlIgnored: _on_control_ignored,
    ControlRejected: _on_control_rejected,
    ControlRemoved: _on_control_removed,
    ServerFault: _on_server_fault,
    ServerStatusSeen: _on_server_status_seen,
    ControlGap: _on_control_gap,
    LimitsInForceChanged: _on_limits_in_force_changed,
    RampPlanned: _on_ramp_planned,
    ResponseIntended: _on_response_intended,
    ResponseSent: _on_response_sent,
    ResponseAcked: _on_response_acked,
    ResponseFailed: _on_response_failed,
    CommsLost: _on_comms_lost,
    CommsRestored: _on_comms_restored,
}


#: Why a control was ignored, in the words of the rule that says so (one reason, one rule).
_IGNORED_WHY: Final[dict[IgnoreReason, str]] = {
    IgnoreReason.EXPIRED_ON_RECEIPT: "its specified end had passed when it was first seen "
    f"({rule(3)})",
    IgnoreReason.DEVICE_CATEGORY: "its deviceCategory does not include ours: neither applied nor "
    f"answered ({rule(14)})",
}


def _further(n: int) -> str:
    return f"{n} further battery write{'s' if n != 1 else ''} while in force"


def _bounds(bound: int) -> str:
    """The interval a randomisation is drawn from; a negative bound keeps its sign (§4 preamble)."""
    return f"[{min(0, bound)}, {max(0, bound)}] s"


def _utc(t: float) -> str:
    utc = utc_datetime(t)
    return not_a_date(t) if utc is None else utc.strftime("%Y-%m-%d %H:%M:%SZ")


def analyse(
    store: EventStore,
    *,
    at: Iterable[float] = (),
    force: bool = False,
    progress: Progress | None = None,
) -> Forensics:
    """Verify ``store`` and fold it into a :class:`Forensics` in the same pass.

    Verification stops at the first bad record; then, only with ``force``, the remaining records
    are folded too (each that still decodes), and ``forced`` is set so every output can say so.
    """
    model = Forensics(at)
    for ident, kind in _ids(store):
        model.ids.add(ident, kind)
    model.total = store.head().seq
    model.progress = progress
    projection: Projection[None] = Projection(
        name=FORENSICS_PROJECTION, initial=None, evolve=model.fold, state_type=type(None)
    )
    model.report = store.verify({**PROJECTIONS, FORENSICS_PROJECTION: projection})
    model.records = model.seq
    if not model.report.ok and force:
        model.forced = True
        _fold_the_rest(store, model, model.seq + 1)
    _span(store, model)
    untimed = {r.seq: r.server_time for r in _untimed_records(store, model)}
    model.finish(untimed)
    if progress is not None:
        progress(model.total, model.total)
    return model


#: The records that name a control or a program (read by type, through the index, before the pass).
_ID_TAGS: Final = tuple(
    tag_of(t) for t in (ControlReceived, ProgramsChanged, DefaultChanged, DefaultRefused)
)


def _ids(store: EventStore) -> Iterable[tuple[str, str]]:
    """Every control's and program's id the log names, with its kind, so that each story tells
    the ids of a kind apart from its first line."""
    try:
        records = list(store.read(types=_ID_TAGS))
    except (EventLogError, msgspec.MsgspecError):
        return  # a damaged log: the pass names the bad record; short forms stay tails
    for record in records:
        event = record.event
        if isinstance(event, ControlReceived):
            yield event.control.mrid, "control"
            yield event.control.program_id, "program"
        elif isinstance(event, ProgramsChanged):
            yield from ((p.program_id, "program") for p in event.programs)
        elif isinstance(event, DefaultChanged | DefaultRefused):
            yield event.program_id, "program"


def _span(store: EventStore, model: Forensics) -> None:
    """The log's span: its first and last folded records' server time (read once, not per record)."""
    if not model.records:
        return
    try:
        model.first_s = next(store.read_raw(1)).server_time
        for raw in store.read_raw(model.records):
            if raw.seq == model.records:
                model.last_s = raw.server_time
                break
    except (EventLogError, StopIteration):
        return


def _untimed_records(store: EventStore, model: Forensics) -> Iterable[Any]:
    if not model._untimed:
        return ()
    try:
        return list(store.read(types=_UNTIMED_TAGS))
    except (EventLogError, msgspec.MsgspecError):
        return [r for r in store.read_raw() if r.type in _UNTIMED_TAGS]


def _fold_the_rest(store: EventStore, model: Forensics, from_seq: int) -> None:
    """``--force``: fold what still decodes after the first bad record, noting what does not."""
    decode = store.catalogue.decode
    folded = from_seq - 1
    try:
        for raw in store.read_raw(from_seq):
            try:
                event = decode(raw.body)
            except (EventLogError, msgspec.MsgspecError) as exc:
                model.forced_skipped.append(
                    f"record {raw.seq}: skipped, it does not decode ({exc})"
                )
                continue
            try:
                model.evolve(event, raw.seq)
            except (KeyError, ValueError, AttributeError) as exc:
                model.forced_skipped.append(
                    f"record {raw.seq}: skipped, the fold cannot apply it ({type(exc).__name__}: {exc})"
                )
            folded = raw.seq
    except EventLogError as exc:
        model.forced_skipped.append(f"the rest of the file is unreadable: {exc}")
    model.records = folded


def failure_words(event: ResponseFailed) -> str:
    """What became of a failed Response, in the words the log supports: the server's status, no
    answer at all, or why nothing was sent."""
    if event.undeliverable is not None:
        return event.undeliverable
    return "network error" if event.http_status is None else f"HTTP {event.http_status}"
