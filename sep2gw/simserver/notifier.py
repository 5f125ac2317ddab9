"""The simulated utility's notifier: POSTs the Notifications its state made to each subscription's
``notificationURI`` (IEEE 2030.5 §5.4), over mutual TLS with the server's own certificate as the TLS
client's, HTTP/1.1 or h2 by ALPN (``actors.https.HttpsClient``).

One worker per notification origin (``https://host:port``), created on first use, sends in the order
the notifications were made, one request at a time on a kept-alive connection, each under a deadline.
A delivery is a 2xx answer (the listener's 201 Created; 200 and 204 are taken too); a 3xx or 4xx
answer is a refusal and is not retried (as envoy's notifier: the listener said no); a 5xx, a
connection or TLS failure or a timeout is retried after :data:`RETRY_DELAYS_S` (a bounded retry: the
last failure gives up). A notification the state marked dropped (``lose_notifications``) is recorded
and never sent; one marked duplicated is sent twice; a delayed one waits until its ``not_before`` on
the server's clock. Every attempt and outcome is a :class:`NotificationAttempt` in
:attr:`Notifier.attempts` (the server's audit).

``connector(host, port)`` replaces the TCP connect (a simulated world hands the gateway's listener
an in-memory pipe end, ``sep2gw.world``); without one the notifier connects over TCP.
"""

from __future__ import annotations

import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol
from urllib.parse import urlsplit

import anyio
import anyio.abc

from actors.https import HttpsClient
from sep2gw.simserver.families.subscriptions import OutgoingNotification
from transport.errors import LinkError
from transport.http.messages import SEP_XML

__all__ = [
    "MAX_PENDING",
    "NotificationAttempt",
    "NotificationConnector",
    "Notifier",
    "RETRY_DELAYS_S",
]

#: Seconds between a failed attempt and the next: four retries, then the notification is given up.
RETRY_DELAYS_S: Final = (2.0, 4.0, 8.0, 16.0)
#: Notifications waiting to be sent, over every origin; beyond, a new one is given up at once.
MAX_PENDING: Final = 4096
#: Deadline of one POST, connect and handshake included.
REQUEST_TIMEOUT_S: Final = 10.0

NotificationConnector = Callable[[str, int], Awaitable[anyio.abc.ByteStream]]

Outcome = Literal["delivered", "refused", "failed", "gave_up", "dropped", "overflow"]


class _Clock(Protocol):
    """What the notifier needs of the server's clock (``sep2gw.simserver.server.ServerClock``)."""

    def now(self) -> float: ...

    async def sleep_until(self, server_time: float) -> None: ...


@dataclass(frozen=True, slots=True)
class NotificationAttempt:
    """One attempt to deliver notification ``number`` (its ``copy``-th sending, from 1), or its
    fate when never sent. ``status`` is the listener's HTTP answer (0: none); ``outcome``:
    ``delivered`` (2xx), ``refused`` (3xx/4xx, not retried), ``failed`` (retried later),
    ``gave_up`` (the last retry failed), ``dropped`` (a ``lose_notifications`` fault),
    ``overflow`` (more than :data:`MAX_PENDING` waiting)."""

    time: float
    number: int
    subscription: int
    uri: str
    copy: int
    attempt: int
    status: int
    outcome: Outcome
    error: str = ""


def _origin(uri: str) -> tuple[str, int, str]:
    parts = urlsplit(uri)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.hostname or "", parts.port or 443, path


