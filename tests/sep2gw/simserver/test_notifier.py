"""The simulated utility's notifier on the wire: Notifications POSTed over mutual TLS (the server's
certificate as the TLS client's) to a test listener on in-memory pipes, on trio's autojump clock —
delivery, bounded retries, refusals, the fault windows, and ALPN.

The listener here is a stand-in for the gateway's (helper C2's ``Gateway.serve_notification_stream``):
``actors.https.HttpsServer`` with the device's certificate, requiring a client certificate chained
to the CA."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from actors.https import Handler, HttpsClient, HttpsServer, PeerInfo
from actors.pipe import byte_stream_pair, pipe_connector, pipe_listener
from sep2gw.simserver import SimClock, SimUtilityServer, parse_scenario
from sep2gw.simserver.notifier import RETRY_DELAYS_S, NotificationAttempt
from sep2gw.simserver.validation import request_validator
from tests.tls_fixtures import PkiFiles, write_pki
from transport.http.messages import Request, Response
from transport.http.router import Router
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der
from transport.sep2 import decode, encode
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, client_context, server_context

from .helpers import START

DEADLINE_S = 3600
NOTIFY = "https://gateway.sim/notify"

SCENARIO = """
[server]
subscriptions = "aggregator"
aggregators = ["{lfdi}"]

[[programs]]
id = "net"
primacy = 10
default = { opModExpLimW = 5000 }

[[actions]]
at_s = 120
kind = "create_control"
mrid = "B1"
program = "net"
start_s = 300
duration_s = 60
modes = { opModExpLimW = 0 }
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("notifier-pki")))


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("foreign-pki")))


def lfdi_of(pki: PkiFiles) -> str:
    return lfdi_from_der(certificate_der(pki.pki.device.certificate))


@dataclass
class Listener:
    """A notification listener for tests: answers each POST with the next of ``answers`` (the
    last repeats) and records what arrived, when (server time) and from whom."""

    clock: SimClock
    answers: list[int] = field(default_factory=lambda: [201])
    received: list[tuple[float, Request, PeerInfo]] = field(default_factory=list)

    async def handle(self, request: Request, peer: PeerInfo) -> Response:
        self.received.append((self.clock.now(), request, peer))
        status = self.answers[min(len(self.received), len(self.answers)) - 1]
        return Response(status)


