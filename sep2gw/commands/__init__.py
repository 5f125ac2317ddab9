"""Command groups of the ``sep2gw`` CLI. Add a module here to add a command."""

from __future__ import annotations

from types import ModuleType

from sep2gw.commands import battery, certs, config, ident, log, probe, run, simserver

__all__ = ["COMMAND_MODULES"]

COMMAND_MODULES: tuple[ModuleType, ...] = (
    run,
    log,
    config,
    battery,
    certs,
    ident,
    probe,
    simserver,
)
