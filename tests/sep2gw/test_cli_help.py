"""Issue 20 point 6: every option and argument of every command says what it is for in
``--help`` (``export``, ``id`` and ``certs init`` had options with no help at all). The test walks
the whole argparse tree, every command loaded."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from sep2gw.cli import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def test_every_option_of_every_command_has_help() -> None:
    missing = []
    commands = 0
    for path, parser in _parsers(build_parser(), "sep2gw"):
        commands += 1
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not action.help or action.help == argparse.SUPPRESS:
                name = "/".join(action.option_strings) or action.dest
                missing.append(f"{path} {name}")
    assert commands > 20  # every command module loaded, not the placeholders
    assert not missing, "options without help text:\n  " + "\n  ".join(missing)


def test_every_command_has_a_one_line_help() -> None:
    for path, parser in _parsers(build_parser(), "sep2gw"):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {a.dest: a.help for a in action._choices_actions}
                for name in action.choices:
                    assert helps.get(name), f"{path} {name} has no help line"
