"""The supervisor: ordered start, bounded restarts with back-off, escalation, failures recorded."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import trio
from anyio.abc import TaskStatus

from actors.clock import Clock
from actors.supervisor import ActorSpec, RestartPolicy, Supervisor, SupervisorGaveUp
from events.runtime_events import ActorFailed


class Flaky:
    """Starts, then fails ``failures_left[0]`` more times before settling into running forever."""

    def __init__(
        self, name: str, journal: list[tuple[float, str]], failures_left: list[int]
    ) -> None:
        self.name = name
        self.journal = journal
        self.failures_left = failures_left

    async def run(self, *, task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED) -> None:
        self.journal.append((anyio.current_time(), f"start {self.name}"))
        task_status.started()
        await anyio.sleep(1)
        if self.failures_left[0] > 0:
            self.failures_left[0] -= 1
            raise RuntimeError(f"{self.name} lost its device")
        await anyio.sleep_forever()


async def test_actors_start_in_order_and_restart_with_doubling_backoff(
    autojump_clock: trio.abc.Clock,
) -> None:
    journal: list[tuple[float, str]] = []
    recorded: list[ActorFailed] = []

    async def record(event: ActorFailed) -> None:
        recorded.append(event)

    policy = RestartPolicy(max_restarts=5, window_s=600, backoff_initial_s=2, backoff_max_s=60)
    specs = [
        ActorSpec(name="log", factory=lambda: Flaky("log", journal, [0])),
        ActorSpec(
            name="hardware", factory=lambda: Flaky("hardware", journal, failures), policy=policy
        ),
    ]
    failures = [3]
    start = trio.current_time()
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                specs, clock=Clock(wall_at_start=1_764_000_000.0), record=record
            )
            await nursery.start(supervisor.run)
            assert [what for _, what in journal] == ["start log", "start hardware"]
            await trio.sleep(100)
            nursery.cancel_scope.cancel()
    starts = [t - start for t, what in journal if what == "start hardware"]
    # Runs 1 s, fails, waits 2 s; runs 1 s, fails, waits 4 s; runs 1 s, fails, waits 8 s.
    assert starts == pytest.approx([0, 3, 8, 17])
    assert [e.restart_in_s for e in recorded] == [2, 4, 8]
    assert all(e.actor == "hardware" and e.error == "hardware lost its device" for e in recorded)
    assert supervisor.restarts() == {"log": 0, "hardware": 3}


async def test_an_actor_that_keeps_failing_brings_the_supervisor_down(
    autojump_clock: trio.abc.Clock,
) -> None:
    recorded: list[ActorFailed] = []

    async def record(event: ActorFailed) -> None:
        recorded.append(event)

    policy = RestartPolicy(max_restarts=2, window_s=600, backoff_initial_s=1, backoff_max_s=1)
    specs = [ActorSpec(name="link", factory=lambda: Flaky("link", [], [100]), policy=policy)]
    with (
        trio.fail_after(1000),
        pytest.RaisesGroup(
            pytest.RaisesExc(SupervisorGaveUp, match="'link' failed 3 times within 600 s"),
            flatten_subgroups=True,
        ),
    ):
        supervisor = Supervisor(specs, clock=Clock(wall_at_start=0.0), record=record)
        await supervisor.run()
    assert [e.gave_up for e in recorded] == [False, False, True]


async def test_failures_outside_the_window_are_forgotten(autojump_clock: trio.abc.Clock) -> None:
    class SlowFailer:
        async def run(self, *, task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED) -> None:
            task_status.started()
            await anyio.sleep(100)  # longer than the window: every failure is the first in it
            raise OSError("reset")

    recorded: list[ActorFailed] = []

    async def record(event: ActorFailed) -> None:
        recorded.append(event)

    policy = RestartPolicy(max_restarts=1, window_s=50, backoff_initial_s=1, backoff_max_s=30)
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            supervisor = Supervisor(
                [ActorSpec(name="x", factory=SlowFailer, policy=policy)],
                clock=Clock(wall_at_start=0.0),
                record=record,
            )
            await nursery.start(supervisor.run)
            await trio.sleep(1000)
            nursery.cancel_scope.cancel()
    assert len(recorded) >= 9
    assert {e.failures_in_window for e in recorded} == {1}
    assert {e.restart_in_s for e in recorded} == {1}


async def test_a_failure_before_the_first_start_is_not_retried(
    autojump_clock: trio.abc.Clock,
) -> None:
    class Misconfigured:
        async def run(self, *, task_status: TaskStatus[Any] = anyio.TASK_STATUS_IGNORED) -> None:
            raise ValueError("certificate file missing")

    async def record(event: ActorFailed) -> None:
        raise AssertionError("nothing to record: the start itself failed")

    with (
        trio.fail_after(10),
        pytest.RaisesGroup(
            pytest.RaisesExc(ValueError, match="certificate file missing"), flatten_subgroups=True
        ),
    ):
        await Supervisor(
            [ActorSpec(name="link", factory=Misconfigured)],
            clock=Clock(wall_at_start=0.0),
            record=record,
        ).run()
