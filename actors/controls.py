"""The controls actor: owns the controls decision core and carries out what it decides.

decide → persist → act: every input (a poll result, a timer, a write verdict, a Response outcome) is
handed to :class:`statemachines.controls.ControlsCore`; the events it returns are appended to the log
and, once durable, the actor acts on them: the limits in force go to the hardware actor, Responses to
the responder. On start it rebuilds the core by folding the log and applies what is in force before
anything else happens (PROTOCOL.md §4 rule 13: a restart while offline follows the persisted schedule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.clock import Clock
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import (
    ApplyLimits,
    ControlsInput,
    ControlsNews,
    ControlsSeen,
    DefaultSeen,
    DerSnapshot,
    LinkState,
    ProgramsSeen,
    ResponseOutcome,
    SendResponse,
    WriteOutcome,
)
from actors.rng import RandomSource
from events.base import Event
from events.control_events import (
    CommsRestored,
    ControlReceived,
    ControlStarted,
    LimitsInForceChanged,
    RampPlanned,
    ResponseFailed,
    control_event_stream,
)
from events.envelope import Append
from events.replay import replay
from events.store import EventStore
from events.subscription_events import ControlsNotified
from statemachines.controls import CONTROLS_PROJECTION, ControlsCore, CoreConfig
from statemachines.ramps import Ramp

__all__ = ["ControlsActor", "ControlsStatistics", "BATCH_STEP_EVENTS", "RESPONSE_RETRY_S"]

#: A Response that failed with a 5xx or a network error is offered again after this long.
RESPONSE_RETRY_S: Final = 30.0
#: A decision of more events than this (a big receipt) is put together in steps of this many
#: (:meth:`ControlsActor._decide`), about 4 ms each (issue 15 point 3).
BATCH_STEP_EVENTS: Final = 1000


class ControlsStatistics(msgspec.Struct, frozen=True):
    inputs: int
    timers: int
    events: int
    limits_published: int


class ControlsActor:
    """Run with ``await task_group.start(actor.run)``; feed it through ``inbox``."""

    def __init__(
        self,
        *,
        config: CoreConfig,
        store: EventStore,
        log: LogWriter,
        clock: Clock,
        rng: RandomSource,
        inbox: MemoryObjectReceiveStream[ControlsInput],
        to_hardware: Latest[ApplyLimits],
        to_responder: MemoryObjectSendStream[SendResponse],
        to_registration: Latest[ControlsNews] | None = None,
        der: Latest[DerSnapshot] | None = None,
    ) -> None:
        """``to_registration``: told of each durable CommsRestored (the registration actor folds
        it into its poll schedule and re-polls everything, PROTOCOL.md §4 rule 12) and when a
        control has taken effect (it re-PUTs the DER information, §2.7).
        ``der``: the hardware actor's mailbox of what the DER reported, read (never taken) for its
        setMaxW, which setGradW is a fraction of (§4 rule 11); it overrides ``config.set_max_w``
        once the nameplate is known."""
        self._config = config
        self._store = store
        self._log = log
        self._clock = clock
        self._rng = rng
        self._inbox = inbox
        self._to_hardware = to_hardware
        self._to_responder = to_responder
        self._to_registration = to_registration
        self._der = der
        self._hold_until = float("-inf")
        self.core: ControlsCore | None = None
        #: Waiting for input: every decision so far is durable, so the core's state is the log's
        #: fold (between an input and its append the core is ahead of the log by design).
        self.idle = False
        #: Responses handed to the responder and not yet answered, with when they may be offered again.
        self._in_flight: dict[tuple[str, int], float] = {}
        self._inputs = self._timers = self._events = self._published = 0

    def statistics(self) -> ControlsStatistics:
        return ControlsStatistics(self._inputs, self._timers, self._events, self._published)

    def _draw(self, low: int, high: int) -> int:
        return self._rng.integer(low, high)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._inbox, self._to_responder:
            state, _ = replay(self._store, CONTROLS_PROJECTION)
            core = self.core = ControlsCore(self._config, state)
            self._learn_set_max_w(core)
            # Before anything else, and before the server is reachable: what the log says is in force.
            await self._publish_limits(core)
            await self._decide(core.handle_timer(self._clock.server_time(), self._draw))
            await self._offer_responses(core)
            task_status.started()
            while True:
                self.idle = True
                message = await self._next_input(core)
                self.idle = False
                self._learn_set_max_w(core)
                now = self._clock.server_time()
                if message is None:
                    self._timers += 1
                    events = core.handle_timer(now, self._draw)
                elif isinstance(message, ControlsSeen):
                    self._inputs += 1
                    events = await self._receive_controls(core, message, now)
                    events += _notified(message, events, now)
                else:
                    self._inputs += 1
                    events = self._dispatch(core, message, now)
                await self._decide(events)
                await self._offer_responses(core)

    async def _next_input(self, core: ControlsCore) -> ControlsInput | None:
        """The next message, or ``None`` when the core's next deadline (or a retry, or the next
        change of arbitration) falls due first — or when the server's clock stepped: what is in
        force is then re-arbitrated at once on the new reading (PROTOCOL.md §2.2)."""
        deadlines = [
            d
            for d in (core.next_deadline(), core.next_change(), self._next_retry())
            if d is not None
        ]
        try:
            return self._inbox.receive_nowait()
        except anyio.WouldBlock:
            pass
        deadline = min(deadlines) if deadlines else None
        if deadline is not None and deadline <= self._clock.server_time():
            return None
        # The deadline is on the server's clock, whose offset the registration actor may change
        # while we wait (Time resource): the clock's own sleep follows such a change.
        message: list[ControlsInput] = []
        async with anyio.create_task_group() as group:

            async def timer(at: float) -> None:
                await self._clock.sleep_until_server_time(at)
                group.cancel_scope.cancel()

            async def stepped() -> None:
                await self._clock.wait_offset_change()
                group.cancel_scope.cancel()

            if deadline is not None:
                group.start_soon(timer, deadline)
            group.start_soon(stepped)
            message.append(await self._inbox.receive())
            group.cancel_scope.cancel()
        return message[0] if message else None

    def _learn_set_max_w(self, core: ControlsCore) -> None:
        """§4 rule 11: setGradW ramps need setMaxW, which only the hardware knows (its nameplate).
        Ramps are decisions in the log (``RampPlanned``), so replay never needs this value."""
        der = None if self._der is None else self._der.peek()
        if der is None:
            return
        # setMaxW as DERSettings reports it (``actors.der_info.settings``).
        watts = der.nameplate.rating().max_w
        if watts is not None and watts > 0 and watts != core.config.set_max_w:
            core.config = msgspec.structs.replace(core.config, set_max_w=watts)

    def _next_retry(self) -> float | None:
        """When a failed Response may be offered again. None while offline: nothing is offered then
        (§4 rule 12), and a retry instant left in the past would make the actor spin."""
        assert self.core is not None
        if not self.core.state.online:
            return None
        buffer = self._to_responder.statistics()
        if buffer.current_buffer_used >= buffer.max_buffer_size:
            # The responder is full: an outcome will come back and wake us (each frees a place);
            # a retry instant already past would only make the actor spin until then.
            return None
        # Nothing is offered before a Retry-After ends: no retry instant may fall before it (a
        # past one would make the actor spin while the hold lasts).
        hold = self._hold_until
        times = [max(t, hold) for t in self._in_flight.values()]
        if hold > self._clock.server_time() and self.core.responses_to_send():
            times.append(hold)  # Responses intended during the hold go when it ends
        return min(times, default=None)

    async def _receive_controls(
        self, core: ControlsCore, message: ControlsSeen, now: float
    ) -> list[Event]:
        """Issue 15 point 3: a list of thousands of controls is decided in bounded steps
        (:data:`statemachines.controls.RECEIPT_STEP` controls each), the loop let go between them so
        sampling, the closed loop and a SIGTERM keep their time; the decisions are those of one
        call at ``now``, persisted as :meth:`_decide` says."""
        steps = core.receive_controls_stepwise(
            message.program_id, message.controls, now, self._draw
        )
        while True:
            try:
                next(steps)
            except StopIteration as done:
                events: list[Event] = done.value
                return events
            await anyio.lowlevel.checkpoint()

    def _dispatch(self, core: ControlsCore, message: ControlsInput, now: float) -> list[Event]:
        draw = self._draw
        match message:
            case ProgramsSeen(programs=programs):
                return core.receive_programs(programs, now, draw)
            case DefaultSeen(program_id=program_id, default=default):
                return core.receive_default(program_id, default, now, draw)
            case ControlsSeen(program_id=program_id, controls=controls):
                return core.receive_controls(program_id, controls, now, draw)
            case LinkState(online=True):
                return core.comms_restored(now, draw)
            case LinkState(online=False, reason=reason):
                return core.comms_lost(now, draw, reason)
            case ResponseOutcome():
                key = (message.mrid, int(message.status))
                if message.acked:
                    self._in_flight.pop(key, None)
                    assert message.http_status is not None  # an acknowledgement is an answer
                    return core.response_acked(message.mrid, message.status, message.http_status, now)
                events = core.response_failed(
                    message.mrid,
                    message.status,
                    message.http_status,
                    now,
                    undeliverable=message.undeliverable,
                )
                if message.retry_after_s is not None:
                    # The server said when it takes Responses again: none before then.
                    self._hold_until = max(self._hold_until, now + message.retry_after_s)
                if any(isinstance(e, ResponseFailed) and e.retry for e in events):
                    if key in self._in_flight:
                        self._in_flight[key] = max(now + RESPONSE_RETRY_S, self._hold_until)
                else:
                    # Refused for good (4xx): it leaves the outbox, and must leave no retry behind.
                    self._in_flight.pop(key, None)
                return events
            case WriteOutcome(ok=ok, detail=detail, seq=seq):
                if seq is not None and seq != self._published:
                    # The verdict on limits published before the newest: the events now awaiting
                    # a verdict started with the newest, whose verdict is still to come.
                    return core.handle_timer(now, draw)
                return core.device_write_result(ok, now, draw, detail)
        raise TypeError(f"controls actor: unexpected message {message!r}")

    async def _decide(self, events: Sequence[Event]) -> None:
        """Persist, then act on what was decided. The whole decision is one batch; that of a big
        receipt is put together in steps of :data:`BATCH_STEP_EVENTS` events, the loop let go
        between them (issue 15 point 3)."""
        if not events:
            return
        reading = self._clock.read()
        if len(events) > BATCH_STEP_EVENTS:
            appends = await _batch_in_steps(events, reading.server_time, reading.monotonic)
        else:
            appends = _batch(events, reading.server_time, reading.monotonic)
        await self._log.append(appends)
        self._events += len(events)
        if self._to_registration is not None:
            # Durable now: tell the registration actor. Its mailbox never blocks, so neither actor
            # ever waits on the other, though each sends the other news.
            restored = [e for e in events if isinstance(e, CommsRestored)]
            started = any(isinstance(e, ControlStarted) for e in events)
            if restored or started:
                self._to_registration.put_merged(
                    ControlsNews(
                        comms_restored=restored[-1] if restored else None,
                        control_took_effect=started,
                    ),
                    ControlsNews.merged,
                )
        if any(isinstance(e, LimitsInForceChanged | RampPlanned) for e in events):
            assert self.core is not None
            await self._publish_limits(self.core)

    async def _publish_limits(self, core: ControlsCore) -> None:
        state = core.state
        ramps = {
            mode: Ramp(
                mode=mode,
                from_value=r.from_value,
                to_value=r.to_value,
                start_s=r.start_s,
                end_s=r.end_s,
            )
            for mode, r in state.ramps.items()
        }
        self._published += 1
        self._to_hardware.put(
            ApplyLimits(
                settings=state.settings,
                ramps=ramps,
                at_s=self._clock.server_time(),
                seq=self._published,
            )
        )

    async def _offer_responses(self, core: ControlsCore) -> None:
        """Hand queued Responses to the responder: each once, again only after a failed attempt's
        retry delay (§4 rule 16: retried on 5xx/network errors, never on 4xx)."""
        now = self._clock.server_time()
        if now < self._hold_until:
            return  # a 429/503's Retry-After is still running
        # One Response per mRID on its way at a time, in the order intended: a later status must
        # not overtake an earlier one that waits for its retry (the utility would see 3 before 2,
        # or 2 after the terminal 6 — §4 rules 9 and 16).
        waiting: set[str] = set()
        for intended in core.responses_to_send():
            if intended.mrid in waiting:
                continue
            waiting.add(intended.mrid)
            key = (intended.mrid, int(intended.status))
            retry_at = self._in_flight.get(key)
            if retry_at is not None and retry_at > now:
                continue
            # Never wait on the responder: it waits on our inbox to report outcomes, so a blocking
            # send with both buffers full would deadlock. What does not fit now is offered again
            # when an outcome comes back (each frees a place).
            buffer = self._to_responder.statistics()
            if buffer.current_buffer_used >= buffer.max_buffer_size:
                return
            # Reserve the key before posting: the Sent record is durable before the POST leaves.
            self._in_flight[key] = float("inf")
            await self._decide(core.response_sent(intended.mrid, intended.status, now))
            self._to_responder.send_nowait(SendResponse(response=intended))


def _notified(message: ControlsSeen, events: Sequence[Event], now: float) -> list[Event]:
    """Issue 19 point 3: the controls a notification-prompted read saw first, recorded after their
    receipts in the same batch, so replay and ``explain`` say "changed by notification at T"."""
    if message.prompted_by is None:
        return []
    first_seen = tuple(e.control.mrid for e in events if isinstance(e, ControlReceived))
    if not first_seen:
        return []
    seq, notified_at_s = message.prompted_by
    return [
        ControlsNotified(
            program_id=message.program_id,
            notification_seq=seq,
            notified_at_s=notified_at_s,
            first_seen=first_seen,
            at_s=now,
        )
    ]


async def _batch_in_steps(
    events: Sequence[Event], server_time: float, monotonic: float
) -> list[Append]:
    """:func:`_batch` with each event's stream found in steps of :data:`BATCH_STEP_EVENTS`."""
    streams: list[str] = []
    for begin in range(0, len(events), BATCH_STEP_EVENTS):
        if begin:
            await anyio.lowlevel.checkpoint()
        streams += [control_event_stream(e) for e in events[begin : begin + BATCH_STEP_EVENTS]]
    return _group(events, streams, server_time, monotonic)


def _batch(events: Sequence[Event], server_time: float, monotonic: float) -> list[Append]:
    """Consecutive events of one stream become one Append; the whole decision is one batch."""
    return _group(events, [control_event_stream(e) for e in events], server_time, monotonic)


def _group(
    events: Sequence[Event], streams: Sequence[str], server_time: float, monotonic: float
) -> list[Append]:
    appends: list[Append] = []
    current: list[Event] = []
    stream = ""
    for event, target in zip(events, streams, strict=True):
        if current and target != stream:
            appends.append(
                Append(stream=stream, events=current, server_time=server_time, monotonic=monotonic)
            )
            current = []
        stream = target
        current.append(event)
    if current:
        appends.append(
            Append(stream=stream, events=current, server_time=server_time, monotonic=monotonic)
        )
    return appends