class Notifier:
    """Sends a simulated utility's notifications (module docstring)."""

    def __init__(
        self,
        context: ssl.SSLContext,
        clock: _Clock,
        *,
        connector: NotificationConnector | None = None,
        retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
        on_attempt: Callable[[NotificationAttempt], None] | None = None,
    ) -> None:
        self._context = context
        self._clock = clock
        self._connector = connector
        self._retry_delays_s = retry_delays_s
        self._timeout_s = request_timeout_s
        self._on_attempt = on_attempt
        self.attempts: list[NotificationAttempt] = []
        self._queues: dict[tuple[str, int], deque[OutgoingNotification]] = {}
        #: Set when a worker's queue gains an item (absent while the worker is busy).
        self._wakeups: dict[tuple[str, int], anyio.Event] = {}
        self._new_origin: anyio.Event | None = None  # made in the event loop, by run()
        self._pending = 0

    # --------------------------------------------------------------------------- recording

    def _record(
        self,
        item: OutgoingNotification,
        copy: int,
        attempt: int,
        status: int,
        outcome: Outcome,
        error: str = "",
    ) -> None:
        record = NotificationAttempt(
            self._clock.now(),
            item.number,
            item.subscription,
            item.uri,
            copy,
            attempt,
            status,
            outcome,
            error,
        )
        self.attempts.append(record)
        if self._on_attempt is not None:
            self._on_attempt(record)

    def delivered(self) -> list[NotificationAttempt]:
        return [a for a in self.attempts if a.outcome == "delivered"]

    # ----------------------------------------------------------------------------- queueing

    def submit(self, items: list[OutgoingNotification]) -> None:
        """Hand over notifications the state made (never blocks: called from the server's
        synchronous action path)."""
        for item in items:
            if item.copies == 0:
                self._record(item, 0, 0, 0, "dropped")
                continue
            if self._pending >= MAX_PENDING:
                self._record(item, 0, 0, 0, "overflow", f"{MAX_PENDING} notifications waiting")
                continue
            host, port, _ = _origin(item.uri)
            key = (host, port)
            if key not in self._queues:
                self._queues[key] = deque()
                if self._new_origin is not None:
                    self._new_origin.set()
            self._queues[key].append(item)
            self._pending += 1
            wakeup = self._wakeups.get(key)
            if wakeup is not None:
                wakeup.set()

    async def run(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run one worker per origin until cancelled."""
        started: set[tuple[str, int]] = set()
        async with anyio.create_task_group() as group:
            task_status.started()
            while True:
                self._new_origin = anyio.Event()
                for key in list(self._queues):
                    if key not in started:
                        started.add(key)
                        group.start_soon(self._worker, key)
                await self._new_origin.wait()

    async def _worker(self, key: tuple[str, int]) -> None:
        host, port = key
        connector = self._connector
        client = HttpsClient(
            host,
            port,
            self._context,
            connector=None if connector is None else (lambda: connector(host, port)),
            request_timeout_s=self._timeout_s,
            connect_timeout_s=self._timeout_s,
        )
        queue = self._queues[key]
        async with client:
            while True:
                while not queue:
                    wakeup = self._wakeups[key] = anyio.Event()
                    await wakeup.wait()
                    del self._wakeups[key]
                item = queue.popleft()
                try:
                    if item.not_before > self._clock.now():
                        await self._clock.sleep_until(item.not_before)
                    for copy in range(1, item.copies + 1):
                        await self._deliver(client, item, copy)
                finally:
                    self._pending -= 1

    async def _deliver(self, client: HttpsClient, item: OutgoingNotification, copy: int) -> None:
        """POST one copy, retrying a failure after each of the retry delays."""
        _, _, path = _origin(item.uri)
        for attempt in range(1, len(self._retry_delays_s) + 2):
            status, error = 0, ""
            try:
                response = await client.request(
                    "POST", path, body=item.body, headers=(("content-type", SEP_XML),)
                )
                status = response.status
            except LinkError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if 200 <= status < 300:
                self._record(item, copy, attempt, status, "delivered")
                return
            if 300 <= status < 500:
                self._record(item, copy, attempt, status, "refused")
                return
            if not error:
                error = f"HTTP {status}"
            if attempt > len(self._retry_delays_s):
                self._record(item, copy, attempt, status, "gave_up", error)
                return
            self._record(item, copy, attempt, status, "failed", error)
            await self._clock.sleep_until(self._clock.now() + self._retry_delays_s[attempt - 1])
