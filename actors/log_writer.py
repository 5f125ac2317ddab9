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

``detail_commit_s`` (0: off, the default): telemetry detail (``DETAIL_TAGS``: the 1 Hz samples,
poll and post bookkeeping) is group-committed at most this often instead of with every sample:
an append made only of detail waits in memory, in order, until it is that old (on the records'
own monotonic clock) or ``MAX_DETAIL_WAITING`` appends wait, and any other append first writes
what waits before it, so the log's records, order and hashes are what they would have been. A
decision is never made to wait, nor a record of what the device did; what a power cut or a
``kill -9`` can lose is at most ``detail_commit_s`` of samples, which change no decision. A fleet
sets it (issue 19, decision 0022f): a commit per site per second is most of a site's CPU and,
on a disk, a thousand syncs a second.

**A full log is a degraded mode, not an exit** (issue 16 point 5; ``docs`` in ARCHITECTURE.md):

- *Short of space* — the store's ``space_left()`` (``log.max_bytes``, or the file system's free
  space) below ``reserve_bytes``: requests made only of telemetry detail (``DETAIL_TAGS``: samples,
  poll and post bookkeeping) are not written but counted; everything else still is, into the
  reserve. A ``log.short_of_space.v1`` record says when and why.
- *Full* — the store raised ``LogFull`` (the reserve is gone too, or the disk filled at once):
  detail is shed; an *observation* (``append(..., observation=True)``: the hardware actor's records
  of what it did and saw) never waits: its caller goes on at once and the records are held in
  memory (at most ``MAX_HELD`` batches, the oldest shed beyond) and written when space returns;
  a *decision* (every other request) waits, retried every ``FULL_RETRY_S``, and its caller acts
  only once it is durable (decide → persist → act holds; the battery keeps the limits in force).
- When writing succeeds again and the space is back above the reserve, the held records are
  written and a ``log.shed.v1`` record counts what was not written, per type, with the server
  times of the first and last: the log is honest about its gap. ``on_alarm`` gets a line for the
  console at each change of mode (also when nothing can be written).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Final

import anyio
import anyio.abc
import anyio.lowlevel
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from events.envelope import Append, Recorded
from events.errors import ConcurrencyConflict, LogFull
from events.log_events import LOG_STREAM, LogShed, LogShort
from events.store import EventStore

__all__ = [
    "DETAIL_TAGS",
    "FULL_RETRY_S",
    "LogWriter",
    "LogWriterStatistics",
    "MAX_HELD",
    "QUEUE_SIZE",
    "RESERVE_BYTES",
]

#: Requests waiting for the writer; producers wait (back-pressure) beyond this.
QUEUE_SIZE: Final = 64
#: At most this many events go into one transaction.
MAX_GROUP_EVENTS: Final = 10_000
#: Below this much space left, telemetry detail is shed so decisions can still be written.
RESERVE_BYTES: Final = 256 * 1024
#: While the log is full, waiting decisions (and held observations) are tried again this often.
FULL_RETRY_S: Final = 5.0
#: Observation batches held in memory while the log is full; the oldest are shed beyond this.
MAX_HELD: Final = 1_000
#: Held observation batches written per transaction when space returns.
HELD_CHUNK: Final = 64
#: At most this many detail appends wait for their group commit (``detail_commit_s``).
MAX_DETAIL_WAITING: Final = 64
#: Telemetry detail: shed first when the log is short of space. Losing them changes no decision
#: (the mirror's interval summaries are built in memory; a restart polls again sooner).
DETAIL_TAGS: Final = frozenset(
    {"hardware.telemetry.v1", "der.member_sampled.v1", "poll.done.v1", "post.done.v1"}
)


class LogWriterStatistics(msgspec.Struct, frozen=True):
    commits: int
    events: int
    largest_group: int
    failed_requests: int
    #: Records not written because the log was short of space or full (detail, held overflow).
    shed: int = 0
    #: The log is short of space or full now.
    degraded: bool = False


class _Request:
    __slots__ = ("appends", "done", "error", "observation", "records")

    def __init__(self, appends: Sequence[Append], observation: bool = False) -> None:
        self.appends = appends
        self.observation = observation
        self.done = anyio.Event()
        self.records: list[Recorded] = []
        self.error: BaseException | None = None


