"""``sep2gw sim-server``: refusals with a message, and the command serving a client in a child
process over loopback mutual TLS with the ``certs init`` PKI."""

from __future__ import annotations

import pathlib
import queue
import re
import subprocess
import sys
import threading

import pytest
import trio

from actors.https import HttpsClient
from sep2gw.cli import main
from transport.sep2 import decode
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, client_context


def test_sim_server_refuses_a_pki_folder_without_the_server_files(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim-server", "--pki", str(tmp_path)]) == 2
    assert "lacks server.pem, server.key, ca.pem" in capsys.readouterr().err


def test_sim_server_refuses_a_bad_port(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim-server", "--pki", str(tmp_path), "--port", "70000"]) == 2
    assert "--port 70000" in capsys.readouterr().err


def test_sim_server_refuses_a_bad_scenario_naming_the_key(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0
    scenario = tmp_path / "bad.toml"
    scenario.write_text("[server]\npoll_rate_s = 0\n")
    capsys.readouterr()
    code = main(["sim-server", "--pki", str(tmp_path / "pki"), "--scenario", str(scenario)])
    assert code == 2
    assert "server.poll_rate_s: must be a positive number of seconds" in capsys.readouterr().err


def test_sim_server_command_serves_the_demo_over_mutual_tls(tmp_path: pathlib.Path) -> None:
    pki = tmp_path / "pki"
    assert main(["certs", "init", str(pki)]) == 0
    root = pathlib.Path(__file__).resolve().parents[3]
    child = subprocess.Popen(
        [sys.executable, "-m", "sep2gw", "sim-server", "--port", "0", "--pki", str(pki)],
        cwd=root,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        stdout = child.stdout
        assert stdout is not None
        threading.Thread(target=lambda: [lines.put(line) for line in stdout], daemon=True).start()
        before: list[str] = []
        while not (announced := lines.get(timeout=30)).startswith("simulated utility server"):
            before.append(announced)
        match = re.search(r"https://127\.0\.0\.1:(\d+)/dcap$", announced.strip())
        assert match and "demo" in announced, announced
        # the demo's first actions, applied at the start, are printed as they happen
        assert any("utility: create control DE0000000000000000000000000000A1" in x for x in before)
        material = TlsMaterial(
            str(pki / "device.pem"), str(pki / "device.key"), str(pki / "ca.pem")
        )

        async def fetch() -> r.DeviceCapability:
            with trio.fail_after(10):
                async with HttpsClient(
                    "127.0.0.1", int(match.group(1)), client_context(material)
                ) as client:
                    response = await client.get("/dcap")
            assert response.status == 200
            return decode(response.body, r.DeviceCapability)

        dcap = trio.run(fetch)
        request_line = lines.get(timeout=10)
        assert "GET  /dcap -> 200" in request_line, request_line
        assert dcap.EndDeviceListLink is not None and dcap.EndDeviceListLink.href == "/edev"
        assert dcap.pollRate == 10  # the demo's poll rate
    finally:
        child.terminate()
        child.wait(timeout=10)


def test_utility_actions_are_printed_in_words_not_as_a_struct_repr() -> None:
    """Issue 20: the simulated server printed ``ChangeControl mrid=F1, modes=Modes(opModConnect=
    None, …, opModExpLimW=300.0, …)``."""
    from sep2gw.commands.simserver import describe_action
    from sep2gw.simserver.scenario import ChangeControl, ChangeDefault, ClockSkew, Modes

    line = describe_action(
        ChangeControl(at_s=10, mrid="F1", modes=Modes(opModExpLimW=300.0, opModMaxLimW=55.5))
    )
    assert line == "change control: mrid F1, modes opModExpLimW=300 W, opModMaxLimW=55.5 %"
    assert describe_action(ChangeDefault(at_s=0, program="retailer", modes=Modes())) == (
        "change default: program retailer, modes none"
    )
    assert describe_action(ClockSkew(at_s=0, seconds=-600.0)) == "clock skew: seconds -600"
    assert "Modes(" not in line and "None" not in line


def test_notifications_and_their_faults_are_printed_in_words() -> None:
    from sep2gw.commands.simserver import describe_action, describe_notification
    from sep2gw.simserver.notifier import NotificationAttempt
    from sep2gw.simserver.scenario import LoseNotifications

    uri = "https://gateway.sim/notify"
    sent = NotificationAttempt(1125.0, 3, 1, uri, 2, 1, 201, "delivered")
    assert describe_notification(sent, 1000.0) == (
        f"t+  125.0 s  NOTIFY #3 copy 2 {uri} -> 201 delivered"
    )
    retried = NotificationAttempt(1127.0, 3, 1, uri, 1, 2, 0, "failed", "ConnectFailed: no")
    assert describe_notification(retried, 1000.0) == (
        f"t+  127.0 s  NOTIFY #3 attempt 2 {uri} -> no answer failed  ConnectFailed: no"
    )
    dropped = NotificationAttempt(1125.0, 4, 1, uri, 0, 0, 0, "dropped")
    assert describe_notification(dropped, 1000.0) == f"t+  125.0 s  NOTIFY #4 {uri} -> dropped"
    assert describe_action(LoseNotifications(at_s=100, duration_s=60, probability=0.5)) == (
        "lose notifications: duration_s 60 s, probability 0.5"
    )
