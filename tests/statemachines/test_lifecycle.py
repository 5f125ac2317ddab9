"""Every (state, trigger) pair of the control lifecycle, legal and illegal (PROTOCOL.md §4)."""

from __future__ import annotations

import itertools

import pytest

from events.der_model import Control, ControlSettings
from statemachines.controls import ControlRecord
from statemachines.lifecycle import (
    LIFECYCLE,
    LIFECYCLE_ROWS,
    LIFECYCLE_STATES,
    TERMINAL_STATES,
)
from statemachines.table import IllegalTransition

_CONTROL = Control(
    mrid="A1",
    program_id="P",
    creation_time_s=0,
    start_s=0,
    duration_s=60,
    settings=ControlSettings(export_limit_w=0.0),
)
_EXPECTED = {(r.source, r.trigger): r.dest for r in LIFECYCLE_ROWS}
_PAIRS = list(itertools.product(LIFECYCLE_STATES, LIFECYCLE.triggers))


@pytest.mark.parametrize(("state", "trigger"), _PAIRS, ids=[f"{s}-{t}" for s, t in _PAIRS])
def test_lifecycle_every_state_input_pair(state: str, trigger: str) -> None:
    record = ControlRecord(state=state, control=_CONTROL, received_s=0)
    if (state, trigger) in _EXPECTED:
        LIFECYCLE.fire(record, trigger)
        assert record.state == _EXPECTED[(state, trigger)]
    else:
        with pytest.raises(IllegalTransition) as info:
            LIFECYCLE.fire(record, trigger)
        assert (info.value.state, info.value.trigger) == (state, trigger)
        assert record.state == state


def test_terminal_states_have_no_way_out() -> None:
    assert {r.source for r in LIFECYCLE_ROWS}.isdisjoint(TERMINAL_STATES)


def test_every_state_is_reachable_from_received() -> None:
    reached, frontier = {"received"}, ["received"]
    while frontier:
        state = frontier.pop()
        for row in LIFECYCLE_ROWS:
            if row.source == state and row.dest not in reached:
                reached.add(row.dest)
                frontier.append(row.dest)
    assert reached == set(LIFECYCLE_STATES)


def test_rule7_superseded_before_start_never_becomes_active() -> None:
    assert ("superseded", "start") not in _EXPECTED
