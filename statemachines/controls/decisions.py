"""The controls core: every DERControl's lifecycle, arbitration, defaults, ramps, Responses, comms loss.

Sans-IO and pure (PROTOCOL.md §4): inputs (programs, defaults, control lists, comms state, Response
outcomes) come in with ``now`` (server-clock epoch seconds) and a ``draw`` function for randomness; events
come out. The state changes **only** through :func:`statemachines.controls.fold.evolve` applied to those
events, so folding the log rebuilds it exactly (``fold(log, evolve, ControlsState()) == core.state``) and a
restart follows the persisted schedule and draws before the server is reachable (rule 13).

Actors call :meth:`ControlsCore.next_deadline` and :meth:`ControlsCore.handle_timer` (aioquic style).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Final, assert_never

import msgspec

from events.base import Event
from events.control_events import (
    NOT_SENT,
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
from events.der_model import (
    Control,
    ControlSettings,
    DefaultControl,
    EventStatus,
    Mode,
    Program,
    ResponseStatus,
)
from events.times import LATEST_S
from statemachines.arbitration import (
    MODE_FIELDS,
    Arbitration,
    Candidate,
    DefaultSupply,
    arbitrate,
    merge_defaults,
    rank,
    settings_items,
)
from statemachines.controls.fold import (
    ControlRecord,
    ControlsState,
    evolve_in_place,
    owned_copy,
)
from statemachines.lifecycle import (
    ACTIVE,
    RECEIVED,
    REMOVED,
    SCHEDULED,
)
from statemachines.ramps import Ramp, plan_ramp
from statemachines.responses import CORE_2018, ResponseProfile, should_send
from statemachines.site_limit import InvalidLimit, validate_limits

__all__ = [
    "Draw",
    "draw_signed",
    "NEAR_ADJACENT_S",
    "RECEIPT_STEP",
    "ControlsCore",
    "CoreConfig",
    "Draw",
    "content_differs",
    "ramps_ended",
]

Draw = Callable[[int, int], int]

#: Events whose specified start is at most this much after another's specified end are near-adjacent
#: (§4 rule 5): randomisation may open a gap between them, which we log.
NEAR_ADJACENT_S: Final = 60
#: Controls decided per step of a receipt (:meth:`ControlsCore.receive_controls_stepwise`): about
#: 5 ms of CPU on a gateway-class core, well inside the ~100 ms the event loop may be held (issue 15).
RECEIPT_STEP: Final = 100

_SERVER_STATUS_FIELDS: Final = frozenset(
    {"server_status", "status_time_s", "potentially_superseded", "href", "version", "description"}
)
_CONTENT_FIELDS: Final = tuple(
    f for f in Control.__struct_fields__ if f not in _SERVER_STATUS_FIELDS
)


class CoreConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Who we are and how we answer: our LFDI, our ``deviceCategory`` bitmap, the Response profile,
    the modes the device can carry out (``None``: all), ``setMaxW`` for ramps, and whether Response 2
    waits for the device to confirm the write (``confirm_writes``, §4 rule 6)."""

    lfdi: str
    device_category: int
    profile: ResponseProfile = CORE_2018
    supported_modes: frozenset[Mode] | None = None
    set_max_w: float | None = None
    confirm_writes: bool = False


def content_differs(old: Control, new: Control) -> bool:
    """§4 rule 1: identity is the mRID and its content must not change (server status may)."""
    return any(getattr(old, f) != getattr(new, f) for f in _CONTENT_FIELDS)


def _unusable_settings(settings: ControlSettings) -> str | None:
    """Why no DER could carry these settings out (a negative limit, a percentage beyond 100, …),
    or ``None`` (issue 15: a server value is refused where it enters, never where it is applied)."""
    try:
        validate_limits(settings)
    except InvalidLimit as exc:
        return str(exc)
    return None


def _unusable(c: Control) -> str | None:
    """Why a received control cannot be carried out (§4 rules 2 and 16: refused with 253, invalid
    event), or ``None``: a value no DER can apply, or an interval the gateway cannot represent
    (issue 15: time is total; :data:`events.times.LATEST_S`, year 9999)."""
    latest = c.specified_end_s + max(c.randomize_start_s, 0) + max(c.randomize_duration_s, 0)
    if latest > LATEST_S:
        return (
            f"interval start {c.start_s} + duration {c.duration_s} (with randomisation) ends "
            f"after {LATEST_S} (9999-12-31T23:59:59Z)"
        )
    return _unusable_settings(c.settings)


