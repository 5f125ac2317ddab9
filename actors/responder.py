"""The responder: POSTs each Response the controls actor hands it to the event's ``replyTo`` and
reports the outcome back (PROTOCOL.md §4 rule 16: acknowledged, refused for good on 4xx, or to be
retried on 5xx and network errors — the controls core decides which).

POSTs are paced (issue 15 point 3): up to ``RESPONSE_BURST`` go at once, then one every
``RESPONSE_PACE_S``, so a server that hands out a page of a hundred controls (or keeps inventing
them) gets its Responses at a bounded rate instead of hundreds of POSTs in a minute. The controls
actor never waits on the responder (it offers what fits in the inbox), so pacing here delays
Responses, never a decision."""

from __future__ import annotations

from typing import Final

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.clock import Clock
from actors.link import HttpFailure, Link
from actors.messages import ControlsInput, ResponseOutcome, SendResponse
from events.control_events import NOT_SENT
from events.der_info import ControlResponse
from transport.errors import LinkError
from transport.sep2.mapping import response_to_wire

__all__ = ["RESPONSE_BURST", "RESPONSE_PACE_S", "ResponderActor", "ResponderStatistics"]

#: Response POSTs that may go back to back (an ordinary program change: a few controls, each with
#: one or two Responses, goes at once).
RESPONSE_BURST: Final = 10
#: Beyond the burst, one Response POST every this many seconds (20 a minute).
RESPONSE_PACE_S: Final = 3.0


class ResponderStatistics(msgspec.Struct, frozen=True):
    posted: int
    acked: int
    failed: int


class ResponderActor:
    def __init__(
        self,
        *,
        link: Link,
        inbox: MemoryObjectReceiveStream[SendResponse],
        report: MemoryObjectSendStream[ControlsInput],
        clock: Clock,
    ) -> None:
        self._link = link
        self._clock = clock
        self._inbox = inbox
        self._report = report
        self._posted = self._acked = self._failed = 0
        self._tokens = float(RESPONSE_BURST)
        self._refilled_at: float | None = None

    def statistics(self) -> ResponderStatistics:
        return ResponderStatistics(self._posted, self._acked, self._failed)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._inbox, self._report:
            task_status.started()
            async for command in self._inbox:
                await self._report.send(await self._post(command))

    async def _pace(self) -> None:
        """Issue 15 point 3: a token bucket of ``RESPONSE_BURST`` POSTs refilled one per
        ``RESPONSE_PACE_S`` (on the event loop's clock); wait for a token when there is none."""
        now = self._clock.monotonic()
        if self._refilled_at is not None:
            refill = (now - self._refilled_at) / RESPONSE_PACE_S
            self._tokens = min(float(RESPONSE_BURST), self._tokens + refill)
        self._refilled_at = now
        if self._tokens < 1.0:
            await self._clock.sleep_until_monotonic(now + (1.0 - self._tokens) * RESPONSE_PACE_S)
            self._tokens = 1.0
            self._refilled_at = self._clock.monotonic()
        self._tokens -= 1.0

    async def _post(self, command: SendResponse) -> ResponseOutcome:
        intended = command.response
        mrid, status = intended.mrid, intended.status
        if not intended.reply_to:
            # The controls core never hands one out (it records it as undeliverable); an older
            # log's reservation may: nothing is sent, and the outcome says so without a status.
            self._failed += 1
            return ResponseOutcome(
                mrid=mrid, status=status, acked=False, http_status=None, undeliverable=NOT_SENT
            )
        wire = response_to_wire(
            ControlResponse(
                mrid=mrid, status=status, created_s=intended.created_s, lfdi=intended.lfdi
            )
        )
        await self._pace()
        self._posted += 1
        try:
            answered, _ = await self._link.post_answered(intended.reply_to, wire)
        except HttpFailure as failure:
            self._failed += 1
            return ResponseOutcome(
                mrid=mrid,
                status=status,
                acked=False,
                http_status=failure.status,
                retry_after_s=failure.retry_after_s,
            )
        except LinkError:
            self._failed += 1
            return ResponseOutcome(mrid=mrid, status=status, acked=False, http_status=None)
        self._acked += 1
        return ResponseOutcome(mrid=mrid, status=status, acked=True, http_status=answered)
