"""Hand-written scenarios mirroring certification situations (CSIP / CSIP-AUS style test procedures)."""

from __future__ import annotations

import msgspec

from events.control_events import ControlGap, ControlStarted, LimitsInForceChanged
from events.der_model import EventStatus
from events.replay import fold
from statemachines.controls import CONTROLS_PROJECTION, ControlsCore
from tests.statemachines.builders import Harness, control, draw_max, program

T0 = 1_700_000_000  # an epoch second on the server's clock


def test_scenario_two_fsas_primacy_1_and_2_overlap_on_some_modes_not_others() -> None:
    # FSA-1 holds program P1 (primacy 1), FSA-2 holds P2 (primacy 2); both have defaults.
    h = Harness([program("P1", 1), program("P2", 2)])
    h.default("P2", T0, export_limit_w=10000.0, import_limit_w=10000.0, generation_limit_w=10000.0)
    h.default("P1", T0, export_limit_w=5000.0)
    h.poll(
        T0,
        control(
            "P2-A", T0 + 600, 1800, program_id="P2", export_limit_w=3000.0, import_limit_w=2000.0
        ),
    )
    h.poll(
        T0,
        control(
            "P1-A", T0 + 900, 600, program_id="P1", export_limit_w=1500.0, generation_limit_w=4000.0
        ),
    )
    h.run_until(T0 + 700)
    assert h.in_force(T0 + 700) == {
        "export_limit_w": (3000.0, "control:P2-A"),
        "import_limit_w": (2000.0, "control:P2-A"),
        "generation_limit_w": (10000.0, "default:P2"),
    }
    h.run_until(T0 + 1000)
    assert h.in_force(T0 + 1000) == {
        "export_limit_w": (1500.0, "control:P1-A"),  # common mode: primacy 1 wins
        "import_limit_w": (2000.0, "control:P2-A"),  # not common: P2-A keeps it
        "generation_limit_w": (4000.0, "control:P1-A"),
    }
    assert h.state("P2-A") == "active"
    h.run_until(T0 + 1600)  # P1-A over; P2-A's export never resumes, the P1 default takes it
    assert h.in_force(T0 + 1600) == {
        "export_limit_w": (5000.0, "default:P1"),
        "import_limit_w": (2000.0, "control:P2-A"),
        "generation_limit_w": (10000.0, "default:P2"),
    }
    h.run_until(T0 + 2400)
    assert h.statuses("P2-A") == [1, 2, 3]  # partly superseded: never 7
    assert h.statuses("P1-A") == [1, 2, 3]
    assert h.refold() == h.core.state


def test_scenario_24_back_to_back_60s_controls() -> None:
    h = Harness(draw=draw_max)
    h.default("P1", T0, export_limit_w=10000.0)
    controls = [
        control(
            f"BB{i:02d}",
            T0 + 3600 + 60 * i,
            60,
            export_limit_w=float(1000 + 100 * i),
            extra={"randomize_start_s": 10, "randomize_duration_s": 0},
        )
        for i in range(24)
    ]
    events = h.poll(T0, *controls)
    # Only the first is randomised; each following one starts at its predecessor's effective end.
    assert not any(isinstance(e, ControlGap) for e in events)
    starts = [h.core.state.records[c.mrid].effective_start_s for c in controls]
    assert starts == [T0 + 3610 + 60 * i for i in range(24)]
    h.run_until(T0 + 3600 + 24 * 60 + 60)
    changes = [e for e in h.limits_log() if e.at_s >= T0 + 3600]
    sources = [e.sources.get(next(iter(e.sources))) for e in changes]
    assert sources == [f"control:BB{i:02d}" for i in range(24)] + ["default:P1"]
    assert [e.at_s for e in changes] == [
        T0 + 3610 + 60 * i for i in range(25)
    ]  # no gap, no overlap
    for c in controls:
        assert h.statuses(c.mrid) == [1, 2, 3]
    assert h.refold() == h.core.state


