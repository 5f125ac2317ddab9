"""The controls fold is pure (issue 17): ``evolve(state, event)`` returns the new state and leaves
the state it was given as it was, for every event type the fold handles, so a state can be shared
(the projection's initial, a captured instant, a snapshot) without a defensive copy."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import pytest

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
    ControlSettings,
    DefaultControl,
    EventStatus,
    Mode,
    Program,
    ResponseStatus,
)
from events.replay import Projection, fold
from statemachines.controls import (
    CONTROLS_PROJECTION,
    ControlsCore,
    ControlsState,
    CoreConfig,
    evolve,
    evolve_in_place,
    owned_copy,
)
from tests.statemachines.builders import LFDI, Harness, control, draw_max

EXPORT = Mode.EXPORT_LIMIT_W


def _log() -> list[Event]:
    """A site where every part of the state holds something: two programs' default (one with a
    setGradW, so limit changes ramp), a refused default, an active control awaiting its write, a
    scheduled one, queued Responses, a ramp; then a control only received (RECEIVED)."""
    h = Harness(
        (Program(program_id="P1", primacy=1), Program(program_id="P2", primacy=2)),
        set_max_w=10_000.0,
        confirm_writes=True,
    )
    h.default("P1", 0, export_limit_w=5000.0, set_grad_w=100)
    h.default("P2", 0, export_limit_w=-1.0)  # refused: no DER carries a negative limit
    h.poll(
        10,
        control("A", 100, 600, export_limit_w=1000.0, extra={"randomize_start_s": 0}),
        control("B", 2000, 600, export_limit_w=2000.0),
    )
    h.tick(100)
    c = control("C", 5000, 600, export_limit_w=3000.0)
    return [*h.log, ControlReceived(control=c, at_s=110)]


#: One event of every type the fold handles, each changing the state it is folded into (but the
#: forensic ones, which change nothing), with what must be folded first when the base is not enough.
SAMPLES: list[tuple[Event, Sequence[Event]]] = [
    (ControlReceived(control=control("D", 7000, 60), at_s=120), ()),
    (RandomizationDrawn(mrid="C", start_offset_s=5, duration_offset_s=-3, at_s=120), ()),
    (
        ControlScheduled(mrid="C", effective_start_s=5005, effective_end_s=5600, at_s=120),
        (),
    ),
    (ControlStarted(mrid="B", at_s=2000, awaiting_write=True), ()),
    (DeviceWriteResult(mrids=("A",), ok=True, at_s=120), ()),
    (ControlSuperseded(mrid="B", by="A", modes_lost=(EXPORT,), fully=True, at_s=120), ()),
    (CancelDelayDrawn(mrid="A", delay_s=7, at_s=120), ()),
    (ControlCancelled(mrid="A", server_status=EventStatus.CANCELLED, at_s=120), ()),
    (ControlCompleted(mrid="A", at_s=700), ()),
    (ControlIgnored(mrid="C", reason=IgnoreReason.EXPIRED_ON_RECEIPT, at_s=120), ()),
    (
        ControlRejected(
            mrid="C", status=ResponseStatus.INVALID_EVENT, reason="no mode", at_s=120
        ),
        (),
    ),
    (ControlRemoved(mrid="B", program_id="P1", at_s=120), ()),
    (
        ServerFault(
            mrid="A",
            reason="content changed under the same mRID",
            received=control("A", 100, 900),
            at_s=120,
        ),
        (),
    ),
    (ServerStatusSeen(mrid="A", status=EventStatus.CANCELLED, at_s=120), ()),
    (
        ControlGap(before="A", after="B", start_s=700, end_s=2000, modes=(EXPORT,), at_s=120),
        (),
    ),
    (ProgramsChanged(programs=(Program(program_id="P1", primacy=1),), at_s=120), ()),
    (
        DefaultRefused(
            program_id="P1",
            received=DefaultControl(
                program_id="P1", settings=ControlSettings(export_limit_w=-5.0)
            ),
            reason="negative",
            at_s=120,
        ),
        (),
    ),
    (DefaultChanged(program_id="P1", default=None, at_s=120), ()),
    (
        LimitsInForceChanged(
            settings=ControlSettings(export_limit_w=4000.0),
            sources={EXPORT: "default:P1"},
            next_change_s=None,
            ramps_ended=(EXPORT,),
            at_s=120,
        ),
        (),
    ),
    (
        RampPlanned(
            mode=EXPORT, from_value=1000.0, to_value=4000.0, start_s=120, end_s=150, at_s=120
        ),
        (),
    ),
    (
        ResponseIntended(
            mrid="A",
            status=ResponseStatus.CANCELLED,
            lfdi=LFDI,
            reply_to="/rsp",
            created_s=120,
            at_s=120,
        ),
        (),
    ),
    (ResponseSent(mrid="A", status=ResponseStatus.RECEIVED, at_s=120), ()),
    (
        ResponseAcked(mrid="A", status=ResponseStatus.RECEIVED, http_status=201, at_s=120),
        (),
    ),
    (
        ResponseFailed(
            mrid="A", status=ResponseStatus.RECEIVED, http_status=400, retry=False, at_s=120
        ),
        (),
    ),
    (CommsLost(at_s=120, reason="timeout"), ()),
    (CommsRestored(at_s=130), (CommsLost(at_s=120),)),
]
#: Records that explain rather than decide: folding them changes nothing.
FORENSIC_ONLY = (ControlGap, ResponseSent)


def test_the_samples_cover_every_event_type_the_fold_handles() -> None:
    assert {type(event) for event, _ in SAMPLES} == set(CONTROL_EVENT_TYPES)


@pytest.mark.parametrize(
    ("event", "prelude"), SAMPLES, ids=[type(e).__name__ for e, _ in SAMPLES]
)
def test_evolve_leaves_its_input_untouched(event: Event, prelude: Sequence[Event]) -> None:
    """Issue 17: the fold returns a new state; the one it was given is as it was, deep down
    (records, indexes, queues, ramps), so whoever else holds it sees no change."""
    state = fold([*_log(), *prelude], evolve, ControlsState())
    before = msgspec.to_builtins(state)
    after = evolve(state, event)
    assert msgspec.to_builtins(state) == before
    if not isinstance(event, FORENSIC_ONLY):
        assert msgspec.to_builtins(after) != before, "the sample must change the state"


def test_the_initial_state_is_shared_safely() -> None:
    """No shared-initial guard: folding from the one ``ControlsState()`` leaves it empty."""
    initial = ControlsState()
    folded = fold(_log(), evolve, initial)
    assert initial == ControlsState()
    assert folded.records and folded.ramps and folded.outbox


def test_the_transient_fold_equals_the_pure_one_and_leaves_its_start_untouched() -> None:
    """What replay, verification and the forensic model run (one copy, then in place) gives the
    state the pure fold gives, and the state it started from is as it was."""
    log = _log()
    start = fold(log[:5], evolve, ControlsState())
    before = msgspec.to_builtins(start)
    state, step = CONTROLS_PROJECTION.transient(start)
    assert step is evolve_in_place
    assert fold(log[5:], step, state) == fold(log[5:], evolve, start)
    assert msgspec.to_builtins(start) == before


def test_a_core_leaves_the_state_it_starts_from_untouched() -> None:
    """The controls actor hands the core the state replay folded (no JSON copy, no guard for
    the projection's shared initial): the core decides on a copy of its own."""
    given = fold(_log(), evolve, ControlsState())
    before = msgspec.to_builtins(given)
    core = ControlsCore(CoreConfig(lfdi=LFDI, device_category=1), given)
    assert core.receive_controls("P1", [control("E", 9000, 60)], 200, draw_max)
    assert core.handle_timer(9000, draw_max)
    assert msgspec.to_builtins(given) == before
    empty = ControlsCore(CoreConfig(lfdi=LFDI, device_category=1), CONTROLS_PROJECTION.initial)
    empty.receive_programs([Program(program_id="P1", primacy=1)], 0, draw_max)
    assert CONTROLS_PROJECTION.initial == ControlsState()


def test_a_projection_with_half_a_transient_is_refused() -> None:
    with pytest.raises(ValueError, match="'half': owned_copy and evolve_in_place go together"):
        Projection(
            name="half",
            initial=ControlsState(),
            evolve=evolve,
            state_type=ControlsState,
            owned_copy=owned_copy,
        )
