"""``check-config --online`` reaches the server (as ``probe``) and the battery (as ``modbus scan``)
with the configuration's identity and addresses (issue 16 point 3)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sep2gw.cli import main
from sep2gw.exits import FAILED, OK

ROOT = Path(__file__).resolve().parents[3]

CONFIG = """
[server]
url = "https://127.0.0.1:{http_port}"
pin = 111115
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "127.0.0.1"
port = {modbus_port}
timeout_s = 1
[log]
path = "site.sep2gw"
"""


def _serve(argv: list[str], pattern: str) -> tuple[subprocess.Popen[str], int]:
    child = subprocess.Popen(
        [sys.executable, "-m", "sep2gw", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    found = re.search(pattern, line)
    assert found, line
    return child, int(found.group(1))


def _stop(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=30)


@pytest.fixture
def servers(pki: Path) -> Iterator[tuple[int, int]]:
    server, http_port = _serve(
        ["sim-server", "--port", "0", "--pki", str(pki / "pki"), "--quiet"], r":(\d+)/dcap"
    )
    battery, modbus_port = _serve(["sim-battery", "--port", "0"], r":(\d+)\s*$")
    try:
        yield http_port, modbus_port
    finally:
        _stop(server)
        _stop(battery)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_online_reaches_the_server_and_the_battery_as_run_will(
    pki: Path, servers: tuple[int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    http_port, modbus_port = servers
    config = pki / "online.toml"
    config.write_text(CONFIG.format(http_port=http_port, modbus_port=modbus_port))
    assert main(["check-config", str(config), "--online"]) == OK
    out = capsys.readouterr().out
    assert f"127.0.0.1:{http_port}/dcap: TLSv1.2 ECDHE-ECDSA-AES128-CCM8" in out
    assert "SunSpec models 1, 701" in out
    # an unreachable battery is a runtime failure, named
    config.write_text(CONFIG.format(http_port=http_port, modbus_port=_closed_port()))
    assert main(["check-config", str(config), "--online"]) == FAILED
    assert "battery: 127.0.0.1:" in capsys.readouterr().err
