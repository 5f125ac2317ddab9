"""Issue 20 point 6: one set of profile names. The configuration's ``server.profile`` and the
``--profile`` of ``certs init``, ``id`` and ``probe`` take the same names (the CLI said ``2030.5``
where the file said ``"2018"``, and the CLI knew no ``sapn``); the old ``"2018"`` still works,
with a warning naming the new one, so an existing site file keeps running."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

import pytest

from sep2gw import config as config_module
from sep2gw.cli import build_parser, main
from sep2gw.exits import OK
from sep2gw.gateway import Gateway
from sep2gw.profiles import DEPRECATED_PROFILE_NAMES, PROFILE_NAMES, PROFILES, profile_named
from tests.sep2gw.commands.test_run import UNREACHABLE_SITE


def _profile_choices(*command: str) -> tuple[str, ...]:
    parser = build_parser(command[0])
    for word in command:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[word]
    option = next(a for a in parser._actions if "--profile" in a.option_strings)
    assert option.choices is not None
    return tuple(option.choices)


def test_the_cli_and_the_configuration_take_the_same_profile_names() -> None:
    configured = set(get_args(config_module.Profile))
    assert configured == set(PROFILE_NAMES) | set(DEPRECATED_PROFILE_NAMES)
    for command in (("certs", "init"), ("id",), ("probe",)):
        assert _profile_choices(*command) == PROFILE_NAMES
    assert PROFILE_NAMES == ("2030.5", "csip", "csip-aus", "sapn")
    assert profile_named("2018") is PROFILES["2030.5"]


def test_an_old_profile_name_on_the_cli_works_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", str(tmp_path / "pki")]) == OK
    capsys.readouterr()
    assert main(["id", str(tmp_path / "pki" / "device.pem"), "--profile", "2030.5"]) == OK
    canonical = capsys.readouterr()
    assert main(["id", str(tmp_path / "pki" / "device.pem"), "--profile", "2018"]) == OK
    old = capsys.readouterr()
    assert old.out == canonical.out
    assert "warning: --profile '2018' is the old name of '2030.5'" in old.err
    assert main(["id", str(tmp_path / "pki" / "device.pem"), "--profile", "sapn"]) == OK


async def test_an_old_profile_name_in_a_site_file_runs_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", str(tmp_path / "pki")]) == OK
    site = tmp_path / "site.toml"
    site.write_text(UNREACHABLE_SITE.format(port=9).replace("pin = 111115", 'profile = "2018"'))
    capsys.readouterr()
    assert main(["check-config", str(site)]) == OK
    err = capsys.readouterr().err
    assert "warning: server.profile: '2018' is the old name of '2030.5'" in err
    gateway = Gateway(config_module.load_config(site))
    assert gateway.profile is PROFILES["2030.5"]
