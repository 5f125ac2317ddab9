"""The log's own event types."""

from __future__ import annotations

import msgspec

from events.base import Event

__all__ = ["LOG_EVENT_TYPES", "Snapshot", "snapshot_stream"]


class Snapshot(Event, frozen=True, kw_only=True, tag="log.snapshot.v1"):
    """The state of the fold ``projection`` after every record up to and including ``through_seq``.

    A snapshot is an ordinary record in the stream ``snapshot:<projection>``; replay starts from the
    newest one and folds the records after ``through_seq``. ``state`` is the state's msgspec JSON.
    """

    projection: str
    through_seq: int
    state: msgspec.Raw


def snapshot_stream(projection: str) -> str:
    return f"snapshot:{projection}"


LOG_EVENT_TYPES: tuple[type[Event], ...] = (Snapshot,)
