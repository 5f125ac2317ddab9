"""``actors.sd_notify``: systemd's notification protocol over a real AF_UNIX datagram socket in a
temporary folder (not a network socket), and the watchdog on trio's autojump clock."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.sd_notify import SystemdNotifier, notify_address, watchdog_interval_s


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(5)
        yield sock, path


def _received(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    out: list[str] = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notify_socket_path_and_abstract_names_are_read_as_systemd_gives_them() -> None:
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@sd-notify-1"}) == "\0sd-notify-1"
    assert notify_address({}) is None
    assert notify_address({"NOTIFY_SOCKET": "relative/path"}) is None


def test_without_notify_socket_every_call_is_a_no_op() -> None:
    notifier = SystemdNotifier.from_environ({})
    assert not notifier.enabled
    assert not notifier.ready("ready")
    assert not notifier.notify(WATCHDOG=1)


def test_ready_status_and_stopping_reach_the_socket_as_key_value_lines(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    with SystemdNotifier.from_environ({"NOTIFY_SOCKET": path}) as notifier:
        assert notifier.ready("starting; comms\nnot yet tried")
        assert notifier.status("registered")
        assert not notifier.status("registered")  # the same line is sent once
        assert notifier.stopping()
    assert sock.recv(4096).decode() == "READY=1\nSTATUS=starting; comms not yet tried"
    assert sock.recv(4096).decode() == "STATUS=registered"
    assert sock.recv(4096).decode() == "STOPPING=1\nSTATUS=stopping"


def test_an_abstract_socket_name_is_reached() -> None:
    name = f"sep2gw-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        with SystemdNotifier.from_environ({"NOTIFY_SOCKET": "@" + name}) as notifier:
            assert notifier.notify(READY=1)
        assert sock.recv(4096) == b"READY=1"


def test_a_vanished_socket_never_stops_the_gateway(tmp_path: Path) -> None:
    with SystemdNotifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone")}) as notifier:
        assert notifier.enabled
        assert not notifier.ready("ready")  # dropped, not raised


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}, pid=7) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7) is None
    assert watchdog_interval_s({}, pid=7) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}, pid=7) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "soon"}, pid=7) is None


def test_watchdog_pings_from_the_event_loop_at_the_interval(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener

    async def main() -> None:
        with SystemdNotifier.from_environ({"NOTIFY_SOCKET": path}) as notifier:
            with trio.move_on_after(46):
                await notifier.run_watchdog(15.0)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert _received(sock) == ["WATCHDOG=1"] * 4  # at 0, 15, 30 and 45 s
