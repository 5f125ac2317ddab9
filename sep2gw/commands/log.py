"""``sep2gw log …``: inspect, tail, export and verify an event log file."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser("log", help="read and verify an event log")
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)
    verify = sub.add_parser("verify", help="check sequence, bodies, hash chain and snapshots")
    verify.add_argument("path")
    verify.set_defaults(handler=_verify)


def _verify(args: argparse.Namespace) -> int:
    raise NotImplementedError
