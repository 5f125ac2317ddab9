"""The pricing function set's decisions and their fold (IEEE 2030.5-2018 Pricing; PROTOCOL.md §4).

A TimeTariffInterval is an event like a DERControl, so the event rules apply to it: identity is the
mRID and its content must not change (rule 1); Response 1 on receipt (rule 2); an interval over before
it was received is ignored (rule 3); it starts at its effective start on our clock, never waiting for
the server to mark it active (rule 6); server status 2 cancels now, 3 after a drawn delay, 4 is
superseded (rule 8); completion at the effective end, Response 3 only if it started (rule 9); a rate
no longer offered stops applying, unanswered (rule 4). Supersession (rule 7) is per rate component:
two intervals of the same rate whose effective periods overlap conflict, and the one created later
(``creationTime``, then the larger mRID) wins, taking effect at the winner's effective start — the
tariff's primacy orders tariffs, not intervals within one rate.

The price in force for a rate is the price of its active interval (or none), recorded as
:class:`~events.pricing_events.PriceInForce` each time it changes: that record, not a recomputation,
is what a dispute reads.

:func:`evolve` is the fold: pure (a new :class:`PricingState` out, its input untouched), and it
applies only what each record says — every decision (draws, supersession, which Responses are owed) is
made by :class:`PricingCore` and recorded, so a later change of a rule never reinterprets an old log.
Known limit: the adjacency rule (§4 rule 5, an adjacent event starts at the previous one's effective
end) is not applied to price intervals; servers publish them back to back without randomisation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Final, TypeVar

import msgspec

from events.base import Event
from events.der_model import ResponseStatus
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
    RateDetails,
    RateSeen,
)
from events.replay import Projection
from statemachines.controls.decisions import Draw, draw_signed
from statemachines.responses import ResponseProfile, should_send
from statemachines.table import Row, Table

__all__ = [
    "PRICE_LIFECYCLE",
    "PRICING_PROJECTION",
    "IntervalRecord",
    "PricingConfig",
    "PricingCore",
    "PricingState",
    "evolve",
    "price_in_force",
]

V = TypeVar("V")

RECEIVED: Final = "received"
SCHEDULED: Final = "scheduled"
ACTIVE: Final = "active"
COMPLETED: Final = "completed"
CANCELLED: Final = "cancelled"
SUPERSEDED: Final = "superseded"
IGNORED: Final = "ignored"
REMOVED: Final = "removed"

PRICE_LIFECYCLE_ROWS: Final = (
    Row("schedule", RECEIVED, SCHEDULED),
    Row("ignore", RECEIVED, IGNORED),
    Row("start", SCHEDULED, ACTIVE),
    Row("complete", SCHEDULED, COMPLETED),
    Row("cancel", SCHEDULED, CANCELLED),
    Row("supersede", SCHEDULED, SUPERSEDED),
    Row("remove", SCHEDULED, REMOVED),
    Row("complete", ACTIVE, COMPLETED),
    Row("cancel", ACTIVE, CANCELLED),
    Row("supersede", ACTIVE, SUPERSEDED),
    Row("remove", ACTIVE, REMOVED),
)
#: The lifecycle of one price interval (its diagram is generated into ARCHITECTURE.md).
PRICE_LIFECYCLE: Final = Table(
    "price interval lifecycle",
    (RECEIVED, SCHEDULED, ACTIVE, COMPLETED, CANCELLED, SUPERSEDED, IGNORED, REMOVED),
    RECEIVED,
    PRICE_LIFECYCLE_ROWS,
)
_DEST: Final = {(row.source, row.trigger): row.dest for row in PRICE_LIFECYCLE_ROWS}
_LIVE: Final = frozenset({SCHEDULED, ACTIVE})

#: Fields of an interval that are its content (§4 rule 1); the server's status is not content.
_CONTENT: Final = tuple(
    f for f in PriceInterval.__struct_fields__ if f not in ("server_status", "href")
)


class IntervalRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One interval as the log knows it: the content first received, the state, the effective
    period (the draws applied), a status-3 stop time, and the Response codes owed so far."""

    interval: PriceInterval
    state: str
    effective_start: float
    effective_end: float
    stop_at: float | None = None
    superseded_by: str | None = None
    responses: tuple[ResponseStatus, ...] = ()
    started: bool = False
    #: The fields last reported changed by the server (rule 1), so a fault is logged once per change.
    changed_fields: tuple[str, ...] = ()


