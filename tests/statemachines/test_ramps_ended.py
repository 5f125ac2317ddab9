"""Which ramps are over is a decision, logged (issue 17): the controls core decides it with the limits
in force (``LimitsInForceChanged.ramps_ended``, v2) and the fold applies what the record says. Logs
written before (``control.limits_in_force.v1``, which did not say) fold exactly as they always did."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import statemachines.controls.decisions as decisions
from events.base import Event
from events.catalogue import Catalogue
from events.control_events import (
    LimitsInForceChanged,
    LimitsInForceChangedV1,
    RampPlanned,
    control_event_stream,
)
from events.der_model import ControlSettings, Mode
from events.registry import ALL_EVENT_TYPES, CATALOGUE
from events.replay import fold, replay
from events.sqlite_store import SqliteEventStore
from statemachines.controls import CONTROLS_PROJECTION, ControlsState, evolve
from tests.statemachines.builders import Harness, control

GEN = Mode.GENERATION_LIMIT_W
#: The catalogue of a build before issue 17: the limits in force were written as v1.
OLD_BUILD = Catalogue(
    tuple(LimitsInForceChangedV1 if t is LimitsInForceChanged else t for t in ALL_EVENT_TYPES)
)


def _ramp_then_default() -> Harness:
    """§4 rule 11, the swarm's case (decision 0005): a control ramped in by its rampTms ends and the
    default comes back with no setGradW, so the control's ramp is over."""
    h = Harness(set_max_w=5000.0)
    h.default("P1", 0, generation_limit_w=0.0)
    h.poll(0, control("A", 100, 60, generation_limit_w=3000.0, ramp_time_s=10.0))
    h.run_until(200)
    return h


def _as_v1(event: Event) -> Event:
    """A record as a build before issue 17 wrote it."""
    if isinstance(event, LimitsInForceChanged):
        return LimitsInForceChangedV1(
            settings=event.settings,
            sources=event.sources,
            next_change_s=event.next_change_s,
            at_s=event.at_s,
        )
    return event


def _store(path: Path, catalogue: Catalogue, events: list[Event]) -> None:
    with SqliteEventStore(path, catalogue) as store:
        for i, event in enumerate(events):
            store.append_events(
                control_event_stream(event), [event], server_time=float(i), monotonic=float(i)
            )


def test_rule11_the_core_records_which_ramps_a_change_of_limits_ended() -> None:
    h = _ramp_then_default()
    ended = [e.ramps_ended for e in h.limits_log()]
    assert (GEN,) in ended
    assert GEN not in h.core.state.ramps
    assert h.refold() == h.core.state


def test_the_fold_applies_what_the_record_says_and_decides_nothing() -> None:
    """A v2 record that ends no ramp leaves even a ramp towards another value in place: the fold
    carries no rule of its own (the one that decides is ``decisions.ramps_ended``)."""
    ramp = RampPlanned(mode=GEN, from_value=0.0, to_value=3000.0, start_s=0, end_s=10, at_s=0)
    limits = LimitsInForceChanged(
        settings=ControlSettings(generation_limit_w=0.0),
        sources={GEN: "default:P1"},
        next_change_s=None,
        ramps_ended=(),
        at_s=5,
    )
    assert fold([ramp, limits], evolve, ControlsState()).ramps == {GEN: ramp}
    ending = msgspec.structs.replace(limits, ramps_ended=(GEN,))
    assert fold([ramp, ending], evolve, ControlsState()).ramps == {}


@pytest.mark.parametrize(
    ("value", "kept"), [(3000.0, True), (0.0, False)], ids=["towards it", "towards another"]
)
def test_a_v1_record_folds_as_v1_records_always_did(value: float, kept: bool) -> None:
    """``control.limits_in_force.v1`` did not say which ramps ended: read through the upcaster
    (``ramps_ended=None``), the fold ends those leading to a value other than the one in force."""
    ramp = RampPlanned(mode=GEN, from_value=0.0, to_value=3000.0, start_s=0, end_s=10, at_s=0)
    old = LimitsInForceChangedV1(
        settings=ControlSettings(generation_limit_w=value),
        sources={GEN: "default:P1"},
        next_change_s=None,
        at_s=5,
    )
    upcast = CATALOGUE.decode(OLD_BUILD.encode(old))
    assert isinstance(upcast, LimitsInForceChanged) and upcast.ramps_ended is None
    state = fold([ramp, upcast], evolve, ControlsState())
    assert (GEN in state.ramps) is kept


def test_a_log_written_before_ramps_were_recorded_replays_to_the_same_state(
    tmp_path: Path,
) -> None:
    """The same decisions, written by a build before issue 17 (v1 limits in force, no
    ``ramps_ended``) and read by this one: the replayed state is the one the live core had."""
    h = _ramp_then_default()
    old_log = [_as_v1(e) for e in h.log]
    assert any(isinstance(e, LimitsInForceChangedV1) for e in old_log)
    _store(tmp_path / "old.sep2gw", OLD_BUILD, old_log)
    _store(tmp_path / "new.sep2gw", CATALOGUE, h.log)
    with SqliteEventStore(tmp_path / "old.sep2gw", CATALOGUE, readonly=True) as store:
        old_state, _ = replay(store, CONTROLS_PROJECTION)
        assert all(
            e.ramps_ended is None
            for e in (r.event for r in store.read())
            if isinstance(e, LimitsInForceChanged)
        )
    with SqliteEventStore(tmp_path / "new.sep2gw", CATALOGUE, readonly=True) as store:
        new_state, _ = replay(store, CONTROLS_PROJECTION)
    assert old_state == new_state == h.core.state
    assert GEN not in old_state.ramps


def test_changing_the_ramp_rule_does_not_change_the_fold_of_an_existing_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rule is the decision core's: a new rule changes what a core decides from now on (its
    records say so), never what an existing log folds to."""
    h = _ramp_then_default()
    before = fold(h.log, evolve, ControlsState())
    monkeypatch.setattr(decisions, "ramps_ended", lambda ramps, settings: ())
    assert fold(h.log, evolve, ControlsState()) == before == h.core.state
    assert GEN not in before.ramps
    under_new_rule = _ramp_then_default()
    assert all(e.ramps_ended == () for e in under_new_rule.limits_log())
    assert GEN in under_new_rule.core.state.ramps  # the new rule was applied, and recorded
    assert under_new_rule.refold() == under_new_rule.core.state
