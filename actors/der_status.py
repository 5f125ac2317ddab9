"""The DER status actor: PUTs DERStatus whenever what the device reports changes (PROTOCOL.md §2.7).

Fed by two latest-value mailboxes: the hardware actor's :class:`DeviceStatus` (after every sample
and whenever the control in force changes) and the registration actor's :class:`DerStatusTarget`
(the DERStatus href its walk found). ``actors.der_info.status_with_sources`` turns a device status
into the document; ``statemachines.der_status.StatusReporter`` decides when to PUT (the first full
status once a reading and a target are known, then every change, debounced, retried with a bounded
back-off). Each PUT is recorded with its reasons and outcome (``der_status.put.v1``).
"""

from __future__ import annotations

from typing import Literal

import anyio
import msgspec
from anyio.abc import TaskStatus

from actors.clock import Clock
from actors.der_info import status_with_sources
from actors.link import HttpFailure, Link, LinkHalted
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import DerStatusTarget, DeviceStatus
from events.der_status_events import DER_STATUS_STREAM, DerStatusPut
from events.envelope import Append
from statemachines.der_status import ReporterConfig, StatusPut, StatusReporter
from transport.errors import LinkError
from transport.sep2.mapping import status_to_wire

__all__ = ["DerStatusActor", "DerStatusStatistics"]


class DerStatusStatistics(msgspec.Struct, frozen=True):
    puts: int
    acked: int
    failed: int


class DerStatusActor:
    def __init__(
        self,
        *,
        link: Link,
        log: LogWriter,
        clock: Clock,
        device: Latest[DeviceStatus],
        targets: Latest[DerStatusTarget],
        config: ReporterConfig | None = None,
    ) -> None:
        self._link = link
        self._log = log
        self._clock = clock
        self._device = device
        self._targets = targets
        self.core = StatusReporter(config)
        self._from_control: tuple[str, ...] = ()
        self._wake = anyio.Event()
        self._puts = self._acked = self._failed = 0
        self._seen: DeviceStatus | None = None  # the device status the reporter last observed
        # A sample that would not move the next PUT's time does not wake this actor (the common
        # case, once a second per site); it is observed when the reporter next looks (_report).
        device.wake_only_if(self._replans)

    def statistics(self) -> DerStatusStatistics:
        return DerStatusStatistics(self._puts, self._acked, self._failed)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(self._follow_device)
            group.start_soon(self._follow_targets)
            task_status.started()
            await self._report()

    def _replans(self, observed: DeviceStatus) -> bool:
        """Whether this device status would move the next PUT's time (read only: it runs in the
        hardware actor's task, at its put)."""
        info, _ = status_with_sources(observed)
        return self.core.replans(info, control=observed.control_seq)

    def _observe(self, observed: DeviceStatus) -> None:
        if observed is self._seen:
            return
        self._seen = observed
        info, self._from_control = status_with_sources(observed)
        self.core.observed(info, self._clock.server_time(), control=observed.control_seq)

    async def _follow_device(self) -> None:
        """A status that moves the next PUT's time wakes the reporter; any other is observed when
        the reporter next looks (a status that owes nothing new, the common case once a second,
        costs neither actor a wake)."""
        while True:
            observed = await self._device.take()
            planned = self.core.next_deadline()
            self._observe(observed)
            if self.core.next_deadline() != planned:
                self._wake.set()

    async def _follow_targets(self) -> None:
        while True:
            target = await self._targets.take()
            self.core.target(target.href, self._clock.server_time())
            self._wake.set()

    async def _report(self) -> None:
        while True:
            now = self._clock.server_time()
            newest = self._device.peek()
            if newest is not None:
                self._observe(newest)  # the newest status goes out, woken for it or not
            put = self.core.due(now)
            if put is not None:
                await self._put(put)
                continue
            deadline = self.core.next_deadline()
            with anyio.move_on_after(float("inf") if deadline is None else max(deadline - now, 0)):
                await self._wake.wait()
            self._wake = anyio.Event()

    async def _put(self, put: StatusPut) -> None:
        """PROTOCOL.md §2.7: PUT the status; an answer other than 2xx or no answer is retried after
        the reporter's back-off (a halted link stops reporting: §2.4)."""
        self._puts += 1
        from_control = self._from_control
        try:
            await self._link.put(put.href, status_to_wire(put.status))
        except LinkHalted:
            self.core.halted()
            return
        except HttpFailure as failure:
            now = self._clock.server_time()
            delay = self.core.failed(put, now, retry_after_s=failure.retry_after_s)
            self._failed += 1
            await self._record(
                put, from_control, "refused", http_status=failure.status, retry_in_s=delay
            )
            return
        except LinkError as failure:
            now = self._clock.server_time()
            delay = self.core.failed(put, now)
            self._failed += 1
            await self._record(put, from_control, "failed", error=str(failure), retry_in_s=delay)
            return
        self.core.acknowledged(put, self._clock.server_time())
        self._acked += 1
        await self._record(put, from_control, "acked")

    async def _record(
        self,
        put: StatusPut,
        from_control: tuple[str, ...],
        outcome: Literal["acked", "refused", "failed"],
        *,
        http_status: int | None = None,
        error: str = "",
        retry_in_s: float | None = None,
    ) -> None:
        reading = self._clock.read()
        event = DerStatusPut(
            at_s=reading.server_time,
            href=put.href,
            status=put.status,
            reasons=put.reasons,
            from_control=from_control,
            outcome=outcome,
            http_status=http_status,
            error=error,
            retry_in_s=retry_in_s,
        )
        await self._log.append(
            [
                Append(
                    stream=DER_STATUS_STREAM,
                    events=(event,),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )
