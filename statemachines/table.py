"""Transition tables as data, one shared ``transitions.Machine`` per machine type, and their diagrams.

A machine type is declared once as a tuple of :class:`Row` (trigger, source, dest). From it we build
one module-level ``Machine`` (``model=None``, ``auto_transitions=False``, ``send_event=True``) that
drives any number of small slotted models, and the Mermaid diagram in ARCHITECTURE.md, so the code,
the legality check and the picture cannot drift apart (STYLE.md, "Using transitions").

A missing ``(state, trigger)`` entry is an illegal move: :meth:`Table.fire` raises
:class:`IllegalTransition` naming the machine, the state and the trigger, and leaves the model as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from transitions import Machine, MachineError, Transition
from transitions.core import Event, EventData

__all__ = ["IllegalTransition", "Row", "StatefulModel", "Table"]


class Row(NamedTuple):
    """One legal move: ``trigger`` takes a model from ``source`` to ``dest``."""

    trigger: str
    source: str
    dest: str


class StatefulModel(Protocol):
    state: str


class IllegalTransition(RuntimeError):
    """A local error: our own code asked a machine for a move its table does not allow."""

    def __init__(self, machine: str, state: str, trigger: str) -> None:
        super().__init__(f"{machine}: trigger {trigger!r} is not allowed in state {state!r}")
        self.machine = machine
        self.state = state
        self.trigger = trigger


class _StateChangeOnly(Transition):
    """A transition whose whole effect is the state change.

    Our tables register no conditions and no callbacks (effects are computed by the pure step
    functions and recorded as events), so the generic path (prepare, conditions, before, exit,
    enter, after, with debug logging at each step: ~8 µs) would only cost time. ``Table`` refuses
    to build a machine where this shortcut would skip a registered callback.
    """

    def execute(self, event_data: Any) -> bool:
        setattr(event_data.model, "state", self.dest)  # noqa: B010 - the model attribute name
        return True


class _Machine(Machine):
    transition_cls = _StateChangeOnly


class Table:
    """A machine type: its states, its rows, the shared ``Machine`` and the legality index."""

    __slots__ = ("_events", "initial", "legal", "machine", "name", "rows", "states")

    def __init__(self, name: str, states: Iterable[str], initial: str, rows: Iterable[Row]) -> None:
        self.name = name
        self.states = tuple(states)
        self.initial = initial
        self.rows = tuple(rows)
        self.legal: dict[tuple[str, str], str] = {}
        for row in self.rows:
            for end in (row.source, row.dest):
                if end not in self.states:
                    raise ValueError(f"{name}: row {row} names unknown state {end!r}")
            if (row.source, row.trigger) in self.legal:
                raise ValueError(f"{name}: two rows for ({row.source!r}, {row.trigger!r})")
            self.legal[(row.source, row.trigger)] = row.dest
        self.machine = _Machine(
            model=None,
            states=list(self.states),
            transitions=[
                {"trigger": r.trigger, "source": r.source, "dest": r.dest} for r in self.rows
            ],
            initial=initial,
            auto_transitions=False,
            send_event=True,
            name=name,
        )
        for event in self.machine.events.values():
            for transitions in event.transitions.values():
                for t in transitions:
                    if t.prepare or t.conditions or t.before or t.after:
                        raise ValueError(f"{name}: callbacks would be skipped on {t}")
        if self.machine.has_queue:
            raise ValueError(f"{name}: fire() relies on an unqueued machine")
        self._events: dict[str, Event] = dict(self.machine.events)

    @property
    def triggers(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.trigger for r in self.rows))

    def allows(self, state: str, trigger: str) -> bool:
        return (state, trigger) in self.legal

    def fire(self, model: StatefulModel, trigger: str) -> None:
        """Move ``model`` by ``trigger`` through the shared Machine; raise if the table has no row.

        This is ``Event.trigger`` minus its two wrappers: the ``functools.partial`` it builds and
        ``Machine._process``, whose only job is the transition queue, which an unqueued machine
        (checked at build) never uses: with an empty queue it just calls ``Event._trigger``. What
        remains is the library's own step: resolve the model's State, check the source
        (``MachineError``), prepare callbacks, pick and execute the Transition, finalize callbacks.
        """
        event = self._events.get(trigger)
        if event is None:
            raise IllegalTransition(self.name, model.state, trigger)
        try:
            moved = event._trigger(EventData(None, event, self.machine, model, (), {}))
        except MachineError:  # the library's own source check: no row, nothing changed
            raise IllegalTransition(self.name, model.state, trigger) from None
        if not moved:
            raise IllegalTransition(self.name, model.state, trigger)

    def mermaid(self) -> str:
        """The table as a Mermaid ``stateDiagram-v2`` (one edge per row, in table order)."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial}"]
        lines += [f"    {r.source} --> {r.dest} : {r.trigger}" for r in self.rows]
        terminal = [s for s in self.states if not any(r.source == s for r in self.rows)]
        lines += [f"    {s} --> [*]" for s in terminal]
        return "\n".join(lines)
