"""Errors raised by the event log. Each names the file and, where there is one, the record."""

from __future__ import annotations

__all__ = [
    "ConcurrencyConflict",
    "CorruptRecord",
    "EventLogError",
    "LogDamaged",
    "LogFull",
    "LogLocked",
    "LogMissing",
    "LogNewerSchema",
    "LogUnwritable",
    "NotAnEventLog",
    "UnknownEventTag",
    "shorten",
]


class EventLogError(Exception):
    """Base of every error the event log raises."""


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message: a damaged record's field may be
    megabytes long, and the message must still fit on a screen."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


class LogMissing(EventLogError):
    def __init__(self, path: str) -> None:
        super().__init__(f"{path}: no such event log")
        self.path = path


class LogLocked(EventLogError):
    """Another writer holds the log (one writer per log): refused at once, naming the holder."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(
            f"{path}: the log is in use by another writer ({holder}); one gateway per log: stop "
            "that one first, or give this one another log.path"
        )
        self.path = path
        self.holder = holder


class LogUnwritable(EventLogError):
    """The writer cannot write the log where it is configured (no such folder, no permission,
    read-only file system)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: cannot write the log there: {why}")
        self.path = path
        self.why = why


class NotAnEventLog(EventLogError):
    """The file exists but is not a sep2gw event log (foreign file, or a damaged one)."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: not a sep2gw event log: {why}")
        self.path = path
        self.why = why


class LogNewerSchema(EventLogError):
    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"{path}: written by a newer sep2gw (log schema version {found}; this build reads up to "
            f"{supported}); upgrade sep2gw to read it, the file was not modified"
        )
        self.path = path
        self.found = found
        self.supported = supported


class LogDamaged(EventLogError):
    """The file's pages are damaged (a bad sector, a partial copy): records after ``after_seq`` are
    unreadable. Everything up to ``after_seq`` was read intact."""

    def __init__(self, path: str, after_seq: int, why: str) -> None:
        super().__init__(
            f"{path}: the file is damaged after record {after_seq}: {why}; the records before it "
            "are readable, copy the file again from the gateway if possible"
        )
        self.path = path
        self.after_seq = after_seq
        self.why = why


class LogFull(EventLogError):
    """The disk (or the configured size limit) is full; the batch was rolled back, nothing is lost."""

    def __init__(self, path: str, first_seq: int, count: int) -> None:
        super().__init__(
            f"{path}: disk full while appending records {first_seq}..{first_seq + count - 1}; "
            "the batch was rolled back and every earlier record is intact"
        )
        self.path = path
        self.first_seq = first_seq
        self.count = count


class ConcurrencyConflict(EventLogError):
    """Optimistic concurrency: the stream moved on since the writer last read it."""

    def __init__(self, stream: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream!r}: expected version {expected} but the log holds version {actual}; "
            "re-read the stream and decide again"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class UnknownEventTag(EventLogError):
    def __init__(self, tag: str, *, where: str = "") -> None:
        place = f"{where}: " if where else ""
        super().__init__(
            f"{place}unknown event type {shorten(tag)!r}: the log was written by a build that "
            "knows event types this one does not, or the record was altered"
        )
        self.tag = tag
        self.where = where


class CorruptRecord(EventLogError):
    def __init__(self, where: str, seq: int, why: str) -> None:
        super().__init__(f"{where}: record {seq}: {shorten(why, 200)}")
        self.where = where
        self.seq = seq
        self.why = why
