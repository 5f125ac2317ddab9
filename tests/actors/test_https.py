"""The HTTPS link over real loopback mutual TLS: CCM8, HTTP/1.1 and HTTP/2, ALPN fallback, an
independent HTTP/2 server (hypercorn) as a peer, rejections, broken peers and deadlines."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.https import HttpsClient, HttpsServer, PeerInfo
from actors.tls_stream import TlsStream
from tests.tls_fixtures import PkiFiles
from transport.errors import (
    BodyTooLarge,
    CertificateRejected,
    CipherMismatch,
    ConnectFailed,
    ConnectionReset,
    LinkTimeout,
    NoClientCertificate,
    ProtocolViolation,
    TlsVersionMismatch,
    UnknownCA,
)
from transport.http.messages import SEP_XML, Request, Response
from transport.http.outcome import BackOff, classify_response
from transport.http.router import Router
from transport.identity import lfdi_from_der
from transport.pki import certificate_der, chain_pem
from transport.tls import CCM8, ccm8_cipher_string, client_context, server_context

DEADLINE_S = 10  # every network wait in these tests is bounded by this
H2_AND_H11 = [("h2", "http/1.1"), ("http/1.1",)]


async def _dcap(request: Request, peer: PeerInfo) -> Response:
    body = f'<DeviceCapability xmlns="urn:ieee:std:2030.5:ns" href="/dcap">{peer.lfdi}'
    return Response(200, (("content-type", SEP_XML),), (body + "</DeviceCapability>").encode())


def _router(**extra: Callable[[Request, PeerInfo], Awaitable[Response]]) -> Router[Any]:
    router: Router[Any] = Router()
    router.add("GET", "/dcap", _dcap)
    for path, handler in extra.items():
        router.add("GET", "/" + path, handler)
    return router


@asynccontextmanager
async def running(server: HttpsServer) -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(server.run, host="127.0.0.1"))
        yield port
        tg.cancel_scope.cancel()


@asynccontextmanager
async def raw_tls_server(
    ctx: ssl.SSLContext, behaviour: Callable[[TlsStream], Awaitable[None]]
) -> AsyncIterator[int]:
    """A deliberately broken HTTPS peer: TLS is correct, what it writes is ``behaviour``'s."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")

    async def handle(stream: anyio.abc.SocketStream) -> None:
        tls = await TlsStream.handshake(stream, ctx, server_side=True)
        try:
            await behaviour(tls)
        finally:
            await tls.aclose()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield listener.extra(anyio.abc.SocketAttribute.local_port)
        tg.cancel_scope.cancel()


async def _read_request(tls: TlsStream) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += await tls.receive()


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_mutual_tls_loopback_negotiates_ccm8(pki_a: PkiFiles, alpn: tuple[str, ...]) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device, alpn=alpn)) as client,
        ):
            response = await client.get("/dcap")
            info = client.tls_info
    assert info is not None
    assert (info.version, info.cipher, info.alpn) == ("TLSv1.2", CCM8, alpn[0])
    device_lfdi = lfdi_from_der(certificate_der(pki_a.pki.device.certificate))
    assert response.status == 200 and device_lfdi.encode() in response.body
    assert response.header("content-type") == SEP_XML
    assert info.peer_chain_der == tuple(certificate_der(c) for c in pki_a.pki.server_chain())


async def test_alpn_falls_back_to_http11_against_http11_only_server(pki_a: PkiFiles) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server, alpn=("http/1.1",)))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            assert (await client.get("/dcap")).status == 200
            assert client.tls_info is not None and client.tls_info.alpn == "http/1.1"


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_connection_kept_alive_then_session_resumed(
    pki_a: PkiFiles, alpn: tuple[str, ...]
) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device, alpn=alpn)) as client,
        ):
            for _ in range(3):
                await client.get("/dcap")
            assert client.statistics().connections_opened == 1
            await client.aclose()
            await client.get("/dcap")
            stats = client.statistics()
    assert (stats.connections_opened, stats.handshakes_resumed, stats.requests) == (2, 1, 4)
    assert server.statistics().requests == 4


