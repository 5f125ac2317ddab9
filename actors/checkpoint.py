"""The checkpoint actor: signs the log's head with the device key at intervals (keyed evidence).

A record's hash covers the one before it, so signing the newest hash vouches for every record up to
it: a chain recomputed after an edit no longer matches what was signed (``sep2gw log verify``). The
signing itself is the composition root's (``sign``): this actor only decides when and appends.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

from actors.clock import Clock
from events.envelope import Append
from events.errors import LogFull
from events.log_events import CHECKPOINT_STREAM, LogCheckpoint
from events.store import EventStore, Head

__all__ = ["CheckpointActor", "Signer"]

#: Signs a head; ``with_certificate`` asks for the signer's certificate in the record.
Signer = Callable[[Head, bool], LogCheckpoint]


class CheckpointActor:
    """Appends a :class:`LogCheckpoint` of the head now and then every ``every_s`` seconds while
    the log grew since the last one (an idle log is not signed again and again). The first one a
    process writes carries the certificate, so a copy of the log can be checked on its own."""

    def __init__(self, *, store: EventStore, clock: Clock, sign: Signer, every_s: float) -> None:
        if not every_s > 0:
            raise ValueError(f"every_s must be positive, got {every_s}")
        self._store = store
        self._clock = clock
        self._sign = sign
        self._every_s = every_s
        self._signed: Head | None = None

    def checkpoint_now(self) -> None:
        """Sign and append the head now (synchronously: also usable on the way out, cancelled)."""
        head = self._store.head()
        if head.seq == 0 or head == self._signed:
            return
        reading = self._clock.read()
        try:
            self._store.append(
                [
                    Append(
                        stream=CHECKPOINT_STREAM,
                        events=(self._sign(head, self._signed is None),),
                        server_time=reading.server_time,
                        monotonic=reading.monotonic,
                    )
                ]
            )
        except LogFull:
            return  # a full log is a degraded mode (issue 16 point 5): signed at the next one
        self._signed = self._store.head()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        self.checkpoint_now()
        task_status.started()
        while True:
            await self._clock.sleep_until_monotonic(self._clock.monotonic() + self._every_s)
            self.checkpoint_now()