class ControlsCore:
    """The decision core of the controls actor. Each input method returns the events it decided,
    already applied to :attr:`state`; the actor appends them to the log before acting on them.

    The core owns :attr:`state`: it starts from a copy of the state it is given (which it never
    changes, so a replayed or shared state needs no defensive copy) and folds each event it emits
    into it in place (:func:`statemachines.controls.fold.evolve_in_place`), as a long replay does."""

    __slots__ = (
        "_by_end",
        "_by_mrid",
        "_by_start",
        "_candidates",
        "_deadlines",
        "_defaults",
        "_items",
        "_live_seq",
        "_next_change",
        "_seq",
        "config",
        "state",
    )

    def __init__(self, config: CoreConfig, state: ControlsState | None = None) -> None:
        self.config = config
        self.state = owned_copy(state) if state is not None else ControlsState()
        self._candidates: list[Candidate] | None = None
        # One Candidate per mRID, rebuilt only when an event about that mRID (or the programs) changes.
        self._by_mrid: dict[str, Candidate] = {}
        self._defaults: dict[Mode, DefaultSupply] | None = None
        # (mode, value) pairs per mRID: content never changes under an mRID (rule 1).
        self._items: dict[str, tuple[tuple[Mode, Any], ...]] = {}
        # When arbitration alone next changes what is in force (as of the last re-arbitration).
        self._next_change: float | None = self.state.next_change_s
        # Indexes by time (issue 19: a batch of N new controls costs O(N), not O(N²)): the mRIDs of
        # every record by the specified end and by the start of its control, each list in the order
        # the records were received; and each live mRID's place in the scheduling order of
        # ``state.live``. Derived from the state, kept in step by :meth:`_emit`.
        self._by_end: dict[int, list[str]] = {}
        self._by_start: dict[int, list[str]] = {}
        self._live_seq: dict[str, int] = {}
        self._seq = 0
        self._deadlines: list[tuple[float, str]] = []
        for record in self.state.records.values():
            self._index(record.control)
        for mrid in self.state.live:
            self._sync_live(mrid)

    # ----------------------------------------------------------------- plumbing
    def _emit(self, out: list[Event], event: Event) -> None:
        known = isinstance(event, ControlReceived) and event.control.mrid in self.state.records
        evolve_in_place(self.state, event)
        out.append(event)
        if isinstance(event, ResponseIntended | ResponseSent | ResponseAcked | ResponseFailed):
            return
        self._candidates = None
        mrid = getattr(event, "mrid", None)
        if mrid is not None:
            self._by_mrid.pop(mrid, None)
            self._sync_live(mrid)
        elif isinstance(event, ControlReceived):
            self._by_mrid.pop(event.control.mrid, None)
            if not known:
                self._index(event.control)
        elif isinstance(event, ProgramsChanged):
            self._by_mrid.clear()  # primacies, hence ranks, may have changed
        if isinstance(event, ProgramsChanged | DefaultChanged):
            self._defaults = None

    def _index(self, c: Control) -> None:
        self._by_end.setdefault(c.specified_end_s, []).append(c.mrid)
        self._by_start.setdefault(c.start_s, []).append(c.mrid)

    def _sync_live(self, mrid: str) -> None:
        """Mirror ``state.live``'s order: a place when an mRID enters it, kept while it stays; and
        the live event's deadline as it is now (older entries of the heap go stale, see
        :meth:`next_deadline`)."""
        if mrid in self.state.live:
            if mrid not in self._live_seq:
                self._live_seq[mrid] = self._seq
                self._seq += 1
            heapq.heappush(self._deadlines, (_deadline(self.state.records[mrid]), mrid))
            if len(self._deadlines) > 2 * len(self._live_seq) + 64:
                records = self.state.records
                self._deadlines = [(_deadline(records[m]), m) for m in self._live_seq]
                heapq.heapify(self._deadlines)
        else:
            self._live_seq.pop(mrid, None)

    def _live_in_order(self, mrids: Iterable[str]) -> list[ControlRecord]:
        """The live records among ``mrids``, in scheduling order (as :meth:`_live` lists them)."""
        seq = self._live_seq
        records = self.state.records
        return [records[m] for m in sorted({m for m in mrids if m in seq}, key=seq.__getitem__)]

    def _primacy(self, program_id: str) -> int:
        program = self.state.programs.get(program_id)
        # An event of a program we no longer reference is removed at once, so this never decides.
        return program.primacy if program is not None else 1 << 30

    def _rank(self, rec: ControlRecord) -> tuple[int, int, str]:
        c = rec.control
        return rank(self._primacy(c.program_id), c.creation_time_s, c.mrid)

    def _live(self) -> list[ControlRecord]:
        """Scheduled and active events, in scheduling order (a snapshot: safe to emit while iterating)."""
        records = self.state.records
        return [records[mrid] for mrid in self.state.live]

    def candidates(self) -> list[Candidate]:
        """The scheduled and active events as arbitration sees them (cached until the next event
        that can change them; callers must not mutate the list)."""
        if self._candidates is None:
            by_mrid = self._by_mrid
            records = self.state.records
            candidates = []
            for mrid in self.state.live:
                candidate = by_mrid.get(mrid)
                if candidate is None:
                    r = records[mrid]
                    candidate = by_mrid[mrid] = Candidate(
                        mrid,
                        self._rank(r),
                        r.effective_start_s,
                        r.end_s,
                        self._items_of(r.control),
                        r.lost,
                    )
                candidates.append(candidate)
            self._candidates = candidates
        return self._candidates

    def _items_of(self, c: Control) -> tuple[tuple[Mode, Any], ...]:
        items = self._items.get(c.mrid)
        if items is None:
            items = self._items[c.mrid] = settings_items(c.settings)
        return items

    def defaults(self) -> dict[Mode, DefaultSupply]:
        if self._defaults is None:
            self._defaults = merge_defaults(self.state.programs.values(), self.state.defaults)
        return self._defaults

    def arbitration(self, now: float) -> Arbitration:
        """§4 rules 7 and 10: what is in force at ``now`` and who supplies it."""
        return arbitrate(self.candidates(), self.defaults(), now)

    def next_change(self) -> float | None:
        """When what is in force next changes by arbitration alone (§4 rules 7, 10), as of the last
        re-arbitration. Usually a start or an end :meth:`next_deadline` has too — but not when the
        server's clock stepped back (PROTOCOL.md §2.2) so that an event already active starts again
        ahead: it must come back into force then (a timer at this instant re-arbitrates)."""
        return self._next_change

    def next_deadline(self) -> float | None:
        """The next instant a start, an end or a drawn cancel falls due (§4 rules 6, 8, 9)."""
        # The top of a heap of (deadline, mRID) whose stale entries (an event no longer live, or
        # whose deadline moved since) are dropped as they surface: O(log N), not a scan (issue 19).
        heap, live, records = self._deadlines, self.state.live, self.state.records
        while heap:
            t, mrid = heap[0]
            if mrid in live and _deadline(records[mrid]) == t:
                return t
            heapq.heappop(heap)
        return None

    def responses_to_send(self) -> list[ResponseIntended]:
        """§4 rule 12: queued Responses go out only while the server is reachable."""
        return list(self.state.outbox) if self.state.online else []

    # ----------------------------------------------------------------- responses
    def _respond(
        self, out: list[Event], rec: ControlRecord, status: ResponseStatus, now: float
    ) -> None:
        """§4 rule 16: intend a Response if the profile, ``responseRequired`` and the sequence allow.

        Never for an event that is not ours (rule 14) or whose program is gone (rule 4)."""
        if rec.state == REMOVED:
            return
        c = rec.control
        sent = self.state.responses.get(c.mrid, ())
        if not should_send(self.config.profile, c.response_required, sent, status):
            return
        self._emit(
            out,
            ResponseIntended(
                mrid=c.mrid,
                status=status,
                lfdi=self.config.profile.lfdi(self.config.lfdi),
                reply_to=c.reply_to,
                created_s=int(now),
                at_s=now,
            ),
        )
        if not c.reply_to:
            # Nothing can be sent: recorded as such, with no HTTP status nobody answered.
            self._emit(
                out,
                ResponseFailed(
                    mrid=c.mrid,
                    status=status,
                    http_status=None,
                    retry=False,
                    at_s=now,
                    undeliverable=NOT_SENT,
                ),
            )

    def response_sent(self, mrid: str, status: ResponseStatus, now: float) -> list[Event]:
        out: list[Event] = []
        self._emit(out, ResponseSent(mrid=mrid, status=status, at_s=now))
        return out

    def response_acked(
        self, mrid: str, status: ResponseStatus, http_status: int, now: float
    ) -> list[Event]:
        out: list[Event] = []
        self._emit(out, ResponseAcked(mrid=mrid, status=status, http_status=http_status, at_s=now))
        return out

    def response_failed(
        self,
        mrid: str,
        status: ResponseStatus,
        http_status: int | None,
        now: float,
        *,
        undeliverable: str | None = None,
    ) -> list[Event]:
        """§4 rule 16: retried on 5xx and network errors (``http_status`` None), never on 4xx,
        and never when there is nowhere to send it (``undeliverable``)."""
        retry = undeliverable is None and (http_status is None or http_status >= 500)
        out: list[Event] = []
        self._emit(
            out,
            ResponseFailed(
                mrid=mrid,
                status=status,
                http_status=http_status,
                retry=retry,
                at_s=now,
                undeliverable=undeliverable,
            ),
        )
        return out

    # ----------------------------------------------------------------- comms
    def comms_lost(self, now: float, draw: Draw, reason: str = "") -> list[Event]:
        """§4 rule 12: keep executing the known schedule, then the default; Responses queue.
        ``reason``: the link failure, recorded so the log says why comms were lost."""
        out: list[Event] = []
        if self.state.online:
            self._emit(out, CommsLost(at_s=now, reason=reason))
        self._advance(out, now, draw)
        return out

    def comms_restored(self, now: float, draw: Draw) -> list[Event]:
        """§4 rule 12: the queue is released (:meth:`responses_to_send`); the actor re-polls."""
        out: list[Event] = []
        if not self.state.online:
            self._emit(out, CommsRestored(at_s=now))
        self._advance(out, now, draw)
        return out

    # ----------------------------------------------------------------- programs and defaults
    def receive_programs(self, programs: Sequence[Program], now: float, draw: Draw) -> list[Event]:
        """§2.6 and §4 rule 4: the programs our FSAs reference now. Events of a program that is no
        longer referenced stop applying at once, silently (no Response)."""
        out: list[Event] = []
        new = tuple(sorted(programs, key=lambda p: p.program_id))
        old = tuple(sorted(self.state.programs.values(), key=lambda p: p.program_id))
        if new != old:
            self._emit(out, ProgramsChanged(programs=new, at_s=now))
            for rec in self._live():
                if rec.control.program_id not in self.state.programs:
                    self._emit(
                        out,
                        ControlRemoved(
                            mrid=rec.control.mrid, program_id=rec.control.program_id, at_s=now
                        ),
                    )
        self._advance(out, now, draw)
        return out

    def receive_default(
        self, program_id: str, default: DefaultControl | None, now: float, draw: Draw
    ) -> list[Event]:
        """§4 rule 10: a new, changed or vanished DefaultDERControl applies at once.

        Issue 15 (no server value fails an actor): a default carrying a value no DER can carry out
        (:func:`statemachines.site_limit.validate_limits`) is not adopted: it is recorded once as
        ``DefaultRefused`` with the reason, and the default in force stays until a usable one (or
        none) arrives."""
        out: list[Event] = []
        unusable = None if default is None else _unusable_settings(default.settings)
        if program_id not in self.state.programs:
            pass
        elif unusable is not None and default is not None:
            if self.state.refused_defaults.get(program_id) != default:
                self._emit(
                    out,
                    DefaultRefused(
                        program_id=program_id, received=default, reason=unusable, at_s=now
                    ),
                )
        elif self.state.defaults.get(program_id) != default:
            self._emit(out, DefaultChanged(program_id=program_id, default=default, at_s=now))
        self._advance(out, now, draw)
        return out

    # ----------------------------------------------------------------- controls
    def receive_controls(
        self, program_id: str, controls: Sequence[Control], now: float, draw: Draw
    ) -> list[Event]:
        """One poll of a program's DERControlList. Absent mRIDs are *not* cancelled (§4 rule 4)."""
        steps = self.receive_controls_stepwise(program_id, controls, now, draw)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                events: list[Event] = done.value
                return events

    def receive_controls_stepwise(
        self,
        program_id: str,
        controls: Sequence[Control],
        now: float,
        draw: Draw,
        *,
        step: int = RECEIPT_STEP,
    ) -> Generator[None, None, list[Event]]:
        """:meth:`receive_controls` in bounded steps (issue 15 point 3: a program of thousands of
        controls never stalls the event loop): it yields after every ``step`` controls, so the
        caller can let other tasks run, and returns the events when done. The decisions are those
        of one call: every control is received at the same ``now``, and what is in force is worked
        out once, after the last (§4 rule 4: one poll is one view of the list). Nothing else may
        use the core until it returns."""
        if step < 1:
            raise ValueError(f"receipt step must be at least 1 control, not {step}")
        out: list[Event] = []
        if program_id in self.state.programs:
            for i, control in enumerate(controls):
                if i and not i % step:
                    yield
                if control.program_id != program_id:
                    raise ValueError(
                        f"control {control.mrid} names program {control.program_id!r} but was "
                        f"listed under {program_id!r}"
                    )
                rec = self.state.records.get(control.mrid)
                if rec is None:
                    self._receive_new(out, control, now, draw)
                else:
                    self._receive_known(out, rec, control, now, draw)
        self._advance(out, now, draw)
        return out

    def _receive_new(self, out: list[Event], c: Control, now: float, draw: Draw) -> None:
        self._emit(out, ControlReceived(control=c, at_s=now))
        rec = self.state.records[c.mrid]
        if c.device_category is not None and not c.device_category & self.config.device_category:
            # §4 rule 14: neither applied nor answered.
            self._emit(
                out, ControlIgnored(mrid=c.mrid, reason=IgnoreReason.DEVICE_CATEGORY, at_s=now)
            )
            return
        if c.specified_end_s <= now:
            self._ignore_expired(out, rec, now)
            return
        if c.duration_s <= 0 or not rec.modes:
            self._reject(out, rec, ResponseStatus.INVALID_EVENT, "no duration or no mode", now)
            return
        unusable = _unusable(c)
        if unusable is not None:
            self._reject(out, rec, ResponseStatus.INVALID_EVENT, unusable, now)
            return
        supported = self.config.supported_modes
        if supported is not None and not rec.modes & supported:
            self._reject(out, rec, ResponseStatus.NOT_APPLICABLE, "no supported mode", now)
            return
        rho_s = draw_signed(draw, c.randomize_start_s)
        rho_d = draw_signed(draw, c.randomize_duration_s)
        if c.randomize_start_s or c.randomize_duration_s:
            self._emit(
                out,
                RandomizationDrawn(
                    mrid=c.mrid, start_offset_s=rho_s, duration_offset_s=rho_d, at_s=now
                ),
            )
        start, adjacent = self._effective_start(c, rho_s)
        end = _effective_end(start, c.duration_s, rho_d)
        if end <= now:
            self._ignore_expired(out, rec, now)
            return
        self._emit(
            out,
            ControlScheduled(
                mrid=c.mrid,
                effective_start_s=start,
                effective_end_s=end,
                adjacent_to=adjacent,
                at_s=now,
            ),
        )
        self._respond(out, rec, ResponseStatus.RECEIVED, now)
        self._items_of(c)  # its arbitration items now, not all at once when a big receipt ends
        self._pin_followers(out, rec, now)
        self._log_gaps(out, rec, now)
        if c.server_status is not EventStatus.SCHEDULED:
            self._server_status(out, rec, c.server_status, now, draw)

    def _ignore_expired(self, out: list[Event], rec: ControlRecord, now: float) -> None:
        """§4 rule 3: specified end ≤ now on receipt: ignore; 254 if the profile says so."""
        mrid = rec.control.mrid
        self._emit(out, ControlIgnored(mrid=mrid, reason=IgnoreReason.EXPIRED_ON_RECEIPT, at_s=now))
        if self.config.profile.received_late_on_expiry:
            self._respond(out, rec, ResponseStatus.RECEIVED_LATE, now)

    def _reject(
        self, out: list[Event], rec: ControlRecord, status: ResponseStatus, why: str, now: float
    ) -> None:
        self._emit(out, ControlRejected(mrid=rec.control.mrid, status=status, reason=why, at_s=now))
        self._respond(out, rec, status, now)

    def _effective_start(self, c: Control, rho_s: int) -> tuple[int, str | None]:
        """§4 rule 5 (adjacency): if an event sharing a mode ends (specified) exactly where this one
        starts, this one starts at that event's *effective* end, with no randomisation gap."""
        before = self._adjacent_before(c)
        if before is not None:
            return before.effective_end_s, before.control.mrid
        return c.start_s + rho_s, None

    def _adjacent_before(self, c: Control) -> ControlRecord | None:
        """The scheduled (or once scheduled) event sharing a mode whose specified end is ``c``'s start,
        the latest-ending one if several (the first received among equals): a look-up by end."""
        modes = c.settings.modes()
        found: ControlRecord | None = None
        records = self.state.records
        for mrid in self._by_end.get(c.start_s, ()):
            rec = records[mrid]
            if (
                mrid != c.mrid
                and rec.state not in (RECEIVED, "ignored", "rejected", REMOVED)
                and rec.modes & modes
                and (found is None or rec.effective_end_s > found.effective_end_s)
            ):
                found = rec
        return found

    def _pin_followers(self, out: list[Event], rec: ControlRecord, now: float) -> None:
        """§4 rule 5, the other way round: a newly known event may pin a follower not yet started,
        and a follower whose effective end moved pins its own follower in turn, down the chain (a
        back-to-back series received out of order must end up exactly as if received in order).
        Terminates: each link starts strictly later (durations are positive)."""
        pending = [rec]
        while pending:
            pred = pending.pop()
            end = pred.control.specified_end_s
            for follower in self._live_in_order(self._by_start.get(end, ())):
                fc = follower.control
                if (
                    follower.state != SCHEDULED
                    or fc.start_s != end
                    or not follower.modes & pred.modes
                ):
                    continue
                start, adjacent = self._effective_start(fc, follower.start_offset_s)
                if start != follower.effective_start_s:
                    self._emit(
                        out,
                        ControlScheduled(
                            mrid=fc.mrid,
                            effective_start_s=start,
                            effective_end_s=_effective_end(
                                start, fc.duration_s, follower.duration_offset_s
                            ),
                            adjacent_to=adjacent,
                            at_s=now,
                        ),
                    )
                    pending.append(follower)

    def _log_gaps(self, out: list[Event], rec: ControlRecord, now: float) -> None:
        """§4 rule 5: near-adjacent events whose effective periods leave a gap fall back to the
        default in between; record the gap so the fallback is explained. Only consecutive events
        count: an event starting in between makes the pair not near-adjacent."""
        modes = rec.modes
        start, end = rec.control.start_s, rec.control.specified_end_s
        # Look-ups, not scans (issue 19): a near-adjacent partner ends within NEAR_ADJACENT_S
        # before this one starts, or starts within NEAR_ADJACENT_S after it ends.
        near = [m for t in range(start - NEAR_ADJACENT_S, start) for m in self._by_end.get(t, ())]
        near += [
            m for t in range(end + 1, end + NEAR_ADJACENT_S + 1) for m in self._by_start.get(t, ())
        ]
        for other in self._live_in_order(near):
            if other is rec or not other.modes & modes:
                continue
            for first, second in ((other, rec), (rec, other)):
                gap_from, gap_to = first.control.specified_end_s, second.control.start_s
                if (
                    0 < gap_to - gap_from <= NEAR_ADJACENT_S
                    and first.effective_end_s < second.effective_start_s
                    and not self._starts_between(gap_from, gap_to, modes, first, second)
                ):
                    self._emit(
                        out,
                        ControlGap(
                            before=first.control.mrid,
                            after=second.control.mrid,
                            start_s=first.effective_end_s,
                            end_s=second.effective_start_s,
                            modes=tuple(sorted(first.modes & second.modes)),
                            at_s=now,
                        ),
                    )

    def _starts_between(
        self,
        gap_from: int,
        gap_to: int,
        modes: frozenset[Mode],
        first: ControlRecord,
        second: ControlRecord,
    ) -> bool:
        """Whether a live event sharing one of ``modes``, other than the pair, starts in
        [gap_from, gap_to) (at most NEAR_ADJACENT_S look-ups by start)."""
        records, live = self.state.records, self._live_seq
        for t in range(gap_from, gap_to):
            for mrid in self._by_start.get(t, ()):
                r = records[mrid]
                if mrid in live and r.modes & modes and r is not first and r is not second:
                    return True
        return False

    def _receive_known(
        self, out: list[Event], rec: ControlRecord, c: Control, now: float, draw: Draw
    ) -> None:
        """§4 rules 1 and 8: the same mRID again. Content changes are a server fault (logged once
        per distinct content, the first plan stands); a status change is acted on, also when it
        arrives with (or after) changed content: the status is not content, and a utility that
        edited an event and then cancels it must see it stop."""
        if content_differs(rec.control, c) and (rec.fault is None or content_differs(rec.fault, c)):
            self._emit(
                out,
                ServerFault(
                    mrid=c.mrid,
                    reason="content changed under the same mRID",
                    received=c,
                    at_s=now,
                ),
            )
        if c.server_status != rec.server_status:
            self._emit(out, ServerStatusSeen(mrid=c.mrid, status=c.server_status, at_s=now))
            self._server_status(out, rec, c.server_status, now, draw)

    def _server_status(
        self, out: list[Event], rec: ControlRecord, status: EventStatus, now: float, draw: Draw
    ) -> None:
        """§4 rule 8: act on ``EventStatus.currentStatus``."""
        if rec.state not in (SCHEDULED, ACTIVE):
            return
        mrid = rec.control.mrid
        match status:
            case EventStatus.SCHEDULED | EventStatus.ACTIVE:
                pass  # informational: we follow our own (server) clock, rule 6
            case EventStatus.CANCELLED:
                self._cancel(out, rec, status, now)
            case EventStatus.CANCELLED_WITH_RANDOMIZATION:
                if rec.state == SCHEDULED or rec.cancel_at_s is not None:
                    if rec.cancel_at_s is None:
                        self._cancel(out, rec, status, now)
                    return
                bound = max(
                    abs(rec.control.randomize_start_s), abs(rec.control.randomize_duration_s)
                )
                delay = draw(0, bound) if bound else 0
                if delay:
                    self._emit(out, CancelDelayDrawn(mrid=mrid, delay_s=delay, at_s=now))
                else:
                    self._cancel(out, rec, status, now)
            case EventStatus.SUPERSEDED:
                # 2018 servers: treat as our own supersession (7), by the server.
                lost = tuple(sorted(rec.modes - rec.lost))
                self._emit(
                    out,
                    ControlSuperseded(
                        mrid=mrid, by="server", modes_lost=lost, fully=True, at_s=now
                    ),
                )
                self._respond(out, rec, ResponseStatus.SUPERSEDED, now)
            case EventStatus.COMPLETED:
                started = rec.started
                self._emit(out, ControlCompleted(mrid=mrid, by_server=True, at_s=now))
                if started:
                    self._respond(out, rec, ResponseStatus.COMPLETED, now)
            case _:
                assert_never(status)

    def _cancel(
        self, out: list[Event], rec: ControlRecord, status: EventStatus, now: float
    ) -> None:
        """§4 rule 8: stop now; Response 6, also for an event that never started."""
        self._emit(out, ControlCancelled(mrid=rec.control.mrid, server_status=status, at_s=now))
        self._respond(out, rec, ResponseStatus.CANCELLED, now)

    # ----------------------------------------------------------------- time
    def handle_timer(self, now: float, draw: Draw) -> list[Event]:
        """Carry out every start, end and drawn cancel due at or before ``now``, in time order."""
        out: list[Event] = []
        self._advance(out, now, draw)
        return out

    def _advance(self, out: list[Event], now: float, draw: Draw) -> None:
        del draw  # timers never draw: every draw was made (and recorded) on receipt or cancel
        while True:
            due = self.next_deadline()
            if due is None or due > now:
                break
            # Ends before starts at the same instant: periods are half-open.
            for rec in sorted(self._live(), key=lambda r: r.control.mrid):
                if rec.state == ACTIVE and rec.end_s <= due:
                    self._end(out, rec, now)
            # §4 rule 7: an event discovered inside the period of a running event that outranks it
            # on all its modes is superseded before it starts (1 then 7, never started).
            self._supersede_pass(out, now)
            starting = [
                r for r in self._live() if r.state == SCHEDULED and r.effective_start_s <= due
            ]
            for rec in sorted(starting, key=self._rank, reverse=True):
                if rec.state != SCHEDULED:
                    continue  # superseded by an event that started before it in this batch
                if rec.end_s <= now:
                    # Its whole period passed while we could not act (a restart): it never ran.
                    self._emit(out, ControlCompleted(mrid=rec.control.mrid, at_s=now))
                    continue
                self._start(out, rec, now)
                self._supersede_pass(out, now)
        self._supersede_pass(out, now)
        self._rearbitrate(out, now)

    def _start(self, out: list[Event], rec: ControlRecord, now: float) -> None:
        """§4 rule 6: activate at effective start (or at once when discovered inside the period),
        then Response 2."""
        late = rec.received_s > rec.effective_start_s
        self._emit(
            out,
            ControlStarted(
                mrid=rec.control.mrid,
                late=late,
                awaiting_write=self.config.confirm_writes,
                at_s=now,
            ),
        )

    def _end(self, out: list[Event], rec: ControlRecord, now: float) -> None:
        mrid = rec.control.mrid
        if rec.cancel_at_s is not None and rec.cancel_at_s <= rec.effective_end_s:
            self._cancel(out, rec, EventStatus.CANCELLED_WITH_RANDOMIZATION, now)
            return
        # §4 rule 9: completion at effective end; 3 only because it started.
        self._emit(out, ControlCompleted(mrid=mrid, at_s=now))
        self._respond(out, rec, ResponseStatus.COMPLETED, now)

    def _supersede_pass(self, out: list[Event], now: float) -> None:
        """§4 rule 7, per mode and across programs.

        An active event W supersedes, on the modes both still hold, every scheduled or active event
        L whose effective period intersects W's and which W outranks (lower primacy, then later
        creationTime). Winners are taken in rank order so a winner that itself loses a mode no
        longer claims it. L is superseded only when it has lost every mode; its 7 is sent now, at
        W's start (or at L's receipt if W had already started); a lost mode never comes back.
        """
        active = sorted(
            (r for r in self._live() if r.state == ACTIVE), key=self._rank, reverse=True
        )
        if not active:
            return
        live = self._live()
        for winner in active:
            if winner.state != ACTIVE:
                continue
            w_rank = self._rank(winner)
            w_start, w_end = winner.effective_start_s, winner.end_s
            for loser in live:
                if loser is winner or loser.state not in (SCHEDULED, ACTIVE):
                    continue
                if loser.effective_start_s >= w_end or w_start >= loser.end_s:
                    continue
                common = (winner.modes - winner.lost) & (loser.modes - loser.lost)
                if not common or self._rank(loser) >= w_rank:
                    continue
                fully = loser.lost | common == loser.modes
                self._emit(
                    out,
                    ControlSuperseded(
                        mrid=loser.control.mrid,
                        by=winner.control.mrid,
                        modes_lost=tuple(sorted(common)),
                        fully=fully,
                        at_s=now,
                    ),
                )
                if fully:
                    self._respond(out, loser, ResponseStatus.SUPERSEDED, now)

    def _rearbitrate(self, out: list[Event], now: float) -> None:
        """Record the limits in force whenever they (or their suppliers) change; plan ramps."""
        arb = self.arbitration(now)
        self._next_change = arb.next_change_s
        settings = arb.settings()
        if settings != self.state.settings or arb.sources != self.state.sources:
            self._plan_ramps(out, self.state.settings, settings, arb.sources, now)
            nxt = None if arb.next_change_s is None else int(arb.next_change_s)
            self._emit(
                out,
                LimitsInForceChanged(
                    settings=settings,
                    sources=arb.sources,
                    next_change_s=nxt,
                    ramps_ended=ramps_ended(self.state.ramps, settings),
                    at_s=now,
                ),
            )
        self._respond_started(out, now)

    def _respond_started(self, out: list[Event], now: float) -> None:
        """§4 rule 6: "apply, then Response 2": the 2 follows the limits-in-force record."""
        for event in list(out):
            if isinstance(event, ControlStarted):
                rec = self.state.records[event.mrid]
                if rec.state == ACTIVE and not rec.awaiting_write:
                    self._respond(out, rec, ResponseStatus.STARTED, now)

    def device_write_result(
        self, ok: bool, now: float, draw: Draw, detail: str = ""
    ) -> list[Event]:
        """§4 rule 6: with ``confirm_writes``, the device's verdict on the limits that started events.

        Accepted: Response 2 for each. Refused: each is rejected with 252 instead of 2, stops, and
        the modes fall back to what else is in force."""
        out: list[Event] = []
        waiting = tuple(
            sorted(r.control.mrid for r in self._live() if r.state == ACTIVE and r.awaiting_write)
        )
        if not waiting:
            self._advance(out, now, draw)
            return out
        self._emit(out, DeviceWriteResult(mrids=waiting, ok=ok, detail=detail, at_s=now))
        for mrid in waiting:
            rec = self.state.records[mrid]
            if ok:
                self._respond(out, rec, ResponseStatus.STARTED, now)
            else:
                why = (
                    f"device refused the write: {detail}" if detail else "device refused the write"
                )
                self._reject(out, rec, ResponseStatus.NOT_APPLICABLE, why, now)
        self._advance(out, now, draw)
        return out

    def _plan_ramps(
        self,
        out: list[Event],
        old: ControlSettings,
        new: ControlSettings,
        sources: dict[Mode, str],
        now: float,
    ) -> None:
        """§4 rule 11: ramp each power-valued change at ``rampTms`` of the event now supplying the
        mode, else at the ``setGradW`` of the defaults in force. A change during a ramp starts from
        where the trajectory is now, never from its old target (no jump)."""
        grad = self._grad_in_force()
        for mode, name in MODE_FIELDS:
            before, after = getattr(old, name), getattr(new, name)
            if before == after:
                continue
            running = self.state.ramps.get(mode)
            if running is not None and before is not None and now < running.end_s:
                before = _ramp_of(running).value_at(now)
            ramp = plan_ramp(
                mode,
                before,
                after,
                now,
                set_max_w=self.config.set_max_w,
                set_grad_w=grad,
                ramp_time_s=self._ramp_time(sources.get(mode)),
            )
            if ramp is not None:
                self._emit(
                    out,
                    RampPlanned(
                        mode=mode,
                        from_value=ramp.from_value,
                        to_value=ramp.to_value,
                        start_s=ramp.start_s,
                        end_s=ramp.end_s,
                        at_s=now,
                    ),
                )

    def _grad_in_force(self) -> int | None:
        for program in sorted(
            self.state.programs.values(), key=lambda p: (p.primacy, p.program_id)
        ):
            default = self.state.defaults.get(program.program_id)
            if default is not None and default.set_grad_w is not None:
                return default.set_grad_w
        return None

    def _ramp_time(self, source: str | None) -> float | None:
        """The ``rampTms`` (in seconds) of the event supplying a mode; defaults carry none."""
        if source is None or not source.startswith("control:"):
            return None
        return self.state.records[source.removeprefix("control:")].control.settings.ramp_time_s


