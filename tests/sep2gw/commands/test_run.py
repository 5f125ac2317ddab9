"""``sep2gw run``: the embedded demo as a user starts it, over real loopback sockets; a configured
run on either event loop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from events.control_events import CommsLost, ControlStarted, LimitsInForceChanged
from events.hardware_events import LimitsApplied
from events.log_events import LogCheckpoint
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted, GatewayStopped
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.logtrust import check_checkpoints

ROOT = Path(__file__).resolve().parents[3]


def test_demo_runs_end_to_end_over_loopback(tmp_path: Path) -> None:
    # 150 s of demo time at 50x: registration, the first control's start, a verified battery write.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sep2gw",
            "run",
            "--speed",
            "50",
            "--duration",
            "150",
            "--workdir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "utility server https://127.0.0.1:" in out and "(mutual TLS)" in out
    assert "registration: mirror done" in out
    assert "control 000000A1 STARTED" in out
    assert "response 2 for control 000000A1 acknowledged (HTTP 201)" in out
    (log,) = tmp_path.glob("demo-*.sep2gw")
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        events = [r.event for r in store.read()]
    assert any(isinstance(e, ControlStarted) for e in events)
    assert any(
        isinstance(e, LimitsInForceChanged) and e.settings.export_limit_w == 1500 for e in events
    )
    assert any(isinstance(e, LimitsApplied) and e.settings.export_limit_w == 1500 for e in events)


def test_bad_arguments_are_refused_with_a_reason(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["run", "--speed", "0", "--workdir", str(tmp_path)]) == 2
    assert "--speed must be a positive number" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read the file" in capsys.readouterr().err
    assert main(["run", "--config", str(tmp_path / "x.toml"), "--speed", "5"]) == 2
    assert "for the demo" in capsys.readouterr().err


UNREACHABLE_SITE = """
[server]
url = "https://127.0.0.1:{port}"
pin = 111115
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "127.0.0.1"
port = {port}
[log]
path = "site.sep2gw"
"""


@pytest.mark.parametrize(("loop", "trio_loaded"), [("asyncio", False), ("trio", True)])
def test_a_configured_run_works_on_either_loop_and_asyncio_leaves_trio_out(
    tmp_path: Path, loop: str, trio_loaded: bool
) -> None:
    # Nothing listens on the port: the gateway starts, backs off, stops after --duration, and the
    # log records the start and the stop. On asyncio (the default) trio is never imported.
    with socket.socket() as s:  # a port that was free a moment ago and is closed now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0
    (tmp_path / "site.toml").write_text(UNREACHABLE_SITE.format(port=port))
    argv = ["run", "--config", str(tmp_path / "site.toml"), "--duration", "0.2", "--quiet"]
    if loop != "asyncio":
        argv += ["--loop", loop]
    code = f"import sys\nfrom sep2gw.cli import main\nprint(main({argv!r}), 'trio' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split()[-2:] == ["0", str(trio_loaded)]
    with SqliteEventStore(tmp_path / "site.sep2gw", CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        events = [r.event for r in store.read()]
        signed = check_checkpoints(store)
    assert isinstance(events[0], GatewayStarted)
    # The stop is the last word, and the device key signed the log through it on the way out.
    assert isinstance(events[-2], GatewayStopped) and isinstance(events[-1], LogCheckpoint)
    assert signed.ok and signed.last_through_seq == len(events) - 1, signed.describe()


def test_an_unknown_loop_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--config", "site.toml", "--loop", "uvloop"])
    assert exit_.value.code == 2
    assert "--loop" in capsys.readouterr().err


def test_the_loop_is_refused_for_the_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--loop", "asyncio"]) == 2
    assert "--loop is for --config runs" in capsys.readouterr().err


def test_section2_4_the_demo_gateway_configures_the_pin_the_scenario_gives_it() -> None:
    from sep2gw.commands.run import _pin_line
    from sep2gw.simserver import parse_scenario

    assert _pin_line(parse_scenario("[server]\npin = 222220\n")) == "pin = 222220\n"
    assert _pin_line(parse_scenario('[gateway]\npin = "unset"\n')) == ""
    assert _pin_line(parse_scenario("[gateway]\npin = 111115\n[server]\npin = 3\n")) == (
        "pin = 111115\n"
    )


def test_the_first_comms_lost_says_why_and_names_the_probe_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16 point 8: the console says why comms were lost and, the first time, what to run."""
    from sep2gw.commands.run import TimelinePrinter, probe_command
    from sep2gw.config import parse_config
    from sep2gw.timeline import Timeline

    config = parse_config(PROBED, source="site.toml", base_dir=tmp_path, check_files=False)
    printer = TimelinePrinter(Timeline(), quiet=False, on_comms_lost=probe_command(config))
    path = tmp_path / "site.sep2gw"
    with SqliteEventStore(path, CATALOGUE) as store:
        for at in (10.0, 20.0):
            store.append_events(
                "controls",
                [CommsLost(at_s=1_764_000_000 + at, reason="UnknownCA: chain not verified")],
                server_time=1_764_000_000 + at,
                monotonic=at,
            )
        for record in store.read():
            printer.show(record)
    out = capsys.readouterr().out
    assert out.count("COMMS LOST (UnknownCA: chain not verified)") == 2
    assert out.count("to see why, run: sep2gw probe") == 1  # the first occurrence only
    assert (
        f"sep2gw probe https://derms.example:8443/dcap --cert {tmp_path}/certs/dev.pem "
        f"--key {tmp_path}/certs/dev.key --ca {tmp_path}/certs/serca.pem "
        "--key-password-env SITE_KEY_PW --http1"
    ) in out


PROBED = """
[server]
url = "https://derms.example:8443"
http2 = false
[tls]
certificate = "certs/dev.pem"
key = "certs/dev.key"
ca = "certs/serca.pem"
key_password_env = "SITE_KEY_PW"
[battery]
driver = "sunspec"
host = "192.0.2.1"
"""
