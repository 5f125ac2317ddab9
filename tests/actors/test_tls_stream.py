"""TLS over an anyio byte stream: handshake with an offered session, the peer's chain from the
handshake flight, anyio's TLS attributes, and clean / unclean closes."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc
import pytest
import trio
from anyio.streams.tls import TLSAttribute

from actors.tls_stream import TlsStream
from tests.tls_fixtures import PkiFiles
from transport.pki import certificate_der
from transport.tls import CCM8, client_context, server_context

DEADLINE_S = 10


@asynccontextmanager
async def tls_pair(
    pki: PkiFiles,
    session: ssl.SSLSession | None = None,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
) -> AsyncIterator[tuple[TlsStream, TlsStream]]:
    """A connected client/server TlsStream pair over loopback TCP."""
    cctx, sctx = contexts or (client_context(pki.device), server_context(pki.server))
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    accepted: list[TlsStream] = []
    ready = anyio.Event()

    async def accept(tcp: anyio.abc.SocketStream) -> None:
        accepted.append(await TlsStream.handshake(tcp, sctx, server_side=True))
        ready.set()
        await anyio.sleep_forever()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, accept)
        tcp = await anyio.connect_tcp("127.0.0.1", port)
        client = await TlsStream.handshake(tcp, cctx, server_side=False, session=session)
        await ready.wait()
        yield client, accepted[0]
        tg.cancel_scope.cancel()


async def test_bytes_flow_both_ways_and_attributes_follow_anyio(pki_a: PkiFiles) -> None:
    with trio.fail_after(DEADLINE_S):
        async with tls_pair(pki_a) as (client, server):
            await client.send(b"ping")
            assert await server.receive() == b"ping"
            await server.send(b"pong")
            assert await client.receive() == b"pong"
            assert client.extra(TLSAttribute.cipher)[0] == CCM8
            assert client.extra(TLSAttribute.tls_version) == "TLSv1.2"
            assert client.extra(TLSAttribute.alpn_protocol) == "h2"
            assert server.extra(TLSAttribute.peer_certificate_binary) == certificate_der(
                pki_a.pki.device.certificate
            )
            assert client.extra(anyio.abc.SocketAttribute.remote_address)[0] == "127.0.0.1"


async def test_peer_chain_comes_from_the_handshake(pki_a: PkiFiles) -> None:
    with trio.fail_after(DEADLINE_S):
        async with tls_pair(pki_a) as (client, server):
            assert client.peer_chain_der() == [certificate_der(c) for c in pki_a.pki.server_chain()]
            assert server.peer_chain_der() == [certificate_der(c) for c in pki_a.pki.device_chain()]


async def test_offered_session_is_resumed_and_chain_falls_back_to_leaf(pki_a: PkiFiles) -> None:
    # A session belongs to its contexts (and the server's session cache): reuse both.
    contexts = (client_context(pki_a.device), server_context(pki_a.server))
    with trio.fail_after(DEADLINE_S):
        async with tls_pair(pki_a, contexts=contexts) as (first, _):
            session = first.session
            assert not first.session_reused
        async with tls_pair(pki_a, session, contexts) as (second, _):
            assert second.session_reused
            assert second.peer_chain_der() == [certificate_der(pki_a.pki.server.certificate)]


async def test_close_is_end_of_stream_for_the_peer(pki_a: PkiFiles) -> None:
    with trio.fail_after(DEADLINE_S):
        async with tls_pair(pki_a) as (client, server):
            await server.aclose()
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            with pytest.raises(NotImplementedError):
                await client.send_eof()
            await client.aclose()
            await client.aclose()  # idempotent
