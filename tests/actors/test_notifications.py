"""The notification listener (issue 19 point 3): mutual TLS on the project's PKI rules, HTTP/1.1
and HTTP/2, strict Notification bodies with the right status and a record for each, and bounds
against a hostile peer (connections, body size, connection time)."""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from actors.clock import Clock
from actors.https import HttpsClient, PeerInfo
from actors.log_writer import LogWriter
from actors.notifications import NotificationListener
from actors.pipe import pipe_connector, pipe_listener
from actors.subscriptions import Notified
from actors.tls_stream import TlsStream
from events.envelope import Append, Recorded
from events.errors import LogFull
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.subscription_events import NotificationReceived
from tests.tls_fixtures import PkiFiles
from transport.errors import LinkError, NoClientCertificate, UnknownCA
from transport.http.messages import SEP_XML, Request, Response
from transport.identity import lfdi_from_der
from transport.pki import certificate_der
from transport.sep2 import encode
from transport.sep2 import resources as r
from transport.tls import ccm8_cipher_string, client_context, server_context

NOON = 1_764_900_000.0
DEADLINE_S = 60
H2_AND_H11 = [("h2", "http/1.1"), ("http/1.1",)]
SUBSCRIPTION = "/edev/3/sub/1"
RESOURCE = "/derp/1/derc"


class FakeSink:
    """The subscription actor's side: one subscription held, what the listener handed over."""

    def __init__(self) -> None:
        self.notified: list[Notified] = []

    def resource_of(self, subscription: str) -> str | None:
        return RESOURCE if subscription == SUBSCRIPTION else None

    def notified_nowait(self, notification: Notified) -> None:
        self.notified.append(notification)


@dataclasses.dataclass
class Harness:
    listener: NotificationListener
    store: MemoryEventStore
    sink: FakeSink
    connect: partial[object] | object

    def records(self) -> list[NotificationReceived]:
        return [
            rec.event
            for rec in self.store.read()
            if isinstance(rec.event, NotificationReceived)
        ]


@asynccontextmanager
async def listening(pki: PkiFiles, **bounds: int | float) -> AsyncIterator[Harness]:
    """A listener on in-memory pipes: the gateway's certificate (the device's) serves; the
    utility's client certificate must chain to the same CA."""
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    sink = FakeSink()
    listener = NotificationListener(
        context=server_context(pki.device),
        path="/notify",
        log=log,
        clock=Clock(wall_at_start=NOON),
        sink=sink,
        **bounds,  # type: ignore[arg-type]
    )
    send, accept = pipe_listener()
    async with anyio.create_task_group() as group:
        await group.start(log.run)
        await group.start(listener.serve_pipes, accept)
        yield Harness(listener, store, sink, pipe_connector(send))
        group.cancel_scope.cancel()


def utility(pki: PkiFiles, harness: Harness, alpn: tuple[str, ...] = ("h2", "http/1.1")) -> HttpsClient:
    """The utility server's notifier: a client presenting the server certificate."""
    return HttpsClient(
        "gateway.test",
        443,
        client_context(pki.server, alpn=alpn),
        connector=harness.connect,  # type: ignore[arg-type]
    )


def notification(
    *,
    subscription: str = SUBSCRIPTION,
    resource: str = RESOURCE,
    status: int = 0,
    inline: r.Resource | None = None,
) -> bytes:
    return encode(
        r.Notification(
            subscribedResource=resource,
            subscriptionURI=subscription,
            status=status,
            Resource=inline,
        )
    )


