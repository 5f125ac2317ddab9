"""The supervisor: starts actors in order, restarts a failed one with bounded back-off, gives up (and
brings the gateway down) when one keeps failing.

Each actor is started with ``task_group.start``, so the next one starts only once the previous one
said it is ready (``task_status.started()``). A restart builds a fresh actor from its factory, which
rebuilds its state from the log; nothing survives a failure but what was persisted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors.clock import Clock
from events.runtime_events import ActorFailed

__all__ = ["Actor", "ActorSpec", "RestartPolicy", "Supervisor", "SupervisorGaveUp"]


class Actor(Protocol):
    async def run(self, *, task_status: TaskStatus[Any] = ...) -> None: ...


class RestartPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """At most ``max_restarts`` restarts within ``window_s``; back-off doubles from
    ``backoff_initial_s`` up to ``backoff_max_s`` with each failure inside the window."""

    max_restarts: int = 5
    window_s: float = 600.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0

    def backoff_s(self, failures_in_window: int) -> float:
        exponent = max(failures_in_window - 1, 0)
        return float(min(self.backoff_max_s, self.backoff_initial_s * 2**exponent))


class ActorSpec(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    factory: Callable[[], Actor]
    policy: RestartPolicy = RestartPolicy()


class SupervisorGaveUp(Exception):
    def __init__(self, actor: str, failures: int, window_s: float, last: BaseException) -> None:
        super().__init__(
            f"actor {actor!r} failed {failures} times within {window_s:g} s; giving up "
            f"(last error: {type(last).__name__}: {last})"
        )
        self.actor = actor
        self.last = last


Record = Callable[[ActorFailed], Awaitable[None]]


class Supervisor:
    """Runs ``specs`` in order under one task group. ``record`` persists each failure event."""

    def __init__(self, specs: Sequence[ActorSpec], *, clock: Clock, record: Record) -> None:
        self._specs = tuple(specs)
        self._clock = clock
        self._record = record
        self._restarts: dict[str, int] = {spec.name: 0 for spec in self._specs}

    def restarts(self) -> dict[str, int]:
        return dict(self._restarts)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as group:
            for spec in self._specs:
                await group.start(self._supervise, spec)
            task_status.started()

    async def _supervise(self, spec: ActorSpec, *, task_status: TaskStatus[None]) -> None:
        failures: deque[float] = deque()
        started = False
        while True:
            failure: BaseException | None = None
            try:
                async with anyio.create_task_group() as group:
                    await group.start(_run_actor, spec.factory())
                    if not started:
                        started = True
                        task_status.started()
            except* Exception as errors:
                if not started:
                    raise  # a failure before the first start is a configuration error: escalate
                failure = _first_leaf(errors)
            if failure is None:
                return  # the actor finished on its own
            now = self._clock.monotonic()
            failures.append(now)
            while failures and failures[0] < now - spec.policy.window_s:
                failures.popleft()
            gave_up = len(failures) > spec.policy.max_restarts
            delay = 0.0 if gave_up else spec.policy.backoff_s(len(failures))
            with anyio.CancelScope(shield=True):
                await self._record(
                    ActorFailed(
                        actor=spec.name,
                        error_type=type(failure).__name__,
                        error=str(failure),
                        failures_in_window=len(failures),
                        restart_in_s=delay,
                        gave_up=gave_up,
                    )
                )
            if gave_up:
                raise SupervisorGaveUp(spec.name, len(failures), spec.policy.window_s, failure)
            await anyio.sleep(delay)
            self._restarts[spec.name] += 1


def _first_leaf(error: BaseException) -> BaseException:
    """The error itself, not the task groups it travelled through: the log must say what failed
    (``RuntimeError: …``), not ``ExceptionGroup: unhandled errors in a TaskGroup``."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error


async def _run_actor(actor: Actor, *, task_status: TaskStatus[Any]) -> None:
    await actor.run(task_status=task_status)
