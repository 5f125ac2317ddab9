"""Swarms on engines (issue 21): a world is a pure function of (scenario, seed, code version), so
the same task gives the same log in this process, in a local pool and on a Dask worker; a violating
world is kept as an artefact ``sep2gw sim`` reproduces record for record; coverage steers the draws;
the loop resubmits a world whose worker died."""

from __future__ import annotations

import json
import random
import shlex
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.simreport import scenario_toml
from sep2gw.simserver import parse_scenario
from sep2gw.swarm import (
    FAULT_FAMILIES,
    CodeVersionMismatch,
    Coverage,
    DaskEngine,
    Engine,
    LocalEngine,
    Lost,
    WorkerLost,
    WorldOutcome,
    WorldTask,
    code_version,
    fault_families,
    random_scenario,
    read_pki,
    run_swarm,
    run_task,
    world_tasks,
)
from sep2gw.world import run_world

#: A world whose [expect] cannot hold (a cancelled event is answered 6, never 3): it violates.
IMPOSSIBLE = """
name = "cancel answered superseded"
[server]
poll_rate_s = 20
[[programs]]
id = "retailer"
primacy = 20
[[actions]]
at_s = 0
kind = "create_control"
mrid = "CC"
program = "retailer"
start_s = 60
duration_s = 200
modes = { opModImpLimW = 1000 }
[[actions]]
at_s = 120
kind = "cancel_control"
mrid = "CC"
[expect]
responses = { CC = [1, 2, 3] }
"""


def _task(index: int = 0, text: str | None = None, seed: int = 11) -> WorldTask:
    scenario = (
        parse_scenario(text, source="test")
        if text is not None
        else random_scenario(random.Random(5), index)
    )
    return WorldTask(
        index=index,
        family="random",
        scenario_toml=scenario_toml(scenario),
        seed=seed,
        code_version=code_version(),
    )


def _in_process_head(task: WorldTask, site: Path) -> str:
    scenario = parse_scenario(task.scenario_toml, source="in process")
    return run_world(scenario, seed=task.seed, site=site).store.head().hash.hex()


def _one(engine: Engine, task: WorldTask) -> WorldOutcome:
    outcomes: list[WorldOutcome] = []
    lost: list[Lost] = []
    run_swarm(engine, iter([task]), on_outcome=outcomes.append, on_lost=lost.append)
    assert not lost, lost
    return outcomes[0]


def test_same_seed_same_log_in_process_in_a_local_pool_and_on_a_dask_worker(pki: Path) -> None:
    task = _task()
    expected = _in_process_head(task, pki)
    with LocalEngine(read_pki(pki), workers=1) as local:
        assert _one(local, task).head_hash == expected
    with DaskEngine(read_pki(pki), workers=1) as dask:
        outcome = _one(dask, task)
    assert outcome.head_hash == expected
    assert outcome.records > 100 and not outcome.violated


