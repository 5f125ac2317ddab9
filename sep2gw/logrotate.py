"""Log rotation that keeps the evidence (issue 20 point 3): ``sep2gw log rotate``.

A gateway's log grows for as long as the site runs (``log.max_bytes`` bounds it by shedding
telemetry detail, never decisions). Rotation closes one log and starts the next without breaking
the chain of evidence:

1. the writer lock is taken, so a running gateway is never rotated under (refused, naming it);
2. the log is verified in full (chain, bodies, snapshots, signed checkpoints): only a log that
   verifies is archived, as vouching for a tampered one would launder it;
3. it is archived, untouched, in the same folder (or another on the same file system) under a
   name that carries its head — ``site.20251126T031500Z-seq81234-0a1b2c3d4e5f.sep2gw`` — and
   made read-only;
4. a new log starts at the old path whose first record, :class:`PreviousLogArchived`, states the
   archive's path, head record, head hash and head time: ``sep2gw log verify NEW --previous
   ARCHIVE`` checks that the archive still ends with exactly that head.

Nothing is carried across: a gateway started on the new log rediscovers its schedule from the
server (docs/service.md says when to rotate).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from events.envelope import Append
from events.errors import LogMissing
from events.log_events import LOG_STREAM, PreviousLogArchived
from events.log_lock import LogHolder, LogLock
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from events.verification import Head
from sep2gw.logtrust import check_checkpoints
from sep2gw.projections import PROJECTIONS

__all__ = [
    "NotRotated",
    "Rotated",
    "archive_name",
    "check_predecessor",
    "predecessor_of",
    "rotate",
]

_COMPANIONS = ("-wal", "-shm", "-journal")
_READ_ONLY = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH


class NotRotated(ValueError):
    """The log was not rotated: it does not verify (``check_failed``) or cannot be (an archive
    of that name exists, an empty log)."""

    def __init__(self, message: str, *, check_failed: bool = False) -> None:
        super().__init__(message)
        self.check_failed = check_failed


class Rotated(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`rotate` did: ``archive`` holds the ``records`` of the old log, ending at
    ``head``; ``new`` starts with the :class:`PreviousLogArchived` record naming it."""

    archive: Path
    new: Path
    head: Head
    head_time_s: float
    records: int
    signed_through: int | None


def archive_name(log: Path, head: Head, head_time_s: float) -> str:
    """``<stem>.<UTC time of the head>-seq<head>-<first 12 hex of its hash><suffix>``: the name
    alone tells which log it was, up to when, and which head it must still end with."""
    stamp = datetime.fromtimestamp(head_time_s, UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{log.stem}.{stamp}-seq{head.seq}-{head.hash.hex()[:12]}{log.suffix or '.sep2gw'}"


def rotate(
    log: Path,
    *,
    archive_dir: Path | None,
    holder: LogHolder,
    server_time: float,
    monotonic: float,
) -> Rotated:
    """Archive ``log`` (verified, read-only, named by its head) and start a new one at its path
    chained to it; see the module doc. Raises ``LogLocked`` (a gateway is writing it), the
    ``EventLogError`` of a file that is not a readable log, or :class:`NotRotated`."""
    if not log.exists():
        raise LogMissing(str(log))
    folder = archive_dir if archive_dir is not None else log.parent
    if not folder.is_dir():
        raise NotRotated(f"the archive folder {folder} does not exist")
    lock = LogLock.acquire(log, holder)  # refuses at once while a gateway holds the log
    try:
        with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
            report = store.verify(PROJECTIONS)
            if not report.ok:
                raise NotRotated(f"not rotated: {report.describe()}", check_failed=True)
            checkpoints = check_checkpoints(store)
            if not checkpoints.ok:
                raise NotRotated(f"not rotated: {log}: {checkpoints.describe()}", check_failed=True)
            head = store.head()
            if head.seq == 0:
                raise NotRotated(f"not rotated: {log} holds no records")
            last = next(iter(store.read(head.seq)))
        archive = folder / archive_name(log, head, last.server_time)
        if archive.exists():
            raise NotRotated(f"not rotated: {archive} exists; an archive is never overwritten")
        # A writer's close folds the WAL into the file: the archive is one self-contained file.
        SqliteEventStore(log, CATALOGUE, create=False).close()
        _move(log, archive)
        with SqliteEventStore(archive, CATALOGUE, readonly=True) as kept:
            if kept.head() != head:  # moved, never rewritten: anything else is a bug, said plainly
                raise NotRotated(f"the archive {archive} does not end with the verified head")
        for file in _with_companions(archive):
            file.chmod(_READ_ONLY)
        same_folder = archive.parent.resolve() == log.parent.resolve()
        with SqliteEventStore(log, CATALOGUE) as new:
            new.append(
                [
                    Append(
                        stream=LOG_STREAM,
                        events=(
                            PreviousLogArchived(
                                archived_as=archive.name if same_folder else str(archive.resolve()),
                                head_seq=head.seq,
                                head_hash=head.hash.hex(),
                                head_time_s=last.server_time,
                                records=report.records,
                            ),
                        ),
                        server_time=server_time,
                        monotonic=monotonic,
                    )
                ]
            )
    finally:
        lock.release()
    return Rotated(
        archive=archive,
        new=log,
        head=head,
        head_time_s=last.server_time,
        records=report.records,
        signed_through=checkpoints.last_through_seq,
    )


def predecessor_of(store: SqliteEventStore) -> PreviousLogArchived | None:
    """The archive a rotated log continues (its first record), or ``None``."""
    first = next(iter(store.read(1)), None)
    if first is not None and isinstance(first.event, PreviousLogArchived):
        return first.event
    return None


def check_predecessor(store: SqliteEventStore, archive: Path) -> str | None:
    """Whether ``archive`` is the log ``store`` continues: it verifies (chain and signed
    checkpoints) and ends with exactly the head the rotation recorded. ``None`` when it is; else
    what is wrong, in one line."""
    named = predecessor_of(store)
    if named is None:
        return f"{store.where} is not a rotated log (its first record names no archived log)"
    with SqliteEventStore(archive, CATALOGUE, readonly=True) as kept:
        report = kept.verify(PROJECTIONS)
        if not report.ok:
            return f"the archive does not verify: {report.describe()}"
        checkpoints = check_checkpoints(kept)
        if not checkpoints.ok:
            return f"the archive {archive}: {checkpoints.describe()}"
        head = kept.head()
    if head.seq != named.head_seq or head.hash.hex() != named.head_hash:
        return (
            f"{archive} ends at record {head.seq} (hash {head.hash.hex()[:16]}…), but the log "
            f"continues record {named.head_seq} (hash {named.head_hash[:16]}…) of "
            f"{named.archived_as}: not its predecessor, or cut short or extended since"
        )
    return None


def _with_companions(path: Path) -> list[Path]:
    return [path] + [
        path.with_name(path.name + suffix)
        for suffix in _COMPANIONS
        if path.with_name(path.name + suffix).exists()
    ]


def _move(log: Path, archive: Path) -> None:
    """Move the log and any SQLite companion (a reader may keep a WAL alive) without ever
    overwriting: a hard link, then the old name removed; a copy across file systems."""
    for file in _with_companions(log):
        target = archive.with_name(archive.name + file.name[len(log.name) :])
        try:
            os.link(file, target)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            with file.open("rb") as src, target.open("xb") as dst:
                shutil.copyfileobj(src, dst)
                dst.flush()
                os.fsync(dst.fileno())
        file.unlink()
