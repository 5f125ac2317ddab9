"""Replay through the real event stores: snapshot + tail rebuilds each decision machine's state
(DESIGN: decide → persist → act; PROTOCOL.md §4 rule 13)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from events.base import Event
from events.control_events import control_event_stream
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.replay import replay, snapshot_of
from events.sqlite_store import SqliteEventStore
from events.store import EventStore
from statemachines.controls import CONTROLS_PROJECTION
from statemachines.polling import POLL_PROJECTION, PollSchedule
from statemachines.registration import (
    REGISTRATION_PROJECTION,
    RegistrationConfig,
    RegistrationCore,
)
from tests.statemachines.builders import Harness, control, draw_max, program


def _append(store: EventStore, events: list[Event], now: float) -> None:
    for event in events:
        store.append_events(control_event_stream(event), [event], server_time=now, monotonic=now)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    backend: EventStore
    if request.param == "memory":
        backend = MemoryEventStore(CATALOGUE)
    else:
        backend = SqliteEventStore(tmp_path / "log.sqlite", CATALOGUE)
    with backend:
        yield backend


def test_rule13_snapshot_plus_tail_rebuilds_the_controls_state(store: EventStore) -> None:
    h = Harness([program("P1", 1), program("P2", 2)], draw=draw_max)
    h.default("P2", 0, export_limit_w=5000.0)
    h.poll(0, control("A", 100, 300, program_id="P2", extra={"randomize_start_s": 10}))
    h.poll(0, control("B", 150, 50, program_id="P1", export_limit_w=0.0))
    h.run_until(160)
    _append(store, h.log, 160)
    middle, through = h.core.state, store.head().seq
    stream, snap = snapshot_of(CONTROLS_PROJECTION, middle, through)
    store.append_events(stream, [snap], server_time=160, monotonic=160)
    mark = len(h.log)
    h.run_until(600)
    _append(store, h.log[mark:], 600)
    state, last = replay(store, CONTROLS_PROJECTION)
    assert last == store.head().seq
    assert state == h.core.state
    assert store.verify({CONTROLS_PROJECTION.name: CONTROLS_PROJECTION}).ok


def test_registration_and_poll_schedules_replay_from_the_store(store: EventStore) -> None:
    reg = RegistrationCore(RegistrationConfig(pin=111115))
    polls = PollSchedule()
    log = reg.start(0) + reg.step_failed(reg.step, 503, 1, draw_max)  # type: ignore[arg-type]
    log += reg.step_done(reg.step, 20, href="/dcap")  # type: ignore[arg-type]
    log += polls.rate_seen("/derp/1/derc", 60, 20) + polls.polled("/derp/1/derc", 80)
    for event in log:
        store.append_events("registration", [event], server_time=0, monotonic=0)
    assert replay(store, REGISTRATION_PROJECTION)[0] == reg.state
    assert replay(store, POLL_PROJECTION)[0] == polls.state
