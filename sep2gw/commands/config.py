"""``sep2gw check-config FILE``: check that ``sep2gw run --config FILE`` can run, without running it.

Besides the file itself it loads what ``run`` loads and checks what ``run`` needs
(``sep2gw.preflight``): certificate chain, key and CA and their agreement, ECDSA P-256, validity
windows, key permissions, the PIN's check digit, the log folder and an existing log. Exit 0 when
``run`` can start (warnings aside), 2 naming every problem otherwise (``sep2gw.exits``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from sep2gw.config import ConfigError, load_config
from sep2gw.exits import BAD_INPUT, OK
from sep2gw.preflight import check_site, errors_of

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
        _problems(exc.source, exc.problems)
        return BAD_INPUT
    findings = check_site(config, now=time.time(), environ=os.environ)
    for warning in (f for f in findings if f.warning):
        print(f"{args.path}: {warning}", file=sys.stderr)
    errors = errors_of(findings)
    if errors:
        _problems(str(args.path), [str(e) for e in errors])
        return BAD_INPUT
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
    return OK


def _problems(source: str, problems: list[str]) -> None:
    print(f"{source}: {len(problems)} problem(s):", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
