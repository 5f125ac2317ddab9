"""The durable event store: one SQLite file (stdlib ``sqlite3``), WAL journal, one row per event.

Durability: every batch is one ``BEGIN IMMEDIATE … COMMIT`` transaction with ``synchronous=FULL`` in
WAL mode, so SQLite syncs the WAL before ``append`` returns: an acknowledged append survives ``kill -9``
and power loss, and a torn batch is impossible because uncommitted WAL frames are never replayed.
Many events per batch share one sync (group commit); the log actor batches what arrives together.

Operators can read the file with plain tools::

    sqlite3 site.sep2gw "select seq, datetime(server_time,'unixepoch'), type,
                         json_extract(body,'$.mrid') from events where stream like 'control:%'"
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from events.base import Event
from events.catalogue import Catalogue
from events.envelope import Append, RawRecord, Recorded
from events.errors import (
    CorruptRecord,
    LogDamaged,
    LogFull,
    LogMissing,
    LogNewerSchema,
    LogUnwritable,
    NotAnEventLog,
)
from events.hashchain import GENESIS, Row
from events.log_events import snapshot_stream
from events.log_lock import LogHolder, LogLock
from events.replay import Projection
from events.store import (
    SNAPSHOT_TAG,
    VERIFY_BATCH,
    EventStore,
    Head,
    Problem,
    VerifyReport,
    plan_append,
)

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SqliteEventStore"]

#: ``PRAGMA application_id`` of a sep2gw log: ASCII "S2GW". Tells our files from foreign SQLite files.
APPLICATION_ID: Final = 0x53324757
#: The schema version this build writes; ``PRAGMA user_version`` records a file's version.
SCHEMA_VERSION: Final = 1

_SCHEMA_V1 = (
    """
    CREATE TABLE events (
        seq         INTEGER PRIMARY KEY,
        stream      TEXT    NOT NULL,
        version     INTEGER NOT NULL,
        type        TEXT    NOT NULL,
        server_time REAL    NOT NULL,
        monotonic   REAL    NOT NULL,
        body        TEXT    NOT NULL,
        hash        BLOB    NOT NULL,
        UNIQUE (stream, version)
    )
    """,
    "CREATE INDEX events_by_type ON events (type, seq)",
    "CREATE INDEX events_by_server_time ON events (server_time)",
    """
    CREATE TABLE head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash BLOB    NOT NULL
    )
    """,
    "INSERT INTO head (id, seq, hash) VALUES (1, 0, zeroblob(32))",
)

#: ``MIGRATIONS[n]`` takes a file from schema version ``n`` to ``n + 1`` (0 is an empty file).
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {0: _SCHEMA_V1}

_INSERT = (
    "INSERT INTO events (seq, stream, version, type, server_time, monotonic, body, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_COLUMNS = "seq, stream, version, server_time, monotonic, body, hash"
#: Prepared statements the writer's connection keeps (Python's default: 128). Appending uses a
#: handful, over and over; the reads' statements vary with their filters and each kept one holds
#: SQLite's compiled program: 128 of them were ~75 kB a log, 75 MB for a fleet of 1,000 sites
#: (decision 0022h).
WRITER_STATEMENTS: Final = 16
_FETCH = 2048
#: Rows as stored (``Row``). Bodies are stored as JSON text (queryable with json_extract); SQLite
#: hands back the same bytes as a BLOB, which spares an encode per record.
_RAW_QUERY = (
    "SELECT seq, stream, version, type, server_time, monotonic, CAST(body AS BLOB), hash "
    "FROM events WHERE seq >= ? ORDER BY seq"
)


#: The ``-shm`` index of a WAL of up to 4096 frames (the WAL budget below stays under that).
_SHM_BYTES: Final = 32 * 1024


def _wal_budget(max_bytes: int) -> int:
    """The part of ``max_bytes`` the WAL may take between commits."""
    return max(64 * 1024, min(max_bytes // 8, 4 << 20))


class SqliteEventStore(EventStore):
    """A sep2gw event log in one SQLite file. One process writes; any number may read.

    ``create``: make the file if it is missing. ``readonly``: never modify the file nor create any
    next to it (operators' tools open copied logs this way, on read-only media too; see
    :func:`_reader_uri`). ``follow``: a reader that must see a live writer's later appends
    (``log tail --follow``, the run's timeline). ``max_bytes``: refuse appends past this file size
    with ``LogFull``, the ``-wal`` and ``-shm`` counted (:meth:`_bound_files`). ``exclusive``: take the log's writer lock for ``holder`` (one writer per log,
    :mod:`events.log_lock`); a second writer is refused with ``LogLocked``; ``close`` releases it.
    ``cache_kib``: the most SQLite's page cache holds for this connection (default: SQLite's own,
    about 2 MiB); a process that keeps a log per site open for a thousand sites bounds it (issue
    19, decision 0022f): the writer touches only the last pages of the table and its indexes.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        catalogue: Catalogue,
        *,
        create: bool = True,
        readonly: bool = False,
        follow: bool = False,
        max_bytes: int | None = None,
        exclusive: LogHolder | None = None,
        cache_kib: int | None = None,
    ) -> None:
        if exclusive is not None and readonly:
            raise ValueError("a read-only store takes no writer lock")
        if cache_kib is not None and (isinstance(cache_kib, bool) or cache_kib < 1):
            raise ValueError(f"cache_kib must be a positive number of KiB, got {cache_kib!r}")
        self.catalogue = catalogue
        self.path = Path(path)
        self.where = str(self.path)
        self._private: Path | None = None  # a reader's private copy of a log and its WAL
        self._uri: str | None = None  # how a reader opened the log
        if not self.path.exists():
            if readonly or not create:
                raise LogMissing(self.where)
            if not self.path.parent.is_dir():
                raise LogUnwritable(self.where, f"the folder {self.path.parent} does not exist")
        elif self.path.is_dir():
            raise NotAnEventLog(self.where, "it is a directory")
        self._writer_lock = None if exclusive is None else LogLock.acquire(self.path, exclusive)
        try:
            conn = self._connect(readonly=readonly, follow=follow)
        except BaseException:
            self._release()
            raise
        self._conn = conn
        # The log actor commits from a worker thread while actors read (replay at start) on the event
        # loop's thread: one connection, so a reader must never run inside a writer's transaction.
        self._lock = threading.RLock()
        try:
            self._open(readonly=readonly)
        except BaseException:
            conn.close()
            self._release()
            raise
        if cache_kib is not None:
            conn.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # negative: KiB, not pages
        self._page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        self._max_pages: int | None = None
        self._wal_budget: int | None = None
        if max_bytes is not None and not readonly:
            self._bound_files(max_bytes)
        self._versions: dict[str, int] = {}
        self._head = self._read_head()
        self._writable = not readonly

    def _bound_files(self, max_bytes: int) -> None:
        """Issue 16 point 5: ``max_bytes`` bounds the log's files on disk, its ``-wal`` and
        ``-shm`` included. The WAL gets a budget (an eighth of ``max_bytes``, 64 KiB to 4 MiB) and
        is checkpointed and truncated whenever a commit leaves it larger (:meth:`_bound_wal`);
        ``-shm`` stays at its 32 KiB while the WAL is that small; the database gets the rest as
        ``max_page_count``, past which SQLite refuses a transaction (``LogFull``, rolled back, never
        corrupt). Between commits the three files together stay within ``max_bytes``; a commit in
        flight may exceed it by its own pages until the checkpoint that follows it."""
        self._wal_budget = _wal_budget(max_bytes)
        self._max_pages = max(1, (max_bytes - self._wal_budget - _SHM_BYTES) // self._page_size)
        conn = self._conn
        conn.execute(f"PRAGMA max_page_count={self._max_pages}")
        conn.execute(f"PRAGMA journal_size_limit={self._wal_budget}")
        self._bound_wal()

    def _bound_wal(self) -> None:
        """Checkpoint the WAL into the database and truncate it once it outgrows its budget. A
        checkpoint that cannot finish now (a reader holds an old snapshot) is tried again after
        the next commit; the commit itself has succeeded either way."""
        if self._wal_budget is None:
            return
        try:
            size = os.stat(f"{self.path}-wal").st_size
        except OSError:
            return
        if size > self._wal_budget:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.OperationalError:
                pass

    def bytes_on_disk(self) -> int:
        """The log's files as they are now: the database, its ``-wal`` and its ``-shm``."""
        total = 0
        for name in (str(self.path), f"{self.path}-wal", f"{self.path}-shm"):
            try:
                total += os.stat(name).st_size
            except OSError:
                pass
        return total

    def space_left(self) -> int | None:
        """What the log can still grow by: the pages ``max_bytes`` leaves the database (free pages
        count), and the free space of the file system the log is on, whichever is less."""
        left: int | None = None
        if self._max_pages is not None:
            with self._lock:
                pages = int(self._conn.execute("PRAGMA page_count").fetchone()[0])
                free = int(self._conn.execute("PRAGMA freelist_count").fetchone()[0])
            left = max(0, self._max_pages - pages + free) * self._page_size
        try:
            stat = os.statvfs(self.path.parent)
        except OSError:
            return left
        disk = stat.f_bavail * stat.f_frsize
        return disk if left is None else min(left, disk)

    def _connect(self, *, readonly: bool, follow: bool) -> sqlite3.Connection:
        try:
            if not readonly:
                conn = sqlite3.connect(
                    self.path,
                    isolation_level=None,
                    check_same_thread=False,
                    cached_statements=WRITER_STATEMENTS,
                )
                conn.execute("PRAGMA schema_version").fetchone()  # SQLite opens lazily
                return conn
            self._uri = self._reader_uri(follow=follow)
            return sqlite3.connect(
                self._uri, uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.DatabaseError as exc:
            if not readonly and _is_cannot_open(exc):
                raise LogUnwritable(self.where, _cannot_open_why(self.path)) from None
            if _is_notadb(exc):
                raise NotAnEventLog(self.where, f"not an SQLite database ({exc})") from None
            if readonly and not os.access(self.path, os.R_OK):
                raise NotAnEventLog(
                    self.where, "cannot open it: no permission to read it"
                ) from None
            raise NotAnEventLog(self.where, f"cannot open: {exc}") from None
        except OSError as exc:
            raise NotAnEventLog(self.where, f"cannot open: {exc.strerror or exc}") from None

    def _reader_uri(self, *, follow: bool) -> str:
        """How a reader opens the log without creating or changing a file next to it.

        A log at rest (no ``-wal`` with records in it: a gateway that stopped cleanly, or a copy of
        its file) is opened ``immutable``: no locks, no ``-wal``/``-shm`` created, works on read-only
        media. A live log (its ``-wal`` and ``-shm`` exist) and a followed one are opened
        ``mode=ro`` through SQLite's shared memory, so the writer's later appends are seen; the
        files it needs are already there. A copy taken with its ``-wal`` but without ``-shm`` holds
        records only the WAL has: it is read from a private copy in a temporary folder, removed on
        ``close``, so the original folder is never written.
        """
        wal = Path(f"{self.path}-wal")
        shm = Path(f"{self.path}-shm")
        live = wal.exists() and shm.exists()
        # Following needs SQLite's shared memory; on read-only media no writer can append anyway.
        if live or (follow and os.access(self.path.parent, os.W_OK | os.X_OK)):
            return f"{self.path.resolve().as_uri()}?mode=ro"
        if wal.exists() and wal.stat().st_size > 0:
            self._private = Path(tempfile.mkdtemp(prefix="sep2gw-log-"))
            copy = self._private / "log.sep2gw"
            shutil.copyfile(self.path, copy)
            shutil.copyfile(wal, f"{copy}-wal")
            return f"{copy.as_uri()}?mode=ro"
        return f"{self.path.resolve().as_uri()}?immutable=1"

    @property
    def reader_uri(self) -> str:
        """The URI a second read-only connection of this log uses (the structural check): the
        reader's own, so it creates no file either."""
        return self._uri or f"{self.path.resolve().as_uri()}?mode=ro"

    def _release(self) -> None:
        if self._writer_lock is not None:
            self._writer_lock.release()
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
            self._private = None

    # -- opening, schema and migrations ------------------------------------------------------------

    def _open(self, *, readonly: bool) -> None:
        conn = self._conn
        try:
            application_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise NotAnEventLog(self.where, f"not an SQLite database ({exc})") from None
        if application_id == 0 and tables == 0 and version == 0:
            if readonly:
                raise NotAnEventLog(self.where, "the file is empty")
        elif application_id != APPLICATION_ID:
            raise NotAnEventLog(
                self.where,
                f"an SQLite database of another application (application_id {application_id:#x})",
            )
        elif version == 0:
            # Our mark on a file without our tables: a log whose creation never committed, or a
            # foreign file stamped with our id. Refused: the writer would migrate over whatever the
            # file holds; the reader has nothing to read.
            raise NotAnEventLog(
                self.where, "it bears sep2gw's application id but holds no log schema (version 0)"
            )
        if version > SCHEMA_VERSION:
            raise LogNewerSchema(self.where, version, SCHEMA_VERSION)
        if version:
            self._check_tables()
        if readonly:
            if version < SCHEMA_VERSION:
                raise NotAnEventLog(
                    self.where,
                    f"log schema version {version} needs migrating to {SCHEMA_VERSION}; "
                    "open it once read-write",
                )
            return
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            self._migrate(version)
        except sqlite3.OperationalError as exc:
            if _is_cannot_write(exc):
                raise LogUnwritable(self.where, _cannot_open_why(self.path)) from None
            raise

    def _check_tables(self) -> None:
        names = {
            row[0]
            for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        missing = [name for name in ("events", "head") if name not in names]
        if missing:
            raise NotAnEventLog(self.where, f"the log's table(s) {', '.join(missing)} are missing")

    def _migrate(self, version: int) -> None:
        conn = self._conn
        while version < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
                conn.execute(f"PRAGMA user_version={version}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the log. A writer first folds its write-ahead log into the database file, so the
        one ``.sep2gw`` file copied off a site holds every record (SQLite folds it on its own only
        when the last connection closes: a reader still following the log would leave the records
        in ``-wal``). A checkpoint that cannot finish leaves them in ``-wal``, where they are safe."""
        if self._writable:
            with self._lock:
                try:
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                except sqlite3.DatabaseError:
                    pass
        self._conn.close()
        self._release()

    # -- writing -------------------------------------------------------------------------------

    def _read_head(self) -> Head:
        try:
            row = self._conn.execute("SELECT seq, hash FROM head WHERE id = 1").fetchone()
        except sqlite3.DatabaseError as exc:
            if _is_damage(exc):
                raise LogDamaged(self.where, 0, str(exc)) from exc
            raise
        if row is None:
            raise NotAnEventLog(self.where, "the head record is missing")
        seq, digest = row
        return Head(int(seq), bytes(digest) if seq else GENESIS)

    def append(self, appends: Sequence[Append]) -> list[Recorded]:
        with self._lock:
            return self._append(appends)

    def _append(self, appends: Sequence[Append]) -> list[Recorded]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            head = self._read_head()
            if head != self._head:
                # Another writer appended since we last looked: cached stream versions are stale.
                self._versions.clear()
                self._head = head
            plan = plan_append(appends, self.catalogue, head, self._committed_version)
            if plan.rows:
                conn.executemany(_INSERT, _as_text_rows(plan.rows))
                last = plan.rows[-1]
                conn.execute("UPDATE head SET seq = ?, hash = ? WHERE id = 1", (last[0], last[7]))
            conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            self._rollback()
            if _is_full(exc):
                count = sum(len(a.events) for a in appends)
                raise LogFull(self.where, self._head.seq + 1, count) from exc
            raise
        except BaseException:
            self._rollback()
            raise
        self._versions.update(plan.versions)
        if plan.rows:
            self._head = Head(plan.rows[-1][0], plan.rows[-1][7])
        self._bound_wal()
        return plan.records

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _committed_version(self, stream: str) -> int:
        version = self._versions.get(stream)
        if version is None:
            row = self._conn.execute(
                "SELECT max(version) FROM events WHERE stream = ?", (stream,)
            ).fetchone()
            version = int(row[0] or 0)
            self._versions[stream] = version
        return version

    # -- reading -------------------------------------------------------------------------------

    def head(self) -> Head:
        with self._lock:
            self._head = self._read_head()
        return self._head

    def first_seq_since(self, server_time: float) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT min(seq) FROM events WHERE server_time >= ?", (server_time,)
            ).fetchone()
            if row[0] is not None:
                return int(row[0])
            return self._read_head().seq + 1

    def stream_version(self, stream: str) -> int:
        with self._lock:
            return self._stream_version(stream)

    def _stream_version(self, stream: str) -> int:
        row = self._conn.execute(
            "SELECT max(version) FROM events WHERE stream = ?", (stream,)
        ).fetchone()
        return int(row[0] or 0)

    def read(
        self,
        from_seq: int = 1,
        to_seq: int | None = None,
        *,
        stream: str | None = None,
        types: Iterable[str] | None = None,
    ) -> Iterator[Recorded]:
        where = ["seq >= ?"]
        args: list[object] = [from_seq]
        if to_seq is not None:
            where.append("seq <= ?")
            args.append(to_seq)
        if stream is not None:
            where.append("stream = ?")
            args.append(stream)
        if types is not None:
            tags = list(types)
            where.append(f"type IN ({', '.join('?' * len(tags))})")
            args.extend(tags)
        query = f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq"
        return self._decode_rows(query, args, from_seq - 1)

    def verify(
        self,
        projections: Mapping[str, Projection[Any]] | None = None,
        *,
        parallel: bool = True,
    ) -> VerifyReport:
        """The records' checks, and SQLite's own structural check of pages and indexes.

        The structural check (``PRAGMA quick_check``: ~0.3 s for a month of records) runs on a
        second read-only connection in a thread alongside the records' pass; SQLite releases the
        GIL while it works, so on a second core it costs the pass nothing. ``parallel=False``, or
        a second connection that cannot be opened, runs it after the pass on this connection.
        """
        aside = _QuickCheck.start(self.reader_uri) if parallel else None
        try:
            report = super().verify(projections)
        except BaseException:
            if aside is not None:
                aside.cancel()
            raise
        if not report.ok:
            if aside is not None:
                aside.cancel()
            return report
        findings = aside.result() if aside is not None else None
        if findings is None:
            with self._lock:
                findings = _quick_check(self._conn)
        if findings != ["ok"]:
            return msgspec.structs.replace(
                report,
                problem=Problem(None, f"the file's structure is damaged: {'; '.join(findings)}"),
            )
        return report

    def quick_check(self) -> list[str]:
        """SQLite's structural check of pages and indexes (``["ok"]`` when sound), as
        :meth:`verify` runs it."""
        with self._lock:
            return _quick_check(self._conn)

    def _rows(
        self, query: str, args: Sequence[object], before: int, *, fetch: int = _FETCH
    ) -> Iterator[list[Any]]:
        """Batches of rows; a damaged page becomes LogDamaged naming the last good record."""
        last = before
        try:
            with self._lock:
                cursor = self._conn.execute(query, args)
            while True:
                with self._lock:
                    rows = cursor.fetchmany(fetch)
                if not rows:
                    return
                yield rows
                last = rows[-1][0]
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            damage = exc
        # Re-read one row at a time past the last batch delivered, so every readable record before
        # the damage is still delivered and the error names the last good one exactly.
        try:
            with self._lock:
                cursor = self._conn.execute(query, args)
            while (row := cursor.fetchone()) is not None:
                if row[0] > last:
                    yield [row]
                    last = row[0]
        except sqlite3.DatabaseError as exc:
            if not _is_damage(exc):
                raise
            damage = exc
        raise LogDamaged(self.where, last, str(damage)) from damage

    def _decode_rows(self, query: str, args: Sequence[object], before: int) -> Iterator[Recorded]:
        catalogue = self.catalogue
        where = self.where
        make = Recorded
        for rows in self._rows(query, args, before):
            events = catalogue.decode_batch([row[5] for row in rows])
            if events is None:
                # Some body does not decode: deliver the ones before it, then raise naming it.
                events_iter: Iterable[Event] = (_decode_one(catalogue, where, row) for row in rows)
            else:
                events_iter = events
            for (seq, stream, version, server_time, monotonic, _, digest), event in zip(
                rows, events_iter, strict=True
            ):
                yield make(seq, stream, version, server_time, monotonic, event, digest)

    def read_raw(self, from_seq: int = 1) -> Iterator[RawRecord]:
        make = RawRecord
        for rows in self._rows(_RAW_QUERY, (from_seq,), from_seq - 1):
            for row in rows:
                yield make(*row)

    def read_raw_rows(self, from_seq: int = 1) -> Iterator[list[Row]]:
        return self._rows(_RAW_QUERY, (from_seq,), from_seq - 1, fetch=VERIFY_BATCH)

    def latest_snapshot(
        self, projection: str, *, at_or_before: int | None = None
    ) -> Recorded | None:
        query = f"SELECT {_COLUMNS} FROM events WHERE stream = ? AND type = ?"
        args: list[object] = [snapshot_stream(projection), SNAPSHOT_TAG]
        if at_or_before is not None:
            query += " AND json_extract(body, '$.through_seq') <= ?"
            args.append(at_or_before)
        query += " ORDER BY version DESC LIMIT 1"
        return next(self._decode_rows(query, args, 0), None)

    def execute(self, sql: str, args: Sequence[object] = ()) -> sqlite3.Cursor:
        """Run a read-only query for tools (``log inspect``)."""
        with self._lock:
            return self._conn.execute(sql, args)


def _decode_one(catalogue: Catalogue, where: str, row: Sequence[Any]) -> Event:
    """One stored body as its event; a body that is not a readable event is a ``CorruptRecord``
    naming the record (never a decoder's exception, whose text may quote megabytes of body)."""
    try:
        return catalogue.decode(row[5], where=f"{where}: record {row[0]}")
    except msgspec.MsgspecError as exc:
        raise CorruptRecord(where, row[0], f"the body is not a readable event ({exc})") from None


def _quick_check(conn: sqlite3.Connection) -> list[str]:
    """SQLite's check of the file's pages and indexes: ``["ok"]`` or up to five findings."""
    try:
        return [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]


class _QuickCheck:
    """:func:`_quick_check` in a thread, on a read-only connection of its own."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._findings: list[str] | None = None
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="sep2gw-quick-check", daemon=True)

    @classmethod
    def start(cls, uri: str) -> _QuickCheck | None:
        try:
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error:
            return None  # the caller checks on its own connection
        check = cls(conn)
        check._thread.start()
        return check

    def _run(self) -> None:
        if not self._cancelled:
            self._findings = _quick_check(self._conn)

    def result(self) -> list[str] | None:
        self._thread.join()
        self._conn.close()
        return self._findings

    def cancel(self) -> None:
        """The records already failed: stop the structural check (its answer is not wanted);
        one not started yet never starts."""
        self._cancelled = True
        self._conn.interrupt()
        self.result()


def _as_text_rows(
    rows: list[Row],
) -> Iterator[tuple[int, str, int, str, float, float, str, bytes]]:
    # Bodies are stored as TEXT so that json_extract works on them (a BLOB would be read as JSONB).
    for seq, stream, version, type_tag, server_time, monotonic, body, digest in rows:
        yield seq, stream, version, type_tag, server_time, monotonic, body.decode(), digest


def _is_damage(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or "malformed" in str(exc)


def _is_notadb(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_NOTADB


def _is_cannot_open(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
    )


def _is_cannot_write(exc: sqlite3.DatabaseError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF in (
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PERM,
        sqlite3.SQLITE_IOERR,
    )


def _cannot_open_why(path: Path) -> str:
    """Why SQLite could not open or write the log at ``path``, in the operator's terms."""
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return f"the file system of {folder} is read-only"
    except OSError:
        pass
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"no permission to write in the folder {folder}"
    if path.exists() and not os.access(path, os.W_OK):
        return "the file is read-only (no permission to write it)"
    return f"SQLite cannot create or write the log or its -wal/-shm files in {folder}"


def _is_full(exc: sqlite3.OperationalError) -> bool:
    code: Callable[[], int] | int | None = getattr(exc, "sqlite_errorcode", None)
    return code == sqlite3.SQLITE_FULL or "full" in str(exc).lower()
