"""The fleet's notification listener outlives a failed accept (review finding 6): only a port that
cannot be bound is a configuration error."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import pytest
import trio

from actors.fleet_notifications import FleetNotificationListener
from sep2gw import fleet as fleet_module
from sep2gw.config import ConfigError


class OutOfDescriptors(anyio.abc.SocketListener):
    """A bound listener whose first ``failures`` accepts fail with EMFILE (a thousand sites'
    connections open), then waits for a connection that never comes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.accepts = 0

    async def accept(self) -> anyio.abc.SocketStream:
        self.accepts += 1
        if self.accepts <= self.failures:
            raise OSError(errno.EMFILE, "Too many open files")
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        pass

    @property
    def _raw_socket(self) -> socket.socket:
        raise NotImplementedError

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        return {anyio.abc.SocketAttribute.local_port: lambda: 8443}


def _listener() -> FleetNotificationListener:
    return FleetNotificationListener(
        context=ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
        route_of=lambda path: None,
        on_console=lambda line: None,
    )


async def test_a_failed_accept_pauses_the_listener_and_does_not_end_it(
    autojump_clock: trio.abc.Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    tcp = OutOfDescriptors(failures=3)

    async def bound(**_: object) -> OutOfDescriptors:
        return tcp

    monkeypatch.setattr(anyio, "create_tcp_listener", bound)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(fleet_module._serve_notifications, _listener(), "127.0.0.1:8443")
        await trio.sleep(1)  # three failed accepts, a pause after each, then accepting again
        assert (port, tcp.accepts) == (8443, 4)
        nursery.cancel_scope.cancel()


async def test_a_port_that_cannot_be_bound_is_a_configuration_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot serve on 127.0.0.1:{port}: "):
            await fleet_module._serve_notifications(_listener(), f"127.0.0.1:{port}")