async def post(client: HttpsClient, body: bytes, *, content_type: str = SEP_XML) -> Response:
    return await client.request(
        "POST", "/notify", body=body, headers=(("content-type", content_type),)
    )


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_a_notification_is_accepted_recorded_and_handed_on(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock, alpn: tuple[str, ...]
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness, utility(pki_a, harness, alpn) as client:
            body = notification()
            response = await post(client, body)
            assert client.tls_info is not None and client.tls_info.alpn == alpn[0]
    assert response.status == 201
    (record,) = harness.records()
    assert record.http_status == 201 and record.reason == ""
    assert (record.subscription, record.resource, record.status) == (SUBSCRIPTION, RESOURCE, 0)
    assert not record.inline and record.body_bytes == len(body)
    # Who sent it: the LFDI of the utility's verified client certificate.
    server_cert = certificate_der(pki_a.pki.server.certificate)
    assert record.peer_lfdi == lfdi_from_der(server_cert)
    seq = next(rec.seq for rec in harness.store.read() if rec.event == record)
    assert harness.sink.notified == [
        Notified(seq=seq, subscription=SUBSCRIPTION, resource=RESOURCE, status=0, at_s=record.at_s)
    ]


async def test_an_inline_resource_and_an_absolute_subscription_uri_are_read(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    inline = r.DERControlList(href=RESOURCE, all=0, results=0)
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness, utility(pki_a, harness) as client:
            response = await post(
                client,
                notification(subscription=f"https://utility.test:8443{SUBSCRIPTION}", inline=inline),
            )
    assert response.status == 201
    (record,) = harness.records()
    assert record.inline and record.subscription == SUBSCRIPTION


@pytest.mark.parametrize(
    ("body", "content_type", "status", "why"),
    [
        (b"<Notification xmlns='urn:ieee:std:2030.5:ns'><status>0", SEP_XML, 400, "not a valid"),
        (
            encode(r.DERControlList(href=RESOURCE, all=0, results=0)),
            SEP_XML,
            400,
            "not a valid Notification",
        ),
        (notification(subscription="/edev/3/sub/99"), SEP_XML, 404, "no subscription of ours"),
        (notification(resource="/derp/2/derc"), SEP_XML, 400, "is not the resource"),
        (notification(), "application/json", 415, "content type"),
    ],
    ids=["malformed", "not-a-notification", "unknown-subscription", "wrong-resource", "json"],
)
async def test_a_refused_body_gets_its_status_and_a_record_naming_why(
    pki_a: PkiFiles,
    autojump_clock: trio.testing.MockClock,
    body: bytes,
    content_type: str,
    status: int,
    why: str,
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness, utility(pki_a, harness) as client:
            response = await post(client, body, content_type=content_type)
    assert response.status == status
    assert why in response.body.decode()
    (record,) = harness.records()
    assert record.http_status == status and why in record.reason
    assert record.body_bytes == len(body)
    assert harness.sink.notified == []  # nothing refused reaches the subscriptions


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_an_oversized_body_is_refused_unread_and_recorded(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock, alpn: tuple[str, ...]
) -> None:
    huge = notification(inline=r.DERControlList(href=RESOURCE, all=0, results=0))
    huge = huge.replace(b"</Notification>", b"<!--" + b"x" * 8000 + b"--></Notification>")
    with trio.fail_after(DEADLINE_S):
        async with (
            listening(pki_a, max_body_bytes=4096) as harness,
            utility(pki_a, harness, alpn) as client,
        ):
            try:
                response: Response | None = await post(client, huge)
            except LinkError:
                response = None  # HTTP/2: the stream is reset
            await trio.testing.wait_all_tasks_blocked()
    if alpn[0] == "http/1.1":
        assert response is not None and response.status == 413
    (record,) = harness.records()
    assert record.http_status == 413 and "4096-byte limit" in record.reason
    assert harness.sink.notified == []


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
            client = HttpsClient("gateway.test", 443, bare, connector=harness.connect)  # type: ignore[arg-type]
            with pytest.raises((NoClientCertificate, LinkError)):
                async with client:
                    await post(client, notification())
            await trio.testing.wait_all_tasks_blocked()
    assert harness.records() == [] and harness.sink.notified == []
    assert harness.listener.server.statistics().errors.get("NoClientCertificate") == 1


async def test_a_utility_certificate_from_another_ca_is_refused(
    pki_a: PkiFiles, pki_b: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    foreign = dataclasses.replace(pki_b.server, ca=pki_a.ca)
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness:
            client = HttpsClient(
                "gateway.test", 443, client_context(foreign), connector=harness.connect  # type: ignore[arg-type]
            )
            with pytest.raises(UnknownCA):
                async with client:
                    await post(client, notification())
            await trio.testing.wait_all_tasks_blocked()
    assert harness.records() == [] and harness.sink.notified == []


async def test_connections_over_the_bound_are_closed_at_once_and_each_ends_on_time(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """Two idle peers that never finish a handshake hold both places; a third is turned away at
    once; once the connection time is up they are gone and a real notification is served."""
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a, max_connections=2, connection_timeout_s=5) as harness:
            idle = [await harness.connect() for _ in range(2)]  # type: ignore[operator]
            await trio.testing.wait_all_tasks_blocked()
            third = await harness.connect()  # type: ignore[operator]
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await third.receive()
            assert harness.listener.statistics().turned_away == 1
            start = trio.current_time()
            for stream in idle:
                with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                    await stream.receive()
            # The handshake deadline (10 s) is longer: the connection's own 5 s ended them.
            assert trio.current_time() - start <= 5 + 0.1
            async with utility(pki_a, harness) as client:
                response = await post(client, notification())
    assert response.status == 201
    assert harness.listener.statistics().connections == 3


async def test_a_slow_sender_cannot_hold_a_connection_past_its_time(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    """A peer that completes TLS then sends its request a byte every few seconds (inside every
    idle timeout) is cut off at the connection's deadline."""
    with trio.fail_after(DEADLINE_S * 10):
        async with listening(pki_a, connection_timeout_s=20) as harness:
            transport = await harness.connect()  # type: ignore[operator]
            tls = await TlsStream.handshake(
                transport, client_context(pki_a.server, alpn=("http/1.1",)), server_side=False
            )
            start = trio.current_time()
            request = b"POST /notify HTTP/1.1\r\nhost: g\r\ncontent-length: 100000\r\n\r\n"
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError, LinkError)):
                for byte in request + b"x" * 1000:
                    await tls.send(bytes([byte]))
                    await trio.sleep(3)
                await tls.receive()
            assert trio.current_time() - start <= 20 + 3 + 0.1


async def test_the_listener_serves_on_loopback_tcp(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with listening(pki_a) as harness, anyio.create_task_group() as group:
            port = await group.start(partial(harness.listener.run, host="127.0.0.1"))
            async with HttpsClient("127.0.0.1", port, client_context(pki_a.server)) as client:
                response = await post(client, notification())
            group.cancel_scope.cancel()
    assert response.status == 201


async def test_a_refused_notification_records_its_uris_cut_short(
    autojump_clock: trio.abc.Clock, pki_a: PkiFiles
) -> None:
    """Review of issue 19, finding 1: a refused body's URIs are the peer's; 30,000-char ones are
    cut in the record like the reason, so refused POSTs cannot grow the log by their size."""
    long_subscription, long_resource = "/" + "b" * 30_000, "/" + "a" * 30_000
    async with listening(pki_a) as harness:
        response = await harness.listener.handle(
            Request(
                "POST",
                "/notify",
                (("content-type", SEP_XML),),
                notification(subscription=long_subscription, resource=long_resource),
            ),
            PeerInfo(b"", "ANY-DEVICE-IN-THE-PKI", 0, "h2"),
        )
    assert response.status == 404
    (record,) = harness.records()
    assert record.subscription == long_subscription[:300]
    assert record.resource == long_resource[:300]


class _FullStore(MemoryEventStore):
    """A store that refuses every append while ``full``."""

    full = True

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        if self.full:
            raise LogFull(self.where, self.head().seq + 1, 1)
        return super().append(appends)

    def space_left(self) -> int | None:
        return 0 if self.full else None


async def test_a_notification_on_a_full_log_is_answered_201_and_recorded_201(
    autojump_clock: trio.abc.Clock, pki_a: PkiFiles
) -> None:
    """Review of issue 19, finding 3: the accepted record is an observation: on a full log the
    handler does not wait past its deadline (answered 503 while 201 was recorded later, and
    never handed on); it answers 201 at once, hands the notification on with seq 0 (not yet
    written), and the held record says 201 once space returns."""
    store = _FullStore(CATALOGUE)
    sink = FakeSink()
    log = LogWriter(store, offload=False, on_alarm=lambda _: None)
    listener = NotificationListener(
        context=server_context(pki_a.device),
        path="/notify",
        log=log,
        clock=Clock(wall_at_start=NOON),
        sink=sink,
    )
    request = Request("POST", "/notify", (("content-type", SEP_XML),), notification())
    async with anyio.create_task_group() as group:
        await group.start(log.run)
        started = trio.current_time()
        response = await listener.server._dispatch(request, PeerInfo(b"", "LFDI", 0, "h2"))
        answered_after_s = trio.current_time() - started
        store.full = False
        await trio.sleep(30)
        group.cancel_scope.cancel()
    recorded = [r.event for r in store.read() if isinstance(r.event, NotificationReceived)]
    assert (response.status, answered_after_s) == (201, 0)
    assert [e.http_status for e in recorded] == [201]
    assert [n.seq for n in sink.notified] == [0]