class PricingState(msgspec.Struct, frozen=True, kw_only=True):
    """The fold of the pricing stream. Mappings are replaced, never updated in place."""

    rates: Mapping[str, RateDetails] = msgspec.field(default_factory=dict)
    intervals: Mapping[str, IntervalRecord] = msgspec.field(default_factory=dict)
    #: rate mRID -> the interval in force (None: none)
    in_force: Mapping[str, str | None] = msgspec.field(default_factory=dict)
    #: "mrid/status" -> a PriceResponse owed and not yet acknowledged or refused for good
    pending: Mapping[str, PriceResponseIntended] = msgspec.field(default_factory=dict)


def _with(mapping: Mapping[str, V], key: str, value: V) -> dict[str, V]:
    out = dict(mapping)
    out[key] = value
    return out


def _without(mapping: Mapping[str, V], key: str) -> dict[str, V]:
    out = dict(mapping)
    out.pop(key, None)
    return out


def _moved(state: PricingState, mrid: str, trigger: str, **changes: object) -> PricingState:
    rec = state.intervals[mrid]
    dest = _DEST.get((rec.state, trigger))
    if dest is None:  # the log says something its own lifecycle forbids: keep the fold total
        dest = rec.state
    new = msgspec.structs.replace(rec, state=dest, **changes)
    return msgspec.structs.replace(state, intervals=_with(state.intervals, mrid, new))


def _key(mrid: str, status: ResponseStatus) -> str:
    return f"{mrid}/{int(status)}"


def evolve(state: PricingState, event: Event) -> PricingState:
    """The state after ``event``; ``state`` is left as it was. Events of other streams pass through."""
    match event:
        case RateSeen(rate=rate):
            return msgspec.structs.replace(state, rates=_with(state.rates, rate.rate_mrid, rate))
        case IntervalReceived(interval=iv, rho_start_s=rs, rho_duration_s=rd):
            start = float(iv.start + rs)
            rec = IntervalRecord(
                interval=iv,
                state=SCHEDULED,
                effective_start=start,
                effective_end=start + iv.duration + rd,
            )
            return msgspec.structs.replace(state, intervals=_with(state.intervals, iv.mrid, rec))
        case IntervalIgnored(interval=iv):
            rec = IntervalRecord(
                interval=iv,
                state=IGNORED,
                effective_start=float(iv.start),
                effective_end=float(iv.start + iv.duration),
            )
            return msgspec.structs.replace(state, intervals=_with(state.intervals, iv.mrid, rec))
        case IntervalContentChanged(mrid=mrid, fields=fields) if mrid in state.intervals:
            rec = msgspec.structs.replace(state.intervals[mrid], changed_fields=fields)
            return msgspec.structs.replace(state, intervals=_with(state.intervals, mrid, rec))
        case IntervalStarted(mrid=mrid) if mrid in state.intervals:
            return _moved(state, mrid, "start", started=True)
        case IntervalCompleted(mrid=mrid) if mrid in state.intervals:
            return _moved(state, mrid, "complete")
        case IntervalCancelDrawn(mrid=mrid, stop_at_s=stop_at) if mrid in state.intervals:
            rec = msgspec.structs.replace(state.intervals[mrid], stop_at=stop_at)
            return msgspec.structs.replace(state, intervals=_with(state.intervals, mrid, rec))
        case IntervalCancelled(mrid=mrid) if mrid in state.intervals:
            return _moved(state, mrid, "cancel")
        case IntervalSuperseded(mrid=mrid, by=by) if mrid in state.intervals:
            return _moved(state, mrid, "supersede", superseded_by=by)
        case IntervalRemoved(mrid=mrid) if mrid in state.intervals:
            return _moved(state, mrid, "remove")
        case PriceInForce(rate_mrid=rate, interval_mrid=mrid):
            return msgspec.structs.replace(state, in_force=_with(state.in_force, rate, mrid))
        case PriceResponseIntended(mrid=mrid, status=status):
            intervals = state.intervals
            if mrid in intervals:
                rec = intervals[mrid]
                rec = msgspec.structs.replace(rec, responses=(*rec.responses, status))
                intervals = _with(intervals, mrid, rec)
            return msgspec.structs.replace(
                state,
                intervals=intervals,
                pending=_with(state.pending, _key(mrid, status), event),
            )
        case PriceResponseAcked(mrid=mrid, status=status):
            return msgspec.structs.replace(
                state, pending=_without(state.pending, _key(mrid, status))
            )
        case PriceResponseFailed(mrid=mrid, status=status, retry=False):
            return msgspec.structs.replace(
                state, pending=_without(state.pending, _key(mrid, status))
            )
    return state


