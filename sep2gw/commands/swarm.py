"""``sep2gw swarm``: seeded random worlds on every core, or on a Dask cluster (issue 21).

    sep2gw swarm --budget 60                      # this machine, one process per core
    sep2gw swarm --worlds 500 --cluster local     # a Dask LocalCluster on this machine
    sep2gw swarm --budget 3600 --scheduler tcp://10.0.0.5:8786

Each world is a pure function of (scenario, seed, code version): the task sent to a worker is that
triple as plain data, and a worker running other code refuses it. Outcomes stream back as worlds
finish; a progress bar follows them on standard error. A world that broke an invariant (or raised)
is kept under ``--out``/violations with its scenario, seed, PKI and log (``sep2gw.swarm.artefacts``);
its ``world.json`` holds the ``sep2gw sim`` command that runs it again with the same head hash.

Coverage guidance: ``--out``/coverage.json counts the scenario families and fault families explored
so far, across runs; each run draws the thinly explored fault families more often, and with
``--library`` runs the least explored library scenarios first.

The last line is JSON: ``{"worlds": W, "violations": V, "lost": L, "workers": N, "engine": …,
"worlds_per_min": …}``. Exit 0 when every world held its invariants, 1 when one did not (or raised,
or was lost), 2 for bad input (arguments, an engine that cannot be reached, an unusable coverage
file).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from sep2gw.exits import BAD_INPUT, FAILED, OK

__all__ = ["register"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "swarm",
        help="run random seeded worlds on every core or a Dask cluster, keeping the failing ones",
    )
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--budget", type=float, metavar="S", help="real seconds to spend")
    size.add_argument("--worlds", type=int, metavar="N", help="how many worlds to run")
    parser.add_argument("--seed", type=int, help="the swarm's own seed (default: random)")
    parser.add_argument(
        "--workers", type=int, help="worker processes (default: one per core; local engines only)"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://10.0.0.5:8786"
    )
    where.add_argument(
        "--cluster",
        choices=("local",),
        help="start a Dask LocalCluster on this machine (default: a plain process pool)",
    )
    parser.add_argument(
        "--library",
        action="store_true",
        help="run the scenario library's files (least explored first) instead of random scenarios",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("swarm-out"),
        help="violating worlds and coverage.json go here (default ./swarm-out)",
    )
    parser.add_argument(
        "--site", type=Path, help="folder with the world's PKI (default ~/.cache/sep2gw/sim-site)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_swarm)


def _bad(message: str) -> int:
    print(f"sep2gw swarm: {message}", file=sys.stderr)
    return BAD_INPUT


def _swarm(args: argparse.Namespace) -> int:
    from sep2gw.commands.sim import default_site, ensure_site
    from sep2gw.simserver import ScenarioError
    from sep2gw.swarm import (
        FAULT_FAMILIES,
        Coverage,
        CoverageError,
        DaskEngine,
        Engine,
        EngineUnavailable,
        LocalEngine,
        Lost,
        WorldOutcome,
        read_pki,
        run_swarm,
        save_violation,
        world_tasks,
    )

    if args.budget is not None and not 0 < args.budget < math.inf:
        return _bad(f"--budget must be positive and finite, got {args.budget:g}")
    if args.worlds is not None and args.worlds < 1:
        return _bad(f"--worlds must be at least 1, got {args.worlds}")
    if args.workers is not None and args.workers < 1:
        return _bad(f"--workers must be at least 1, got {args.workers}")
    if args.workers is not None and args.scheduler is not None:
        return _bad("--workers sizes a local engine; a --scheduler's cluster has its own workers")
    if args.out.exists() and not args.out.is_dir():
        return _bad(f"--out {args.out} is not a folder")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
        coverage = Coverage.load(args.out)
    except CoverageError as exc:
        return _bad(str(exc))
    except OSError as exc:
        return _bad(f"--out {args.out}: cannot create it: {exc.strerror or exc}")
    site: Path = args.site or default_site()
    try:
        ensure_site(site)
        pki = read_pki(site)
    except OSError as exc:
        return _bad(f"the world's PKI in {site}: {exc}")
    swarm_seed = args.seed if args.seed is not None else random.SystemRandom().getrandbits(32)
    try:
        tasks = world_tasks(swarm_seed, coverage, library=args.library)
        if args.worlds is not None:
            tasks = (task for task, _ in zip(tasks, range(args.worlds), strict=False))
        engine: Engine
        if args.scheduler is not None or args.cluster is not None:
            engine = DaskEngine(pki, address=args.scheduler, workers=args.workers)
        else:
            engine = LocalEngine(pki, args.workers)
    except EngineUnavailable as exc:
        return _bad(str(exc))
    except ScenarioError as exc:
        return _bad(str(exc))
    print(
        f"swarm seed {swarm_seed} on {engine.name} ({engine.workers} workers), "
        + (f"budget {args.budget:g} s" if args.budget is not None else f"{args.worlds} worlds")
    )
    progress = None if args.quiet else _Bar(args.budget, args.worlds)
    pending_tasks: dict[int, Any] = {}

    def remember(stream: Any) -> Any:
        for task in stream:
            pending_tasks[task.index] = task
            yield task

    def on_outcome(outcome: WorldOutcome) -> None:
        task = pending_tasks.pop(outcome.index)
        coverage.add(outcome.family, outcome.scenario, outcome.faults, outcome.violated)
        if outcome.violated:
            folder = save_violation(args.out, task, pki, outcome)
            first = outcome.findings[0]
            _say(progress, f"VIOLATION {first.invariant}: {first.detail}")
            _say(progress, f"  world {outcome.scenario} seed {outcome.seed} kept in {folder}")

    def on_lost(lost: Lost) -> None:
        pending_tasks.pop(lost.task.index, None)
        folder = save_violation(args.out, lost.task, pki, None, why=lost.why)
        _say(progress, f"LOST world {lost.task.index} seed {lost.task.seed}: {lost.why}")
        _say(progress, f"  kept in {folder}")

    with engine:
        run = run_swarm(
            engine,
            remember(tasks),
            budget_s=args.budget,
            on_outcome=on_outcome,
            on_lost=on_lost,
            on_tick=None if progress is None else progress.tick,
        )
    if progress is not None:
        progress.close(run)
    coverage.save(args.out)
    per_min = run.worlds / run.wall_s * 60 if run.wall_s > 0 else 0.0
    print(
        f"{run.worlds} worlds ({run.sim_s / 3600:.1f} simulated hours) in {run.wall_s:.1f} s on "
        f"{engine.workers} workers: {per_min:.1f} worlds/min, {run.violations} with violations, "
        f"{run.lost} lost"
    )
    for line in coverage.lines(FAULT_FAMILIES):
        print(line)
    print(f"coverage kept in {args.out / 'coverage.json'}")
    print(
        json.dumps(
            {
                "worlds": run.worlds,
                "violations": run.violations,
                "lost": run.lost,
                "workers": engine.workers,
                "engine": engine.name,
                "worlds_per_min": round(per_min, 2),
            }
        )
    )
    return FAILED if run.violations or run.lost else OK


class _Bar:
    """``swarm [#####.....] 31 s / 60 s  12 worlds  0 violations`` on standard error."""

    def __init__(self, budget: float | None, worlds: int | None) -> None:
        self.budget, self.worlds = budget, worlds
        self._drawn = 0.0

    def tick(self, run: Any, elapsed: float) -> None:
        now = time.perf_counter()
        if now - self._drawn < 0.2:
            return
        self._drawn = now
        self._draw(run, elapsed)

    def _draw(self, run: Any, elapsed: float) -> None:
        if self.budget is not None:
            share, where = elapsed / self.budget, f"{elapsed:.0f} s / {self.budget:g} s"
        else:
            total = self.worlds or 1
            share, where = run.worlds / total, f"{run.worlds} / {total}"
        bar = "#" * round(min(max(share, 0.0), 1.0) * 30)
        sys.stderr.write(
            f"\rswarm [{bar:<30}] {where}  {run.worlds} worlds  {run.violations} violations"
        )
        sys.stderr.flush()

    def close(self, run: Any) -> None:
        self._draw(run, run.wall_s)
        sys.stderr.write("\n")
        sys.stderr.flush()


def _say(progress: _Bar | None, line: str) -> None:
    if progress is not None:
        sys.stderr.write("\r\033[K")
    print(line, flush=True)
