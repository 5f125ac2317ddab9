"""Where a simulated world's notifier connects: the host of a notificationURI → the gateway whose
listener answers there, over in-memory pipes (issue 19 point 3; session contract point 4).

The simulated utility's notifier (``sep2gw.simserver.notifier``) calls :meth:`NotificationRoutes.connect`
with the notificationURI's host and port; the routes make a pipe, keep the near end for the notifier's
TLS client, and hand the far end to the gateway attached at that host, which serves the connection
(TLS server side with its own certificate, requiring the utility's client certificate, then HTTP/1.1
or h2) with ``Gateway.serve_notification_stream(stream)``. A world attaches each gateway under its
host when it starts and detaches it when it stops or crashes: connections it was serving are
cancelled with it (its process is gone), and a host with no gateway up refuses the connection, as a
closed port does. Many hosts may be attached at once; a fleet world attaches its whole fleet at one
host (``Fleet.serve_notification_stream``: one listener routing by path to each site).
"""

from __future__ import annotations

from typing import Final, Protocol, runtime_checkable

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.pipe import PIPE_CHUNKS, byte_stream_pair

__all__ = [
    "FLEET_NOTIFICATION_HOST",
    "FLEET_NOTIFICATION_URL",
    "NOTIFICATION_HOST",
    "NOTIFICATION_URL",
    "NotificationListener",
    "NotificationRoutes",
]

#: The simulated gateway's notification listener: its host, and the notificationURI it gives.
NOTIFICATION_HOST: Final = "gateway.sim"
NOTIFICATION_URL: Final = f"https://{NOTIFICATION_HOST}/notify"
#: A simulated fleet's one listener (decision 0022g): its host, and the base of the sites'
#: notificationURIs (site NAME's is ``<base>/<NAME>``).
FLEET_NOTIFICATION_HOST: Final = "fleet.sim"
FLEET_NOTIFICATION_URL: Final = f"https://{FLEET_NOTIFICATION_HOST}/notify"


@runtime_checkable
class NotificationListener(Protocol):
    """What answers notifications at a host: serves one connection handed in (contract point 4)."""

    async def serve_notification_stream(self, stream: anyio.abc.ByteStream) -> None: ...


_Incoming = tuple[str, anyio.abc.ByteStream]


class NotificationRoutes:
    """notificationURI host → the listener attached there (module docstring)."""

    def __init__(self) -> None:
        self._listeners: dict[str, NotificationListener] = {}
        # Insertion-ordered (a dict, not a set): cancelled in the order they began, every run.
        self._serving: dict[str, dict[anyio.CancelScope, None]] = {}
        send: MemoryObjectSendStream[_Incoming]
        accept: MemoryObjectReceiveStream[_Incoming]
        send, accept = anyio.create_memory_object_stream[_Incoming](PIPE_CHUNKS)
        self._send = send
        self._accept = accept
        #: Connections refused (no listener at the host), for assertions.
        self.refused = 0

    def attach(self, host: str, listener: object) -> bool:
        """Attach ``listener`` at ``host`` if it can listen (a gateway without a notification
        listener cannot: its host then refuses). Returns whether it was attached."""
        if not isinstance(listener, NotificationListener):
            return False
        self._listeners[host] = listener
        return True

    def detach(self, host: str) -> None:
        """The listener at ``host`` is gone: its connections are cancelled, new ones refused."""
        self._listeners.pop(host, None)
        for scope in self._serving.pop(host, {}):
            scope.cancel()

    async def connect(self, host: str, port: int) -> anyio.abc.ByteStream:
        """The notifier's connector: a pipe whose far end the listener at ``host`` serves."""
        if host not in self._listeners:
            self.refused += 1
            raise ConnectionRefusedError(f"no notification listener at {host}:{port}")
        near, far = byte_stream_pair()
        await self._send.send((host, far))
        return near

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Hand each connection to its host's listener, in a task of its own, until cancelled."""
        async with self._accept, anyio.create_task_group() as group:
            task_status.started()
            async for host, stream in self._accept:
                listener = self._listeners.get(host)
                if listener is None:  # detached between connect and now
                    self.refused += 1
                    await stream.aclose()
                    continue
                group.start_soon(self._serve_one, host, listener, stream)

    async def _serve_one(
        self, host: str, listener: NotificationListener, stream: anyio.abc.ByteStream
    ) -> None:
        scope = anyio.CancelScope()
        self._serving.setdefault(host, {})[scope] = None
        try:
            with scope:
                await listener.serve_notification_stream(stream)
        finally:
            self._serving.get(host, {}).pop(scope, None)
            with anyio.CancelScope(shield=True):
                await stream.aclose()