@asynccontextmanager
async def world(
    pki: PkiFiles,
    scenario: str = SCENARIO,
    *,
    listener_tls: TlsMaterial | None = None,
    answers: tuple[int, ...] = (201,),
    alpn: tuple[str, ...] = ("h2", "http/1.1"),
    seed: int = 0,
    reachable: Callable[[str], bool] = lambda host: host == "gateway.sim",
) -> AsyncIterator[tuple[SimUtilityServer, HttpsClient, Listener]]:
    """A server, a registered and subscribing device client, and a listener for gateway.sim."""
    clock = SimClock(START)
    listener = Listener(clock, list(answers))
    router: Router[Handler] = Router()
    router.add("POST", "/notify", listener.handle)
    https = HttpsServer(router, server_context(listener_tls or pki.device, alpn=alpn))
    notify_send, notify_accept = pipe_listener()

    async def connect(host: str, port: int) -> anyio.abc.ByteStream:
        if not reachable(host) or port != 443:
            raise ConnectionRefusedError(f"{host}:{port} refused")
        near, far = byte_stream_pair()
        await notify_send.send(far)
        return near

    send, accept = pipe_listener()
    server = SimUtilityServer(
        parse_scenario(scenario.replace("{lfdi}", lfdi_of(pki))),
        pki.server,
        clock=clock,
        seed=seed,
        notification_connector=connect,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(https.serve_pipes, notify_accept)
        await nursery.start(server.serve_pipes, accept)
        async with HttpsClient(
            "utility.sim", 443, client_context(pki.device), connector=pipe_connector(send)
        ) as client:
            lfdi = lfdi_of(pki)
            edev = r.EndDevice(
                sFDI=sfdi_from_lfdi(lfdi),
                lFDI=r.HexBinary160(int(lfdi, 16)),
                deviceCategory=r.HexBinary32(0),
                changedTime=START,
            )
            assert (await client.request("POST", "/edev", body=encode(edev))).status == 201
            yield server, client, listener
        nursery.cancel_scope.cancel()


async def subscribe(client: HttpsClient, resource: str = "/derp/1/derc", limit: int = 10) -> str:
    sub = r.Subscription(
        subscribedResource=resource,
        encoding=0,
        level="+S1",
        limit=limit,
        notificationURI=NOTIFY,
    )
    response = await client.request("POST", "/edev/1/sub", body=encode(sub))
    assert response.status == 201, response.body
    location = response.header("location")
    assert location is not None
    return location


def outcomes(attempts: list[NotificationAttempt]) -> list[tuple[float, int, str]]:
    return [(a.time - START, a.attempt, a.outcome) for a in attempts]


async def test_a_created_control_reaches_the_listener_over_mutual_tls_at_once(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki) as (server, client, listener):
            assert await subscribe(client) == "/edev/1/sub/1"
            await server.wait_for(lambda s: bool(s.notifier.attempts))
    [(at, request, peer)] = listener.received
    assert at == START + 120  # the instant the control was created: no poll in between
    assert request.method == "POST" and request.target == "/notify"
    assert request.header("content-type") == "application/sep+xml"
    # The listener verified the server's client certificate: the peer is the utility.
    assert peer.lfdi == lfdi_from_der(certificate_der(pki.pki.server.certificate))
    assert peer.alpn == "h2"
    assert request_validator("https://csipaus.org/ns").check(request.body) is None
    notification = decode(request.body, r.Notification)
    assert notification.subscriptionURI == "https://utility.sim/edev/1/sub/1"
    assert isinstance(notification.Resource, r.DERControlList)
    assert int(notification.Resource.DERControl[0].mRID) == 0xB1
    assert outcomes(server.notifier.attempts) == [(120, 1, "delivered")]
    assert [a.what for a in server.state.subscription_audit] == ["accepted", "made"]


async def test_http11_when_the_listener_offers_only_http11(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, alpn=("http/1.1",)) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(lambda s: bool(s.notifier.attempts))
    assert listener.received[0][2].alpn == "http/1.1"
    assert server.notifier.attempts[0].outcome == "delivered"


@pytest.mark.parametrize("status", [200, 204])
async def test_200_and_204_count_as_delivered(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock, status: int
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, answers=(status,)) as (server, client, _):
            await subscribe(client)
            await server.wait_for(lambda s: bool(s.notifier.attempts))
    assert outcomes(server.notifier.attempts) == [(120, 1, "delivered")]


async def test_a_5xx_is_retried_after_the_bounded_delays(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, answers=(503, 500, 201)) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(lambda s: len(s.notifier.attempts) == 3)
    assert outcomes(server.notifier.attempts) == [
        (120, 1, "failed"),
        (122, 2, "failed"),
        (126, 3, "delivered"),
    ]
    assert len({request.body for _, request, _ in listener.received}) == 1


async def test_a_4xx_is_a_refusal_and_never_retried(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, answers=(400,)) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(lambda s: bool(s.notifier.attempts))
            await anyio.sleep(300)
    assert outcomes(server.notifier.attempts) == [(120, 1, "refused")]
    assert len(listener.received) == 1


async def test_an_unreachable_listener_is_given_up_after_the_last_retry(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, reachable=lambda host: False) as (server, client, _):
            await subscribe(client)
            await server.wait_for(
                lambda s: any(a.outcome == "gave_up" for a in s.notifier.attempts)
            )
    attempts = server.notifier.attempts
    assert [a.outcome for a in attempts] == ["failed"] * len(RETRY_DELAYS_S) + ["gave_up"]
    assert attempts[-1].time - attempts[0].time == sum(RETRY_DELAYS_S)
    assert "ConnectFailed" in attempts[0].error


async def test_a_listener_that_does_not_trust_the_server_refuses_the_handshake(
    pki: PkiFiles, foreign: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    # The listener's CA is another PKI's: the utility's client certificate does not chain to it.
    other = TlsMaterial(pki.device.chain, pki.device.key, foreign.ca)
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, listener_tls=other) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(
                lambda s: any(a.outcome == "gave_up" for a in s.notifier.attempts)
            )
    assert listener.received == []
    assert all(a.status == 0 and a.error for a in server.notifier.attempts)


LOSE = '\n[[actions]]\nat_s = 100\nkind = "lose_notifications"\nduration_s = 60\n'
DUPLICATE = '\n[[actions]]\nat_s = 100\nkind = "duplicate_notifications"\nduration_s = 60\n'
DELAY = '\n[[actions]]\nat_s = 100\nkind = "delay_notifications"\nduration_s = 60\ndelay_s = 45\n'


async def test_a_lost_notification_is_recorded_and_never_sent(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, SCENARIO + LOSE) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(lambda s: bool(s.notifier.attempts))
            await anyio.sleep(300)
    assert listener.received == []
    assert outcomes(server.notifier.attempts) == [(120, 0, "dropped")]
    assert [a.what for a in server.state.subscription_audit] == ["accepted", "dropped"]


async def test_a_duplicated_notification_arrives_twice(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, SCENARIO + DUPLICATE) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(lambda s: len(s.notifier.delivered()) == 2)
    first, second = (request.body for _, request, _ in listener.received)
    assert first == second
    assert [(a.copy, a.outcome) for a in server.notifier.attempts] == [
        (1, "delivered"),
        (2, "delivered"),
    ]


async def test_a_delayed_notification_leaves_late(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, SCENARIO + DELAY) as (server, client, listener):
            await subscribe(client)
            await server.wait_for(lambda s: bool(s.notifier.attempts))
    assert listener.received[0][0] == START + 165
    assert outcomes(server.notifier.attempts) == [(165, 1, "delivered")]


LOSE_HALF = """
[[actions]]
at_s = 100
kind = "lose_notifications"
duration_s = 1000
probability = 0.5
"""


def _changes(count: int) -> str:
    return "".join(
        f'\n[[actions]]\nat_s = {200 + 10 * i}\nkind = "change_default"\nprogram = "net"\n'
        f"modes = {{ opModExpLimW = {1000 + i} }}\n"
        for i in range(count)
    )


async def _delivered_numbers(pki: PkiFiles, seed: int) -> list[int]:
    with anyio.fail_after(DEADLINE_S):
        async with world(pki, SCENARIO + LOSE_HALF + _changes(20), seed=seed) as (
            server,
            client,
            _,
        ):
            await subscribe(client, "/derp/1/dderc")
            await server.wait_for(lambda s: len(s.notifier.attempts) >= 20)
    return [a.number for a in server.notifier.attempts if a.outcome == "delivered"]


def test_losses_over_the_wire_follow_the_seed(pki: PkiFiles) -> None:
    def run(seed: int) -> list[int]:
        clock = trio.testing.MockClock(autojump_threshold=0)
        result: list[int] = trio.run(_delivered_numbers, pki, seed, clock=clock)
        return result

    first = run(11)
    assert first == run(11)
    assert 3 < len(first) < 17
    assert first != run(12)


async def test_a_schema_invalid_subscription_is_refused_and_audited(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    body = encode(
        r.Subscription(
            subscribedResource="/derp/1/derc",
            encoding=0,
            level="+S1",
            limit=1,
            notificationURI=NOTIFY,
        )
    ).replace(b"<limit>1</limit>", b"<limit>many</limit>")
    with anyio.fail_after(DEADLINE_S):
        async with world(pki) as (server, client, _):
            response = await client.request("POST", "/edev/1/sub", body=body)
    assert response.status == 400
    [refused] = server.state.subscription_audit
    assert (refused.what, refused.status) == ("refused", 400)
    assert "limit" in refused.detail and refused.lfdi == int(lfdi_of(pki), 16)
