"""The ``sep2gw`` command line. Each command group lives in its own module under ``sep2gw.commands``
and contributes ``register(subparsers)``; this module only assembles them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sep2gw import __version__
from sep2gw.commands import COMMAND_MODULES

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sep2gw",
        description="IEEE 2030.5 DER client for battery gateways, with a replayable event log.",
    )
    parser.add_argument("--version", action="version", version=f"sep2gw {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `sep2gw log export … | head`: the reader went away; not an error of ours.
        sys.stderr.close()
        return 0
    return code
