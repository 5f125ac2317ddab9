"""One world of a swarm as a unit of work (issue 21): a pure function of (scenario, seed, code
version), serialised as plain data so any engine can carry it to any worker.

A :class:`WorldTask` holds the scenario as TOML (``sep2gw.simreport.scenario_toml``, which parses
back to an equal scenario), the seed, and the code version it must run under; the site identity
(the world's PKI: certificates carry random signatures, and the LFDI the log records is their hash)
travels with it as file contents. :func:`run_task` runs it and returns a :class:`WorldOutcome`: the
head hash of its log, what it exercised, and — for a world that broke an invariant — the log itself
as a SQLite file, so the failure is kept even when the worker that found it is gone.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from functools import cache
from pathlib import Path
from typing import Final

import msgspec

__all__ = [
    "CodeVersionMismatch",
    "Pki",
    "WorldOutcome",
    "WorldTask",
    "code_version",
    "read_pki",
    "run_task",
]

#: The packages whose source decides what a world does.
_PACKAGES: Final = ("events", "statemachines", "actors", "transport", "sep2gw")

#: The PKI files a world's gateway and server use (``sep2gw certs init``), name -> contents.
Pki = tuple[tuple[str, bytes], ...]


class WorldTask(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs to run one world, and nothing it could differ on."""

    index: int
    family: str  # "random", or the library family the scenario belongs to
    scenario_toml: str
    seed: int
    code_version: str


class Finding(msgspec.Struct, frozen=True, kw_only=True):
    invariant: str
    detail: str
    at_s: float | None = None


class WorldOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What came back: ``log`` (a SQLite event log's bytes) only when ``findings`` is not empty."""

    index: int
    family: str
    scenario: str
    seed: int
    code_version: str
    faults: tuple[str, ...]
    head_hash: str
    records: int
    sim_s: float
    wall_s: float
    #: CPU seconds the world's process spent on it (``wall_s`` minus it: waiting for a core)
    cpu_s: float
    boots: int
    worker: str
    findings: tuple[Finding, ...] = ()
    log: bytes | None = None

    @property
    def violated(self) -> bool:
        return bool(self.findings)


class CodeVersionMismatch(RuntimeError):
    """A worker runs other code than the task was made for: its log could differ, so it refuses."""


@cache
def code_version() -> str:
    """SHA-256 (first 16 hex digits) over the source of the packages that make a world: the same
    code gives the same version on any machine, whatever its paths, git state or install method."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parents[2]
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".toml") and "__pycache__" not in path.parts:
                digest.update(path.relative_to(root).as_posix().encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def read_pki(site: Path) -> Pki:
    """The world's PKI files under ``site/pki``, to ship to workers."""
    folder = site / "pki"
    return tuple((p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file())


# Worlds in one process run one at a time: the seeded scheduler (sep2gw.trio_determinism) patches
# trio's module state, so two worlds in two threads of one worker would disturb each other's order.
_ONE_WORLD_AT_A_TIME = threading.Lock()
_SITES: dict[str, Path] = {}


def _site(pki: Pki) -> Path:
    """A folder holding ``pki`` as ``pki/``, made once per process and PKI."""
    key = hashlib.sha256(b"".join(name.encode() + b"\0" + data for name, data in pki)).hexdigest()
    site = _SITES.get(key)
    if site is None:
        site = Path(tempfile.mkdtemp(prefix="sep2gw-swarm-site-"))
        (site / "pki").mkdir()
        for name, data in pki:
            (site / "pki" / name).write_bytes(data)
        _SITES[key] = site
    return site


def run_task(task: WorldTask, pki: Pki) -> WorldOutcome:
    """Run one world and judge it (``sep2gw.world.check`` and the scenario's ``[expect]``)."""
    if task.code_version != code_version():
        raise CodeVersionMismatch(
            f"world {task.index} was made for code {task.code_version}, this worker runs "
            f"{code_version()}: install the same sep2gw on every worker"
        )
    from sep2gw.commands.sim import write_log
    from sep2gw.expect import check_expectations
    from sep2gw.simserver import parse_scenario
    from sep2gw.swarm.scenarios import fault_families
    from sep2gw.world import check, run_world

    scenario = parse_scenario(task.scenario_toml, source=f"swarm world {task.index}")
    with _ONE_WORLD_AT_A_TIME:
        started, cpu = time.perf_counter(), time.process_time()
        result = run_world(scenario, seed=task.seed, site=_site(pki))
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    found = check(result) + check_expectations(scenario, result)
    log = None
    if found:
        with tempfile.TemporaryDirectory(prefix="sep2gw-swarm-log-") as folder:
            path = Path(folder) / "world.sep2gw"
            write_log(result.store, path)
            log = path.read_bytes()
    head = result.store.head()
    return WorldOutcome(
        index=task.index,
        family=task.family,
        scenario=scenario.name,
        seed=task.seed,
        code_version=task.code_version,
        faults=tuple(fault_families(scenario)),
        head_hash=head.hash.hex(),
        records=head.seq,
        sim_s=result.seconds,
        wall_s=wall,
        cpu_s=cpu,
        boots=result.boots,
        worker=f"{socket.gethostname()}:{os.getpid()}",
        findings=tuple(Finding(invariant=v.invariant, detail=v.detail, at_s=v.at_s) for v in found),
        log=log,
    )
