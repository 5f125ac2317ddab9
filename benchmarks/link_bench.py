"""Secure-link benchmark: full and resumed TLS 1.2 CCM8 mutual handshakes, GET latency over
HTTP/1.1 (h11) and HTTP/2 (h2) on a kept-alive mTLS loopback connection, and the floor: a raw TLS
ping-pong of the same size on the same stack without HTTP.

    python3 benchmarks/link_bench.py [--handshakes 40] [--requests 400] [--backend trio|asyncio]

Prints human-readable lines, then one JSON line with handshake_ms, resumed_handshake_ms,
h11_get_us, h2_get_us, floor_pingpong_us (medians). Loopback on a shared machine: noisy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import anyio
import anyio.abc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actors.https import HttpsClient, HttpsServer, PeerInfo
from actors.tls_stream import TlsStream
from transport.http.messages import SEP_XML, Request, Response
from transport.http.router import Router
from transport.pki import chain_pem, mint_demo_pki, private_key_pem
from transport.tls import TlsMaterial, client_context, server_context

BODY = (
    b'<DeviceCapability xmlns="urn:ieee:std:2030.5:ns" href="/dcap" pollRate="300">'
    b'<TimeLink href="/tm"/><EndDeviceListLink href="/edev" all="1"/></DeviceCapability>'
)


def write_pki(directory: Path) -> tuple[TlsMaterial, TlsMaterial]:
    pki = mint_demo_pki(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    files = {
        "ca.pem": chain_pem([pki.serca.certificate]),
        "device.pem": chain_pem(pki.device_chain()),
        "device.key": private_key_pem(pki.device.key),
        "server.pem": chain_pem(pki.server_chain()),
        "server.key": private_key_pem(pki.server.key),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    ca = str(directory / "ca.pem")
    return (
        TlsMaterial(str(directory / "device.pem"), str(directory / "device.key"), ca),
        TlsMaterial(str(directory / "server.pem"), str(directory / "server.key"), ca),
    )


async def dcap(request: Request, peer: PeerInfo) -> Response:
    return Response(200, (("content-type", SEP_XML),), BODY)


def summary(name: str, samples: list[float], unit: str, scale: float) -> float:
    values = sorted(s * scale for s in samples)
    median = statistics.median(values)
    p90 = values[int(0.9 * (len(values) - 1))]
    print(f"{name:<28} median {median:9.1f} {unit}   p90 {p90:9.1f} {unit}   n={len(values)}")
    return median


async def bench(
    device: TlsMaterial, server_mat: TlsMaterial, handshakes: int, requests: int
) -> dict[str, float]:
    router: Router[object] = Router()
    router.add("GET", "/dcap", dcap)
    server = HttpsServer(router, server_context(server_mat))  # type: ignore[arg-type]
    results: dict[str, float] = {}
    async with anyio.create_task_group() as tg:
        port = await tg.start(partial(server.run, host="127.0.0.1"))

        ctx = client_context(device, alpn=("http/1.1",))
        full: list[float] = []
        resumed: list[float] = []
        session = None
        for _ in range(handshakes):
            for offer, bucket in ((None, full), (session, resumed)):
                if bucket is resumed and session is None:
                    continue
                start = time.perf_counter()
                tcp = await anyio.connect_tcp("127.0.0.1", port)
                stream = await TlsStream.handshake(tcp, ctx, server_side=False, session=offer)
                bucket.append(time.perf_counter() - start)
                if offer is not None and not stream.session_reused:
                    raise RuntimeError("server declined resumption: resumed timing invalid")
                session = stream.session
                await stream.aclose()
        results["handshake_ms"] = summary("full mTLS handshake", full, "ms", 1e3)
        results["resumed_handshake_ms"] = summary("resumed handshake", resumed, "ms", 1e3)

        for key, alpn in (("h11_get_us", "http/1.1"), ("h2_get_us", "h2")):
            async with HttpsClient("127.0.0.1", port, client_context(device, alpn=(alpn,))) as c:
                for _ in range(20):  # warm-up: connection, HPACK tables, allocator
                    await c.get("/dcap")
                samples = []
                for _ in range(requests):
                    start = time.perf_counter()
                    response = await c.get("/dcap")
                    samples.append(time.perf_counter() - start)
                assert response.body == BODY
                assert c.statistics().connections_opened == 1
            results[key] = summary(f"GET /dcap over {alpn}", samples, "us", 1e6)
        tg.cancel_scope.cancel()

    # Floor: the same TLS stream and event loop, echoing a request-sized message, no HTTP.
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    sctx = server_context(server_mat, alpn=())

    async def echo(tcp: anyio.abc.SocketStream) -> None:
        tls = await TlsStream.handshake(tcp, sctx, server_side=True)
        try:
            while True:
                await tls.send(await tls.receive())
        except (anyio.EndOfStream, Exception):
            await tls.aclose()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, echo)
        tcp = await anyio.connect_tcp("127.0.0.1", port)
        stream = await TlsStream.handshake(tcp, client_context(device, alpn=()), server_side=False)
        ping = b"GET /dcap HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: application/sep+xml\r\n\r\n"
        samples = []
        for i in range(requests + 20):
            start = time.perf_counter()
            await stream.send(ping)
            got = b""
            while len(got) < len(ping):
                got += await stream.receive()
            if i >= 20:
                samples.append(time.perf_counter() - start)
        await stream.aclose()
        results["floor_pingpong_us"] = summary("raw TLS ping-pong floor", samples, "us", 1e6)
        tg.cancel_scope.cancel()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=40)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--backend", choices=("trio", "asyncio"), default="trio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        device, server = write_pki(Path(tmp))
        print(f"secure link benchmark ({args.backend}, loopback, TLS 1.2 CCM8, mutual auth)")
        results = anyio.run(
            bench, device, server, args.handshakes, args.requests, backend=args.backend
        )
    floor = results["floor_pingpong_us"]
    print(
        f"HTTP overhead over floor: h11 {results['h11_get_us'] - floor:.0f} us, "
        f"h2 {results['h2_get_us'] - floor:.0f} us (shared machine: figures are noisy)"
    )
    print(json.dumps({k: round(v, 1) for k, v in results.items()}))


if __name__ == "__main__":
    main()
