"""Events: msgspec event types, the event log (SQLite and in-memory stores) and replay folds.

This package imports nothing else of sep2gw: it is the bottom layer.
"""

from events.base import Event, InvalidEventTag, tag_of
from events.catalogue import Catalogue, Upcaster
from events.envelope import Append, RawRecord, Recorded
from events.errors import (
    ConcurrencyConflict,
    CorruptRecord,
    EventLogError,
    LogFull,
    LogMissing,
    LogNewerSchema,
    NotAnEventLog,
    UnknownEventTag,
)
from events.log_events import Snapshot, snapshot_stream
from events.memory_store import MemoryEventStore
from events.replay import Projection, fold, replay, snapshot_of
from events.sqlite_store import SqliteEventStore
from events.store import EventStore, Head, Problem, VerifyReport

__all__ = [
    "Append",
    "Catalogue",
    "ConcurrencyConflict",
    "CorruptRecord",
    "Event",
    "EventLogError",
    "EventStore",
    "Head",
    "InvalidEventTag",
    "LogFull",
    "LogMissing",
    "LogNewerSchema",
    "MemoryEventStore",
    "NotAnEventLog",
    "Problem",
    "Projection",
    "RawRecord",
    "Recorded",
    "Snapshot",
    "SqliteEventStore",
    "UnknownEventTag",
    "Upcaster",
    "VerifyReport",
    "fold",
    "replay",
    "snapshot_of",
    "snapshot_stream",
    "tag_of",
]
