"""In-memory pipes: mutual TLS + HTTP and Modbus run inside the event loop, on the autojump clock."""

from __future__ import annotations

import anyio
import pytest
import trio

from actors.https import HttpsClient, HttpsServer, PeerInfo
from actors.pipe import byte_stream_pair, pipe_connector, pipe_listener
from tests.tls_fixtures import PkiFiles
from transport.http.messages import Request, Response
from transport.http.router import Router
from transport.tls import CCM8, client_context, server_context


async def test_pipe_carries_bytes_both_ways_and_eof() -> None:
    a, b = byte_stream_pair()
    await a.send(b"hello ")
    await a.send(b"world")
    assert await b.receive(3) == b"hel"
    assert await b.receive() == b"lo "
    assert await b.receive() == b"world"
    await b.send(b"back")
    assert await a.receive() == b"back"
    await a.send_eof()
    with pytest.raises(anyio.EndOfStream):
        await b.receive()


async def test_connector_fails_clearly_when_nobody_listens() -> None:
    send, receive = pipe_listener()
    await receive.aclose()
    with pytest.raises(ConnectionRefusedError, match="not listening"):
        await pipe_connector(send)()


@pytest.mark.parametrize("alpn", [("h2", "http/1.1"), ("http/1.1",)])
async def test_mutual_tls_http_over_a_pipe_on_virtual_time(
    pki_a: PkiFiles, alpn: tuple[str, ...], autojump_clock: trio.abc.Clock
) -> None:
    seen: list[str] = []

    async def dcap(request: Request, peer: PeerInfo) -> Response:
        seen.append(peer.lfdi)
        await trio.sleep(20)  # a slow server costs no real time
        return Response(200, (("content-type", "application/sep+xml"),), b"<DeviceCapability/>")

    router: Router[object] = Router()
    router.add("GET", "/dcap", dcap)
    server = HttpsServer(router, server_context(pki_a.server, alpn=alpn))  # type: ignore[arg-type]
    accept_send, accept_receive = pipe_listener()
    client = HttpsClient(
        "sim", 443, client_context(pki_a.device, alpn=alpn), connector=pipe_connector(accept_send)
    )
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, accept_receive)
            start = trio.current_time()
            first = await client.get("/dcap")
            second = await client.get("/dcap")
            assert trio.current_time() - start == pytest.approx(40)
            assert client.tls_info is not None and client.tls_info.cipher == CCM8
            await client.aclose()
            nursery.cancel_scope.cancel()
    assert first.status == second.status == 200
    assert len(seen) == 2 and len(set(seen)) == 1
    assert client.statistics().connections_opened == 1  # kept alive across both requests