async def _hypercorn_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    body = f'<DeviceCapability href="{scope["path"]}" v="{scope["http_version"]}"/>'.encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", SEP_XML.encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def hypercorn_server(pki: PkiFiles, alpn: list[str]) -> AsyncIterator[int]:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.certfile = pki.server.chain
    config.keyfile = pki.server.key
    config.ca_certs = pki.ca
    config.verify_mode = ssl.CERT_REQUIRED
    config.ciphers = ccm8_cipher_string()
    config.alpn_protocols = alpn
    config.accesslog = None
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(partial(serve, _hypercorn_app, config))  # type: ignore[arg-type]
        yield int(binds[0].rsplit(":", 1)[1])
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("offered", "expected"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]
)
async def test_independent_server_hypercorn_as_peer(
    pki_a: PkiFiles, offered: list[str], expected: str
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with (
            hypercorn_server(pki_a, offered) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            first = await client.get("/dcap")
            second = await client.get("/edev")
            info = client.tls_info
    assert info is not None and (info.alpn, info.cipher) == (expected, CCM8)
    version = "2" if expected == "h2" else "1.1"
    assert first.body == f'<DeviceCapability href="/dcap" v="{version}"/>'.encode()
    assert b'href="/edev"' in second.body
    assert client.statistics().connections_opened == 1


async def test_client_from_another_ca_is_refused_with_unknown_ca(
    pki_a: PkiFiles, pki_b: PkiFiles
) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server))
    foreign = dataclasses.replace(pki_b.device, ca=pki_a.ca)
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(foreign)) as client,
        ):
            with pytest.raises(UnknownCA) as caught:
                await client.get("/dcap")
            await trio.testing.wait_all_tasks_blocked()
    assert caught.value.by_peer
    assert server.statistics().errors == {"UnknownCA": 1}


