"""The transition-table machinery: legality index, shared Machine, typed illegal moves, diagrams."""

from __future__ import annotations

import pytest
from transitions.core import EventData

from statemachines.table import IllegalTransition, Row, Table


class _Model:
    __slots__ = ("state",)

    def __init__(self, state: str) -> None:
        self.state = state


def test_unknown_state_in_a_row_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'nowhere'"):
        Table("t", ["a"], "a", [Row("go", "a", "nowhere")])


def test_two_rows_for_one_state_and_trigger_are_refused() -> None:
    with pytest.raises(ValueError, match=r"two rows for \('a', 'go'\)"):
        Table("t", ["a", "b", "c"], "a", [Row("go", "a", "b"), Row("go", "a", "c")])


def test_one_shared_machine_drives_many_slotted_models() -> None:
    table = Table("t", ["a", "b"], "a", [Row("go", "a", "b"), Row("back", "b", "a")])
    models = [_Model("a") for _ in range(3)]
    table.fire(models[1], "go")
    assert [m.state for m in models] == ["a", "b", "a"]
    assert table.machine.models == []  # model=None: nothing registered per object
    assert not hasattr(_Model("a"), "__dict__")


def test_illegal_move_raises_typed_error_naming_state_and_trigger_and_keeps_state() -> None:
    table = Table("t", ["a", "b"], "a", [Row("go", "a", "b")])
    model = _Model("b")
    with pytest.raises(IllegalTransition, match="'go' is not allowed in state 'b'") as info:
        table.fire(model, "go")
    assert (info.value.machine, info.value.state, info.value.trigger) == ("t", "b", "go")
    assert model.state == "b"


def test_machine_has_no_auto_transitions() -> None:
    table = Table("t", ["a", "b"], "a", [Row("go", "a", "b")])
    assert set(table.machine.events) == {"go"}


def test_mermaid_has_one_edge_per_row_and_marks_terminal_states() -> None:
    table = Table("t", ["a", "b", "c"], "a", [Row("go", "a", "b"), Row("stop", "b", "c")])
    assert table.mermaid().splitlines() == [
        "stateDiagram-v2",
        "    [*] --> a",
        "    a --> b : go",
        "    b --> c : stop",
        "    c --> [*]",
    ]


def test_unknown_trigger_raises_typed_error() -> None:
    table = Table("t", ["a", "b"], "a", [Row("go", "a", "b")])
    model = _Model("a")
    with pytest.raises(IllegalTransition, match="'fly' is not allowed in state 'a'"):
        table.fire(model, "fly")
    assert model.state == "a"


def test_fire_goes_through_the_shared_machines_event_step() -> None:
    # fire() skips only Event.trigger's partial and the (unused) transition queue: the library's
    # own step still runs, so machine-level callbacks see every move, with the model and the row.
    table = Table("t", ["a", "b"], "a", [Row("go", "a", "b"), Row("back", "b", "a")])
    seen: list[tuple[str, str, str, bool]] = []

    def finalize(event_data: EventData) -> None:
        t = event_data.transition
        assert t is not None and isinstance(event_data.model, _Model)
        seen.append((event_data.event.name, t.source, t.dest, bool(event_data.result)))

    table.machine.finalize_event = [finalize]
    model = _Model("a")
    table.fire(model, "go")
    table.fire(model, "back")
    assert seen == [("go", "a", "b", True), ("back", "b", "a", True)]
    assert not table.machine.has_queue
