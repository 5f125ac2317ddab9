"""``sep2gw run --config`` under systemd (``Type=notify``, ``WatchdogSec=``): a real run process
with ``$NOTIFY_SOCKET`` naming an AF_UNIX datagram socket in a temporary folder tells it READY=1
once the log is open and the actors started, pings the watchdog at half of ``$WATCHDOG_USEC``,
and says STOPPING=1 before it stops. Without the variable nothing is sent (the other run tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from tests.sep2gw.commands.test_run import ROOT, UNREACHABLE_SITE


def test_a_configured_run_notifies_ready_watchdog_and_stopping(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0
    (tmp_path / "site.toml").write_text(UNREACHABLE_SITE.format(port=port))
    notify = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(notify)
        proc = subprocess.run(
            [sys.executable, "-m", "sep2gw", "run", "--config", str(tmp_path / "site.toml")]
            + ["--duration", "1", "--quiet"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "NOTIFY_SOCKET": notify,
                "WATCHDOG_USEC": "600000",  # pinged every 0.3 s
            },
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        sock.setblocking(False)
        messages: list[str] = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except BlockingIOError:
                break
    assert messages[0].startswith("READY=1\nSTATUS=")
    assert "comms" in messages[0]
    pings = messages.count("WATCHDOG=1")
    assert 2 <= pings <= 8, messages  # the socket queues 10 datagrams (net.unix.max_dgram_qlen)
    # STOPPING=1 comes before the gateway's own stop (flush, sign, unlock), which the watchdog
    # still covers: after it, only pings.
    stopping = [i for i, m in enumerate(messages) if m.startswith("STOPPING=1\n")]
    assert len(stopping) == 1, "|".join(messages)
    assert set(messages[stopping[0] + 1 :]) <= {"WATCHDOG=1"}
    # Ready meant the start was already recorded in the log.
    with SqliteEventStore(tmp_path / "site.sep2gw", CATALOGUE, readonly=True) as store:
        assert isinstance(next(iter(store.read())).event, GatewayStarted)
