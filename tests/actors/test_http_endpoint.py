"""The local /metrics and /health endpoint's HTTP side (actors.http_endpoint; issue 20 point 2):
real loopback sockets on the autojump clock. Bounded against slow and hostile clients."""

from __future__ import annotations

import trio

from actors.http_endpoint import HttpEndpoint, Reply


def _route(path: str) -> Reply | None:
    return Reply(200, "text/plain", b"hello\n") if path == "/metrics" else None


async def _exchange(port: int, request: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(request)
        received = b""
        while chunk := await stream.receive_some(65536):
            received += chunk
        return received


async def test_get_head_and_the_errors(autojump_clock: trio.abc.Clock) -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, _route)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(endpoint.run)
        got = await _exchange(port, b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"\r\n\r\nhello\n")
        assert b"content-length: 6" in got.lower()
        head = await _exchange(port, b"HEAD /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
        assert (await _exchange(port, b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")).startswith(
            b"HTTP/1.1 404 "
        )
        post = await _exchange(
            port, b"POST /metrics HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"
        )
        assert post.startswith(b"HTTP/1.1 413 ")
        put = await _exchange(port, b"DELETE /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert put.startswith(b"HTTP/1.1 405 ") and b"allow: GET, HEAD" in put
        assert (await _exchange(port, b"NONSENSE\r\n\r\n")).startswith(b"HTTP/1.1 400 ")
        nursery.cancel_scope.cancel()
    assert endpoint.statistics().served == 4


async def test_a_huge_request_head_is_refused_without_reading_it_all(
    autojump_clock: trio.abc.Clock,
) -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, _route, max_request_bytes=1024)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(endpoint.run)
        got = await _exchange(
            port, b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n"
        )
        assert got.startswith(b"HTTP/1.1 431 ")
        nursery.cancel_scope.cancel()


async def test_a_slow_client_is_cut_off_and_does_not_stall_the_others(
    autojump_clock: trio.abc.Clock,
) -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, _route, timeout_s=5)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(endpoint.run)
        slow = await trio.open_tcp_stream("127.0.0.1", port)
        await slow.send_all(b"GET /metr")  # and then nothing
        got = await _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert got.endswith(b"hello\n")  # served while the slow one hangs
        start = trio.current_time()
        with trio.fail_after(60):
            assert await slow.receive_some(100) == b""  # closed by the endpoint
        assert trio.current_time() - start <= 5
        await slow.aclose()
        nursery.cancel_scope.cancel()
    assert endpoint.statistics().failed == 1


async def test_connections_beyond_the_limit_are_closed_at_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    endpoint = HttpEndpoint("127.0.0.1", 0, _route, max_connections=2, timeout_s=30)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(endpoint.run)
        idle = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
        await trio.sleep(0.1)
        extra = await trio.open_tcp_stream("127.0.0.1", port)
        start = trio.current_time()
        assert await extra.receive_some(100) == b""
        assert trio.current_time() - start < 1  # not left to time out
        for stream in [*idle, extra]:
            await stream.aclose()
        await trio.sleep(0.1)
        # The held connections gone, the endpoint serves again.
        got = await _exchange(port, b"GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        assert got.endswith(b"hello\n")
        nursery.cancel_scope.cancel()
    assert endpoint.statistics().refused == 1
