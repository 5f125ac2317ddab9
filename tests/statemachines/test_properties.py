"""Properties of the controls core over random schedules and histories (PROTOCOL.md §4).

A random history mixes programs of random primacy, controls with random periods, modes,
randomisation and receipt times (some late, some expired), server status changes, program removal,
comms loss and recovery, and Response outcomes. At every step:

- fold(log) equals the live state (replay rebuilds it exactly);
- at most one event holds each mode, and the supplier of each mode maximises (−primacy,
  creationTime) among the events in effect for it;
- nothing outside its effective period (or terminal) is ever in force;
- Responses form legal sequences, without duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from events.base import Event
from events.control_events import (
    ControlReceived,
    ControlStarted,
    ControlSuperseded,
    ResponseIntended,
)
from events.der_model import (
    Control,
    ControlSettings,
    EventStatus,
    Mode,
    Program,
    ResponseStatus,
)
from events.replay import fold
from statemachines.arbitration import rank
from statemachines.controls import ControlsCore, ControlsState, CoreConfig, evolve
from statemachines.lifecycle import ACTIVE
from statemachines.responses import PROFILES, legal_next

_MODES = (Mode.EXPORT_LIMIT_W, Mode.GENERATION_LIMIT_W, Mode.ENERGIZE)
_PROGRAMS = ("P1", "P2", "P3")


@dataclass
class _Op:
    at: int
    kind: str
    payload: object = None


@st.composite
def _history(draw: st.DrawFn) -> tuple[list[Program], list[_Op]]:
    programs = [Program(program_id=p, primacy=draw(st.integers(1, 3))) for p in _PROGRAMS]
    ops: list[_Op] = []
    for i in range(draw(st.integers(1, 10))):
        modes = draw(st.sets(st.sampled_from(_MODES), min_size=1))
        values = {m.value: (False if m is Mode.ENERGIZE else float(100 * i)) for m in modes}
        start = draw(st.integers(0, 600))
        c = Control(
            mrid=f"E{i:02d}",
            program_id=draw(st.sampled_from(_PROGRAMS)),
            creation_time_s=draw(st.integers(0, 3)),
            start_s=start,
            duration_s=draw(st.integers(1, 240)),
            settings=ControlSettings(**values),
            randomize_start_s=draw(st.sampled_from([0, 0, 15, -15])),
            randomize_duration_s=draw(st.sampled_from([0, 0, 20])),
            response_required=draw(st.sampled_from([0b011, 0b001, 0b000, 0b111])),
            device_category=draw(st.sampled_from([None, None, 0x1, 0x2])),
        )
        received = draw(st.integers(0, start + 300))
        ops.append(_Op(received, "control", c))
        if draw(st.booleans()):
            status = draw(st.sampled_from(list(EventStatus)))
            ops.append(
                _Op(
                    received + draw(st.integers(0, 300)),
                    "control",
                    msgspec.structs.replace(c, server_status=status),
                )
            )
    for _ in range(draw(st.integers(0, 3))):
        ops.append(
            _Op(
                draw(st.integers(0, 900)),
                draw(
                    st.sampled_from(
                        ["lost", "restored", "ack", "drop_p3", "write_ok", "write_fail"]
                    )
                ),
            )
        )
    if draw(st.booleans()):
        ops.append(_Op(draw(st.integers(0, 900)), "default", draw(st.sampled_from(_PROGRAMS))))
    ops.sort(key=lambda o: o.at)
    return programs, ops


def _draws(seed: int):  # type: ignore[no-untyped-def]
    state = [seed]

    def draw(low: int, high: int) -> int:
        state[0] = (state[0] * 1103515245 + 12345) % 2**31
        return low + state[0] % (high - low + 1)

    return draw


def _check_invariants(core: ControlsCore, log: list[Event], now: float) -> None:
    records = core.state.records
    arb = core.arbitration(now)
    for mode in _MODES:
        holders = [
            r
            for r in records.values()
            if r.state == ACTIVE
            and mode in r.modes - r.lost
            and r.effective_start_s <= now < r.end_s
        ]
        # At most one event holds a mode at any instant (per-mode supersession is exclusive).
        assert len(holders) <= 1, (mode, [h.control.mrid for h in holders])
        source = arb.sources.get(mode)
        if holders:
            assert source == f"control:{holders[0].control.mrid}"
        elif source is not None:
            assert source.startswith("default:")
    for mode, source in arb.sources.items():
        if source.startswith("control:"):
            rec = records[source.removeprefix("control:")]
            # Nothing outside its effective period, or finished, is ever in force.
            assert rec.state in ("scheduled", ACTIVE)
            assert rec.effective_start_s <= now < rec.end_s
            assert mode not in rec.lost
            # The supplier maximises (-primacy, creationTime) among events in effect for the mode.
            rivals = [
                r
                for r in records.values()
                if r.state in ("scheduled", ACTIVE)
                and mode in r.modes - r.lost
                and r.effective_start_s <= now < r.end_s
            ]
            best = max(
                rank(
                    core.state.programs[r.control.program_id].primacy,
                    r.control.creation_time_s,
                    r.control.mrid,
                )
                for r in rivals
            )
            assert best == rank(
                core.state.programs[rec.control.program_id].primacy,
                rec.control.creation_time_s,
                rec.control.mrid,
            )
    sequences: dict[str, list] = {}  # type: ignore[type-arg]
    for event in log:
        if isinstance(event, ResponseIntended):
            seq = sequences.setdefault(event.mrid, [])
            assert legal_next(seq, event.status), (event.mrid, seq, event.status)
            seq.append(event.status)


def _check_supersession_timing(log: list[Event]) -> None:
    """§4 rule 7: an event loses modes when its winner starts (or, if it was received while the
    winner was already running, on receipt); a superseded event never starts afterwards, and one
    that lost everything before it started never answers 2."""
    started: dict[str, float] = {}
    received: dict[str, float] = {}
    superseded_at: dict[str, float] = {}
    order: dict[str, int] = {}  # the order in which events started
    for event in log:
        match event:
            case ControlReceived(control=c, at_s=at):
                received[c.mrid] = at
            case ControlStarted(mrid=mrid, at_s=at):
                assert mrid not in superseded_at, f"{mrid} started after it was superseded"
                started[mrid] = at
                order[mrid] = len(order)
            case ControlSuperseded(mrid=mrid, by=by, at_s=at) if by != "server":
                assert by in started, f"{mrid} lost to {by}, which had not started"
                assert at == max(started[by], received[mrid]), (mrid, by, at)
                # A winner already running when the loser started took its modes before that
                # start: an event never starts with a mode an outranking running event holds.
                assert not (mrid in order and order[by] < order[mrid]), (mrid, by, at)
                if event.fully:
                    superseded_at[mrid] = at
            case ResponseIntended(mrid=mrid, status=ResponseStatus.STARTED):
                assert mrid in started and mrid not in superseded_at, mrid


@settings(max_examples=80, deadline=None)
@given(
    history=_history(),
    seed=st.integers(0, 2**16),
    confirm=st.booleans(),
    profile=st.sampled_from(sorted(PROFILES)),
)
def test_property_random_histories(
    history: tuple[list[Program], list[_Op]], seed: int, confirm: bool, profile: str
) -> None:
    programs, ops = history
    draw = _draws(seed)
    core = ControlsCore(
        CoreConfig(
            lfdi="ab" * 20,
            device_category=0x1,
            set_max_w=5000.0,
            confirm_writes=confirm,
            profile=PROFILES[profile],
        )
    )
    log: list[Event] = []
    log += core.receive_programs(programs, 0, draw)
    for op in ops:
        while (due := core.next_deadline()) is not None and due <= op.at:
            log += core.handle_timer(due, draw)
            _check_invariants(core, log, due)
        match op.kind:
            case "control":
                c = op.payload
                assert isinstance(c, Control)
                log += core.receive_controls(c.program_id, [c], op.at, draw)
            case "lost":
                log += core.comms_lost(op.at, draw)
            case "restored":
                log += core.comms_restored(op.at, draw)
            case "ack":
                for r in core.responses_to_send():
                    log += core.response_acked(r.mrid, r.status, 201, op.at)
            case "write_ok" | "write_fail":
                log += core.device_write_result(op.kind == "write_ok", op.at, draw)
            case "drop_p3":
                log += core.receive_programs(
                    [p for p in programs if p.program_id != "P3"], op.at, draw
                )
            case "default":
                from events.der_model import DefaultControl

                pid = op.payload
                assert isinstance(pid, str)
                default = DefaultControl(
                    program_id=pid, settings=ControlSettings(export_limit_w=4000.0), set_grad_w=50
                )
                log += core.receive_default(pid, default, op.at, draw)
        _check_invariants(core, log, op.at)
        assert fold(log, evolve, ControlsState()) == core.state
    while (due := core.next_deadline()) is not None:
        log += core.handle_timer(due, draw)
        _check_invariants(core, log, due)
    assert fold(log, evolve, ControlsState()) == core.state
    _check_supersession_timing(log)
    # No duplicate Responses for any (mRID, status, LFDI).
    keys = [(e.mrid, e.status, e.lfdi) for e in log if isinstance(e, ResponseIntended)]
    assert len(keys) == len(set(keys))
    # Only the codes the profile allows (SAPN: 1, 2, 3, 6, 7).
    assert {status for _, status, _ in keys} <= PROFILES[profile].allowed
    # Round trip through the log codec does not change what a fold rebuilds.
    from events.registry import CATALOGUE

    decoded = [CATALOGUE.decode(CATALOGUE.encode(e)) for e in log]
    assert fold(decoded, evolve, ControlsState()) == core.state
