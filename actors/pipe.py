"""In-memory byte-stream pairs: a socket without the operating system, for simulations and tests.

A simulated device or server accepts pipe ends through a memory object stream (its "listener"), and a
client's ``connector`` makes a pair and hands the far end over. Everything then runs inside the event
loop, so trio's autojump clock and seeded scheduling govern it exactly as the rest of the world.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final

import anyio
import anyio.abc
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = ["PipeEnd", "byte_stream_pair", "pipe_connector", "pipe_listener", "serve_pipes"]

#: Chunks in flight per direction; a writer waits beyond this, as with a socket's buffer.
PIPE_CHUNKS: Final = 64


class PipeEnd(anyio.abc.ByteStream):
    """One end of an in-memory, bidirectional byte stream."""

    def __init__(
        self, send: MemoryObjectSendStream[bytes], receive: MemoryObjectReceiveStream[bytes]
    ) -> None:
        self._send = send
        self._receive = receive
        self._pending = b""

    async def send(self, item: bytes) -> None:
        if item:
            await self._send.send(bytes(item))

    async def receive(self, max_bytes: int = 65536) -> bytes:
        chunk = self._pending or await self._receive.receive()
        self._pending = chunk[max_bytes:]
        return chunk[:max_bytes]

    async def send_eof(self) -> None:
        await self._send.aclose()

    async def aclose(self) -> None:
        await self._send.aclose()
        await self._receive.aclose()


def byte_stream_pair() -> tuple[PipeEnd, PipeEnd]:
    a_send, b_receive = anyio.create_memory_object_stream[bytes](PIPE_CHUNKS)
    b_send, a_receive = anyio.create_memory_object_stream[bytes](PIPE_CHUNKS)
    return PipeEnd(a_send, a_receive), PipeEnd(b_send, b_receive)


def pipe_listener() -> tuple[
    MemoryObjectSendStream[anyio.abc.ByteStream], MemoryObjectReceiveStream[anyio.abc.ByteStream]
]:
    """The accept queue of an in-memory server: connectors send far ends, the server receives them."""
    return anyio.create_memory_object_stream[anyio.abc.ByteStream](PIPE_CHUNKS)


def pipe_connector(
    accept: MemoryObjectSendStream[anyio.abc.ByteStream],
) -> Callable[[], Awaitable[anyio.abc.ByteStream]]:
    """A ``connector`` for clients: each call makes a pair and hands the far end to the server."""

    async def connect() -> anyio.abc.ByteStream:
        near, far = byte_stream_pair()
        try:
            await accept.send(far)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            raise ConnectionRefusedError("the in-memory server is not listening") from None
        return near

    return connect


async def serve_pipes(
    accept: MemoryObjectReceiveStream[anyio.abc.ByteStream],
    handler: Callable[[anyio.abc.ByteStream], Coroutine[Any, Any, None]],
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """An in-memory server's accept loop: each connection gets ``handler`` in a task of its own, until
    ``accept`` closes or the caller is cancelled."""
    async with accept, anyio.create_task_group() as group:
        task_status.started()
        async for stream in accept:
            group.start_soon(handler, stream)
