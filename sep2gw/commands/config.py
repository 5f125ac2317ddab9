"""``sep2gw check-config FILE``: validate a gateway configuration without touching anything else."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sep2gw.config import ConfigError, load_config

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "check-config", help="validate a configuration file; exit 0 only if it is usable"
    )
    parser.add_argument("path", type=Path)
    parser.set_defaults(handler=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{args.path}: ok")
    print(
        f"  server   {config.server.url}{config.server.dcap_path} (profile {config.server.profile})"
    )
    print(f"  identity {config.path(config.tls.certificate)}")
    battery = config.battery
    where = (
        f" at {battery.host}:{battery.port} unit {battery.unit_id}"
        if battery.driver == "sunspec"
        else ""
    )
    print(f"  battery  {battery.driver}{where}")
    print(f"  log      {config.path(config.log.path)}")
    return 0
