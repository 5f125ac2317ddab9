"""The log actor: the single writer of the event log, with group commit.

Every actor that decides something calls ``await log.append(...)`` and only acts once it returns: by
then the events are durable (decide → persist → act). Requests that arrive while a commit is in
progress are committed together in the next transaction, so a burst of decisions costs one sync.

With the SQLite store the commit runs in a worker thread so the sync does not stall the event loop.
Simulations use the in-memory store inline (``offload=False``): a worker thread would let trio's
MockClock jump ahead while the commit runs, and the run would no longer be reproducible.

``inline_when_idle`` (only without ``offload``; the gateway sets it for the in-memory store): when
the writer has nothing in hand, the caller commits its own request at once instead of handing it
over and waiting for the writer's turn. A synchronous commit leaves nothing to group, so this only
drops the two task switches of the round trip (a simulated second's sample costs one less wake);
order is kept because nothing handed to the writer is still uncommitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import anyio
import anyio.lowlevel
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from events.envelope import Append, Recorded
from events.errors import ConcurrencyConflict
from events.store import EventStore

__all__ = ["LogWriter", "LogWriterStatistics", "QUEUE_SIZE"]

#: Requests waiting for the writer; producers wait (back-pressure) beyond this.
QUEUE_SIZE: Final = 64
#: At most this many events go into one transaction.
MAX_GROUP_EVENTS: Final = 10_000


class LogWriterStatistics(msgspec.Struct, frozen=True):
    commits: int
    events: int
    largest_group: int
    failed_requests: int


class _Request:
    __slots__ = ("appends", "done", "error", "records")

    def __init__(self, appends: Sequence[Append]) -> None:
        self.appends = appends
        self.done = anyio.Event()
        self.records: list[Recorded] = []
        self.error: BaseException | None = None


class LogWriter:
    """Owns the store for writing. Run it with ``await task_group.start(writer.run)``."""

    def __init__(self, store: EventStore, *, offload: bool, inline_when_idle: bool = False) -> None:
        if offload and inline_when_idle:
            raise ValueError("inline_when_idle needs offload=False: an inline commit is synchronous")
        self.store = store
        self._offload = offload
        self._inline = inline_when_idle
        self._running = False  # the writer task is in its loop (it drains what is handed over)
        self._handed = 0  # requests handed to the writer and not yet committed
        send, receive = anyio.create_memory_object_stream[_Request](QUEUE_SIZE)
        self._send: MemoryObjectSendStream[_Request] = send
        self._receive: MemoryObjectReceiveStream[_Request] = receive
        self._commits = 0
        self._events = 0
        self._largest_group = 0
        self._failed = 0

    def statistics(self) -> LogWriterStatistics:
        return LogWriterStatistics(self._commits, self._events, self._largest_group, self._failed)

    async def append(self, appends: Sequence[Append]) -> list[Recorded]:
        """Append and wait until durable. Raises what the store raised (e.g. ConcurrencyConflict)."""
        if self._inline and self._running and self._handed == 0:
            try:
                records = self.store.append(appends)
            except Exception:
                self._failed += 1
                raise
            self._commits += 1
            self._events += len(records)
            self._largest_group = max(self._largest_group, len(records))
            # A cancellation point without a reschedule (durable already, as a cancelled waiter's
            # request would be); every caller waits on something else in its loop.
            await anyio.lowlevel.checkpoint_if_cancelled()
            return records
        request = _Request(appends)
        self._handed += 1
        try:
            self._send.send_nowait(request)
        except anyio.WouldBlock:
            try:
                await self._send.send(request)
            except BaseException:
                self._handed -= 1
                raise
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.records

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self._running = True
        try:
            async for first in self._receive:
                # A commit that has started finishes, even on shutdown: its callers are waiting.
                with anyio.CancelScope(shield=True):
                    group = self._gather(first)
                    try:
                        await self._commit_group(group)
                    finally:
                        self._handed -= len(group)
        except anyio.get_cancelled_exc_class():
            self._running = False
            # Shutdown: commit what was already handed to us before leaving, so nothing a caller
            # is waiting on is dropped silently.
            with anyio.CancelScope(shield=True):
                pending = self._drain()
                self._handed = 0
                if pending:
                    await self._commit_group(pending)
            raise
        finally:
            self._running = False

    def _gather(self, first: _Request) -> list[_Request]:
        group = [first]
        size = len(first.appends)
        while size < MAX_GROUP_EVENTS:
            try:
                request = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            group.append(request)
            size += sum(len(a.events) for a in request.appends)
        return group

    def _drain(self) -> list[_Request]:
        pending: list[_Request] = []
        while True:
            try:
                pending.append(self._receive.receive_nowait())
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return pending

    async def _commit_group(self, group: list[_Request]) -> None:
        appends = [append for request in group for append in request.appends]
        try:
            records = await self._store_append(appends)
        except ConcurrencyConflict:
            # One request's expectation failed and took the transaction with it: commit the requests
            # one by one so only the one at fault sees the error.
            for request in group:
                await self._commit_one(request)
            return
        except Exception as exc:
            for request in group:
                self._fail(request, exc)
            return
        self._commits += 1
        self._events += len(records)
        self._largest_group = max(self._largest_group, len(records))
        position = 0
        for request in group:
            count = sum(len(a.events) for a in request.appends)
            request.records = records[position : position + count]
            position += count
            request.done.set()

    async def _commit_one(self, request: _Request) -> None:
        try:
            request.records = await self._store_append(request.appends)
        except Exception as exc:
            self._fail(request, exc)
            return
        self._commits += 1
        self._events += len(request.records)
        request.done.set()

    def _fail(self, request: _Request, exc: Exception) -> None:
        self._failed += 1
        request.error = exc
        request.done.set()

    async def _store_append(self, appends: Sequence[Append]) -> list[Recorded]:
        if self._offload:
            return await anyio.to_thread.run_sync(self.store.append, appends)
        return self.store.append(appends)
