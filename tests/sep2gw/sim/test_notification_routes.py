"""A world's notification routes: the notifier's connector reaches the listener attached at the
notificationURI's host over pipes; nobody attached, or detached (a crashed gateway), refuses."""

from __future__ import annotations

from pathlib import Path

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from actors.https import Handler, HttpsClient, HttpsServer, PeerInfo
from sep2gw.sim.notification_routes import NOTIFICATION_HOST, NotificationRoutes
from tests.tls_fixtures import PkiFiles, write_pki
from transport.errors import ConnectFailed, LinkError
from transport.http.messages import Request, Response
from transport.http.router import Router
from transport.tls import client_context, server_context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("routes-pki")))


class StubGateway:
    """A stand-in for ``Gateway.serve_notification_stream`` (helper C2 builds the real one)."""

    def __init__(self, pki: PkiFiles, *, hang: bool = False) -> None:
        self.received: list[bytes] = []
        self.hang = hang
        router: Router[Handler] = Router()
        router.add("POST", "/notify", self._handle)
        self.https = HttpsServer(router, server_context(pki.device))

    async def _handle(self, request: Request, peer: PeerInfo) -> Response:
        self.received.append(request.body)
        if self.hang:
            await anyio.sleep_forever()
        return Response(201)

    async def serve_notification_stream(self, stream: anyio.abc.ByteStream) -> None:
        await self.https.serve_connection(stream)


def client(routes: NotificationRoutes, pki: PkiFiles, host: str) -> HttpsClient:
    return HttpsClient(
        host,
        443,
        client_context(pki.server),
        connector=lambda: routes.connect(host, 443),
        request_timeout_s=30,
    )


async def test_the_attached_gateway_answers_at_its_host(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    routes = NotificationRoutes()
    gateway = StubGateway(pki)
    async with trio.open_nursery() as nursery:
        await nursery.start(routes.serve)
        assert routes.attach(NOTIFICATION_HOST, gateway)
        async with client(routes, pki, NOTIFICATION_HOST) as notifier:
            response = await notifier.request("POST", "/notify", body=b"<Notification/>")
        nursery.cancel_scope.cancel()
    assert response.status == 201
    assert gateway.received == [b"<Notification/>"]


async def test_an_unknown_host_or_a_gateway_without_a_listener_refuses(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    routes = NotificationRoutes()
    assert not routes.attach(NOTIFICATION_HOST, object())  # no serve_notification_stream
    async with trio.open_nursery() as nursery:
        await nursery.start(routes.serve)
        for host in (NOTIFICATION_HOST, "elsewhere.sim"):
            async with client(routes, pki, host) as notifier:
                with pytest.raises(ConnectFailed):
                    await notifier.request("POST", "/notify", body=b"x")
        nursery.cancel_scope.cancel()
    assert routes.refused == 2


async def test_detaching_a_crashed_gateway_cuts_its_connections_and_refuses_new_ones(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    routes = NotificationRoutes()
    gateway = StubGateway(pki, hang=True)
    outcome: list[str] = []

    async def notify() -> None:
        async with client(routes, pki, NOTIFICATION_HOST) as notifier:
            try:
                await notifier.request("POST", "/notify", body=b"x")
                outcome.append("answered")
            except LinkError as exc:
                outcome.append(type(exc).__name__)

    with anyio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(routes.serve)
            routes.attach(NOTIFICATION_HOST, gateway)
            nursery.start_soon(notify)
            await trio.sleep(1)
            assert gateway.received == [b"x"]  # being served, held by the hanging handler
            routes.detach(NOTIFICATION_HOST)
            await trio.sleep(1)
            assert outcome == ["ConnectionReset"]
            async with client(routes, pki, NOTIFICATION_HOST) as notifier:
                with pytest.raises(ConnectFailed):
                    await notifier.request("POST", "/notify", body=b"y")
            nursery.cancel_scope.cancel()
