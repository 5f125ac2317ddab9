"""What the log stores around each event: position, stream, times and the hash chain link."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from events.base import Event

__all__ = ["Append", "RawRecord", "Recorded"]


class Recorded(msgspec.Struct, frozen=True, gc=False):
    """One record of the log, as read back.

    ``seq`` is the global, gapless position (1, 2, 3, …). ``version`` is the position within ``stream``
    (1, 2, 3, … per stream). ``server_time`` is UTC epoch seconds on the utility server's clock (the
    device clock plus the learned offset) and ``monotonic`` the gateway's monotonic clock, both at the
    moment the writer decided. ``hash`` chains this record to the previous one.
    """

    seq: int
    stream: str
    version: int
    server_time: float
    monotonic: float
    event: Event
    hash: bytes


class RawRecord(msgspec.Struct, frozen=True, gc=False):
    """A record as stored, body undecoded: what verification and export work on."""

    seq: int
    stream: str
    version: int
    type: str
    server_time: float
    monotonic: float
    body: bytes
    hash: bytes


class Append(msgspec.Struct, frozen=True, kw_only=True):
    """A request to append ``events`` to ``stream``, decided at ``server_time``/``monotonic``.

    ``expected_version`` is optimistic concurrency: ``None`` appends whatever the stream holds, ``0``
    requires a new stream, ``n`` requires the stream to be at version ``n``.
    """

    stream: str
    events: Sequence[Event]
    server_time: float
    monotonic: float
    expected_version: int | None = None
