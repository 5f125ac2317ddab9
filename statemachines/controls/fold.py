"""The controls fold: the state the controls core decides on, and :func:`evolve`, the only way it changes.

Folding the log with :func:`evolve` rebuilds the state the live core had (``fold(log, evolve,
ControlsState()) == core.state``); the decisions that emit the events live in
:mod:`statemachines.controls.decisions`.
"""

from __future__ import annotations

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
    """Apply one event to the state (in place) and return it: the only way the state changes."""
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
        case ControlGap():
            pass  # a forensic record: it explains a fallback, it does not change what is decided
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
            # §4 rule 11: a ramp leads to the value in force. One towards another value is over:
            # the mode changed since without a ramp of its own (a ramped control ended and the
            # default has no setGradW), and its end point must not stand in for the new value.
            for mode in [m for m, r in state.ramps.items() if r.to_value != _value(event, m)]:
                del state.ramps[mode]
        case ResponseIntended(mrid=mrid, status=status):
            state.responses.setdefault(mrid, []).append(status)
            state.outbox.append(event)
        case ResponseSent():
            pass  # in flight: stays queued until acknowledged or refused for good
        case ResponseAcked(mrid=mrid, status=status):
            _drop_from_outbox(state, mrid, status)
        case ResponseFailed(mrid=mrid, status=status, retry=retry):
            if not retry:
                _drop_from_outbox(state, mrid, status)
        case CommsLost():
            state.online = False
        case CommsRestored():
            state.online = True
        case _:
            pass  # another machine's event: the fold of the whole log skips it
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


_PRISTINE_CONTROLSSTATE: Final = ControlsState()


def _evolve_from_pristine(state: ControlsState, event: Event) -> ControlsState:
    """The projection's evolve: folds mutate in place, so the shared initial is never the target."""
    if state is _PRISTINE_CONTROLSSTATE:
        state = ControlsState()
    return evolve(state, event)


CONTROLS_PROJECTION: Final = Projection(
    name="controls",
    initial=_PRISTINE_CONTROLSSTATE,
    evolve=_evolve_from_pristine,
    state_type=ControlsState,
    types=CONTROL_EVENT_TYPES,  # ``evolve`` passes every other type by
)


def _value(event: LimitsInForceChanged, mode: Mode) -> object:
    return getattr(event.settings, mode.value)
