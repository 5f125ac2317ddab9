"""Where a swarm's worlds run (issue 21): a local process pool by default, or a Dask cluster.

Both engines take the same unit of work (``sep2gw.swarm.work.WorldTask``, plain data: the scenario
as TOML, the seed, the code version) and return the same :class:`~sep2gw.swarm.work.WorldOutcome`;
:func:`run_swarm` keeps every worker busy and hands outcomes back as they finish, in whatever order
they finish. Why Dask and how a lost worker's world is retried: docs/decisions/0021b-swarm-engine.md.

- :class:`LocalEngine`: ``concurrent.futures.ProcessPoolExecutor`` with one process per core (a
  world is CPU-bound Python; threads would share one interpreter lock, and the seeded scheduler
  allows one world per process at a time). A worker process that dies breaks the whole pool; the
  engine starts a new pool and the loop submits the lost worlds again, at most ``resubmits`` times.
- :class:`DaskEngine`: a ``distributed.Client`` on a scheduler address (``tcp://host:8786``) or on
  a ``LocalCluster`` of worker processes with one thread each. The scheduler itself reruns the
  worlds of a worker that died (``distributed.scheduler.allowed-failures``), so the loop does not.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import hashlib
import importlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from sep2gw.swarm.work import Pki, WorldOutcome, WorldTask, run_task

__all__ = [
    "DaskEngine",
    "Engine",
    "EngineUnavailable",
    "LocalEngine",
    "Lost",
    "SwarmRun",
    "WorkerLost",
    "run_swarm",
]


class EngineUnavailable(RuntimeError):
    """The engine asked for cannot be used (Dask not installed, no scheduler at the address)."""


class WorkerLost(RuntimeError):
    """The process running a world died before it answered; the world itself may be fine."""


class Engine(abc.ABC):
    """Runs :func:`~sep2gw.swarm.work.run_task` somewhere; ``workers`` is how many at once."""

    name: str
    workers: int
    #: How often the loop submits again a world whose worker was lost (0: the engine retries).
    resubmits: int = 0

    @abc.abstractmethod
    def submit(self, task: WorldTask) -> Any: ...

    @abc.abstractmethod
    def wait_any(self, pending: set[Any], timeout: float) -> set[Any]:
        """The handles of ``pending`` that are done (none when ``timeout`` passed first)."""

    @abc.abstractmethod
    def outcome(self, handle: Any) -> WorldOutcome:
        """The world's outcome; raises :class:`WorkerLost`, or what the world raised."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _warm() -> int:
    return os.getpid()


