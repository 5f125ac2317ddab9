"""The forensic model folds the log through the live gateway's own folds, and remembers why."""

from __future__ import annotations

import contextlib
import io
import sqlite3
from pathlib import Path

import pytest

from events.registry import CATALOGUE
from events.replay import replay
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.commands.sim import write_log
from sep2gw.forensics import analyse
from sep2gw.forensics.model import Forensics
from sep2gw.rules import rule
from sep2gw.simserver.scenario import load_scenario
from sep2gw.world import run_world
from statemachines.controls import CONTROLS_PROJECTION

SCENARIOS = Path(__file__).resolve().parents[3] / "sep2gw" / "simserver" / "scenarios"

DEMO_T0 = 1_764_115_200.0
RESTART_T0 = 1_764_158_400.0


def _analyse(path: Path, at: list[float] = ()) -> Forensics:  # type: ignore[assignment]
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        return analyse(store, at=at)


def _story(model: Forensics, mrid: str) -> list[tuple[str, str]]:
    return [(s.what, s.why) for s in model.stories[mrid]]


def test_state_at_an_instant_equals_the_live_fold_replayed_to_that_record(
    world_logs: dict[str, Path],
) -> None:
    instants = [DEMO_T0 + s for s in (0, 31, 200, 205, 361, 600)]
    model = _analyse(world_logs["demo"], instants)
    with SqliteEventStore(world_logs["demo"], CATALOGUE, readonly=True) as store:
        times = [(r.seq, r.server_time) for r in store.read()]
        for t in instants:
            last = 0
            for seq, server_time in times:
                if server_time > t:
                    break
                last = seq
            expected, _ = replay(store, CONTROLS_PROJECTION, to_seq=last)
            # structural equality: frozensets rebuilt from JSON may iterate in another order
            assert model.state_at(t) == expected, t


def test_the_final_state_is_the_fold_of_the_whole_log(world_logs: dict[str, Path]) -> None:
    for path in world_logs.values():
        model = _analyse(path)
        with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
            expected, _ = replay(store, CONTROLS_PROJECTION)
        assert model.controls == expected
        assert model.verified


def test_a_randomised_start_is_explained_by_its_draw(world_logs: dict[str, Path]) -> None:
    story = _story(_analyse(world_logs["comms"]), "C0000000000000000000000000000001")
    drawn = [what for what, _ in story if what.startswith("randomisation drawn: start +")]
    assert len(drawn) == 1
    offset = drawn[0].split("start ")[1].split(" s")[0]
    started = [why for what, why in story if what == "STARTED"]
    assert started == [
        f"its effective start: specified start {offset} s randomisation ({rule(6)}); "
        "Response 2 waits for the device to confirm the write"
    ]


def test_an_adjacent_start_is_explained_by_its_predecessor(world_logs: dict[str, Path]) -> None:
    model = _analyse(world_logs["comms"])
    first = model.controls.records["C0000000000000000000000000000001"]
    second = model.controls.records["C0000000000000000000000000000002"]
    assert second.effective_start_s == first.effective_end_s
    started = [why for what, why in _story(model, second.control.mrid) if what == "STARTED"]
    assert f"pinned to the effective end of control 00000001 ({rule(5)})" in started[0]


def test_supersession_names_the_winner_its_modes_and_its_rank(
    world_logs: dict[str, Path],
) -> None:
    story = _story(_analyse(world_logs["demo"]), "DE0000000000000000000000000000A2")
    superseded = [(w, y) for w, y in story if w.startswith("superseded by")]
    assert superseded[0][0] == "superseded by control 000000B1 on target_w"
    assert "(primacy 10)" in superseded[0][1] and "(primacy 20)" in superseded[0][1]
    assert [w for w, _ in story if w.startswith("Response")][-3:] == [
        "Response 7 (superseded) intended",
        "Response 7 sent",
        "Response 7 acknowledged (HTTP 201)",
    ]