def ramps_ended(ramps: Mapping[Mode, RampPlanned], settings: ControlSettings) -> tuple[Mode, ...]:
    """§4 rule 11: a ramp leads to the value in force. One towards another value is over: the mode
    changed since without a ramp of its own (a ramped control ended and the default has no
    setGradW), and its end point must not stand in for the new value. Decided with the limits in
    force and recorded in them (``LimitsInForceChanged.ramps_ended``): the fold only applies it."""
    return tuple(sorted(m for m, r in ramps.items() if r.to_value != getattr(settings, m.value)))


def _ramp_of(event: RampPlanned) -> Ramp:
    return Ramp(
        mode=event.mode,
        from_value=event.from_value,
        to_value=event.to_value,
        start_s=event.start_s,
        end_s=event.end_s,
    )


def _deadline(rec: ControlRecord) -> float:
    """When a live event next falls due: its start while scheduled, else its end."""
    return rec.effective_start_s if rec.state == SCHEDULED else rec.end_s


def _effective_end(start: int, duration: int, rho_d: int) -> int:
    """§4 preamble: effective end = effective start + duration + ρd. A negative randomizeDuration
    larger than the duration would put the end before the start (and pin an adjacent follower
    before its predecessor): the period is then empty, never negative."""
    return max(start, start + duration + rho_d)


def draw_signed(draw: Draw, bound: int) -> int:
    """ρ drawn uniformly from [0, bound], keeping the sign of a negative bound (§4 preamble)."""
    if bound == 0:
        return 0
    return draw(min(0, bound), max(0, bound))