def test_a_violating_world_is_kept_and_sep2gw_sim_reproduces_its_log(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = _task(text=IMPOSSIBLE, seed=4)
    outcome = run_task(task, read_pki(pki))
    assert outcome.violated and outcome.log is not None
    from sep2gw.swarm import save_violation

    folder = save_violation(tmp_path / "out", task, read_pki(pki), outcome)
    record = json.loads((folder / "world.json").read_text())
    assert record["seed"] == 4 and record["code_version"] == code_version()
    assert record["findings"][0]["invariant"].startswith("expect")
    # The kept command, as a user would run it (python3 -m sep2gw sim …).
    words = shlex.split(record["reproduce"])
    assert words[:4] == ["python3", "-m", "sep2gw", "sim"]
    assert main([*words[3:], "--quiet"]) == 1  # the world violates again
    capsys.readouterr()
    with (
        SqliteEventStore(folder / "world.sep2gw", CATALOGUE, readonly=True) as kept,
        SqliteEventStore(folder / "reproduced.sep2gw", CATALOGUE, readonly=True) as again,
    ):
        assert kept.head().hash.hex() == record["head_hash"] == again.head().hash.hex()
        assert list(kept.read_raw()) == list(again.read_raw())


def test_a_worker_on_other_code_refuses_the_world(pki: Path) -> None:
    task = _task()
    stale = WorldTask(
        **{**{f: getattr(task, f) for f in task.__struct_fields__}, "code_version": "0" * 16}
    )
    with pytest.raises(CodeVersionMismatch, match="install the same sep2gw on every worker"):
        run_task(stale, read_pki(pki))


def test_thinly_explored_fault_families_are_drawn_more_often() -> None:
    coverage = Coverage()
    for _ in range(50):  # crash explored far more than the rest
        coverage.add("random", "x", ["crash", "crash"][:1], violated=False)
    for family in FAULT_FAMILIES:
        coverage.add("random", "x", [family], violated=False)
    weights = coverage.fault_weights(FAULT_FAMILIES)
    assert weights["crash"] < min(w for f, w in weights.items() if f != "crash")

    def crash_share(guide: dict[str, float] | None) -> float:
        rng = random.Random(9)
        drawn: Counter[str] = Counter()
        for index in range(300):
            drawn.update(fault_families(random_scenario(rng, index, fault_weights=guide)))
        return drawn["crash"] / sum(drawn.values())

    assert crash_share(weights) < 0.6 * crash_share(None)


def test_the_library_swarm_runs_the_least_explored_scenarios_first() -> None:
    coverage = Coverage()
    tasks = world_tasks(1, coverage, library=True)
    first = [parse_scenario(next(tasks).scenario_toml, source="t").name for _ in range(3)]
    coverage.add("events", first[0], [], violated=False)
    again = world_tasks(1, coverage, library=True)
    assert parse_scenario(next(again).scenario_toml, source="t").name == first[1]


class _FlakyEngine(Engine):
    """Answers each world from a table; the first attempt at world 0 loses its worker."""

    name = "flaky"
    workers = 1
    resubmits = 1

    def __init__(self) -> None:
        self.attempts: Counter[int] = Counter()

    def submit(self, task: WorldTask) -> Any:
        self.attempts[task.index] += 1
        return (task, self.attempts[task.index])

    def wait_any(self, pending: set[Any], timeout: float) -> set[Any]:
        return {min(pending, key=lambda h: h[0].index)}

    def outcome(self, handle: Any) -> WorldOutcome:
        task, attempt = handle
        if task.index == 0 and attempt == 1:
            raise WorkerLost("the worker process died")
        if task.index == 2:
            raise WorkerLost("died again")
        return WorldOutcome(
            index=task.index,
            family=task.family,
            scenario="s",
            seed=task.seed,
            code_version=task.code_version,
            faults=(),
            head_hash="h",
            records=1,
            sim_s=1.0,
            wall_s=0.1,
            cpu_s=0.1,
            boots=1,
            worker="w",
        )

    def close(self) -> None:
        pass


def test_a_world_whose_worker_died_is_run_again_then_reported_lost() -> None:
    engine = _FlakyEngine()
    outcomes: list[WorldOutcome] = []
    lost: list[Lost] = []
    tasks = [_task(i) for i in range(3)]
    run = run_swarm(engine, iter(tasks), on_outcome=outcomes.append, on_lost=lost.append)
    assert sorted(o.index for o in outcomes) == [0, 1]
    assert [item.task.index for item in lost] == [2] and "died again" in lost[0].why
    assert engine.attempts == Counter({0: 2, 1: 1, 2: 2})
    assert (run.worlds, run.lost) == (2, 1)


def test_sep2gw_swarm_runs_worlds_and_keeps_coverage(
    pki: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "swarm"
    args = ["swarm", "--worlds", "2", "--workers", "2", "--seed", "3", "--site", str(pki)]
    assert main([*args, "--out", str(out), "--quiet"]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (last["worlds"], last["violations"], last["workers"]) == (2, 0, 2)
    coverage = json.loads((out / "coverage.json").read_text())
    assert coverage["worlds"] == 2 and coverage["families"] == {"random": 2}
    assert main([*args, "--out", str(out), "--quiet"]) == 0  # a second run adds to it
    assert json.loads((out / "coverage.json").read_text())["worlds"] == 4


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--worlds", "0"], "--worlds must be at least 1"),
        (["--budget", "inf"], "--budget must be positive and finite"),
        (["--worlds", "1", "--workers", "0"], "--workers must be at least 1"),
        (["--worlds", "1", "--scheduler", "tcp://x:1", "--workers", "2"], "--workers sizes"),
    ],
)
def test_sep2gw_swarm_refuses_bad_arguments(
    extra: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["swarm", *extra, "--out", str(tmp_path)]) == 2
    assert says in capsys.readouterr().err


def test_sep2gw_swarm_refuses_a_coverage_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "coverage.json").write_text('{"schema": "something.else.v9"}')
    assert main(["swarm", "--worlds", "1", "--out", str(tmp_path)]) == 2
    assert "this version reads 'sep2gw.swarm.coverage.v1'" in capsys.readouterr().err