async def test_server_from_another_ca_is_unknown_ca(pki_a: PkiFiles, pki_b: PkiFiles) -> None:
    server = HttpsServer(_router(), server_context(pki_b.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            with pytest.raises(UnknownCA, match="server's certificate chain"):
                await client.get("/dcap")


async def test_client_without_certificate_is_refused(pki_a: PkiFiles) -> None:
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.load_verify_locations(pki_a.ca)
    bare.set_ciphers(ccm8_cipher_string())
    bare.maximum_version = ssl.TLSVersion.TLSv1_2
    server = HttpsServer(_router(), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with running(server) as port:
            tcp = await anyio.connect_tcp("127.0.0.1", port)
            with pytest.raises(NoClientCertificate):
                await TlsStream.handshake(tcp, bare, server_side=False)
            await trio.testing.wait_all_tasks_blocked()
    assert server.statistics().errors == {"NoClientCertificate": 1}


async def test_tls13_only_server_is_a_version_mismatch(pki_a: PkiFiles) -> None:
    tls13 = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    tls13.load_cert_chain(pki_a.server.chain, pki_a.server.key)
    server = HttpsServer(_router(), tls13)
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            with pytest.raises(TlsVersionMismatch):
                await client.get("/dcap")


async def test_server_without_ccm8_is_a_cipher_mismatch(pki_a: PkiFiles) -> None:
    gcm = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    gcm.maximum_version = ssl.TLSVersion.TLSv1_2
    gcm.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    gcm.load_cert_chain(pki_a.server.chain, pki_a.server.key)
    server = HttpsServer(_router(), gcm)
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            with pytest.raises(CipherMismatch):
                await client.get("/dcap")


async def test_malformed_response_is_a_protocol_violation(pki_a: PkiFiles) -> None:
    async def garbage(tls: TlsStream) -> None:
        await _read_request(tls)
        await tls.send(b"HTTP/1.1 two hundred\r\n\r\n")

    with trio.fail_after(DEADLINE_S):
        async with (
            raw_tls_server(server_context(pki_a.server, alpn=("http/1.1",)), garbage) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            with pytest.raises(ProtocolViolation, match="malformed HTTP/1.1"):
                await client.get("/dcap")


async def test_server_closing_mid_response_is_a_reset(pki_a: PkiFiles) -> None:
    async def half(tls: TlsStream) -> None:
        await _read_request(tls)
        await tls.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n<DeviceCap")

    with trio.fail_after(DEADLINE_S):
        async with (
            raw_tls_server(server_context(pki_a.server, alpn=("http/1.1",)), half) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            with pytest.raises(ConnectionReset, match="mid-message"):
                await client.get("/dcap")


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_oversized_response_is_body_too_large(pki_a: PkiFiles, alpn: tuple[str, ...]) -> None:
    async def big(request: Request, peer: PeerInfo) -> Response:
        return Response(200, (), b"x" * 50_000)

    server = HttpsServer(_router(big=big), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient(
                "127.0.0.1",
                port,
                client_context(pki_a.device, alpn=alpn),
                max_response_bytes=10_000,
            ) as client,
        ):
            with pytest.raises(BodyTooLarge):
                await client.get("/big")
            assert (await client.get("/dcap")).status == 200  # a fresh connection works


async def test_request_deadline_raises_link_timeout(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    async def stall(request: Request, peer: PeerInfo) -> Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    server = HttpsServer(_router(stall=stall), server_context(pki_a.server), handler_timeout_s=3600)
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            before = trio.current_time()
            with pytest.raises(LinkTimeout, match="within 5 s"):
                await client.get("/stall", timeout_s=5)
            assert trio.current_time() - before >= 5


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_idle_connection_closed_by_server_is_retried_once(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock, alpn: tuple[str, ...]
) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server, alpn=alpn), idle_timeout_s=2)
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            await client.get("/dcap")
            await trio.sleep(5)  # mock time: the server's idle deadline passes
            assert (await client.get("/dcap")).status == 200
            assert client.statistics().connections_opened == 2


async def test_refused_connection_is_connect_failed(pki_a: PkiFiles) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    with trio.fail_after(DEADLINE_S):
        async with HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client:
            with pytest.raises(ConnectFailed, match="cannot connect") as caught:
                await client.get("/dcap")
    assert caught.value.retryable


async def test_429_with_retry_after_reaches_the_caller(pki_a: PkiFiles) -> None:
    async def busy(request: Request, peer: PeerInfo) -> Response:
        return Response(429, (("retry-after", "30"),))

    server = HttpsServer(_router(busy=busy), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            response = await client.get("/busy")
    assert classify_response(response, now_epoch_s=0.0) == BackOff(429, 30.0)


async def test_unknown_path_is_404_and_wrong_method_405(pki_a: PkiFiles) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            assert (await client.get("/nope")).status == 404
            wrong = await client.request("DELETE", "/dcap")
    assert wrong.status == 405 and wrong.header("allow") == "GET"


def test_client_and_server_also_run_on_asyncio(pki_a: PkiFiles) -> None:
    async def main() -> list[tuple[int, str]]:
        server = HttpsServer(_router(), server_context(pki_a.server))
        seen: list[tuple[int, str]] = []
        with anyio.fail_after(DEADLINE_S):
            async with running(server) as port:
                for alpn in H2_AND_H11:
                    async with HttpsClient(
                        "127.0.0.1", port, client_context(pki_a.device, alpn=alpn)
                    ) as client:
                        response = await client.get("/dcap")
                        assert client.tls_info is not None
                        seen.append((response.status, client.tls_info.alpn))
        return seen

    assert anyio.run(main, backend="asyncio") == [(200, "h2"), (200, "http/1.1")]


async def test_post_on_a_connection_the_server_closed_is_not_resent(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    router = _router()
    router.add("POST", "/rsp", _dcap)
    server = HttpsServer(router, server_context(pki_a.server, alpn=("http/1.1",)), idle_timeout_s=2)
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(pki_a.device)) as client,
        ):
            await client.get("/dcap")
            await trio.sleep(5)  # mock time: the server closes the idle connection
            with pytest.raises(ConnectionReset):
                await client.request("POST", "/rsp", body=b"<Response/>")
            assert server.statistics().requests == 1  # the POST never reached a handler
            assert (await client.request("POST", "/rsp", body=b"<Response/>")).status == 200


async def test_expired_client_certificate_is_rejected_by_the_server(
    pki_a: PkiFiles, tmp_path: Path
) -> None:
    pki = pki_a.pki
    device = pki.device.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(device.subject)
        .issuer_name(pki.mica.certificate.subject)
        .public_key(device.public_key())
        .serial_number(device.serial_number)
        .not_valid_before(dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2021, 1, 1, tzinfo=dt.UTC))
    )
    for extension in device.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    expired = builder.sign(pki.mica.key, hashes.SHA256())
    chain = tmp_path / "expired.pem"
    chain.write_bytes(chain_pem([expired, pki.mica.certificate, pki.mca.certificate]))
    material = dataclasses.replace(pki_a.device, chain=str(chain))
    server = HttpsServer(_router(), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient("127.0.0.1", port, client_context(material)) as client,
        ):
            with pytest.raises(CertificateRejected, match="rejected our certificate") as caught:
                await client.get("/dcap")
            await trio.testing.wait_all_tasks_blocked()
    assert caught.value.by_peer
    assert server.statistics().errors == {"CertificateRejected": 1}


async def test_resumption_can_be_switched_off(pki_a: PkiFiles) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with (
            running(server) as port,
            HttpsClient(
                "127.0.0.1", port, client_context(pki_a.device), resume_sessions=False
            ) as client,
        ):
            await client.get("/dcap")
            await client.aclose()
            await client.get("/dcap")
    assert client.statistics().handshakes_resumed == 0
    assert client.tls_info is not None and len(client.tls_info.peer_chain_der) == 2


async def test_server_that_never_answers_the_hello_is_a_connect_timeout(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)

    async def mute(stream: anyio.abc.SocketStream) -> None:
        await anyio.sleep_forever()

    with trio.fail_after(DEADLINE_S):
        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, mute)
            async with HttpsClient(
                "127.0.0.1",
                port,
                client_context(pki_a.device),
                connect_timeout_s=3,
                request_timeout_s=60,
            ) as client:
                with pytest.raises(LinkTimeout, match="TLS handshake"):
                    await client.get("/dcap")
                with pytest.raises(LinkTimeout, match="TLS handshake"):
                    await client.connect()
            tg.cancel_scope.cancel()


async def test_client_that_never_says_hello_is_dropped_after_the_handshake_deadline(
    pki_a: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    server = HttpsServer(_router(), server_context(pki_a.server), handshake_timeout_s=4)
    with trio.fail_after(DEADLINE_S):
        async with running(server) as port:
            tcp = await anyio.connect_tcp("127.0.0.1", port)
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await tcp.receive()  # the server hangs up once its deadline passes
            await tcp.aclose()
            await trio.testing.wait_all_tasks_blocked()  # let the server finish its bookkeeping
    assert server.statistics().errors == {"LinkTimeout": 1}


async def test_independent_server_dropping_our_chain_without_alert_is_a_hinted_reset(
    pki_a: PkiFiles, pki_b: PkiFiles
) -> None:
    # hypercorn (trio's SSLStream) closes without sending its unknown_ca alert.
    foreign = dataclasses.replace(pki_b.device, ca=pki_a.ca)
    with trio.fail_after(DEADLINE_S):
        async with (
            hypercorn_server(pki_a, ["h2", "http/1.1"]) as port,
            HttpsClient("127.0.0.1", port, client_context(foreign)) as client,
        ):
            with pytest.raises(ConnectionReset, match="after its hello and without an alert"):
                await client.get("/dcap")


@pytest.mark.parametrize("alpn", H2_AND_H11)
async def test_ipv6_loopback_with_bracketed_authority(
    pki_a: PkiFiles, alpn: tuple[str, ...]
) -> None:
    seen: list[str | None] = []

    async def host(request: Request, peer: PeerInfo) -> Response:
        seen.append(request.header("host"))
        return Response(204)

    server = HttpsServer(_router(host=host), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with anyio.create_task_group() as tg:
            port = await tg.start(partial(server.run, host="::1"))
            async with HttpsClient("::1", port, client_context(pki_a.device, alpn=alpn)) as client:
                assert (await client.get("/host")).status == 204
            tg.cancel_scope.cancel()
    assert seen == [f"[::1]:{port}"]
