"""``sep2gw modbus scan`` and ``sep2gw sim-battery`` (in-process; the device runs in its own thread)."""

from __future__ import annotations

import json
import pathlib
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
import trio

from sep2gw.cli import main
from sep2gw.commands.battery import parse_endpoint
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer

NOON = 1_700_006_400 - 1_700_006_400 % 86_400 + 12 * 3600


@pytest.fixture
def device_port() -> Iterator[int]:
    """A simulated battery served by its own trio run in a thread (the CLI runs its own event loop)."""
    started: queue.Queue[tuple[int, trio.lowlevel.TrioToken, trio.CancelScope]] = queue.Queue()

    async def serve() -> None:
        sim = SimBattery(BatteryParams(), SiteParams(), seed=2, start_s=NOON)
        server = SimModbusServer(sim, clock=lambda: NOON)
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve)
            started.put((port, trio.lowlevel.current_trio_token(), nursery.cancel_scope))

    thread = threading.Thread(target=trio.run, args=(serve,), daemon=True)
    thread.start()
    port, token, scope = started.get(timeout=10)
    yield port
    trio.from_thread.run_sync(scope.cancel, trio_token=token)
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_scan_lists_models_and_key_points(
    device_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["modbus", "scan", f"127.0.0.1:{device_port}", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    models = {m["id"]: m for m in result["models"]}
    assert list(models) == [1, 701, 702, 704, 713, 802, 203]
    assert models[1]["points"]["Mn"] == "sep2gw"
    assert models[701]["points"]["ConnSt"] == "CONNECTED"
    # a number and its unit apart (issue 20: it was the text "13500 WH")
    assert models[713]["points"]["WHRtg"] == 13500 and models[713]["units"]["WHRtg"] == "WH"
    for model in models.values():
        for name in model.get("units", {}):
            assert model["points"][name] is None or isinstance(model["points"][name], int | float)
    assert models[704]["name"] == "DERCtlAC"


def test_scan_prints_a_readable_table(device_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["modbus", "scan", f"127.0.0.1:{device_port}"]) == 0
    out = capsys.readouterr().out
    assert "7 SunSpec models" in out and "model   802 battery" in out
    assert re.search(r"WHRtg +13500 WH", out)  # the text view keeps value and unit together


def test_scan_of_an_unreachable_device_fails_with_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["modbus", "scan", f"127.0.0.1:{free_port()}", "--attempts", "1"])
    assert code == 1
    assert "unreachable" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["localhost", "host:", ":502", "host:0", "host:70000", "host:x"])
def test_bad_endpoint_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_endpoint(text)


def test_ipv6_endpoint_is_parsed() -> None:
    assert parse_endpoint("[::1]:5020") == ("::1", 5020)


def test_sim_battery_refuses_a_bad_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim-battery", "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_sim_battery_command_serves_a_scannable_device(capsys: pytest.CaptureFixture[str]) -> None:
    """``sep2gw sim-battery --port 0`` in a child process: it announces its port, and scan reads it."""
    root = pathlib.Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-m", "sep2gw", "sim-battery", "--port", "0", "--seed", "9"],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert child.stdout is not None
        threading.Thread(target=lambda: lines.put(child.stdout.readline()), daemon=True).start()
        announced = lines.get(timeout=30)
        match = re.search(r"on 127\.0\.0\.1:(\d+)$", announced.strip())
        assert match, announced
        assert main(["modbus", "scan", f"127.0.0.1:{match.group(1)}", "--json"]) == 0
        models = json.loads(capsys.readouterr().out)["models"]
        assert models[0]["points"]["SN"] == "SIM-9"
    finally:
        child.terminate()
        child.wait(timeout=10)
