"""A big receipt (issue 15 point 3, issue 19 point 5): the decision core takes a list of thousands of
controls in bounded steps with the decisions of one call, and a core rebuilt from its state finds
what its indexes by time must find (§4 rule 5 adjacency and gaps, the next deadline)."""

from __future__ import annotations

import random

import pytest

from events.control_events import ControlGap, ControlScheduled
from events.der_model import Control, ControlSettings
from events.replay import fold
from statemachines.controls import ControlsCore, ControlsState, evolve
from tests.statemachines.builders import Harness, control, draw_max


def _series(n: int, seed: int) -> list[Control]:
    """Back-to-back and near-adjacent controls over two modes, shuffled (followers arrive first)."""
    rng = random.Random(seed)
    controls, at = [], 1000
    for i in range(n):
        duration = rng.choice([60, 300, 900])
        settings = (
            {"export_limit_w": 1000.0 + i} if rng.random() < 0.6 else {"import_limit_w": 500.0}
        )
        controls.append(
            control(
                f"C{i:05d}",
                at,
                duration,
                **settings,
                extra={"randomize_start_s": rng.choice([0, 0, 20])},
            )
        )
        at += duration + rng.choice([0, 0, 0, 30, -30])
    rng.shuffle(controls)
    return controls


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rule_5_a_receipt_in_steps_decides_as_one_call(seed: int) -> None:
    """Issue 15 point 3: ``receive_controls_stepwise`` yields after every ``step`` controls and
    returns exactly the events of one ``receive_controls`` call (adjacency, pinned followers, gaps)."""
    controls = _series(250, seed)
    whole, stepwise = Harness(draw=draw_max), Harness(draw=draw_max)
    expected = whole.poll(10, *controls)
    steps = stepwise.core.receive_controls_stepwise("P1", controls, 10, draw_max, step=7)
    yields = 0
    while True:
        try:
            next(steps)
        except StopIteration as done:
            events = done.value
            break
        yields += 1
    assert yields == (250 - 1) // 7
    assert events == expected
    assert stepwise.core.state == whole.core.state
    assert any(isinstance(e, ControlGap) for e in events)
    assert any(isinstance(e, ControlScheduled) and e.adjacent_to for e in events)


def test_a_receipt_step_below_one_control_is_refused() -> None:
    steps = Harness().core.receive_controls_stepwise("P1", [], 10, draw_max, step=0)
    with pytest.raises(ValueError, match="receipt step must be at least 1 control, not 0"):
        next(steps)


def test_rule_5_a_core_rebuilt_from_its_state_pins_and_gaps_as_the_live_one() -> None:
    """§4 rules 5 and 13: the indexes by time are rebuilt from the state a restart folds from the
    log, so the restarted core finds adjacency, followers, gaps and deadlines as the live one."""
    first, second = _series(120, 7)[:60], _series(120, 7)[60:]
    live = Harness(draw=draw_max)
    live.poll(10, *first)
    state = fold(live.log, evolve, ControlsState())
    rebuilt = ControlsCore(live.config, state)
    assert rebuilt.next_deadline() == live.core.next_deadline()
    expected = live.core.receive_controls("P1", second, 20, draw_max)
    assert rebuilt.receive_controls("P1", second, 20, draw_max) == expected
    assert any(isinstance(e, ControlScheduled) and e.adjacent_to for e in expected)
    assert rebuilt.next_deadline() == live.core.next_deadline()


def test_rule_5_adjacency_to_a_control_received_before_a_restart() -> None:
    """§4 rule 5 across a restart: B starting where A (specified) ends starts at A's effective end."""
    live = Harness(draw=draw_max)
    a = control("A", 1000, 300, extra={"randomize_start_s": 20})
    live.poll(10, a)
    state = fold(live.log, evolve, ControlsState())
    rebuilt = ControlsCore(live.config, state)
    b = Control(
        mrid="B",
        program_id="P1",
        creation_time_s=0,
        start_s=1300,
        duration_s=300,
        settings=ControlSettings(export_limit_w=10.0),
    )
    (scheduled,) = [
        e
        for e in rebuilt.receive_controls("P1", [b], 20, draw_max)
        if isinstance(e, ControlScheduled)
    ]
    assert scheduled.adjacent_to == "A" and scheduled.effective_start_s == 1320
