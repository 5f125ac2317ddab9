"""The controls fold: the state the controls core decides on, and :func:`evolve`, the only way it changes.

Folding the log with :func:`evolve` rebuilds the state the live core had (``fold(log, evolve,
ControlsState()) == core.state``); the decisions that emit the events live in
:mod:`statemachines.controls.decisions`.
"""

from __future__ import annotations

import copy
from typing import Final

import msgspec

from events.base import Event
from events.control_events import (
    CONTROL_EVENT_TYPES,
    CancelDelayDrawn,
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
    DeviceWriteResult,
    LimitsInForceChanged,
    ProgramsChanged,
    RampPlanned,
    RandomizationDrawn,
    ResponseAcked,
    ResponseFailed,
    ResponseIntended,
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
from events.replay import Projection
from statemachines.lifecycle import (
    LIFECYCLE,
    RECEIVED,
)

__all__ = [
    "CONTROLS_PROJECTION",
    "ControlRecord",
    "ControlsState",
    "evolve",
    "evolve_in_place",
    "owned_copy",
]


class ControlRecord(msgspec.Struct, kw_only=True):
    """One event as the core knows it; the slotted model of the shared lifecycle Machine."""

    state: str = RECEIVED
    control: Control
    received_s: float
    server_status: EventStatus = EventStatus.SCHEDULED
    start_offset_s: int = 0
    duration_offset_s: int = 0
    effective_start_s: int = 0
    effective_end_s: int = 0
    adjacent_to: str | None = None
    modes: frozenset[Mode] = frozenset()
    lost: frozenset[Mode] = frozenset()
    cancel_at_s: float | None = None
    started: bool = False
    awaiting_write: bool = False
    fault: Control | None = None

    @property
    def end_s(self) -> float:
        """Where the event stops: its effective end, or earlier at a drawn cancel instant."""
        if self.cancel_at_s is not None and self.cancel_at_s < self.effective_end_s:
            return self.cancel_at_s
        return self.effective_end_s


class ControlsState(msgspec.Struct, kw_only=True):
    """Everything the core knows; equal to the fold of the events it emitted."""

    programs: dict[str, Program] = msgspec.field(default_factory=dict)
    defaults: dict[str, DefaultControl] = msgspec.field(default_factory=dict)
    records: dict[str, ControlRecord] = msgspec.field(default_factory=dict)
    #: mRIDs of scheduled and active events, in the order they were scheduled (an index: the
    #: decisions iterate it instead of every record ever received).
    live: dict[str, None] = msgspec.field(default_factory=dict)
    responses: dict[str, list[ResponseStatus]] = msgspec.field(default_factory=dict)
    outbox: list[ResponseIntended] = msgspec.field(default_factory=list)
    online: bool = True
    settings: ControlSettings = msgspec.field(default_factory=ControlSettings)
    sources: dict[Mode, str] = msgspec.field(default_factory=dict)
    next_change_s: int | None = None
    ramps: dict[Mode, RampPlanned] = msgspec.field(default_factory=dict)
    #: The last default each program sent that could not be carried out (recorded once).
    refused_defaults: dict[str, DefaultControl] = msgspec.field(default_factory=dict)


def _record(state: ControlsState, mrid: str) -> ControlRecord:
    return state.records[mrid]


def evolve(state: ControlsState, event: Event) -> ControlsState:
    """The state after ``event``: the only way the state changes. Pure: ``state`` is left as it was
    (issue 17), so the projection's initial, a captured instant or a snapshot can be shared.

    Copy-on-write: a new :class:`ControlsState` whose containers the event changes are shallow
    copies, with a copy of each :class:`ControlRecord` it changes; everything else is shared. An
    event the fold does not apply returns ``state`` itself. A copy of ``records`` is O(records): a
    long fold goes through :func:`owned_copy` and :func:`evolve_in_place` instead (one copy in all).
    """
    copied = _CHANGES.get(type(event))
    if copied is None:
        return state
    new = msgspec.structs.replace(state)
    for name in copied:
        setattr(new, name, copy.copy(getattr(state, name)))
    if "records" in copied:
        records = new.records
        for mrid in _mrids(event):
            if mrid in records:
                records[mrid] = copy.copy(records[mrid])
    return evolve_in_place(new, event)


def owned_copy(state: ControlsState) -> ControlsState:
    """A copy of ``state`` that :func:`evolve_in_place` may change: every container and record is
    its own, nothing is shared with ``state`` but immutable values (no JSON round trip)."""
    return msgspec.structs.replace(
        state,
        programs=dict(state.programs),
        defaults=dict(state.defaults),
        records={mrid: copy.copy(rec) for mrid, rec in state.records.items()},
        live=dict(state.live),
        responses=dict(state.responses),
        outbox=list(state.outbox),
        sources=dict(state.sources),
        ramps=dict(state.ramps),
        refused_defaults=dict(state.refused_defaults),
    )


def evolve_in_place(state: ControlsState, event: Event) -> ControlsState:
    """:func:`evolve` applied to ``state`` itself, which it returns: only for a state its caller
    owns (from :func:`owned_copy`, or one it built), such as the live core's or a long replay's.
    The one definition of what each event does; :func:`evolve` copies what it changes first."""
    if type(event) not in _CHANGES:
        return state  # another machine's event (or a forensic one): the fold skips it
    match event:
        case ControlReceived(control=control, at_s=at_s):
            state.records[control.mrid] = ControlRecord(
                control=control,
                received_s=at_s,
                server_status=control.server_status,
                modes=control.settings.modes(),
            )
        case RandomizationDrawn(mrid=mrid):
            rec = _record(state, mrid)
            rec.start_offset_s = event.start_offset_s
            rec.duration_offset_s = event.duration_offset_s
        case ControlScheduled(mrid=mrid):
            rec = _record(state, mrid)
            LIFECYCLE.fire(rec, "schedule" if rec.state == RECEIVED else "reschedule")
            state.live[mrid] = None
            rec.effective_start_s = event.effective_start_s
            rec.effective_end_s = event.effective_end_s
            rec.adjacent_to = event.adjacent_to
        case ControlStarted(mrid=mrid):
            rec = _record(state, mrid)
            LIFECYCLE.fire(rec, "start")
            rec.started = True
            rec.awaiting_write = event.awaiting_write
        case DeviceWriteResult(mrids=mrids, ok=ok):
            if ok:
                for mrid in mrids:
                    _record(state, mrid).awaiting_write = False
        case ControlSuperseded(mrid=mrid):
            rec = _record(state, mrid)
            rec.lost = rec.lost | frozenset(event.modes_lost)
            if event.fully:
                LIFECYCLE.fire(rec, "supersede")
                state.live.pop(mrid, None)
        case CancelDelayDrawn(mrid=mrid):
            _record(state, mrid).cancel_at_s = event.at_s + event.delay_s
        case ControlCancelled(mrid=mrid):
            LIFECYCLE.fire(_record(state, mrid), "cancel")
            state.live.pop(mrid, None)
        case ControlCompleted(mrid=mrid):
            LIFECYCLE.fire(_record(state, mrid), "complete")
            state.live.pop(mrid, None)
        case ControlIgnored(mrid=mrid):
            LIFECYCLE.fire(_record(state, mrid), "ignore")
        case ControlRejected(mrid=mrid):
            LIFECYCLE.fire(_record(state, mrid), "reject")
            state.live.pop(mrid, None)
        case ControlRemoved(mrid=mrid):
            LIFECYCLE.fire(_record(state, mrid), "remove")
            state.live.pop(mrid, None)
        case ServerFault(mrid=mrid):
            _record(state, mrid).fault = event.received
        case ServerStatusSeen(mrid=mrid):
            _record(state, mrid).server_status = event.status
        case RampPlanned(mode=mode):
            state.ramps[mode] = event
        case ProgramsChanged(programs=programs):
            state.programs = {p.program_id: p for p in programs}
            state.defaults = {k: v for k, v in state.defaults.items() if k in state.programs}
            state.refused_defaults = {
                k: v for k, v in state.refused_defaults.items() if k in state.programs
            }
        case DefaultRefused(program_id=program_id, received=received):
            state.refused_defaults[program_id] = received
        case DefaultChanged(program_id=program_id, default=default):
            state.refused_defaults.pop(program_id, None)
            if default is None:
                state.defaults.pop(program_id, None)
            else:
                state.defaults[program_id] = default
        case LimitsInForceChanged():
            state.settings = event.settings
            state.sources = dict(event.sources)
            state.next_change_s = event.next_change_s
            # Which ramps are over is the record's to say (a decision, logged); a v1 record
            # did not say, and is folded as v1 records always were.
            ended = event.ramps_ended
            for mode in _ramps_ended_v1(state.ramps, event) if ended is None else ended:
                del state.ramps[mode]
        case ResponseIntended(mrid=mrid, status=status):
            state.responses[mrid] = [*state.responses.get(mrid, ()), status]
            state.outbox.append(event)
        case ResponseAcked(mrid=mrid, status=status):
            _drop_from_outbox(state, mrid, status)
        case ResponseFailed(mrid=mrid, status=status, retry=retry):
            if not retry:
                _drop_from_outbox(state, mrid, status)
        case CommsLost():
            state.online = False
        case CommsRestored():
            state.online = True
    return state


def _drop_from_outbox(state: ControlsState, mrid: str, status: ResponseStatus) -> None:
    """Take a Response out of the queue. §4 rule 16 intends each status at most once per mRID
    (``responses.legal_next``), so the first match is the only one: found from the head, where
    the oldest (the one answered first) waits, not by rebuilding the queue for each answer
    (issue 19: answering N Responses is not O(N²)). A log with a status intended twice drops all."""
    outbox = state.outbox
    if state.responses.get(mrid, []).count(status) > 1:
        state.outbox = [r for r in outbox if not (r.mrid == mrid and r.status == status)]
        return
    for i, r in enumerate(outbox):
        if r.mrid == mrid and r.status == status:
            del outbox[i]
            return


_RECORD = ("records",)
_LIFECYCLE = ("records", "live")
#: The containers of :class:`ControlsState` each event type changes in place (when it names a
#: record, that record is changed too): what :func:`evolve` copies. A type not here changes nothing.
#: ``tests/statemachines/test_controls_fold.py`` folds every type and checks the input is untouched.
_CHANGES: Final[dict[type[Event], tuple[str, ...]]] = {
    ControlReceived: _RECORD,
    RandomizationDrawn: _RECORD,
    ControlScheduled: _LIFECYCLE,
    ControlStarted: _RECORD,
    DeviceWriteResult: _RECORD,
    ControlSuperseded: _LIFECYCLE,
    CancelDelayDrawn: _RECORD,
    ControlCancelled: _LIFECYCLE,
    ControlCompleted: _LIFECYCLE,
    ControlIgnored: _RECORD,
    ControlRejected: _LIFECYCLE,
    ControlRemoved: _LIFECYCLE,
    ServerFault: _RECORD,
    ServerStatusSeen: _RECORD,
    RampPlanned: ("ramps",),
    ProgramsChanged: (),  # it puts new dicts in place of the old ones
    DefaultRefused: ("refused_defaults",),
    DefaultChanged: ("defaults", "refused_defaults"),
    LimitsInForceChanged: ("ramps",),
    ResponseIntended: ("responses", "outbox"),
    ResponseAcked: ("outbox",),
    ResponseFailed: ("outbox",),
    CommsLost: (),
    CommsRestored: (),
    # Not here, so folded as nothing: ControlGap (a forensic record: it explains a fallback, it
    # does not change what is decided), ResponseSent (in flight: the Response stays queued until
    # acknowledged or refused for good), and every other machine's event.
}


def _mrids(event: Event) -> tuple[str, ...]:
    """The records an event changes."""
    if isinstance(event, DeviceWriteResult):
        return event.mrids
    mrid = getattr(event, "mrid", None)
    return (mrid,) if isinstance(mrid, str) else ()


CONTROLS_PROJECTION: Final = Projection(
    name="controls",
    initial=ControlsState(),
    evolve=evolve,
    state_type=ControlsState,
    types=CONTROL_EVENT_TYPES,  # ``evolve`` passes every other type by
    owned_copy=owned_copy,
    evolve_in_place=evolve_in_place,
)


def _ramps_ended_v1(ramps: dict[Mode, RampPlanned], event: LimitsInForceChanged) -> list[Mode]:
    """The ramps a ``control.limits_in_force.v1`` record ended when folded, which it did not record:
    those leading to a value other than the one it put in force (§4 rule 11 as decided when v1 was
    written). Frozen: old logs must fold as they always did, whatever the rule becomes
    (``statemachines.controls.decisions.ramps_ended`` is the rule today)."""
    return [m for m, r in ramps.items() if r.to_value != getattr(event.settings, m.value)]
