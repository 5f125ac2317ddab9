"""Every (lifecycle state, core input) pair on the controls core: what each input does to an event in
each state (PROTOCOL.md §4 rules 1, 4, 8, 9). Terminal states never move again."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import msgspec
import pytest

from events.der_model import Control, EventStatus
from tests.statemachines.builders import Harness, control, draw_max, program

_A = control(
    "A", 100, 100, program_id="P2", extra={"randomize_duration_s": 0, "randomize_start_s": 0}
)
_A_RANDOM = msgspec.structs.replace(_A, randomize_duration_s=30)


def _harness() -> Harness:
    return Harness([program("P1", 1), program("P2", 2)], device_category=0x1, draw=draw_max)


def _with(status: EventStatus, c: Control = _A_RANDOM) -> Control:
    return msgspec.structs.replace(c, server_status=status)


def _scheduled(h: Harness) -> float:
    h.poll(0, _A_RANDOM)
    return 0


def _active(h: Harness) -> float:
    h.poll(0, _A_RANDOM)
    h.run_until(150)
    return 150


def _completed(h: Harness) -> float:
    h.poll(0, _A_RANDOM)
    h.run_until(300)
    return 300


def _cancelled(h: Harness) -> float:
    h.poll(0, _A_RANDOM)
    h.poll(50, _with(EventStatus.CANCELLED))
    return 50


def _superseded(h: Harness) -> float:
    h.poll(0, _A_RANDOM)
    h.poll(50, _with(EventStatus.SUPERSEDED))
    return 50


def _ignored(h: Harness) -> float:
    h.poll(0, msgspec.structs.replace(_A_RANDOM, device_category=0x2))
    return 0


def _rejected(h: Harness) -> float:
    no_mode = msgspec.structs.replace(_A_RANDOM.settings, export_limit_w=None, ramp_time_s=1.0)
    h.poll(0, msgspec.structs.replace(_A_RANDOM, settings=no_mode))
    return 0


def _removed(h: Harness) -> float:
    h.poll(0, _A_RANDOM)
    h.programs([program("P1", 1)], 10)
    return 10


# Each recipe leaves event A in the named state and returns the time it did so.
_RECIPES: dict[str, Callable[[Harness], float]] = {
    "scheduled": _scheduled,
    "active": _active,
    "completed": _completed,
    "cancelled": _cancelled,
    "superseded": _superseded,
    "ignored": _ignored,
    "rejected": _rejected,
    "removed": _removed,
}


def _repoll(status: EventStatus) -> Callable[[Harness, float], object]:
    return lambda h, t: h.poll(t, _with(status), program_id="P2")


_INPUTS: dict[str, Callable[[Harness, float], object]] = {
    **{f"status_{int(s)}": _repoll(s) for s in EventStatus},
    "timer_past_end": lambda h, t: h.tick(1000),
    "program_dropped": lambda h, t: h.programs([program("P1", 1)], t),
    "content_changed": lambda h, t: h.poll(
        t, msgspec.structs.replace(_A_RANDOM, duration_s=5), program_id="P2"
    ),
}

_LIVE_EXPECTED = {
    "scheduled": {
        "status_0": "scheduled",
        "status_1": "scheduled",
        "status_2": "cancelled",
        "status_3": "cancelled",  # not started: nothing to spread, cancelled at once
        "status_4": "superseded",
        "status_5": "completed",
        "timer_past_end": "completed",  # whole period passed unseen: never ran
        "program_dropped": "removed",
        "content_changed": "scheduled",  # server fault logged, first plan stands
    },
    "active": {
        "status_0": "active",
        "status_1": "active",
        "status_2": "cancelled",
        "status_3": "active",  # stops after the drawn delay
        "status_4": "superseded",
        "status_5": "completed",
        "timer_past_end": "completed",
        "program_dropped": "removed",
        "content_changed": "active",
    },
}
_PAIRS = list(itertools.product(_RECIPES, _INPUTS))


@pytest.mark.parametrize(("state", "given"), _PAIRS, ids=[f"{s}-{i}" for s, i in _PAIRS])
def test_core_every_lifecycle_state_and_input(state: str, given: str) -> None:
    h = _harness()
    at = _RECIPES[state](h)
    assert h.state("A") == state
    responses_before = h.statuses("A")
    _INPUTS[given](h, at + 1)
    expected = _LIVE_EXPECTED.get(state, {}).get(given, state)
    assert h.state("A") == expected
    if state not in _LIVE_EXPECTED:
        assert h.statuses("A") == responses_before  # a finished event is never answered again
    assert h.refold() == h.core.state
