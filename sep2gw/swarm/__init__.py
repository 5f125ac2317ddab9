"""Swarms of seeded simulated worlds (issue 8 scope 6, issue 21): random scenarios and faults over
random seeds, on a local process pool or a Dask cluster, with coverage guidance and every violating
world kept as an artefact that ``sep2gw sim`` reproduces."""

from __future__ import annotations

from sep2gw.swarm.artefacts import save_violation
from sep2gw.swarm.coverage import COVERAGE_FILE, Coverage, CoverageError
from sep2gw.swarm.engine import (
    DaskEngine,
    Engine,
    EngineUnavailable,
    LocalEngine,
    Lost,
    SwarmRun,
    WorkerLost,
    run_swarm,
)
from sep2gw.swarm.scenarios import FAULT_FAMILIES, fault_families, random_scenario
from sep2gw.swarm.tasks import world_tasks
from sep2gw.swarm.work import (
    CodeVersionMismatch,
    WorldOutcome,
    WorldTask,
    code_version,
    read_pki,
    run_task,
)

__all__ = [
    "COVERAGE_FILE",
    "FAULT_FAMILIES",
    "CodeVersionMismatch",
    "Coverage",
    "CoverageError",
    "DaskEngine",
    "Engine",
    "EngineUnavailable",
    "LocalEngine",
    "Lost",
    "SwarmRun",
    "WorkerLost",
    "WorldOutcome",
    "WorldTask",
    "code_version",
    "fault_families",
    "random_scenario",
    "read_pki",
    "run_swarm",
    "run_task",
    "save_violation",
    "world_tasks",
]