def fold(events: Iterable[Event], state: PricingState | None = None) -> PricingState:
    out = state or PricingState()
    for event in events:
        out = evolve(out, event)
    return out


#: The pricing stream's fold, for replay (the pricing actor's start, forensics, tests).
PRICING_PROJECTION: Final = Projection(
    name="pricing",
    initial=PricingState(),
    evolve=evolve,
    state_type=PricingState,
    types=PRICING_EVENT_TYPES,  # ``evolve`` passes every other type by
)


def price_in_force(state: PricingState, rate_mrid: str) -> IntervalRecord | None:
    """The interval whose price is in force for ``rate_mrid`` according to the log."""
    mrid = state.in_force.get(rate_mrid)
    return None if mrid is None else state.intervals.get(mrid)


class PricingConfig(msgspec.Struct, frozen=True, kw_only=True):
    lfdi: str
    profile: ResponseProfile


def _wins(a: IntervalRecord, b: IntervalRecord) -> bool:
    """Whether ``a`` supersedes ``b`` when they overlap: created later, then the larger mRID."""
    return (a.interval.creation_time, a.interval.mrid) > (b.interval.creation_time, b.interval.mrid)


def _overlap(a: IntervalRecord, b: IntervalRecord) -> bool:
    return a.effective_start < b.effective_end and b.effective_start < a.effective_end


