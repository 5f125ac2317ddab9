"""The ``sep2gw`` command line. Each command group lives in its own module under ``sep2gw.commands``
and contributes ``register(subparsers)``; this module only assembles them.

Only the module of the command being run is imported (``sep2gw.commands.COMMANDS`` gives the others'
names and helps for ``--help``): start-up time and resident memory of ``sep2gw run`` are budgeted
(issue #7, scope 11), and the tools and simulators weigh more than the gateway itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from sep2gw import __version__
from sep2gw.commands import COMMANDS, load
from sep2gw.diagnostics import DIAGNOSTICS_HELP, LoggingOptionsError, configure, split_options
from sep2gw.exits import BAD_INPUT, EXIT_CODES_HELP, OK, report_failure

__all__ = ["build_parser", "command_of", "main"]


class _Only:
    """The subparsers action as seen by one module's ``register``: only ``name`` is really added.

    A module may register several commands (``battery``: ``sim-battery`` and ``modbus``); the
    others stay the light placeholders ``build_parser`` adds, so ``--help`` keeps the table's order.
    """

    def __init__(self, commands: Any, name: str) -> None:
        self._commands = commands
        self._name = name

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if name == self._name:
            parser: argparse.ArgumentParser = self._commands.add_parser(name, **kwargs)
            return parser
        return argparse.ArgumentParser(prog=name, add_help=False)  # discarded


def command_of(argv: Sequence[str]) -> str | None:
    """The command word of ``argv``: its first token that is not an option.

    The top-level parser only has flags that take no value (``-h``, ``--version``), so this is the
    token argparse itself takes as the command.
    """
    return next((arg for arg in argv if not arg.startswith("-")), None)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of ``sep2gw``, complete for ``command`` (every command when ``None``).

    The other commands get placeholders carrying their name and help only, so that ``--help`` and
    the error for an unknown command list them all without importing their modules.
    """
    parser = argparse.ArgumentParser(
        prog="sep2gw",
        description="IEEE 2030.5 DER client for battery gateways, with a replayable event log.",
        epilog=f"{DIAGNOSTICS_HELP}\n{EXIT_CODES_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"sep2gw {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        if command is None or name == command:
            load(module).register(_Only(commands, name))
        else:
            commands.add_parser(name, help=help_, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (``sep2gw.exits``: the same convention for every command).

    Nothing escapes as a traceback: an error that leaves a command (from inside task groups too)
    is reported by ``sep2gw.exits.report_failure`` as one line naming what was wrong.
    """
    if argv is None:
        argv = sys.argv[1:]
    try:
        logging_options, argv = split_options(argv)
    except LoggingOptionsError as exc:
        print(f"sep2gw: {exc}", file=sys.stderr)
        return BAD_INPUT
    command = command_of(argv)
    try:
        parser = build_parser(command if command in COMMANDS else "")
        args = parser.parse_args(argv)  # a usage error exits 2 (argparse), --help and --version 0
        args.logging = logging_options
        configure(logging_options)
        code: int = args.handler(args)
    except SystemExit:
        raise
    except LoggingOptionsError as exc:
        print(f"sep2gw {command or ''}: {exc}", file=sys.stderr)
        return BAD_INPUT
    except BrokenPipeError:
        # `sep2gw log export … | head`: the reader went away; not an error of ours.
        sys.stderr.close()
        return OK
    except BaseException as exc:  # the one place every failure becomes a message
        return report_failure(command or "", exc)
    return code
