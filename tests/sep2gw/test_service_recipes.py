"""Issue 20 point 3: the systemd unit and the container recipe say what the code does. The unit
is ``Type=notify`` with a watchdog (``run`` speaks the protocol: test_systemd_notify), does not
restart on the exit codes that would fail again (``sep2gw.exits``), is hardened and writes only
its state directory; ``systemd-analyze verify`` accepts it where systemd is installed. The
container recipe installs every package pyproject ships, pinned by constraints.txt, runs as a
non-root user, and names only commands that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from sep2gw.commands import COMMANDS
from sep2gw.exits import BAD_INPUT, CHECK_FAILED

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "systemd" / "sep2gw.service"
CONTAINERFILE = ROOT / "contrib" / "container" / "Containerfile"


def _unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_the_unit_is_notify_with_a_watchdog_and_restarts_only_what_a_restart_can_fix() -> None:
    unit = _unit()
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"] == ["60s"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["RestartPreventExitStatus"] == [f"{BAD_INPUT} {CHECK_FAILED}"]
    [command] = unit["ExecStart"]
    assert command.split()[1:] == ["-m", "sep2gw", "run", "--config", "/etc/sep2gw/site.toml"]


def test_the_unit_is_hardened_and_writes_only_its_state_directory() -> None:
    unit = _unit()
    assert unit["User"] == ["sep2gw"]
    assert unit["ProtectSystem"] == ["strict"] and unit["StateDirectory"] == ["sep2gw"]
    assert unit["NoNewPrivileges"] == ["yes"] and unit["CapabilityBoundingSet"] == [""]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "ReadWritePaths" not in unit


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    # The interpreter path of an install (/opt/sep2gw/venv) does not exist on a test machine.
    unit = tmp_path / "sep2gw.service"
    unit.write_text(UNIT.read_text().replace("/opt/sep2gw/venv/bin/python", sys.executable))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in done.stderr.splitlines() if "sep2gw.service" in line]
    assert done.returncode == 0 and not problems, done.stderr


def _instructions() -> list[tuple[str, str]]:
    text = CONTAINERFILE.read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word, rest.strip()))
    return out


def test_the_container_recipe_ships_every_package_pinned_and_runs_unprivileged() -> None:
    steps = _instructions()
    assert [rest for word, rest in steps if word == "FROM"][0].startswith("python:3.11-slim")
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
    copied = {rest.split()[0] for word, rest in steps if word == "COPY" and "--from" not in rest}
    assert {p.rstrip("*") for p in packages} <= copied  # a new package is not left out
    assert any("-c constraints.txt" in rest for word, rest in steps if word == "RUN")
    assert [rest for word, rest in steps if word == "USER"] == ["sep2gw"]
    assert '"/var/lib/sep2gw"' in next(rest for word, rest in steps if word == "VOLUME")
    assert [rest for word, rest in steps if word == "STOPSIGNAL"] == ["SIGTERM"]


def test_the_container_recipe_names_only_commands_that_exist() -> None:
    steps = _instructions()
    entrypoint = json.loads(next(rest for word, rest in steps if word == "ENTRYPOINT"))
    command = json.loads(next(rest for word, rest in steps if word == "CMD"))
    assert entrypoint == ["python", "-m", "sep2gw"] and command[0] == "run"
    named = {command[0]}
    for word, rest in steps:
        if word in ("RUN", "HEALTHCHECK"):
            named |= set(re.findall(r"-m sep2gw ([a-z][a-z-]*)", rest))
    assert named <= set(COMMANDS), named - set(COMMANDS)
