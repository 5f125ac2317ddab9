"""The simulated worlds whose logs the forensic tests read: supersession and cancel (the demo),
comms loss (with a randomised start and an adjacent follower), a gateway crash and restart
mid-control (the world's ``crash`` fault), two pricing worlds (a revised price superseding an
older one; the compressed v1.3 pricing day with a cancelled critical-peak interval), a
CSIP-AUS v1.3 storage target held back by a binding export limit (the library's
``conformance_storage_target_export_limit``), and the CSIP-AUS version negotiation scenarios (v1.3 by
service discovery and each fallback).

Each world is reproducible from its seed and the site's identity; the logs are copied into SQLite
files, as an operator would receive them from a site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from events.store import EventStore
from sep2gw.commands.sim import write_log
from sep2gw.simserver import demo_scenario, parse_scenario
from sep2gw.simserver.library import library
from sep2gw.world import run_world

__all__ = [
    "COMMS_LOSS",
    "FLEET",
    "NEGOTIATION",
    "RESTART",
    "STORAGE",
    "WORLDS",
    "build",
    "copy_to_sqlite",
    "fleet_dir",
    "logs",
]

COMMS_LOSS: Final = """
name = "comms-loss"
[server]
pin = 111115
poll_rate_s = 10
post_rate_s = 60

[[programs]]
id = "network"
primacy = 10
description = "network limits"
default = { opModExpLimW = 5000, opModImpLimW = 5000 }

# A randomised start, then an adjacent follower (it starts at the first one's effective end).
[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 60
duration_s = 120
randomize_start_s = 30
modes = { opModExpLimW = 1000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "C0000000000000000000000000000002"
program = "network"
start_s = 180
duration_s = 120
modes = { opModExpLimW = 200 }

# The utility becomes unreachable for two minutes across the hand-over.
[[actions]]
at_s = 100
kind = "fail"
duration_s = 120
reset = true
"""

#: The library file of the storage world.
STORAGE: Final = "conformance_storage_target_export_limit.toml"

RESTART: Final = """
name = "restart"
[server]
epoch = 1764158400  # 12:00 UTC: the goldens' instants are read on this clock
pin = 111115
poll_rate_s = 10
post_rate_s = 60

[[programs]]
id = "network"
primacy = 10
description = "network limits"
default = { opModExpLimW = 5000, opModImpLimW = 5000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "D0000000000000000000000000000001"
program = "network"
start_s = 60
duration_s = 180
randomize_start_s = 20
modes = { opModExpLimW = 800 }

# The gateway dies inside the control (SIGKILL: what it had not committed is lost) and is back
# 20 s later on the same log.
[[actions]]
at_s = 150
kind = "crash"
down_s = 20
"""


def copy_to_sqlite(store: EventStore, path: Path) -> Path:
    """The log as an operator gets it: the same records (times, streams, hashes) in one file."""
    assert write_log(store, path) == store.head().hash.hex()
    return path


def build(name: str, site: Path, path: Path) -> Path:
    """Run the world ``name`` (one of WORLDS) with the identity in ``site`` and write its log."""
    if name == "demo":
        store: EventStore = run_world(demo_scenario(), seed=5, site=site).store
    elif name == "comms":
        store = run_world(parse_scenario(COMMS_LOSS, source="comms world"), seed=3, site=site).store
    elif name == "restart":
        store = run_world(parse_scenario(RESTART, source="restart world"), seed=7, site=site).store
    elif name in ("pricing", "pricing_day"):
        file = {"pricing": "pricing_revised.toml", "pricing_day": "conformance_pricing_day.toml"}[
            name
        ]
        entry = next(e for e in library() if e.file == file)
        store = run_world(entry.scenario, seed=11, site=site).store
    elif name == "storage":
        scenario = next(e.scenario for e in library() if e.file == STORAGE)
        store = run_world(scenario, seed=11, site=site).store
    elif name in NEGOTIATION:
        [entry] = [e for e in library() if e.file == f"{name}.toml"]
        store = run_world(entry.scenario, seed=11, seconds=240, site=site).store
    else:
        raise ValueError(f"no world {name!r}; known: {', '.join(WORLDS)}")
    return copy_to_sqlite(store, path)


#: The CSIP-AUS version negotiation worlds (issue 18): the library's ``version_*`` scenarios, four
#: minutes each (the negotiation, then a control in force under the version spoken).
NEGOTIATION: Final = (
    "version_well_known_v13",
    "version_well_known_absent",
    "version_well_known_gone",
    "version_unsupported_only",
    "version_malformed_well_known",
    "version_broken_link",
)
WORLDS: Final = ("demo", "comms", "restart", "pricing", "pricing_day", "storage", *NEGOTIATION)


_LOGS: dict[str, Path] = {}


def logs(base: Path) -> dict[str, Path]:
    """Every world's log, built once per test session under ``base`` (a fresh site identity)."""
    if not _LOGS:
        import contextlib
        import io

        from sep2gw.cli import main

        base.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["certs", "init", str(base / "pki")]) == 0
        for name in WORLDS:
            _LOGS[name] = build(name, base, base / f"{name}.sep2gw")
    return dict(_LOGS)


#: A fleet's log directory (decision 0022a: one ``<site>.sep2gw`` per site): site -> world. Two
#: sites were not compliant (the demo's superseded target, the storage target held back), two were.
FLEET: Final = {
    "depot-north": "demo",
    "nmi-4103": "comms",
    "nmi-4107": "restart",
    "warehouse-7": "storage",
}


def fleet_dir(base: Path) -> Path:
    """The FLEET worlds' logs copied into ``base/fleet`` as a fleet writes them, with a file that
    is not a log beside them (built once per session, like ``logs``)."""
    folder = base / "fleet"
    if not folder.is_dir():
        paths = logs(base)
        partial = base / "fleet.partial"
        partial.mkdir()
        for site, world in FLEET.items():
            (partial / f"{site}.sep2gw").write_bytes(paths[world].read_bytes())
        (partial / "README.txt").write_text("site logs of the fleet\n", encoding="utf-8")
        partial.rename(folder)
    return folder
