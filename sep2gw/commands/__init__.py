"""Command groups of the ``sep2gw`` CLI. Add a module here to add a command.

Each module contributes ``register(subparsers)``. The modules are *not* imported here: ``sep2gw run
--config`` must not pay (in start-up time and resident memory) for the simulated server, the demo,
PKI minting and the other tools, so the CLI imports a command's module only when that command runs
(issue #7, scope 11). ``COMMANDS`` names every command with its one-line help, so ``sep2gw --help``
lists them all without importing any; a test checks it against what each module registers.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

__all__ = ["COMMANDS", "COMMAND_MODULES", "load"]

# command name -> (module under sep2gw.commands, the help its register() gives), in --help order
COMMANDS: Final[dict[str, tuple[str, str]]] = {
    "run": ("run", "run the gateway (no arguments: the embedded demo on loopback)"),
    "log": ("log", "inspect, tail, export, verify and rotate an event log"),
    "status": (
        "status",
        "is a gateway running on a log; registration, comms, limits, last poll/post/write, alarms",
    ),
    "replay": ("forensics", "rebuild the state at any instant and print the log as a timeline"),
    "explain": (
        "forensics",
        "the story of one control, or why the limits at an instant were what they were",
    ),
    "report": (
        "forensics",
        "write a self-contained HTML dispute report (chart, tables, compliance)",
    ),
    "export": ("forensics", "export the verified events or the per-sample compliance series"),
    "check-config": ("config", "validate a configuration file; exit 0 only if it is usable"),
    "sim-battery": ("battery", "serve a simulated battery over SunSpec Modbus TCP"),
    "modbus": ("battery", "Modbus/SunSpec tools"),
    "certs": ("certs", "certificate tooling (demo PKI in the CSIP profile)"),
    "id": ("ident", "print the LFDI and SFDI of a certificate"),
    "probe": ("probe", "check the secure link to a 2030.5 server and read its DeviceCapability"),
    "sim-server": (
        "simserver",
        "serve a simulated IEEE 2030.5 utility server (mutual TLS, loopback)",
    ),
    "sim": ("sim", "run seeded simulated worlds with fault injection and invariant checks"),
    "swarm": (
        "swarm",
        "run random seeded worlds on every core or a Dask cluster, keeping the failing ones",
    ),
}

COMMAND_MODULES: Final[tuple[str, ...]] = tuple(dict.fromkeys(m for m, _ in COMMANDS.values()))


def load(module: str) -> ModuleType:
    """Import the command module ``sep2gw.commands.<module>`` (on demand; see the module doc)."""
    if module not in COMMAND_MODULES:
        raise ValueError(f"no command module {module!r}; known: {', '.join(COMMAND_MODULES)}")
    return importlib.import_module(f"{__name__}.{module}")
