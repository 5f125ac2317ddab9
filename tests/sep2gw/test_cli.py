"""The CLI loads only the command it runs (issue #7 scope 11: start-up time and memory)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sep2gw.cli import build_parser, command_of, main
from sep2gw.commands import COMMAND_MODULES, COMMANDS, load

ROOT = Path(__file__).resolve().parents[2]
DEMO_ONLY = ("sep2gw.simserver", "sep2gw.sim", "hypothesis", "trio.testing", "pytest")


def _modules_after(code: str) -> set[str]:
    """``sys.modules`` of a fresh interpreter after running ``code``."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def _loaded(modules: set[str], package: str) -> bool:
    return any(m == package or m.startswith(package + ".") for m in modules)


def test_importing_the_cli_imports_no_command_simulator_or_test_code() -> None:
    modules = _modules_after("import sep2gw.cli")
    for package in DEMO_ONLY:
        assert not _loaded(modules, package), package
    assert not [m for m in modules if m.startswith("sep2gw.commands.")]


def test_what_sep2gw_run_imports_holds_no_simulator_or_test_code() -> None:
    modules = _modules_after("import sep2gw.cli, sep2gw.commands.run")
    for package in DEMO_ONLY:
        assert not _loaded(modules, package), package
    assert "sep2gw.gateway" in modules


def test_running_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    config = tmp_path / "missing.toml"
    modules = _modules_after(
        f"from sep2gw.cli import main; main(['check-config', {str(config)!r}])"
    )
    assert sorted(m for m in modules if m.startswith("sep2gw.commands.")) == [
        "sep2gw.commands.config"
    ]


class _Recorder:
    def __init__(self) -> None:
        self.rows: list[tuple[str, str]] = []

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        self.rows.append((name, kwargs.get("help", "")))
        return argparse.ArgumentParser(prog=name)


@pytest.mark.parametrize("module", COMMAND_MODULES)
def test_the_command_table_matches_what_each_module_registers(module: str) -> None:
    recorder = _Recorder()
    load(module).register(recorder)
    assert recorder.rows == [(n, h) for n, (m, h) in COMMANDS.items() if m == module]


def test_help_lists_every_command_with_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for name, (_module, help_) in COMMANDS.items():
        assert f"{name} {help_}" in text


def test_an_unknown_command_is_refused_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["frobnicate"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "frobnicate" in err and "check-config" in err


def test_a_full_parser_parses_every_command_group() -> None:
    parser = build_parser()
    args = parser.parse_args(["check-config", "site.toml"])
    assert args.command == "check-config" and callable(args.handler)


def test_the_command_word_is_the_first_non_option_token() -> None:
    assert command_of(["--version"]) is None
    assert command_of(["-h", "log", "tail", "x"]) == "log"
    assert command_of(["--", "run"]) == "run"


def test_loading_an_unknown_command_module_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'nope'"):
        load("nope")
