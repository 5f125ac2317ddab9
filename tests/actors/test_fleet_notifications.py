"""The fleet's one notification listener (issue 19 points 1 and 3, decision 0022g): every site's
notificationURI on one socket, each POST routed by its path to its site's handler; a path that is
no site's is 404 and counted at the fleet, never told to a site; mutual TLS on the PKI rules; the
single-site listener's bounds, for the whole fleet."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
import pytest
import trio
import trio.testing

from actors.fleet_notifications import FleetNotificationListener
from actors.https import Handler, HttpsClient, PeerInfo
from actors.pipe import pipe_connector, pipe_listener
from tests.tls_fixtures import PkiFiles
from transport.errors import LinkError, NoClientCertificate, UnknownCA
from transport.http.messages import SEP_XML, Request, Response
from transport.tls import ccm8_cipher_string, client_context, server_context

DEADLINE_S = 60
H2_AND_H11 = [("h2", "http/1.1"), ("http/1.1",)]
SITES = ("north-1", "south-2")


@dataclasses.dataclass
class Harness:
    listener: FleetNotificationListener
    #: (site, request target, body) each site's handler was handed, in order.
    received: list[tuple[str, str, bytes]]
    console: list[str]
    connect: partial[object] | object


def site_handler(name: str, received: list[tuple[str, str, bytes]]) -> Handler:
    async def handle(request: Request, peer: PeerInfo) -> Response:
        received.append((name, request.target, request.body))
        return Response(201)

    return handle


@asynccontextmanager
async def listening(pki: PkiFiles, **bounds: int | float) -> AsyncIterator[Harness]:
    """A fleet listener on in-memory pipes (the aggregator's certificate is the served one) with
    two sites at ``/notify/<name>``."""
    received: list[tuple[str, str, bytes]] = []
    console: list[str] = []
    routes = {f"/notify/{name}": site_handler(name, received) for name in SITES}
    listener = FleetNotificationListener(
        context=server_context(pki.device),
        route_of=routes.get,
        on_console=console.append,
        **bounds,  # type: ignore[arg-type]
    )
    send, accept = pipe_listener()
    async with anyio.create_task_group() as group:
        await group.start(listener.serve_pipes, accept)
        yield Harness(listener, received, console, pipe_connector(send))
        group.cancel_scope.cancel()


def utility(
    context: ssl.SSLContext, harness: Harness, alpn: tuple[str, ...] = ("h2", "http/1.1")
) -> HttpsClient:
    return HttpsClient("fleet.test", 443, context, connector=harness.connect)  # type: ignore[arg-type]


async def post(client: HttpsClient, target: str, body: bytes) -> Response:
    return await client.request("POST", target, body=body, headers=(("content-type", SEP_XML),))


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_each_post_reaches_the_site_its_path_names_and_no_other(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock, alpn: tuple[str, ...]
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with (
            listening(pki_a) as harness,
            utility(client_context(pki_a.server, alpn=alpn), harness) as client,
        ):
            south = await post(client, "/notify/south-2", b"<a/>")
            north = await post(client, "/notify/north-1", b"<b/>")
            again = await post(client, "/notify/south-2?x=1", b"<c/>")
            assert client.tls_info is not None and client.tls_info.alpn == alpn[0]
    assert (south.status, north.status, again.status) == (201, 201, 201)
    assert harness.received == [
        ("south-2", "/notify/south-2", b"<a/>"),
        ("north-1", "/notify/north-1", b"<b/>"),
        ("south-2", "/notify/south-2?x=1", b"<c/>"),
    ]
    statistics = harness.listener.statistics()
    assert (statistics.connections, statistics.routed, statistics.unknown_paths) == (1, 3, 0)


async def test_a_path_that_is_no_sites_is_404_counted_and_told_to_no_site(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with (
            listening(pki_a) as harness,
            utility(client_context(pki_a.server), harness) as client,
        ):
            answers = [
                await post(client, target, b"<x/>")
                for target in (
                    "/notify/west-9",  # a site the fleet does not run (a stale notificationURI)
                    "/notify/west-9",
                    "/notify",  # the base itself
                    "/notify/north-1/extra",
                )
            ]
    assert [a.status for a in answers] == [404, 404, 404, 404]
    assert b"no site's notificationURI" in answers[0].body
    assert harness.received == []
    assert harness.listener.statistics().unknown_paths == 4
    # said on the fleet's console once per path
    assert len(harness.console) == 3
    assert "'/notify/west-9'" in harness.console[0] and "404" in harness.console[0]


async def test_a_utility_without_a_client_certificate_is_refused(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(pki_a.ca)
    bare.set_ciphers(ccm8_cipher_string())
    bare.maximum_version = ssl.TLSVersion.TLSv1_2
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness:
            with pytest.raises((NoClientCertificate, LinkError)):
                async with utility(bare, harness) as client:
                    await post(client, "/notify/north-1", b"<x/>")
            await trio.testing.wait_all_tasks_blocked()
    assert harness.received == []
    assert harness.listener.server.statistics().errors.get("NoClientCertificate") == 1


async def test_a_utility_certificate_from_another_ca_is_refused(
    pki_a: PkiFiles, pki_b: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    foreign = dataclasses.replace(pki_b.server, ca=pki_a.ca)
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness:
            with pytest.raises(UnknownCA):
                async with utility(client_context(foreign), harness) as client:
                    await post(client, "/notify/north-1", b"<x/>")
            await trio.testing.wait_all_tasks_blocked()
    assert harness.received == []


async def test_the_fleets_connection_cap_turns_more_away_at_once(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a, max_connections=2, connection_timeout_s=5) as harness:
            idle = [await harness.connect() for _ in range(2)]  # type: ignore[operator]
            await trio.testing.wait_all_tasks_blocked()
            third = await harness.connect()  # type: ignore[operator]
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await third.receive()
            assert harness.listener.statistics().turned_away == 1
            for stream in idle:  # each ends at the connection's deadline
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
            async with utility(client_context(pki_a.server), harness) as client:
                response = await post(client, "/notify/north-1", b"<x/>")
    assert response.status == 201
    assert harness.listener.statistics().connections == 3


async def test_an_oversized_body_is_refused_unread_and_counted(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with (
            listening(pki_a, max_body_bytes=4096) as harness,
            utility(client_context(pki_a.server, alpn=("http/1.1",)), harness) as client,
        ):
            response = await post(client, "/notify/north-1", b"x" * 8000)
            await trio.testing.wait_all_tasks_blocked()
    assert response.status == 413
    assert harness.received == []
    assert harness.listener.statistics().too_large == 1


async def test_the_fleet_listener_serves_on_loopback_tcp(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness, anyio.create_task_group() as group:
            port = await group.start(partial(harness.listener.run, host="127.0.0.1"))
            async with HttpsClient("127.0.0.1", port, client_context(pki_a.server)) as client:
                response = await post(client, "/notify/south-2", b"<x/>")
            group.cancel_scope.cancel()
    assert response.status == 201
    assert [site for site, _, _ in harness.received] == ["south-2"]


async def test_a_site_slow_to_take_a_notification_is_answered_503_in_its_own_short_time(
    autojump_clock: trio.abc.Clock, pki_a: PkiFiles
) -> None:
    """Review of issue 19, finding 3: one site whose log is slow must not hold the connection
    all the fleet's notifications share for the handler's 10 s: its route has a deadline of its
    own (503, counted), and the next site's POST is served at once."""
    received: list[tuple[str, str, bytes]] = []

    async def slow_site(request: Request, peer: PeerInfo) -> Response:
        await trio.sleep(60)
        return Response(201)

    routes = {"/notify/slow": slow_site, "/notify/north-1": site_handler("north-1", received)}
    listener = FleetNotificationListener(
        context=server_context(pki_a.device), route_of=routes.get, on_console=lambda _: None
    )
    peer = PeerInfo(b"", "LFDI", 0, "h2")
    started = trio.current_time()
    slow = await listener.handle(Request("POST", "/notify/slow", (), b"<n/>"), peer)
    answered_after_s = trio.current_time() - started
    served = await listener.handle(Request("POST", "/notify/north-1", (), b"<n/>"), peer)
    assert (slow.status, served.status) == (503, 201)
    assert answered_after_s <= 2.0
    assert listener.statistics().site_timeouts == 1
    assert received == [("north-1", "/notify/north-1", b"<n/>")]