def test_a_cancel_is_a_step_with_the_server_status(world_logs: dict[str, Path]) -> None:
    story = _story(_analyse(world_logs["demo"]), "DE0000000000000000000000000000A3")
    assert (
        "CANCELLED",
        f"the server set EventStatus 2 (cancelled) ({rule(8)})",
    ) in story


def test_responses_keep_their_four_stages_across_comms_loss(world_logs: dict[str, Path]) -> None:
    model = _analyse(world_logs["comms"])
    row = model.responses[("C0000000000000000000000000000002", 2)]
    assert row.sent_s and row.acked_s is not None
    lost = model.comms[0]
    assert lost.lost_s <= row.intended_s < (lost.restored_s or 0) <= row.sent_s[0]
    assert row.outcome == "acknowledged"


def test_a_restart_inside_a_control_is_part_of_its_story(world_logs: dict[str, Path]) -> None:
    model = _analyse(world_logs["restart"])
    assert len(model.runs) == 2
    restart = model.runs[1].started_s
    assert restart == RESTART_T0 + 170  # the crash at +150 s, back 20 s later
    steps = [s for s in model.stories["D0000000000000000000000000000001"]]
    restarted = [s for s in steps if s.what == "gateway restarted"]
    assert [s.at_s for s in restarted] == [restart]
    after = steps[steps.index(restarted[0]) + 1]
    assert after.what.startswith("battery: limits applied") and after.at_s == restart


def test_a_tampered_log_is_folded_only_when_forced(
    world_logs: dict[str, Path], tmp_path: Path
) -> None:
    path = tmp_path / "tampered.sep2gw"
    path.write_bytes(world_logs["demo"].read_bytes())
    with sqlite3.connect(path) as db:
        # A1's ControlReceived (found, not assumed: how many records precede it is the gateway's
        # business, e.g. polls of Time).
        (seq,) = db.execute(
            "SELECT seq FROM events WHERE type = 'control.received.v1' AND body LIKE '%A1%' "
            "ORDER BY seq LIMIT 1"
        ).fetchone()
        db.execute(f"UPDATE events SET body = replace(body, '1500', '9500') WHERE seq = {seq}")
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        refused = analyse(store)
        forced = analyse(store, force=True)
    assert refused.report is not None and refused.report.problem is not None
    assert refused.report.problem.seq == seq
    assert refused.records == seq - 1 and not refused.forced
    assert forced.forced and forced.records == store_head(path)
    received = forced.controls.records["DE0000000000000000000000000000A1"].control
    assert received.settings.export_limit_w == 9500  # the altered value, folded only under force


def store_head(path: Path) -> int:
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        return store.head().seq


@pytest.mark.parametrize("world", ["demo", "comms", "restart"])
def test_limit_periods_follow_the_recorded_limits_in_force(
    world: str, world_logs: dict[str, Path]
) -> None:
    model = _analyse(world_logs[world])
    assert model.limits
    for before, after in zip(model.limits, model.limits[1:], strict=False):
        assert before.end_s == after.start_s
    assert model.limits[-1].settings == model.controls.settings


@pytest.mark.parametrize(
    ("scenario", "mrid", "citation"),
    [
        ("expired_on_receipt.toml", "E1", f"{rule(3)})"),
        ("device_category_mismatch.toml", "C0", f"{rule(14)})"),
    ],
)
def test_an_ignored_control_is_explained_by_its_own_rule(
    scenario: str, mrid: str, citation: str, pki: Path, tmp_path: Path
) -> None:
    """The story cited 'rules 3 and 14' for either reason; each reason has one rule."""
    result = run_world(load_scenario(SCENARIOS / scenario), seed=1, site=pki)
    log = tmp_path / "w.sep2gw"
    write_log(result.store, log)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["explain", str(log), mrid]) == 0
    lines = out.getvalue().splitlines()
    ignored = next(i for i, line in enumerate(lines) if "ignored:" in line)
    assert lines[ignored + 1].strip().startswith("why:")
    assert lines[ignored + 1].strip().endswith(citation)
