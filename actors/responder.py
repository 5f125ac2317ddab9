"""The responder: POSTs each Response the controls actor hands it to the event's ``replyTo`` and
reports the outcome back (PROTOCOL.md §4 rule 16: acknowledged, refused for good on 4xx, or to be
retried on 5xx and network errors — the controls core decides which)."""

from __future__ import annotations

import anyio
import msgspec
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.link import HttpFailure, Link
from actors.messages import ControlsInput, ResponseOutcome, SendResponse
from events.control_events import NOT_SENT
from events.der_info import ControlResponse
from transport.errors import LinkError
from transport.sep2.mapping import response_to_wire

__all__ = ["ResponderActor", "ResponderStatistics"]


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
    ) -> None:
        self._link = link
        self._inbox = inbox
        self._report = report
        self._posted = self._acked = self._failed = 0

    def statistics(self) -> ResponderStatistics:
        return ResponderStatistics(self._posted, self._acked, self._failed)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with self._inbox, self._report:
            task_status.started()
            async for command in self._inbox:
                await self._report.send(await self._post(command))

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