class LocalEngine(Engine):
    """A process pool on this machine: ``workers`` processes (default: every core)."""

    name = "local"
    resubmits = 2

    def __init__(self, pki: Pki, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pki = pki
        self._pool = self._start()

    def _start(self) -> cf.ProcessPoolExecutor:
        # fork: the workers start with everything this process imported (a world's modules take
        # about a second to import); spawn elsewhere.
        methods = multiprocessing.get_all_start_methods()
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        cf.wait([pool.submit(_warm) for _ in range(self.workers)])
        return pool

    def submit(self, task: WorldTask) -> Any:
        try:
            return self._pool.submit(run_task, task, self._pki)
        except cf.process.BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(run_task, task, self._pki)

    def wait_any(self, pending: set[Any], timeout: float) -> set[Any]:
        done, _ = cf.wait(pending, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done)

    def outcome(self, handle: Any) -> WorldOutcome:
        try:
            result: WorldOutcome = handle.result()
        except cf.process.BrokenProcessPool as exc:
            raise WorkerLost(f"a worker process died: {exc}") from None
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskEngine(Engine):
    """A Dask distributed cluster: ``address`` of its scheduler, or a local cluster of ``workers``
    processes (one thread each: one world per process at a time)."""

    name = "dask"

    def __init__(self, pki: Pki, *, address: str | None = None, workers: int | None = None) -> None:
        try:
            # Any: Dask's own annotations are partial (untyped calls under mypy --strict)
            distributed: Any = importlib.import_module("distributed")
        except ImportError:
            raise EngineUnavailable(
                "Dask is not installed: pip install 'sep2gw[swarm]' (or run without --scheduler "
                "and --cluster for the local process pool)"
            ) from None
        self._distributed = distributed
        self._cluster: Any = None
        try:
            if address is None:
                self._cluster = distributed.LocalCluster(
                    n_workers=workers or os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
                self._client = distributed.Client(self._cluster)
            else:
                self._client = distributed.Client(address, timeout="10s")
        except (OSError, TimeoutError) as exc:
            self._close_cluster()
            raise EngineUnavailable(f"no Dask scheduler at {address}: {exc}") from None
        threads = self._client.nthreads()
        self.workers = sum(threads.values()) or 1
        self.name = f"dask {self._client.scheduler.address}"
        # The PKI goes to every worker once; each world names it instead of carrying it.
        self._pki = self._client.scatter(pki, broadcast=True, hash=True)

    def submit(self, task: WorldTask) -> Any:
        # The key names the work itself: the same task submitted twice is computed once.
        key = "sep2gw-world-" + hashlib.sha256(msgspec.msgpack.encode(task)).hexdigest()[:24]
        return self._client.submit(run_task, task, self._pki, key=key, retries=0)

    def wait_any(self, pending: set[Any], timeout: float) -> set[Any]:
        try:
            done, _ = self._distributed.wait(
                list(pending), timeout=timeout, return_when="FIRST_COMPLETED"
            )
        except TimeoutError:
            return set()
        return set(done)

    def outcome(self, handle: Any) -> WorldOutcome:
        try:
            result: WorldOutcome = handle.result()
        except self._distributed.KilledWorker as exc:
            raise WorkerLost(f"workers died running it: {exc}") from None
        return result

    def close(self) -> None:
        self._client.close()
        self._close_cluster()

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()


class Lost(msgspec.Struct, frozen=True, kw_only=True):
    """A world that did not come back: its worker was lost too often, or it raised."""

    task: WorldTask
    why: str


class SwarmRun(msgspec.Struct, kw_only=True):
    """Counts of one :func:`run_swarm`; ``wall_s`` from the first submission to the last answer."""

    worlds: int = 0
    violations: int = 0
    lost: int = 0
    sim_s: float = 0.0
    wall_s: float = 0.0


def run_swarm(
    engine: Engine,
    tasks: Iterator[WorldTask],
    *,
    budget_s: float | None = None,
    on_outcome: Callable[[WorldOutcome], None],
    on_lost: Callable[[Lost], None],
    on_tick: Callable[[SwarmRun, float], None] | None = None,
    in_flight: int | None = None,
) -> SwarmRun:
    """Run ``tasks`` on ``engine`` until they run out or ``budget_s`` real seconds pass (worlds
    already running then still finish and count). ``on_outcome`` gets each world as it finishes;
    ``on_tick`` (counts, seconds elapsed) at least every half second, for a progress bar."""
    run = SwarmRun()
    limit = in_flight or engine.workers + 1
    started = time.perf_counter()
    deadline = started + budget_s if budget_s is not None else None
    pending: dict[Any, tuple[WorldTask, int]] = {}
    exhausted = False

    def refill() -> None:
        nonlocal exhausted
        while not exhausted and len(pending) < limit:
            if deadline is not None and time.perf_counter() >= deadline:
                exhausted = True
                return
            task = next(tasks, None)
            if task is None:
                exhausted = True
                return
            pending[engine.submit(task)] = (task, 0)

    refill()
    while pending:
        for handle in engine.wait_any(set(pending), timeout=0.5):
            task, attempts = pending.pop(handle)
            try:
                outcome = engine.outcome(handle)
            except WorkerLost as exc:
                if attempts < engine.resubmits:
                    pending[engine.submit(task)] = (task, attempts + 1)
                    continue
                run.lost += 1
                on_lost(Lost(task=task, why=str(exc)))
                continue
            except Exception as exc:  # the world raised: a bug of the gateway or the simulation
                run.lost += 1
                on_lost(Lost(task=task, why=f"{type(exc).__name__}: {exc}"))
                continue
            run.worlds += 1
            run.violations += outcome.violated
            run.sim_s += outcome.sim_s
            on_outcome(outcome)
        run.wall_s = time.perf_counter() - started
        if on_tick is not None:
            on_tick(run, run.wall_s)
        refill()
    run.wall_s = time.perf_counter() - started
    return run
