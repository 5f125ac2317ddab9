"""The log's own event types."""

from __future__ import annotations

import msgspec

from events.base import Event

__all__ = [
    "CHECKPOINT_STREAM",
    "LOG_EVENT_TYPES",
    "LOG_STREAM",
    "LogCheckpoint",
    "LogSetAsideReported",
    "LogShort",
    "LogShed",
    "PreviousLogArchived",
    "PreviousLogSetAside",
    "Snapshot",
    "snapshot_stream",
]

#: The stream of :class:`LogCheckpoint` records.
CHECKPOINT_STREAM = "checkpoint"
#: The stream of the log writer's own records (:class:`LogShort`, :class:`LogShed`).
LOG_STREAM = "log"


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


class LogCheckpoint(Event, frozen=True, kw_only=True, tag="log.checkpoint.v1"):
    """Keyed evidence: the gateway's device key signed the log's head as record ``through_seq``
    with hash ``head_hash`` (hex). Without the key, a chain recomputed end to end after an edit no
    longer matches the signed hashes (``sep2gw log verify`` checks them).

    ``signature``: ECDSA P-256 / SHA-256 (DER, hex) over ``checkpoint_message(...)`` of
    ``sep2gw.logtrust``; ``lfdi``: the signer's, from its certificate; ``certificate``: the signer's
    certificate (DER, hex) — carried by the first checkpoint a process writes, so a copy of the log
    can be checked on its own (and against the LFDI the utility knows).
    """

    through_seq: int
    head_hash: str
    signature: str
    lfdi: str
    certificate: str | None = None


class PreviousLogSetAside(Event, frozen=True, kw_only=True, tag="log.previous_set_aside.v1"):
    """The first record of a log started because the previous one did not verify on start.

    The old file was renamed, untouched otherwise, to ``kept_as`` (evidence); ``verified_records``
    records of it verified, ending with hash ``verified_head_hash`` (hex); ``finding`` is what
    verification said about the first bad record. Nothing of the old log was folded into decisions:
    the gateway starts afresh and rediscovers from the server."""

    kept_as: str
    verified_records: int
    verified_head_hash: str
    finding: str


class PreviousLogArchived(Event, frozen=True, kw_only=True, tag="log.previous_archived.v1"):
    """The first record of a log started by rotation (``sep2gw log rotate``): the previous log
    verified, ending at record ``head_seq`` with hash ``head_hash`` (hex), written at server time
    ``head_time_s``, and was archived, read-only, as ``archived_as`` (a path relative to this log's
    folder when it is in the same folder, else absolute). The two logs are one chain of evidence:
    ``sep2gw log verify NEW --previous ARCHIVE`` checks the archive still ends with that head.

    Nothing is folded across the boundary: a gateway started on the new log rediscovers its
    schedule from the server, as after a log set aside."""

    archived_as: str
    head_seq: int
    head_hash: str
    head_time_s: float
    records: int


class LogSetAsideReported(Event, frozen=True, kw_only=True, tag="log.set_aside_reported.v1"):
    """The alarm for :class:`PreviousLogSetAside` (record ``set_aside_seq``) was POSTed as a
    LogEvent to the EndDevice's LogEventList ``href`` (PROTOCOL.md §2.9) with ``details`` and
    ``log_event_id``; ``refused_status`` is the 4xx the server answered, if it refused it (not
    retried). Recorded so that the alarm is reported once, not at every start."""

    set_aside_seq: int
    href: str
    details: str
    log_event_id: int
    refused_status: int | None = None


class LogShort(Event, frozen=True, kw_only=True, tag="log.short_of_space.v1"):
    """The log ran short of space and the writer stopped recording telemetry detail (issue 16
    point 5): ``why`` says which limit (``log.max_bytes`` or the disk) and how much was left.
    Control decisions are still recorded (they wait if even the reserve is gone)."""

    why: str
    space_left_bytes: int | None = None


class LogShed(Event, frozen=True, kw_only=True, tag="log.shed.v1"):
    """Full recording resumed: while the log was short of space, ``counts`` records of each type
    (tag → count) observed between ``from_s`` and ``to_s`` (server time of the first and last) were
    not written. The log's honest account of its own gap."""

    counts: dict[str, int]
    from_s: float
    to_s: float


LOG_EVENT_TYPES: tuple[type[Event], ...] = (
    Snapshot,
    LogCheckpoint,
    PreviousLogSetAside,
    LogSetAsideReported,
    LogShort,
    PreviousLogArchived,
    LogShed,
)