class LogWriter:
    """Owns the store for writing. Run it with ``await task_group.start(writer.run)``."""

    def __init__(
        self,
        store: EventStore,
        *,
        offload: bool,
        inline_when_idle: bool = False,
        reserve_bytes: int = RESERVE_BYTES,
        on_alarm: Callable[[str], None] | None = None,
        on_records: Callable[[Sequence[Recorded]], None] | None = None,
        detail_commit_s: float = 0.0,
    ) -> None:
        if offload and inline_when_idle:
            raise ValueError(
                "inline_when_idle needs offload=False: an inline commit is synchronous"
            )
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
        self._reserve = reserve_bytes
        self._on_alarm = on_alarm
        #: Told every record once it is durable, in log order, on the event loop (the gateway's
        #: status fold: issue 20 point 2). It must not block or raise.
        self._on_records = on_records
        self._short: str | None = None  # why the log is short of space (detail is shed)
        self._full: LogFull | None = None  # the store's last refusal, while it lasts
        self._waiting: list[_Request] = []  # decisions refused by a full log, in order
        self._held: list[Append] = []  # observations taken while the log is full, in order
        self._shed: dict[str, int] = {}
        self._shed_from: float | None = None
        self._shed_to: float | None = None
        self._shed_total = 0
        self._shed_monotonic = 0.0  # the monotonic time of the newest record shed
        self._retry_due = False  # FULL_RETRY_S passed since the last try
        self._retry_token: _Request | None = None  # wakes an idle writer to try again
        self._tasks: anyio.abc.TaskGroup | None = None  # where the retry timer runs
        self._timer = False  # the retry timer is running
        if detail_commit_s < 0:
            raise ValueError(f"detail_commit_s must not be negative, got {detail_commit_s}")
        self._detail_commit_s = detail_commit_s
        #: Detail appends not yet handed to the store, in order (see ``detail_commit_s``).
        self._detail: list[Append] = []

    def statistics(self) -> LogWriterStatistics:
        return LogWriterStatistics(
            self._commits,
            self._events,
            self._largest_group,
            self._failed,
            self._shed_total,
            self.degraded,
        )

    @property
    def degraded(self) -> bool:
        """The log is short of space or full: detail is being shed."""
        return self._short is not None or self._full is not None

    async def append(
        self, appends: Sequence[Append], *, observation: bool = False
    ) -> list[Recorded]:
        """Append and wait until durable. Raises what the store raised (e.g. ConcurrencyConflict),
        except ``LogFull``: a full log is a degraded mode (see the module docstring). Returns the
        records written, none for detail shed or an ``observation`` held for later, and none
        for detail waiting for its group commit (``detail_commit_s``)."""
        if self._detail_commit_s and self._is_detail(appends) and not self.degraded:
            self._detail.extend(appends)
            first = self._detail[0].monotonic
            if (
                appends[-1].monotonic - first < self._detail_commit_s
                and len(self._detail) < MAX_DETAIL_WAITING
            ):
                await anyio.lowlevel.checkpoint_if_cancelled()
                return []
            appends, self._detail = self._detail, []  # due: one transaction for them all
        elif self._detail:
            # Anything else is written after the detail that came before it: the log's order
            # is the order of the appends, as without the wait. The detail is queued, not
            # waited for, before this append: waiting for its commit would let another task's
            # append, made later, be queued ahead of this one.
            waiting, self._detail = self._detail, []
            if self._writes_inline():
                # One transaction for both, as the writer's group commit makes of them when it
                # takes them in turn: the same records in the same order, one sync less.
                try:
                    both = self._commit_inline([*waiting, *appends], failures_counted=False)
                except Exception:
                    both = None  # taken apart below: the detail is written, the error is its own
                if both is not None:
                    await anyio.lowlevel.checkpoint_if_cancelled()
                    return both[sum(len(a.events) for a in waiting) :]
                await self._append_now(waiting, observation=True)  # committed before we go on
            else:
                await self._hand(waiting, observation=True)
        return await self._append_now(appends, observation=observation)

    def hold(self, appends: Sequence[Append]) -> None:
        """Queue ``appends`` to be written with the next append of any actor, in order before it
        and in its transaction (as waiting telemetry detail is): for records an actor makes one
        by one and writes together, with an append of its own or :meth:`flush`, at the end of
        what it does (the mirror's answers of a post instant). Whatever another actor appends
        meanwhile is written after them, so the log's order is the order they were made in; a
        writer that stops writes them on its way out. They are not detail: a short log does not
        shed them, and a full one holds them as observations (``MAX_HELD``)."""
        self._detail.extend(appends)

    async def flush(self) -> None:
        """Write what waits (held records, telemetry detail) now, in one transaction."""
        if self._detail:
            waiting, self._detail = self._detail, []
            await self._append_now(waiting, observation=True)

    def _writes_inline(self) -> bool:
        return self._inline and self._running and self._handed == 0 and not self.degraded

    def _commit_inline(
        self, appends: Sequence[Append], *, failures_counted: bool = True
    ) -> list[Recorded] | None:
        """Commit in the caller's task (``_writes_inline``); ``None`` if the log is full (nothing
        was written: the writer takes it from there, it sheds, holds or waits)."""
        try:
            records = self.store.append(appends)
        except LogFull:
            return None
        except Exception:
            if failures_counted:
                self._failed += 1
            raise
        self._committed(records)
        self._commits += 1
        self._events += len(records)
        self._largest_group = max(self._largest_group, len(records))
        short = self._check_space(self.store.space_left(), appends)
        if short is not None:
            with contextlib.suppress(LogFull):  # full already: the writer finds it so
                self._committed(self.store.append([short]))
        return records

    async def _append_now(self, appends: Sequence[Append], *, observation: bool) -> list[Recorded]:
        if self._writes_inline():
            records = self._commit_inline(appends)
            if records is not None:
                # A cancellation point without a reschedule (durable already, as a cancelled
                # waiter's request would be); every caller waits on something else in its loop.
                await anyio.lowlevel.checkpoint_if_cancelled()
                return records
        request = await self._hand(appends, observation=observation)
        await request.done.wait()
        if request.error is not None:
            raise request.error
        return request.records

    async def _hand(self, appends: Sequence[Append], *, observation: bool) -> _Request:
        """Queue a request for the writer task (first in, first written)."""
        request = _Request(appends, observation)
        self._handed += 1
        try:
            self._send.send_nowait(request)
        except anyio.WouldBlock:
            try:
                await self._send.send(request)
            except BaseException:
                self._handed -= 1
                raise
        return request

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self._retry_token = _Request(())
        task_status.started()
        self._running = True
        try:
            async with anyio.create_task_group() as tasks:
                # The retry timer runs only while the log is full (none otherwise: a simulation's
                # task schedule, and so its log, stays what it was before degraded modes).
                self._tasks = tasks
                async for first in self._receive:
                    # A commit that has started finishes, even on shutdown: its callers wait.
                    with anyio.CancelScope(shield=True):
                        group = self._gather(first)
                        requests = [r for r in group if r is not self._retry_token]
                        try:
                            await self._commit_group(requests)
                            if self._full is not None and self._retry_due:
                                self._retry_due = False
                                await self._retry()
                        finally:
                            self._handed -= len(requests)
        except anyio.get_cancelled_exc_class():
            self._running = False
            self._tasks = None  # closed: no retry timer on the way out
            # Shutdown: commit what was already handed to us before leaving, so nothing a caller
            # is waiting on is dropped silently; what a full log still refuses fails its callers.
            with anyio.CancelScope(shield=True):
                pending = [r for r in self._drain() if r is not self._retry_token]
                if self._detail:  # the newest: every request handed over came before it
                    pending.append(_Request(self._detail, observation=True))
                    self._detail = []
                self._handed = 0
                if pending:
                    await self._commit_group(pending)
                if self._full is not None:
                    await self._retry()
                for request in self._waiting:
                    assert self._full is not None
                    self._fail(request, self._full)
                self._waiting = []
                if self._shed or self._held:
                    await self._account_for_gap(None, stopping=True)
            raise
        finally:
            self._running = False
            self._tasks = None

    async def _retry_while_full(self) -> None:
        """While the log is full, every ``FULL_RETRY_S``: wake the writer to try again (it may be
        idle, or busy with a stream of observations it holds). Started on entering the full mode,
        ends with it."""
        token = self._retry_token
        assert token is not None
        try:
            while self._full is not None:
                await anyio.sleep(FULL_RETRY_S)
                self._retry_due = True
                with contextlib.suppress(anyio.WouldBlock):
                    self._send.send_nowait(token)  # busy: it sees _retry_due after its group
        finally:
            self._timer = False

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

    # -- degraded mode (issue 16 point 5) ----------------------------------------------------------

    def _triage(self, group: list[_Request]) -> list[_Request]:
        """What of ``group`` is written now: while the log is short of space or full, detail is
        shed; while it is full, observations are held (their callers go on) and decisions wait
        behind the ones already waiting."""
        if not self.degraded:
            return group
        kept: list[_Request] = []
        for request in group:
            if self._is_detail(request.appends):
                self._count_shed(request.appends)
                request.done.set()
            elif self._full is not None and request.observation:
                self._hold(request.appends)
                request.done.set()
            else:
                kept.append(request)
        if self._full is not None:
            self._waiting.extend(kept)
            return []
        return kept

    def _is_detail(self, appends: Sequence[Append]) -> bool:
        """Telemetry detail only (``DETAIL_TAGS``): the first thing shed when the log is short."""
        tag = self.store.catalogue.tag
        tags = {tag(event) for append in appends for event in append.events}
        return bool(tags) and tags <= DETAIL_TAGS

    def _hold(self, appends: Sequence[Append]) -> None:
        self._held.extend(appends)
        if len(self._held) > MAX_HELD:
            overflow = self._held[: len(self._held) - MAX_HELD]
            del self._held[: len(overflow)]
            self._count_shed(overflow)

    def _count_shed(self, appends: Sequence[Append]) -> None:
        tag = self.store.catalogue.tag
        for append in appends:
            for event in append.events:
                name = tag(event)
                self._shed[name] = self._shed.get(name, 0) + 1
                self._shed_total += 1
            when = float(append.server_time)
            self._shed_from = when if self._shed_from is None else min(self._shed_from, when)
            if self._shed_to is None or when >= self._shed_to:
                self._shed_to = when
                self._shed_monotonic = float(append.monotonic)

    def _became_full(self, error: LogFull, group: list[_Request]) -> None:
        """The store refused ``group``: its detail is shed, its observations held, its decisions
        wait (in order, behind those already waiting)."""
        became, self._full = self._full is None, error  # degraded before the alarm says so
        if became:
            if self._tasks is not None and not self._timer:
                self._timer = True
                self._tasks.start_soon(self._retry_while_full)
            self._alarm(
                f"the event log is full ({error}); control decisions wait until they can be "
                "recorded, the battery keeps the limits in force, telemetry detail is not "
                f"recorded; trying again every {FULL_RETRY_S:g} s"
            )
        waiting, self._waiting = self._waiting, []
        self._triage(group)
        self._waiting = [*waiting, *self._waiting]

    async def _retry(self) -> None:
        """While the log is full: the waiting decisions, then the held observations; once both
        are written the full mode ends."""
        assert self._full is not None
        if self._waiting or self._held:
            group, self._waiting = self._waiting, []
            # Decisions first (their callers wait), then what was held, into the reserve if need be.
            if group and not await self._commit(group):
                return
            if not await self._write_held():
                return
        else:
            left = await self._space_left()
            if left is not None and left <= 0:
                return
        self._full = None
        self._alarm("the event log is writable again: control decisions are recorded")
        await self._account_for_gap(await self._space_left(), stopping=False)

    async def _write_held(self) -> bool:
        """Write the held observations, oldest first; False if the log is full again."""
        while self._held:
            chunk = self._held[:HELD_CHUNK]
            try:
                await self._store_append(chunk)
            except LogFull as exc:
                self._became_full(exc, [])
                return False
            del self._held[: len(chunk)]
        return True

    async def _account_for_gap(self, left: int | None, *, stopping: bool) -> None:
        """Once the space is back above the reserve (or on the way out, best effort): write what
        was held and the ``log.shed.v1`` record of what was not written."""
        if not stopping and left is not None and left < self._reserve:
            return  # still short: detail is still shed, and counted
        if not await self._write_held():
            return
        if self._shed and self._shed_from is not None and self._shed_to is not None:
            shed = LogShed(
                counts=dict(sorted(self._shed.items())), from_s=self._shed_from, to_s=self._shed_to
            )
            try:
                await self._store_append(
                    [
                        Append(
                            stream=LOG_STREAM,
                            events=(shed,),
                            server_time=self._shed_to,
                            monotonic=self._shed_monotonic,
                        )
                    ]
                )
            except LogFull as exc:
                self._became_full(exc, [])
                return
            self._shed, self._shed_from, self._shed_to = {}, None, None
        if self._short is not None and not stopping:
            self._short = None
            self._alarm("the event log has space again: full recording resumed")

    def _check_space(self, left: int | None, appends: Sequence[Append]) -> Append | None:
        """After a commit: the log is short of space when less than the reserve is left. Returns
        the ``log.short_of_space.v1`` record to write on entering that mode."""
        if left is None or left >= self._reserve or self._short is not None or not appends:
            return None
        self._short = (
            f"{left:,} bytes left for the log {self.store.where}, below the "
            f"{self._reserve:,}-byte reserve kept for control decisions"
        )
        self._alarm(f"{self._short}: telemetry detail is no longer recorded")
        last = appends[-1]
        return Append(
            stream=LOG_STREAM,
            events=(LogShort(why=self._short, space_left_bytes=left),),
            server_time=last.server_time,
            monotonic=last.monotonic,
        )

    def _alarm(self, line: str) -> None:
        if self._on_alarm is not None:
            self._on_alarm(line)

    # -- committing --------------------------------------------------------------------------------

    async def _commit_group(self, group: list[_Request]) -> None:
        group = self._triage(group)
        if group:
            await self._commit(group)

    async def _commit(self, group: list[_Request]) -> bool:
        """Commit ``group``; False if the log was full (the group then waits, sheds or is held)."""
        appends = [append for request in group for append in request.appends]
        try:
            records, left = await self._store_append_measured(appends)
        except ConcurrencyConflict:
            # One request's expectation failed and took the transaction with it: commit the requests
            # one by one so only the one at fault sees the error.
            for index, request in enumerate(group):
                full = await self._commit_one(request)
                if full is not None:
                    self._became_full(full, group[index:])
                    return False
            return True
        except LogFull as exc:
            self._became_full(exc, group)
            return False
        except Exception as exc:
            for request in group:
                self._fail(request, exc)
            return True
        self._commits += 1
        self._events += len(records)
        self._largest_group = max(self._largest_group, len(records))
        position = 0
        for request in group:
            count = sum(len(a.events) for a in request.appends)
            request.records = records[position : position + count]
            position += count
            request.done.set()
        short = self._check_space(left, appends)
        if short is not None:
            try:
                await self._store_append([short])
            except LogFull as exc:
                self._became_full(exc, [])
        elif self._short is not None or self._shed:
            await self._account_for_gap(left, stopping=False)
        return True

    async def _commit_one(self, request: _Request) -> LogFull | None:
        try:
            request.records = await self._store_append(request.appends)
        except LogFull as exc:
            return exc
        except Exception as exc:
            self._fail(request, exc)
            return None
        self._commits += 1
        self._events += len(request.records)
        request.done.set()
        return None

    def _fail(self, request: _Request, exc: Exception) -> None:
        self._failed += 1
        request.error = exc
        request.done.set()

    def _committed(self, records: Sequence[Recorded]) -> None:
        if self._on_records is not None and records:
            self._on_records(records)

    async def _store_append(self, appends: Sequence[Append]) -> list[Recorded]:
        if self._offload:
            records = await anyio.to_thread.run_sync(self.store.append, appends)
        else:
            records = self.store.append(appends)
        self._committed(records)
        return records

    def _append_measured(self, appends: Sequence[Append]) -> tuple[list[Recorded], int | None]:
        return self.store.append(appends), self.store.space_left()

    async def _store_append_measured(
        self, appends: Sequence[Append]
    ) -> tuple[list[Recorded], int | None]:
        """Commit, and how much space is left after it (in the same worker thread call)."""
        if self._offload:
            records, left = await anyio.to_thread.run_sync(self._append_measured, appends)
        else:
            records, left = self._append_measured(appends)
        self._committed(records)
        return records, left

    async def _space_left(self) -> int | None:
        if self._offload:
            return await anyio.to_thread.run_sync(self.store.space_left)
        return self.store.space_left()
