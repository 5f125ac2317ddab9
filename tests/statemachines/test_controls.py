"""One test (or table) per rule of PROTOCOL.md §4, on the controls core."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.control_events import (
    NOT_SENT,
    CancelDelayDrawn,
    CommsLost,
    ControlGap,
    ControlIgnored,
    ControlRemoved,
    ControlScheduled,
    ControlStarted,
    ControlSuperseded,
    IgnoreReason,
    RampPlanned,
    RandomizationDrawn,
    ResponseFailed,
    ResponseSent,
    ServerFault,
)
from events.der_model import EventStatus, Mode, ResponseStatus
from events.replay import fold
from statemachines.controls import (
    CONTROLS_PROJECTION,
    ControlsCore,
    ControlsState,
    content_differs,
)
from statemachines.responses import SAPN
from tests.statemachines.builders import Harness, control, draw_max, draw_min, program

R = ResponseStatus


def _status(c: object, status: EventStatus) -> object:
    import msgspec

    return msgspec.structs.replace(c, server_status=status)  # type: ignore[type-var]


# -- rule 1: identity is the mRID; content must not change ---------------------------------------


def test_rule1_content_change_under_same_mrid_is_a_server_fault_and_first_plan_stands() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60, export_limit_w=1000.0))
    changed = control("A", 200, 60, export_limit_w=0.0)
    events = h.poll(10, changed)
    assert [type(e) for e in events] == [ServerFault]
    assert h.poll(20, changed) == []  # logged once per distinct content
    assert h.core.state.records["A"].effective_start_s == 100
    h.run_until(130)
    assert h.in_force(130)["export_limit_w"] == (1000.0, "control:A")


def test_rule1_server_status_fields_are_not_content() -> None:
    a = control("A", 0, 60)
    assert not content_differs(a, _status(a, EventStatus.ACTIVE))  # type: ignore[arg-type]
    assert content_differs(a, control("A", 0, 61))


# -- rule 2: receipt ----------------------------------------------------------------------------


@pytest.mark.parametrize(("bits", "expected"), [(0b001, [1]), (0b000, []), (0b010, [])])
def test_rule2_received_response_gated_by_bit0(bits: int, expected: list[int]) -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60, extra={"response_required": bits}))
    assert h.statuses("A") == expected


def test_rule2_a_repoll_does_not_answer_again() -> None:
    h = Harness()
    a = control("A", 100, 60)
    h.poll(0, a)
    h.poll(30, a)
    assert h.statuses("A") == [1]


# -- rule 3: expired on receipt -----------------------------------------------------------------


def test_rule3_expired_on_receipt_is_ignored_with_254_in_core_profile() -> None:
    h = Harness()
    events = h.poll(200, control("A", 100, 100))
    assert any(
        isinstance(e, ControlIgnored) and e.reason is IgnoreReason.EXPIRED_ON_RECEIPT
        for e in events
    )
    assert h.state("A") == "ignored"
    assert h.statuses("A") == [254]
    assert "export_limit_w" not in h.in_force(200)


def test_rule3_expired_on_receipt_sends_nothing_under_sapn() -> None:
    h = Harness(profile=SAPN)
    h.poll(200, control("A", 100, 100))
    assert h.statuses("A") == []


# -- rule 4: vanished events and removed programs ------------------------------------------------


def test_rule4_a_vanished_event_is_not_cancelled() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60))
    h.poll(50)  # the list no longer holds A
    h.run_until(120)
    assert h.state("A") == "active"
    assert h.in_force(120)["export_limit_w"][1] == "control:A"


def test_rule4_program_removal_stops_its_events_silently() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("A", 100, 600, program_id="P2"))
    h.run_until(150)
    before = len(h.responses("A"))
    events = h.programs([program("P1", 1)], 200)
    assert any(isinstance(e, ControlRemoved) for e in events)
    h.run_until(800)
    assert h.state("A") == "removed"
    assert len(h.responses("A")) == before  # no 6, no 3: silent
    assert "export_limit_w" not in h.in_force(200)


def test_rule4_controls_of_an_unknown_program_are_not_received() -> None:
    h = Harness()
    assert h.poll(0, control("A", 100, 60, program_id="PX")) == []


# -- rule 5: adjacency --------------------------------------------------------------------------


def test_rule5_adjacent_event_starts_at_the_predecessors_effective_end() -> None:
    h = Harness(draw=draw_max)
    a = control("A", 100, 100, extra={"randomize_duration_s": 30})
    b = control("B", 200, 100, extra={"randomize_start_s": 20})
    h.poll(0, a, b)
    rec = h.core.state.records
    assert rec["A"].effective_end_s == 230
    assert (rec["B"].effective_start_s, rec["B"].adjacent_to) == (230, "A")


def test_rule5_a_later_predecessor_re_plans_an_unstarted_follower() -> None:
    h = Harness(draw=draw_max)
    h.poll(0, control("B", 200, 100, extra={"randomize_start_s": 20}))
    assert h.core.state.records["B"].effective_start_s == 220
    events = h.poll(10, control("A", 100, 100, extra={"randomize_duration_s": 5}))
    replans = [e for e in events if isinstance(e, ControlScheduled) and e.mrid == "B"]
    assert [(e.effective_start_s, e.adjacent_to) for e in replans] == [(205, "A")]


def test_rule5_near_adjacent_gap_falls_back_to_default_and_is_logged() -> None:
    h = Harness(draw=draw_min)
    h.default("P1", 0, export_limit_w=5000.0)
    a = control("A", 100, 100)
    b = control("B", 230, 100)
    events = h.poll(0, a, b)
    gaps = [e for e in events if isinstance(e, ControlGap)]
    assert [(g.before, g.after, g.start_s, g.end_s) for g in gaps] == [("A", "B", 200, 230)]
    h.run_until(210)
    assert h.in_force(210)["export_limit_w"] == (5000.0, "default:P1")


# -- rule 6: activation -------------------------------------------------------------------------


def test_rule6_activation_at_effective_start_then_response_2() -> None:
    h = Harness(draw=draw_max)
    h.poll(0, control("A", 100, 60, extra={"randomize_start_s": 10}))
    assert h.core.next_deadline() == 110
    h.tick(109)
    assert h.state("A") == "scheduled"
    events = h.tick(110)
    kinds = [type(e).__name__ for e in events]
    assert (
        kinds.index("ControlStarted")
        < kinds.index("LimitsInForceChanged")
        < kinds.index("ResponseIntended")
    )
    assert h.statuses("A") == [1, 2]


def test_rule6_server_active_status_is_informational() -> None:
    h = Harness()
    a = control("A", 100, 60)
    h.poll(0, a)
    h.poll(50, _status(a, EventStatus.ACTIVE))  # type: ignore[arg-type]
    assert h.state("A") == "scheduled"


def test_rule6_late_discovery_starts_at_once() -> None:
    h = Harness()
    events = h.poll(130, control("A", 100, 60))
    started = [e for e in events if isinstance(e, ControlStarted)]
    assert started and started[0].late
    assert h.statuses("A") == [1, 2]
    assert h.in_force(130)["export_limit_w"][1] == "control:A"


@pytest.mark.parametrize(
    ("ok", "state", "responses"), [(True, "active", [1, 2]), (False, "rejected", [1, 252])]
)
def test_rule6_response_2_waits_for_the_device_and_a_refused_write_is_rejected(
    ok: bool, state: str, responses: list[int]
) -> None:
    h = Harness(confirm_writes=True)
    h.default("P1", 0, export_limit_w=5000.0)
    h.poll(0, control("A", 100, 60, export_limit_w=1000.0))
    h.run_until(100)
    assert h.statuses("A") == [1]  # applied, not yet confirmed
    h.log += h.core.device_write_result(ok, 101, draw_max, detail="register 704:WMaxLim")
    assert h.state("A") == state
    assert h.statuses("A") == responses
    expected = (1000.0, "control:A") if ok else (5000.0, "default:P1")
    assert h.in_force(101)["export_limit_w"] == expected
    h.run_until(200)
    assert h.statuses("A") == (responses + [3] if ok else responses)
    assert h.refold() == h.core.state


def test_rule6_write_result_with_nothing_waiting_is_not_an_event() -> None:
    h = Harness(confirm_writes=True)
    assert h.core.device_write_result(True, 5, draw_max) == []


# -- rule 7: supersession -----------------------------------------------------------------------


def test_rule7_lower_primacy_wins_a_common_mode_across_programs() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("LOW", 100, 100, program_id="P2", export_limit_w=3000.0))
    h.poll(0, control("HIGH", 100, 100, program_id="P1", export_limit_w=1000.0))
    h.run_until(150)
    assert h.in_force(150)["export_limit_w"] == (1000.0, "control:HIGH")
    assert h.state("LOW") == "superseded"
    assert h.statuses("LOW") == [1, 7]


def test_rule7_equal_primacy_later_creation_time_wins() -> None:
    h = Harness()
    h.poll(0, control("OLD", 100, 100, created=5), control("NEW", 100, 100, created=9))
    h.run_until(100)
    assert h.in_force(100)["export_limit_w"][1] == "control:NEW"


def test_rule7_supersession_is_per_mode() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(
        0, control("A", 100, 200, program_id="P2", export_limit_w=3000.0, generation_limit_w=4000.0)
    )
    h.poll(0, control("B", 150, 50, program_id="P1", export_limit_w=0.0))
    h.run_until(160)
    assert h.in_force(160)["export_limit_w"] == (0.0, "control:B")
    assert h.in_force(160)["generation_limit_w"] == (4000.0, "control:A")
    assert h.state("A") == "active"
    lost = [e for e in h.log if isinstance(e, ControlSuperseded)]
    assert [(e.mrid, e.by, e.modes_lost, e.fully) for e in lost] == [
        ("A", "B", (Mode.EXPORT_LIMIT_W,), False)
    ]


def test_rule7_a_superseded_mode_never_resumes() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.default("P2", 0, export_limit_w=5000.0)
    h.poll(
        0, control("A", 100, 300, program_id="P2", export_limit_w=3000.0, generation_limit_w=4000.0)
    )
    h.poll(0, control("B", 150, 50, program_id="P1", export_limit_w=0.0))
    h.run_until(250)  # B over; A is still in its period
    assert h.in_force(250)["export_limit_w"] == (5000.0, "default:P2")
    assert h.in_force(250)["generation_limit_w"][1] == "control:A"


def test_rule7_superseded_before_start_gets_1_then_7_never_2() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("W", 100, 300, program_id="P1"))
    h.poll(0, control("L", 200, 100, program_id="P2"))
    h.run_until(100)
    assert h.statuses("L") == [1, 7]  # at W's effective start
    h.run_until(400)
    assert h.statuses("L") == [1, 7]


def test_rule7_response_7_at_the_superseding_events_effective_start() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("L", 100, 300, program_id="P2"))
    h.poll(0, control("W", 200, 50, program_id="P1"))
    h.run_until(199)
    assert h.statuses("L") == [1, 2]
    h.tick(200)
    assert h.statuses("L") == [1, 2, 7]


def test_rule7_connect_and_energize_are_modes() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("A", 100, 100, program_id="P2", energize=True))
    h.poll(0, control("B", 100, 100, program_id="P1", energize=False, connect=True))
    h.run_until(100)
    assert h.in_force(100)["energize"] == (False, "control:B")
    assert h.state("A") == "superseded"


def test_rule7_outranked_event_received_while_winner_runs_loses_at_receipt() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("W", 0, 1000, program_id="P1"))
    h.run_until(10)
    h.poll(20, control("L", 500, 100, program_id="P2"))
    assert h.statuses("L") == [1, 7]


# -- rule 8: server status ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "started", "state", "responses"),
    [
        (EventStatus.SCHEDULED, False, "scheduled", [1]),
        (EventStatus.ACTIVE, False, "scheduled", [1]),
        (EventStatus.CANCELLED, False, "cancelled", [1, 6]),
        (EventStatus.CANCELLED, True, "cancelled", [1, 2, 6]),
        (EventStatus.CANCELLED_WITH_RANDOMIZATION, False, "cancelled", [1, 6]),
        (EventStatus.SUPERSEDED, False, "superseded", [1, 7]),
        (EventStatus.SUPERSEDED, True, "superseded", [1, 2, 7]),
        (EventStatus.COMPLETED, False, "completed", [1]),
        (EventStatus.COMPLETED, True, "completed", [1, 2, 3]),
    ],
)
def test_rule8_server_status(
    status: EventStatus, started: bool, state: str, responses: list[int]
) -> None:
    h = Harness()
    a = control("A", 100, 100)
    h.poll(0, a)
    now = 150 if started else 50
    h.run_until(now)
    h.poll(now, _status(a, status))  # type: ignore[arg-type]
    assert h.state("A") == state
    assert h.statuses("A") == responses


def test_rule8_cancel_with_randomisation_stops_after_a_recorded_draw() -> None:
    h = Harness(draw=draw_max)
    a = control("A", 100, 300, extra={"randomize_start_s": 0, "randomize_duration_s": 40})
    h.poll(0, a)
    h.run_until(150)
    events = h.poll(150, _status(a, EventStatus.CANCELLED_WITH_RANDOMIZATION))  # type: ignore[arg-type]
    (drawn,) = [e for e in events if isinstance(e, CancelDelayDrawn)]
    assert drawn.delay_s == 40
    h.run_until(189)
    assert h.state("A") == "active"
    h.tick(190)
    assert h.state("A") == "cancelled" and h.statuses("A") == [1, 2, 6]
    h.poll(200, _status(a, EventStatus.CANCELLED_WITH_RANDOMIZATION))  # type: ignore[arg-type]
    assert len([e for e in h.log if isinstance(e, CancelDelayDrawn)]) == 1


def test_rule8_cancel_with_randomisation_bound_uses_the_larger_magnitude() -> None:
    bounds: list[tuple[int, int]] = []

    def draw(low: int, high: int) -> int:
        bounds.append((low, high))
        return low

    h = Harness(draw=draw)
    a = control("A", 100, 300, extra={"randomize_start_s": -50, "randomize_duration_s": 20})
    h.poll(0, a)
    h.run_until(150)
    h.poll(150, _status(a, EventStatus.CANCELLED_WITH_RANDOMIZATION))  # type: ignore[arg-type]
    assert bounds[-1] == (0, 50)


# -- randomisation: drawn once, persisted, sign kept -------------------------------------------------


def test_randomisation_drawn_once_per_mrid_and_never_redrawn() -> None:
    calls: list[tuple[int, int]] = []

    def draw(low: int, high: int) -> int:
        calls.append((low, high))
        return high

    h = Harness(draw=draw)
    a = control("A", 100, 60, extra={"randomize_start_s": -30, "randomize_duration_s": 10})
    h.poll(0, a)
    h.poll(30, a)
    h.poll(60, a)
    assert calls == [(-30, 0), (0, 10)]
    (drawn,) = [e for e in h.log if isinstance(e, RandomizationDrawn)]
    assert (drawn.start_offset_s, drawn.duration_offset_s) == (0, 10)
    rec = h.core.state.records["A"]
    assert (rec.effective_start_s, rec.effective_end_s) == (100, 170)


def test_randomisation_negative_bound_moves_the_start_earlier() -> None:
    h = Harness(draw=draw_min)
    h.poll(0, control("A", 100, 60, extra={"randomize_start_s": -30}))
    assert h.core.state.records["A"].effective_start_s == 70


# -- rule 9: completion -------------------------------------------------------------------------


def test_rule9_completion_at_effective_end_with_3_only_if_started() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60))
    h.run_until(160)
    assert h.state("A") == "completed" and h.statuses("A") == [1, 2, 3]


def test_rule9_period_is_half_open() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60))
    h.run_until(159)
    assert h.in_force(159)["export_limit_w"][1] == "control:A"
    h.tick(160)
    assert "export_limit_w" not in h.in_force(160)


# -- rule 10: defaults --------------------------------------------------------------------------


def test_rule10_default_of_the_lowest_primacy_program_per_mode() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.default("P2", 0, export_limit_w=5000.0, import_limit_w=3000.0)
    h.default("P1", 0, export_limit_w=2000.0)
    got = h.in_force(0)
    assert got["export_limit_w"] == (2000.0, "default:P1")
    assert got["import_limit_w"] == (3000.0, "default:P2")


def test_rule10_changed_default_applies_at_once() -> None:
    h = Harness()
    h.default("P1", 0, export_limit_w=5000.0)
    h.default("P1", 10, export_limit_w=1500.0)
    assert h.limits_log()[-1].settings.export_limit_w == 1500.0
    assert h.limits_log()[-1].at_s == 10


def test_rule10_vanished_default_stops_applying() -> None:
    h = Harness()
    h.default("P1", 0, export_limit_w=5000.0)
    h.log += h.core.receive_default("P1", None, 5, draw_max)
    assert h.in_force(5) == {}


# -- rule 11: ramps (integration; trajectories in test_ramps) -------------------------------------


def test_rule11_limit_change_is_ramped_at_default_set_grad_w() -> None:
    h = Harness(set_max_w=5000.0)
    h.default("P1", 0, export_limit_w=5000.0, set_grad_w=100)  # 1 %/s of 5000 W = 50 W/s
    h.poll(0, control("A", 100, 600, export_limit_w=1000.0))
    h.run_until(100)
    (ramp,) = [e for e in h.log if isinstance(e, RampPlanned)]
    assert (ramp.from_value, ramp.to_value, ramp.start_s, ramp.end_s) == (5000.0, 1000.0, 100, 180)


def test_rule11_ramp_tms_of_the_control_wins_over_set_grad_w() -> None:
    h = Harness(set_max_w=5000.0)
    h.default("P1", 0, export_limit_w=5000.0, set_grad_w=100)
    h.poll(0, control("A", 100, 600, export_limit_w=1000.0, ramp_time_s=12.5))
    h.run_until(100)
    (ramp,) = [e for e in h.log if isinstance(e, RampPlanned)]
    assert ramp.end_s == 112.5


def test_rule11_a_change_during_a_ramp_starts_from_where_the_trajectory_is() -> None:
    h = Harness([program("P1", 1), program("P2", 2)], set_max_w=5000.0)
    h.default("P2", 0, export_limit_w=5000.0, set_grad_w=100)  # 50 W/s
    h.poll(0, control("A", 100, 600, program_id="P2", export_limit_w=1000.0))
    h.poll(0, control("B", 140, 600, program_id="P1", export_limit_w=4000.0))
    h.run_until(140)
    first, second = [e for e in h.log if isinstance(e, RampPlanned)]
    assert (first.from_value, first.to_value) == (5000.0, 1000.0)
    # 40 s into the 80 s ramp down, the trajectory is at 3000 W: the next ramp starts there.
    assert (second.from_value, second.to_value, second.start_s, second.end_s) == (
        3000.0,
        4000.0,
        140,
        160,
    )


def test_rule11_a_ramped_control_that_ends_leaves_no_ramp_behind() -> None:
    """The swarm found it: a control ramped in by its rampTms ended, the default came back with no
    setGradW (no ramp of its own), and the finished ramp stayed in the state, so the hardware kept
    applying the control's value (its end point) instead of the default's."""
    h = Harness(set_max_w=5000.0)
    h.default("P1", 0, generation_limit_w=0.0)
    h.poll(0, control("A", 100, 60, generation_limit_w=3000.0, ramp_time_s=10.0))
    h.run_until(100)
    assert h.core.state.ramps[Mode.GENERATION_LIMIT_W].to_value == 3000.0
    h.run_until(200)
    assert h.core.state.settings.generation_limit_w == 0.0
    assert Mode.GENERATION_LIMIT_W not in h.core.state.ramps
    replayed = fold(h.log, CONTROLS_PROJECTION.evolve, CONTROLS_PROJECTION.initial)
    assert replayed.ramps == h.core.state.ramps  # what a restart rebuilds


# -- rule 12: comms loss ------------------------------------------------------------------------


def test_rule12_comms_loss_keeps_schedule_then_default_and_queues_responses() -> None:
    h = Harness()
    h.default("P1", 0, export_limit_w=5000.0)
    h.poll(0, control("A", 100, 60))
    for r in h.core.responses_to_send():
        h.log += h.core.response_acked(r.mrid, r.status, 201, 1)
    h.log += h.core.comms_lost(50, draw_max)
    h.run_until(130)
    assert h.in_force(130)["export_limit_w"][1] == "control:A"
    assert h.core.responses_to_send() == []  # offline: queued
    h.run_until(200)
    assert h.in_force(200)["export_limit_w"] == (5000.0, "default:P1")
    h.log += h.core.comms_restored(210, draw_max)
    assert [int(r.status) for r in h.core.responses_to_send()] == [2, 3]


def test_rule12_comms_loss_records_why_the_server_was_unreachable() -> None:
    h = Harness()
    events = h.core.comms_lost(50, draw_max, "LinkTimeout: no answer within 30 s")
    lost = [e for e in events if isinstance(e, CommsLost)]
    assert [e.reason for e in lost] == ["LinkTimeout: no answer within 30 s"]


# -- rule 13: restart ---------------------------------------------------------------------------


def test_rule13_restart_follows_the_persisted_schedule_and_draws() -> None:
    h = Harness(draw=draw_max)
    h.poll(0, control("A", 100, 300, extra={"randomize_start_s": 25}))
    h.run_until(130)

    def no_draw(low: int, high: int) -> int:
        raise AssertionError("a restart must not draw again")

    restored = Harness.__new__(Harness)
    restored.__dict__.update(h.__dict__)
    restored.core = ControlsCore(
        h.config, fold(h.log, CONTROLS_PROJECTION.evolve, CONTROLS_PROJECTION.initial)
    )
    restored.draw = no_draw
    # Before the server is reachable, the persisted state already says what is in force.
    assert restored.core.state.settings.export_limit_w == 1000.0
    assert restored.in_force(130) == h.in_force(130)
    restored.run_until(430)
    assert restored.state("A") == "completed"
    assert restored.core.state.records["A"].effective_start_s == 125
    assert restored.statuses("A") == [1, 2, 3]


def test_projection_initial_is_never_mutated_by_a_fold() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60))
    fold(h.log, CONTROLS_PROJECTION.evolve, CONTROLS_PROJECTION.initial)
    assert CONTROLS_PROJECTION.initial == ControlsState()


# -- rule 14: deviceCategory --------------------------------------------------------------------


def test_rule14_category_mismatch_neither_applied_nor_answered() -> None:
    h = Harness(device_category=0x1)
    h.poll(0, control("A", 100, 60, extra={"device_category": 0x2}))
    h.run_until(120)
    assert h.state("A") == "ignored"
    assert h.statuses("A") == []
    assert "export_limit_w" not in h.in_force(120)


def test_rule14_category_match_on_any_common_bit() -> None:
    h = Harness(device_category=0x3)
    h.poll(0, control("A", 100, 60, extra={"device_category": 0x2}))
    assert h.state("A") == "scheduled"


# -- invalid events -----------------------------------------------------------------------------


def test_invalid_event_without_modes_is_rejected_with_253() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60, ramp_time_s=1.0))
    assert h.state("A") == "rejected" and h.statuses("A") == [253]


def test_control_listed_under_another_program_is_refused_naming_both() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    with pytest.raises(ValueError, match="names program 'P2' but was listed under 'P1'"):
        h.core.receive_controls("P1", [control("A", 0, 60, program_id="P2")], 0, draw_max)


# -- rule 16: Responses -------------------------------------------------------------------------


def test_rule16_response_fields() -> None:
    h = Harness()
    h.poll(7, control("A", 100, 60, extra={"reply_to": "/edev/1/rsp"}))
    (r,) = h.core.responses_to_send()
    assert (r.mrid, r.status, r.lfdi, r.reply_to, r.created_s) == (
        "A",
        R.RECEIVED,
        h.config.lfdi,
        "/edev/1/rsp",
        7,
    )


@pytest.mark.parametrize(
    ("http", "kept"), [(None, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_rule16_retry_on_5xx_and_network_not_on_4xx(http: int | None, kept: bool) -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60))
    h.log += h.core.response_failed("A", R.RECEIVED, http, 1)
    assert bool(h.core.responses_to_send()) is kept


def test_rule16_acked_response_leaves_the_queue() -> None:
    h = Harness()
    h.poll(0, control("A", 100, 60))
    h.log += h.core.response_sent("A", R.RECEIVED, 1)
    assert h.core.responses_to_send()
    h.log += h.core.response_acked("A", R.RECEIVED, 201, 2)
    assert h.core.responses_to_send() == []


def test_rule16_a_control_without_reply_to_records_its_responses_as_not_sent() -> None:
    """Nothing is posted and nothing claims a server answered: no HTTP status, no retry."""
    h = Harness()
    h.poll(0, control("A", 100, 60, extra={"reply_to": None}))
    h.run_until(200)
    failed = [e for e in h.log if isinstance(e, ResponseFailed)]
    assert [int(e.status) for e in failed] == [1, 2, 3]
    assert all(
        e.http_status is None and not e.retry and e.undeliverable == NOT_SENT for e in failed
    )
    assert not any(isinstance(e, ResponseSent) for e in h.log)
    assert h.core.responses_to_send() == []


def test_fold_of_the_log_equals_the_live_state_after_a_busy_day() -> None:
    h = Harness([program("P1", 1), program("P2", 2)], draw=draw_max)
    h.default("P2", 0, export_limit_w=5000.0)
    h.poll(0, control("A", 100, 300, program_id="P2", extra={"randomize_start_s": 10}))
    h.poll(0, control("B", 150, 50, program_id="P1", export_limit_w=0.0))
    h.run_until(500)
    assert h.refold() == h.core.state


# -- review: rules 1 and 8 together -----------------------------------------------------------------


@pytest.mark.parametrize("with_the_edit", [True, False])
def test_rule1_rule8_a_cancel_after_a_content_change_still_stops_the_event(
    with_the_edit: bool,
) -> None:
    # The server edits A under the same mRID (a fault: the first plan stands), then cancels it,
    # either in the same poll as the edit or in a later one. The cancel is a status, not content.
    h = Harness()
    h.default("P1", 0, export_limit_w=5000.0)
    a = control("A", 100, 300, export_limit_w=1000.0)
    h.poll(0, a)
    h.run_until(150)
    edited = control("A", 100, 300, export_limit_w=0.0)
    if not with_the_edit:
        h.poll(160, edited)
    h.poll(170, _status(edited, EventStatus.CANCELLED))  # type: ignore[arg-type]
    assert len([e for e in h.log if isinstance(e, ServerFault)]) == 1
    assert h.state("A") == "cancelled"
    assert h.statuses("A") == [1, 2, 6]
    assert h.in_force(170)["export_limit_w"] == (5000.0, "default:P1")
    assert h.refold() == h.core.state


# -- review: rule 5 down a chain, whatever the order of receipt -------------------------------------


_CHAIN = (
    control("C1", 100, 100, extra={"randomize_start_s": 20, "randomize_duration_s": 30}),
    control("C2", 200, 100, extra={"randomize_duration_s": 15}),
    control("C3", 300, 100, extra={"randomize_duration_s": 10}),
    control("C4", 400, 100),
)


@pytest.mark.parametrize("order", list(itertools.permutations(range(len(_CHAIN)))))
def test_rule5_a_back_to_back_chain_received_in_any_order_is_planned_as_in_order(
    order: tuple[int, ...],
) -> None:
    # Paged lists and later polls deliver a back-to-back series in any order; each follower must
    # start at its predecessor's effective end, so no two overlap (an overlap would supersede one
    # with a 7 instead of its 3) and none leaves a gap.
    in_order = Harness(draw=draw_max)
    in_order.poll(0, *_CHAIN)
    shuffled = Harness(draw=draw_max)
    for i in order:
        shuffled.poll(0, _CHAIN[i])
    plan = {
        c.mrid: (r.effective_start_s, r.effective_end_s)
        for c in _CHAIN
        for r in (shuffled.core.state.records[c.mrid],)
    }
    assert plan == {
        c.mrid: (r.effective_start_s, r.effective_end_s)
        for c in _CHAIN
        for r in (in_order.core.state.records[c.mrid],)
    }
    assert plan == {"C1": (120, 250), "C2": (250, 365), "C3": (365, 475), "C4": (475, 575)}
    shuffled.run_until(600)
    assert {c.mrid: shuffled.statuses(c.mrid) for c in _CHAIN} == {
        c.mrid: [1, 2, 3] for c in _CHAIN
    }
    assert shuffled.refold() == shuffled.core.state


# -- review: rule 7 for an event discovered inside an outranking event's period -------------------


def test_rule7_late_discovered_loser_is_superseded_without_ever_starting() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("W", 0, 1000, program_id="P1"))
    h.run_until(10)
    h.poll(20, control("L", 15, 100, program_id="P2", export_limit_w=3000.0))
    assert not any(isinstance(e, ControlStarted) and e.mrid == "L" for e in h.log)
    assert not h.core.state.records["L"].started
    assert h.state("L") == "superseded" and h.statuses("L") == [1, 7]
    assert h.in_force(20)["export_limit_w"] == (1000.0, "control:W")
    assert h.refold() == h.core.state


def test_rule7_late_discovered_partial_loser_starts_with_its_other_modes() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(0, control("W", 0, 1000, program_id="P1"))
    h.run_until(10)
    h.poll(
        20,
        control("L", 15, 100, program_id="P2", export_limit_w=3000.0, import_limit_w=2000.0),
    )
    lost = [e for e in h.log if isinstance(e, ControlSuperseded)]
    assert [(e.mrid, e.modes_lost, e.fully) for e in lost] == [("L", (Mode.EXPORT_LIMIT_W,), False)]
    assert h.state("L") == "active" and h.statuses("L") == [1, 2]
    assert h.in_force(20) == {
        "export_limit_w": (1000.0, "control:W"),
        "import_limit_w": (2000.0, "control:L"),
    }


# -- review: rule 16 bit gating through whole lifecycles ---------------------------------------------


def _complete(h: Harness, bits: int) -> None:
    h.poll(0, control("A", 100, 60, extra={"response_required": bits}))
    h.run_until(300)


def _cancel_before_start(h: Harness, bits: int) -> None:
    a = control("A", 100, 60, extra={"response_required": bits})
    h.poll(0, a)
    h.poll(50, _status(a, EventStatus.CANCELLED))  # type: ignore[arg-type]
    h.run_until(300)


def _supersede_before_start(h: Harness, bits: int) -> None:
    h.poll(0, control("W", 50, 200, program_id="P1"))
    h.poll(0, control("A", 100, 60, program_id="P2", extra={"response_required": bits}))
    h.run_until(300)


def _supersede_while_active(h: Harness, bits: int) -> None:
    h.poll(0, control("A", 100, 100, program_id="P2", extra={"response_required": bits}))
    h.poll(0, control("W", 150, 100, program_id="P1"))
    h.run_until(300)


def _expired(h: Harness, bits: int) -> None:
    h.poll(200, control("A", 100, 60, extra={"response_required": bits}))


@pytest.mark.parametrize(
    ("scenario", "bits", "expected"),
    [
        (_complete, 0b000, []),
        (_complete, 0b001, [1]),
        (_complete, 0b010, [2, 3]),
        (_complete, 0b011, [1, 2, 3]),
        (_cancel_before_start, 0b001, [1]),
        (_cancel_before_start, 0b010, [6]),
        (_cancel_before_start, 0b011, [1, 6]),
        (_supersede_before_start, 0b001, [1]),
        (_supersede_before_start, 0b010, [7]),  # never 2
        (_supersede_before_start, 0b011, [1, 7]),
        (_supersede_while_active, 0b010, [2, 7]),  # never 3
        (_supersede_while_active, 0b011, [1, 2, 7]),
        (_expired, 0b001, []),
        (_expired, 0b010, [254]),
        (_expired, 0b100, []),
    ],
)
def test_rule16_response_required_bits_gate_every_code_through_a_lifecycle(
    scenario: Callable[[Harness, int], None], bits: int, expected: list[int]
) -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    scenario(h, bits)
    assert h.statuses("A") == expected


def test_rule11_a_default_set_grad_w_of_zero_steps_instead_of_failing_the_core() -> None:
    # A server default with setGradW 0 ("no limit") made every later limit change raise, and a
    # restart folded the same default back in: the core could never decide again.
    h = Harness(set_max_w=5000.0)
    h.default("P1", 0, export_limit_w=5000.0, set_grad_w=0)
    h.poll(0, control("A", 100, 600, export_limit_w=1000.0))
    h.run_until(100)
    assert not [e for e in h.log if isinstance(e, RampPlanned)]
    assert h.limits_log()[-1].settings.export_limit_w == 1000.0
    assert h.in_force(100)["export_limit_w"] == (1000.0, "control:A")


def test_rule9_an_event_that_never_started_completes_without_3() -> None:
    # The gateway was down for the whole effective period (a restart folds the log afterwards):
    # the event is completed, but it never ran, so no 2 and no 3.
    h = Harness()
    h.poll(0, control("A", 100, 60))
    h.tick(500)
    assert h.state("A") == "completed"
    assert not h.core.state.records["A"].started
    assert h.statuses("A") == [1]


# -- review: rule 5 as a property over random chains, draws and receipt orders ----------------------


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    length=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_property_rule5_chains_are_back_to_back_whatever_the_receipt_order(
    data: st.DataObject, length: int, seed: int
) -> None:
    durations = data.draw(st.lists(st.integers(1, 300), min_size=length, max_size=length))
    starts = [1000 + sum(durations[:i]) for i in range(length)]
    chain = [
        control(
            f"K{i}",
            starts[i],
            durations[i],
            extra={
                "randomize_start_s": data.draw(st.sampled_from([0, 30, -30])),
                "randomize_duration_s": data.draw(st.sampled_from([0, 20, -20])),
            },
        )
        for i in range(length)
    ]
    order = data.draw(st.permutations(range(length)))
    rng = random.Random(seed)
    h = Harness(draw=lambda low, high: rng.randint(low, high))
    for t, i in enumerate(order):
        h.poll(t, chain[i])  # all received before the first can start (earliest 970)
    records = h.core.state.records
    for before, after in itertools.pairwise(chain):
        a, b = records[before.mrid], records[after.mrid]
        assert a.effective_start_s <= a.effective_end_s, before.mrid  # never a negative period
        assert b.effective_start_s == a.effective_end_s, (before.mrid, after.mrid)
    h.run_until(starts[-1] + 2000)
    for c in chain:
        rec = records[c.mrid]
        ran = rec.effective_start_s < rec.effective_end_s
        assert h.statuses(c.mrid) == ([1, 2, 3] if ran else [1]), c.mrid
    assert h.refold() == h.core.state


def test_rule5_a_negative_randomize_duration_longer_than_the_event_leaves_an_empty_period() -> None:
    # ρd ∈ [-20, 0] on a 5 s event: the effective period is empty (it never runs), and the
    # follower pinned to its effective end does not start before its predecessor's start.
    h = Harness(draw=draw_min)
    h.poll(0, control("A", 100, 5, extra={"randomize_duration_s": -20}))
    h.poll(0, control("B", 105, 60))
    a, b = h.core.state.records["A"], h.core.state.records["B"]
    assert (a.effective_start_s, a.effective_end_s) == (100, 100)
    assert (b.effective_start_s, b.effective_end_s) == (100, 160)
    h.run_until(200)
    assert h.statuses("A") == [1] and h.statuses("B") == [1, 2, 3]
