"""Decision-core benchmark: arbitration over 10/100/1,000 known events, and the lifecycle transition
through the shared ``transitions`` Machine against a plain dict-table floor measured in the same run
(``lifecycle_floor_ratio``: the bare move, the strict reading of the target); the whole ``evolve`` step
of a lifecycle event with and without the Machine is reported beside it (``evolve_step_floor_ratio``).

Usage: ``python3 benchmarks/core_bench.py [--quick]``. Prints human-readable lines, then one JSON line
with ``arbitrate_100_us``, ``arbitrate_1000_us`` and ``lifecycle_floor_ratio`` (targets: < 200 µs and
<= 20). Timings on a shared machine are noisy: each figure is the median of several repeats.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import statemachines.controls.fold as controls_module
from events.base import Event
from events.control_events import ControlCompleted, ControlScheduled, ControlStarted
from events.der_model import Control, ControlSettings, DefaultControl, Program
from statemachines.arbitration import arbitrate
from statemachines.controls import (
    CONTROLS_PROJECTION,
    ControlRecord,
    ControlsCore,
    ControlsState,
    CoreConfig,
    evolve_in_place,
)
from statemachines.lifecycle import LIFECYCLE
from statemachines.table import IllegalTransition, StatefulModel

DAY = 86_400
T0 = 1_700_000_000
MODE_SETS = (
    {"export_limit_w": 1000.0},
    {"export_limit_w": 0.0, "generation_limit_w": 3000.0},
    {"import_limit_w": 2000.0},
    {"energize": False},
    {"export_limit_w": 500.0, "import_limit_w": 500.0, "max_limit_pct": 50.0},
)


def _core_with(n: int, rng: random.Random, log: list[Event] | None = None) -> ControlsCore:
    """A core that knows ``n`` events over one day in three programs, some overlapping; what it
    emitted is appended to ``log``."""
    core = ControlsCore(CoreConfig(lfdi="ab" * 20, device_category=1))
    out = log if log is not None else []

    def draw(low: int, high: int) -> int:
        return rng.randint(low, high)

    programs = [Program(program_id=f"P{i}", primacy=i) for i in (1, 2, 3)]
    out += core.receive_programs(programs, T0, draw)
    out += core.receive_default(
        "P3",
        DefaultControl(program_id="P3", settings=ControlSettings(export_limit_w=5000.0)),
        T0,
        draw,
    )
    by_program: dict[str, list[Control]] = {p.program_id: [] for p in programs}
    for i in range(n):
        pid = rng.choice(programs).program_id
        by_program[pid].append(
            Control(
                mrid=f"{i:08X}",
                program_id=pid,
                creation_time_s=rng.randint(0, 1000),
                start_s=T0 + 10 + rng.randint(0, DAY - 600),
                duration_s=rng.choice([60, 300, 900, 1800, 3600]),
                settings=ControlSettings(**rng.choice(MODE_SETS)),
                randomize_start_s=rng.choice([0, 0, 30]),
                response_required=3,
            )
        )
    for pid, controls in by_program.items():
        out += core.receive_controls(pid, controls, T0, draw)
    return core


def _median_us(fn, repeats: int, number: int) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(samples)


def bench_arbitration(n: int, rng: random.Random, quick: bool) -> float:
    core = _core_with(n, rng)
    candidates = core.candidates()
    defaults = core.defaults()
    instants = [T0 + rng.randint(0, DAY) for _ in range(64)]
    index = [0]

    def one() -> None:
        now = instants[index[0] & 63]
        index[0] += 1
        arbitrate(candidates, defaults, now)

    number = max(20, 20_000 // max(n, 1)) // (4 if quick else 1)
    us = _median_us(one, 5 if quick else 9, number)
    print(f"arbitrate over {n:5d} known events: {us:8.1f} µs per call (median)")
    return us


def bench_day(n: int, rng: random.Random) -> None:
    """A whole day driven live (receipt, every start/end, supersession, Responses), then replayed."""
    start = time.perf_counter()
    log: list[Event] = []
    core = _core_with(n, rng, log)

    def draw(low: int, high: int) -> int:
        return rng.randint(low, high)

    while (due := core.next_deadline()) is not None:
        log += core.handle_timer(due, draw)
    live_s = time.perf_counter() - start
    start = time.perf_counter()
    state, step = CONTROLS_PROJECTION.transient(ControlsState())
    for event in log:
        state = step(state, event)
    replay_s = time.perf_counter() - start
    assert state == core.state, "replay must rebuild the live state"
    print(
        f"a day with {n:5d} events: live {live_s * 1e3:8.1f} ms ({len(log)} events emitted), "
        f"replay {replay_s * 1e3:6.1f} ms"
    )


def _program_of(n: int, rng: random.Random) -> list[Control]:
    """``n`` distinct controls of one program as a utility publishes a big program: mostly
    back-to-back series per mode (adjacency, §4 rule 5), some near-adjacent (gaps), some overlapping."""
    controls = []
    at = T0 + 60
    for i in range(n):
        duration = rng.choice([300, 900, 1800])
        controls.append(
            Control(
                mrid=f"{i:08X}",
                program_id="P1",
                creation_time_s=rng.randint(0, 1000),
                start_s=at,
                duration_s=duration,
                settings=ControlSettings(**rng.choice(MODE_SETS)),
                randomize_start_s=rng.choice([0, 0, 0, 30]),
                response_required=3,
                reply_to="/rsps/1/rsp",
            )
        )
        at += duration + rng.choice([0, 0, 0, 30, -60])
    return controls


def bench_first_receipt(n: int, rng: random.Random) -> float:
    """Issue 19 point 5: one poll that brings ``n`` new controls (the first receipt), in ms of CPU."""
    controls = _program_of(n, rng)

    def draw(low: int, high: int) -> int:
        return rng.randint(low, high)

    core = ControlsCore(CoreConfig(lfdi="ab" * 20, device_category=1))
    core.receive_programs([Program(program_id="P1", primacy=1)], T0, draw)
    start = time.process_time()
    events = core.receive_controls("P1", controls, T0, draw)
    ms = (time.process_time() - start) * 1e3
    print(f"first receipt of {n:6d} new controls: {ms:9.1f} ms of CPU ({len(events)} events)")
    if n >= 5000:
        # Their Responses 1 answered, oldest first, as the responder reports them.
        start = time.process_time()
        for intended in core.responses_to_send():
            core.response_sent(intended.mrid, intended.status, T0 + 1)
            core.response_acked(intended.mrid, intended.status, 201, T0 + 1)
        acked_ms = (time.process_time() - start) * 1e3
        print(f"  and their {n} Responses acknowledged: {acked_ms:9.1f} ms of CPU")
    return ms


class _DictTable:
    """The floor: the same legality index as the lifecycle table, a dict lookup and an assignment."""

    __slots__ = ("legal",)

    def __init__(self) -> None:
        self.legal = dict(LIFECYCLE.legal)

    def fire(self, model: StatefulModel, trigger: str) -> None:
        try:
            model.state = self.legal[(model.state, trigger)]
        except KeyError:
            raise IllegalTransition("floor", model.state, trigger) from None


def _lifecycle_workload(count: int) -> tuple[ControlsState, list[Event]]:
    state = ControlsState()
    control = Control(
        mrid="X",
        program_id="P",
        creation_time_s=0,
        start_s=0,
        duration_s=60,
        settings=ControlSettings(export_limit_w=0.0),
    )
    events: list[Event] = []
    for i in range(count):
        mrid = f"{i:08X}"
        state.records[mrid] = ControlRecord(control=control, received_s=0)
        events += [
            ControlScheduled(mrid=mrid, effective_start_s=0, effective_end_s=60, at_s=0),
            ControlStarted(mrid=mrid, at_s=0),
            ControlCompleted(mrid=mrid, at_s=60),
        ]
    return state, events


def _reset(state: ControlsState) -> None:
    for rec in state.records.values():
        rec.state = "received"


def bench_lifecycle(quick: bool) -> tuple[float, float, float, float]:
    """Per lifecycle step: ``evolve_in_place`` of one lifecycle event (what live decisions and replay
    both run), through the shared Machine, and the same with the dict-table floor swapped in."""
    count = 2000 if quick else 5000
    state, events = _lifecycle_workload(count)

    def run() -> None:
        _reset(state)
        for event in events:
            evolve_in_place(state, event)

    repeats = 5 if quick else 9
    ours = _median_us(run, repeats, 1) / len(events)
    with mock.patch.object(controls_module, "LIFECYCLE", _DictTable()):
        floor = _median_us(run, repeats, 1) / len(events)

    model = ControlRecord(control=state.records["00000000"].control, received_s=0)
    table = _DictTable()

    def raw(fire) -> float:  # type: ignore[no-untyped-def]
        def cycle() -> None:
            model.state = "received"
            fire(model, "schedule")
            fire(model, "start")
            fire(model, "complete")

        return _median_us(cycle, repeats, 2000 if quick else 5000) / 3

    raw_ours, raw_floor = raw(LIFECYCLE.fire), raw(table.fire)
    print(
        f"lifecycle transition via the shared transitions Machine: {raw_ours:6.2f} µs; "
        f"dict-table floor: {raw_floor:6.3f} µs"
    )
    print(f"  ratio {raw_ours / raw_floor:5.1f}x (target <= 20x; the bare move, nothing around it)")
    print(
        f"lifecycle step (evolve of one event) via the Machine: {ours:6.2f} µs; "
        f"with the dict table swapped in: {floor:6.2f} µs"
    )
    print(f"  ratio {ours / floor:5.1f}x (what live decisions and replay pay per lifecycle event)")
    return ours, floor, raw_ours, raw_floor


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rng = random.Random(20305)
    print("sep2gw decision-core benchmark (shared machine: figures are noisy, medians of repeats)")
    results = {n: bench_arbitration(n, rng, quick) for n in (10, 100, 1000)}
    for n in (10, 100) if quick else (10, 100, 1000):
        bench_day(n, rng)
    sizes = (100, 1000, 5000) if quick else (100, 1000, 5000, 10_000)
    receipt = {n: bench_first_receipt(n, rng) for n in sizes}
    # The growth exponent between the smallest and the largest size (1 = linear, 2 = quadratic).
    exponent = math.log(receipt[sizes[-1]] / receipt[sizes[0]]) / math.log(sizes[-1] / sizes[0])
    print(f"  growth exponent {exponent:4.2f} ({sizes[0]} → {sizes[-1]}; 1 is linear)")
    ours, floor, raw_ours, raw_floor = bench_lifecycle(quick)
    print(
        json.dumps(
            {
                "arbitrate_10_us": round(results[10], 2),
                "arbitrate_100_us": round(results[100], 2),
                "arbitrate_1000_us": round(results[1000], 2),
                "lifecycle_transition_us": round(raw_ours, 3),
                "lifecycle_floor_us": round(raw_floor, 3),
                "lifecycle_floor_ratio": round(raw_ours / raw_floor, 2),
                "evolve_step_us": round(ours, 3),
                "evolve_step_floor_ratio": round(ours / floor, 2),
                **{f"first_receipt_{n}_ms": round(ms, 1) for n, ms in receipt.items()},
                "first_receipt_growth_exponent": round(exponent, 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