class PricingCore:
    """The decisions over one gateway's price intervals. Each method returns the events it decided,
    already folded into :attr:`state`."""

    def __init__(self, config: PricingConfig, state: PricingState | None = None) -> None:
        self.config = config
        self.state = state or PricingState()

    def _emit(self, out: list[Event], event: Event) -> None:
        self.state = evolve(self.state, event)
        out.append(event)

    def _respond(self, out: list[Event], mrid: str, status: ResponseStatus, now: float) -> None:
        rec = self.state.intervals[mrid]
        iv = rec.interval
        if not iv.reply_to:
            return
        if not should_send(self.config.profile, iv.response_required, rec.responses, status):
            return
        self._emit(
            out,
            PriceResponseIntended(
                mrid=mrid,
                status=status,
                lfdi=self.config.profile.lfdi(self.config.lfdi),
                reply_to=iv.reply_to,
                created_s=int(now),
                at_s=now,
            ),
        )

    # -------------------------------------------------------------------------------- receipt

    def receive_rate(self, rate: RateDetails, now: float) -> list[Event]:
        out: list[Event] = []
        if self.state.rates.get(rate.rate_mrid) != rate:
            self._emit(out, RateSeen(rate=rate, at_s=now))
        return out

    def receive_intervals(
        self, intervals: Sequence[PriceInterval], now: float, draw: Draw
    ) -> list[Event]:
        """One poll's intervals of a rate (any order). A vanished interval is not cancelled (§4
        rule 4); it runs as received."""
        out: list[Event] = []
        for iv in intervals:
            rec = self.state.intervals.get(iv.mrid)
            if rec is None:
                self._receive_new(out, iv, now, draw)
                rec = self.state.intervals.get(iv.mrid)
            else:
                changed = tuple(f for f in _CONTENT if getattr(iv, f) != getattr(rec.interval, f))
                if changed and changed != rec.changed_fields:
                    self._emit(out, IntervalContentChanged(mrid=iv.mrid, fields=changed, at_s=now))
            if rec is not None and rec.state in _LIVE:
                self._server_status(out, rec, iv.server_status, now, draw)
        self._advance(out, now)
        return out

    def _receive_new(self, out: list[Event], iv: PriceInterval, now: float, draw: Draw) -> None:
        if iv.start + iv.duration <= now:  # §4 rule 3: over before it was received
            self._emit(
                out, IntervalIgnored(interval=iv, reason="ended before it was received", at_s=now)
            )
            if self.config.profile.received_late_on_expiry:
                self._respond(out, iv.mrid, ResponseStatus.RECEIVED_LATE, now)
            return
        rho_s = draw_signed(draw, iv.randomize_start)
        rho_d = draw_signed(draw, iv.randomize_duration)
        self._emit(
            out, IntervalReceived(interval=iv, rho_start_s=rho_s, rho_duration_s=rho_d, at_s=now)
        )
        self._respond(out, iv.mrid, ResponseStatus.RECEIVED, now)

    def _server_status(
        self, out: list[Event], rec: IntervalRecord, status: int, now: float, draw: Draw
    ) -> None:
        """§4 rule 8 (the server's EventStatus.currentStatus)."""
        mrid = rec.interval.mrid
        if status == 2:
            self._emit(out, IntervalCancelled(mrid=mrid, server_status=2, at_s=now))
            self._respond(out, mrid, ResponseStatus.CANCELLED, now)
        elif status == 3 and rec.stop_at is None:
            bound = max(abs(rec.interval.randomize_start), abs(rec.interval.randomize_duration))
            delay = draw(0, bound) if bound else 0
            self._emit(out, IntervalCancelDrawn(mrid=mrid, stop_at_s=now + delay, at_s=now))
        elif status == 4:
            self._emit(out, IntervalSuperseded(mrid=mrid, by=None, at_s=now))
            self._respond(out, mrid, ResponseStatus.SUPERSEDED, now)
        elif status == 5:
            self._emit(out, IntervalCompleted(mrid=mrid, started=rec.started, at_s=now))
            self._respond(out, mrid, ResponseStatus.COMPLETED, now)

    def retire_rates(self, offered: Iterable[str], now: float) -> list[Event]:
        """The rates the server still offers us (every rate of every tariff of our FSAs); the
        intervals of any other rate stop applying, unanswered (§4 rule 4)."""
        keep = set(offered)
        out: list[Event] = []
        for mrid, rec in sorted(self.state.intervals.items()):
            if rec.state in _LIVE and rec.interval.rate_mrid not in keep:
                self._emit(out, IntervalRemoved(mrid=mrid, at_s=now))
        self._advance(out, now)
        return out

    # ---------------------------------------------------------------------------------- time

    def handle_timer(self, now: float) -> list[Event]:
        out: list[Event] = []
        self._advance(out, now)
        return out

    def next_deadline(self) -> float | None:
        times = []
        for rec in self.state.intervals.values():
            if rec.state == SCHEDULED:
                times.append(rec.effective_start)
            if rec.state in _LIVE:
                times.append(rec.effective_end)
                if rec.stop_at is not None:
                    times.append(rec.stop_at)
        return min(times) if times else None

    def _live(self) -> list[IntervalRecord]:
        return sorted(
            (r for r in self.state.intervals.values() if r.state in _LIVE),
            key=lambda r: (r.interval.creation_time, r.interval.mrid),
            reverse=True,
        )

    def _advance(self, out: list[Event], now: float) -> None:
        # Rule 8: a status-3 cancellation whose drawn delay has passed.
        for rec in self._live():
            if rec.stop_at is not None and rec.stop_at <= now:
                self._emit(
                    out, IntervalCancelled(mrid=rec.interval.mrid, server_status=3, at_s=now)
                )
                self._respond(out, rec.interval.mrid, ResponseStatus.CANCELLED, now)
        # Rule 7 per rate: newest first, a winner that has reached its effective start supersedes
        # every older live interval of its rate it overlaps (work: winners due × live of the rate).
        live = self._live()
        by_rate: dict[str, list[str]] = {}
        for rec in live:
            by_rate.setdefault(rec.interval.rate_mrid, []).append(rec.interval.mrid)
        for candidate in live:
            winner = self.state.intervals[candidate.interval.mrid]
            if winner.state not in _LIVE or winner.effective_start > now:
                continue
            for mrid in by_rate[winner.interval.rate_mrid]:
                loser = self.state.intervals[mrid]
                if (
                    loser.state in _LIVE
                    and mrid != winner.interval.mrid
                    and _wins(winner, loser)
                    and _overlap(winner, loser)
                    and loser.effective_end > now
                ):
                    self._emit(
                        out, IntervalSuperseded(mrid=mrid, by=winner.interval.mrid, at_s=now)
                    )
                    self._respond(out, mrid, ResponseStatus.SUPERSEDED, now)
        # Rules 9 then 6, so a back-to-back pair reads "A completed, B started".
        for rec in self._live():
            if rec.effective_end <= now:
                mrid = rec.interval.mrid
                self._emit(out, IntervalCompleted(mrid=mrid, started=rec.started, at_s=now))
                self._respond(out, mrid, ResponseStatus.COMPLETED, now)
        for rec in sorted(self._live(), key=lambda r: (r.effective_start, r.interval.mrid)):
            if rec.state == SCHEDULED and rec.effective_start <= now:
                mrid = rec.interval.mrid
                self._emit(out, IntervalStarted(mrid=mrid, at_s=now))
                self._respond(out, mrid, ResponseStatus.STARTED, now)
        self._record_prices(out, now)

    def _record_prices(self, out: list[Event], now: float) -> None:
        active: dict[str, IntervalRecord] = {}
        for live in self._live():  # newest first: the newest active interval of a rate is in force
            if live.state == ACTIVE:
                active.setdefault(live.interval.rate_mrid, live)
        rates = sorted({*self.state.in_force, *active})
        for rate in rates:
            rec = active.get(rate)
            mrid = rec.interval.mrid if rec is not None else None
            if self.state.in_force.get(rate) == mrid:
                continue
            self._emit(
                out,
                PriceInForce(
                    rate_mrid=rate,
                    interval_mrid=mrid,
                    tou_tier=rec.interval.tou_tier if rec is not None else None,
                    blocks=rec.interval.blocks if rec is not None else (),
                    at_s=now,
                ),
            )

    # ------------------------------------------------------------------------------ Responses

    def responses_to_send(self) -> list[PriceResponseIntended]:
        return sorted(self.state.pending.values(), key=lambda r: (r.created_s, r.mrid, r.status))

    def response_acked(
        self, mrid: str, status: ResponseStatus, http_status: int, now: float
    ) -> list[Event]:
        out: list[Event] = []
        if _key(mrid, status) in self.state.pending:
            self._emit(
                out,
                PriceResponseAcked(mrid=mrid, status=status, http_status=http_status, at_s=now),
            )
        return out

    def response_failed(
        self,
        mrid: str,
        status: ResponseStatus,
        http_status: int | None,
        error: str,
        now: float,
    ) -> list[Event]:
        """§4 rule 16: a 4xx is refused for good; 5xx and network failures are retried."""
        out: list[Event] = []
        if _key(mrid, status) in self.state.pending:
            retry = http_status is None or http_status >= 500 or http_status == 429
            self._emit(
                out,
                PriceResponseFailed(
                    mrid=mrid,
                    status=status,
                    http_status=http_status,
                    retry=retry,
                    error=error,
                    at_s=now,
                ),
            )
        return out