def test_scenario_cancel_while_scheduled_and_while_active() -> None:
    h = Harness()
    h.default("P1", T0, export_limit_w=10000.0)
    a, b = control("A", T0 + 100, 300), control("B", T0 + 600, 300, export_limit_w=2000.0)
    h.poll(T0, a, b)
    h.poll(T0 + 50, msgspec.structs.replace(a, server_status=EventStatus.CANCELLED), b)
    assert h.state("A") == "cancelled" and h.statuses("A") == [1, 6]
    h.run_until(T0 + 700)
    assert h.in_force(T0 + 700)["export_limit_w"] == (2000.0, "control:B")
    h.poll(T0 + 700, msgspec.structs.replace(b, server_status=EventStatus.CANCELLED))
    assert h.state("B") == "cancelled" and h.statuses("B") == [1, 2, 6]
    assert h.in_force(T0 + 700)["export_limit_w"] == (10000.0, "default:P1")
    assert not any(isinstance(e, ControlStarted) and e.mrid == "A" for e in h.log)


def test_scenario_supersede_before_start() -> None:
    h = Harness([program("P1", 1), program("P2", 2)])
    h.poll(T0, control("LOW", T0 + 300, 600, program_id="P2", export_limit_w=3000.0))
    h.poll(T0 + 10, control("HIGH", T0 + 200, 900, program_id="P1", export_limit_w=0.0))
    h.run_until(T0 + 200)
    assert h.state("LOW") == "superseded"
    assert h.statuses("LOW") == [1, 7]
    h.run_until(T0 + 1200)
    assert h.statuses("LOW") == [1, 7]  # never 2, never 3
    assert h.statuses("HIGH") == [1, 2, 3]


def test_scenario_seven_minutes_of_comms_loss() -> None:
    h = Harness()
    h.default("P1", T0, export_limit_w=10000.0)
    h.poll(T0, control("A", T0 + 120, 180, export_limit_w=1500.0))
    for r in h.core.responses_to_send():
        h.log += h.core.response_acked(r.mrid, r.status, 201, T0 + 1)
    h.log += h.core.comms_lost(T0 + 60, draw_max)
    h.run_until(T0 + 60 + 420)  # seven minutes without the server
    seen = [(e.at_s, e.settings.export_limit_w) for e in h.limits_log() if e.at_s > T0]
    assert seen == [(T0 + 120, 1500.0), (T0 + 300, 10000.0)]  # schedule kept, then the default
    assert h.core.responses_to_send() == []
    h.log += h.core.comms_restored(T0 + 481, draw_max)
    queued = h.core.responses_to_send()
    assert [(r.status, r.created_s) for r in queued] == [(2, T0 + 120), (3, T0 + 300)]
    assert h.refold() == h.core.state


def test_scenario_restart_in_the_middle_of_an_event() -> None:
    h = Harness(draw=draw_max)
    h.default("P1", T0, export_limit_w=10000.0)
    h.poll(T0, control("A", T0 + 100, 600, export_limit_w=1200.0, extra={"randomize_start_s": 30}))
    h.run_until(T0 + 400)
    log_on_disk = list(h.log)

    # The process dies; a new one folds the log and must act before the server is reachable.
    state = fold(log_on_disk, CONTROLS_PROJECTION.evolve, CONTROLS_PROJECTION.initial)
    core = ControlsCore(h.config, state)
    assert core.state.settings.export_limit_w == 1200.0
    assert core.state.sources  # who supplies it is known too
    assert core.next_deadline() == T0 + 730  # the persisted draw (30 s), not a new one

    def must_not_draw(low: int, high: int) -> int:
        raise AssertionError("the restart re-drew a persisted randomisation")

    events = core.comms_lost(T0 + 410, must_not_draw)
    events += core.handle_timer(T0 + 730, must_not_draw)
    limits = [e for e in events if isinstance(e, LimitsInForceChanged)]
    assert [(e.at_s, e.settings.export_limit_w) for e in limits] == [(T0 + 730, 10000.0)]
    assert core.state.records["A"].state == "completed"
    # The 2 sent before the restart is not repeated; the 3 is intended (queued while offline).
    statuses = [int(s) for s in core.state.responses["A"]]
    assert statuses == [1, 2, 3]
