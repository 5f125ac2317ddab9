"""systemd's service notification protocol (``sd_notify(3)``), spoken directly over its socket.

A unit with ``Type=notify`` starts a service with ``$NOTIFY_SOCKET`` naming an ``AF_UNIX``
datagram socket (a path, or an abstract name written with a leading ``@``); the service sends
newline-separated ``KEY=VALUE`` assignments in one datagram each time: ``READY=1`` when it is
ready, ``STATUS=…`` a one-line status ``systemctl status`` shows, ``WATCHDOG=1`` to say it is alive
(the unit's ``WatchdogSec=``, passed as ``$WATCHDOG_USEC``, kills and restarts a service that stops
sending it), ``STOPPING=1`` when it begins to stop. Without ``$NOTIFY_SOCKET`` (not under systemd)
every call is a no-op. No library is needed: the protocol is one ``sendto`` (python-systemd's
``daemon.notify`` and libsystemd's ``sd_notify`` do the same).

The watchdog is pinged from the event loop itself (:meth:`SystemdNotifier.run_watchdog`), at half
the interval systemd allows: a loop that stalls (a blocking call, a livelock) stops the pings and
systemd kills and restarts the gateway, which is what the watchdog is for.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Final

import anyio

__all__ = ["SystemdNotifier", "notify_address", "watchdog_interval_s"]

#: A status line longer than this is cut: systemd shows one line, and a datagram must stay small.
MAX_STATUS_CHARS: Final = 200


def notify_address(environ: Mapping[str, str]) -> str | None:
    """The notification socket of ``$NOTIFY_SOCKET`` as ``socket.sendto`` takes it: a file path,
    or an abstract name with its leading ``@`` turned into the NUL byte Linux expects. ``None``
    when unset or not an address systemd gives (then nothing is sent)."""
    value = environ.get("NOTIFY_SOCKET", "")
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


def watchdog_interval_s(environ: Mapping[str, str], pid: int) -> float | None:
    """How often to send ``WATCHDOG=1``: half of ``$WATCHDOG_USEC`` (sd_watchdog_enabled(3)
    recommends pinging at half the timeout), or ``None`` when the watchdog is off or meant for
    another process (``$WATCHDOG_PID`` names a different PID)."""
    usec = environ.get("WATCHDOG_USEC", "")
    owner = environ.get("WATCHDOG_PID", "")
    if owner and owner != str(pid):
        return None
    try:
        timeout_us = int(usec)
    except ValueError:
        return None
    if timeout_us <= 0:
        return None
    return timeout_us / 2 / 1_000_000


class SystemdNotifier:
    """Sends notifications to systemd, or nothing at all when not started by it.

    A send that fails (systemd restarted, the socket gone) is dropped: notifications are advice to
    the service manager, and a gateway must never stop because its supervisor cannot hear it.
    """

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._socket: socket.socket | None = None
        if address is not None:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.setblocking(False)
        self._status: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> SystemdNotifier:
        return cls(notify_address(environ))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=VALUE`` lines (``notify(READY=1, STATUS="…")``) in one datagram; whether it
        was sent (``False`` when not under systemd or the send failed)."""
        if self._socket is None or self.address is None:
            return False
        text = "\n".join(f"{key}={_one_line(str(value))}" for key, value in fields.items())
        try:
            self._socket.sendto(text.encode(), self.address)
        except OSError:
            return False
        return True

    def ready(self, status: str) -> bool:
        """``READY=1`` with the first status line: see docs/service.md for what ready means."""
        self._status = status
        return self.notify(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        """A new ``STATUS=`` line; the same line twice is sent once."""
        if status == self._status:
            return False
        self._status = status
        return self.notify(STATUS=status)

    def stopping(self, status: str = "stopping") -> bool:
        return self.notify(STOPPING=1, STATUS=status)

    async def run_watchdog(self, interval_s: float) -> None:
        """Send ``WATCHDOG=1`` every ``interval_s`` seconds, from the event loop, until cancelled."""
        while True:
            self.notify(WATCHDOG=1)
            await anyio.sleep(interval_s)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> SystemdNotifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _one_line(value: str) -> str:
    line = " ".join(value.split())
    return line if len(line) <= MAX_STATUS_CHARS else line[: MAX_STATUS_CHARS - 1] + "…"
