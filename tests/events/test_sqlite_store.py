"""What only the durable backend has to show: its file format, bad files, a full disk, tampering."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from events.errors import (
    ConcurrencyConflict,
    LogDamaged,
    LogFull,
    LogMissing,
    LogNewerSchema,
    NotAnEventLog,
)
from events.sqlite_store import APPLICATION_ID, SCHEMA_VERSION, SqliteEventStore
from tests.events.eventtypes import TEST_CATALOGUE, Deposited, Withdrawn


def make_log(path: Path, records: int = 10) -> None:
    with SqliteEventStore(path, TEST_CATALOGUE) as store:
        for i in range(1, records + 1):
            store.append_events(
                f"account:{'ab'[i % 2]}",
                [Deposited(account="ab"[i % 2], amount=i)],
                server_time=1_700_000_000.0 + i,
                monotonic=float(i),
            )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()


def test_records_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    with SqliteEventStore(path, TEST_CATALOGUE) as store:
        assert store.head().seq == 10
        assert store.stream_version("account:a") == 5
        more = store.append_events(
            "account:a", [Deposited(account="a", amount=0)], server_time=1.0, monotonic=1.0
        )
        assert (more[0].seq, more[0].version) == (11, 6)
        assert store.verify().ok


def test_operators_can_query_bodies_with_json_extract(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT seq, json_extract(body, '$.amount') FROM events "
        "WHERE type = 'test.deposited.v1' AND json_extract(body, '$.account') = 'a' ORDER BY seq"
    ).fetchall()
    plan = " ".join(
        r[3] for r in conn.execute("EXPLAIN QUERY PLAN SELECT * FROM events WHERE stream = 'x'")
    )
    conn.close()
    assert rows == [(2, 2), (4, 4), (6, 6), (8, 8), (10, 10)]
    assert "INDEX" in plan.upper()


def test_indexes_by_stream_type_and_server_time_exist(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path, 1)
    conn = sqlite3.connect(path)
    indexed = {
        row[0]
        for row in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index'")
        if row[0]
    }
    auto = conn.execute("PRAGMA index_list(events)").fetchall()
    conn.close()
    assert any("(type, seq)" in sql for sql in indexed)
    assert any("(server_time)" in sql for sql in indexed)
    assert any(row[2] == 1 for row in auto)  # UNIQUE (stream, version)


def test_file_records_application_id_and_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path, 1)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_missing_log_is_named(tmp_path: Path) -> None:
    with pytest.raises(LogMissing, match="nope.sep2gw: no such event log"):
        SqliteEventStore(tmp_path / "nope.sep2gw", TEST_CATALOGUE, readonly=True)
    with pytest.raises(LogMissing):
        SqliteEventStore(tmp_path / "nope.sep2gw", TEST_CATALOGUE, create=False)
    assert not (tmp_path / "nope.sep2gw").exists()


def test_foreign_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("this is not a database\n" * 100)
    before = digest(path)
    with pytest.raises(
        NotAnEventLog, match="notes.txt: not a sep2gw event log: not an SQLite database"
    ):
        SqliteEventStore(path, TEST_CATALOGUE)
    assert digest(path) == before


def test_foreign_sqlite_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    before = digest(path)
    with pytest.raises(NotAnEventLog, match="another application"):
        SqliteEventStore(path, TEST_CATALOGUE)
    assert digest(path) == before


def test_log_from_a_newer_schema_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.sep2gw"
    make_log(path, 3)
    tamper(path, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = digest(path)
    with pytest.raises(LogNewerSchema, match=f"schema version {SCHEMA_VERSION + 1}") as info:
        SqliteEventStore(path, TEST_CATALOGUE)
    assert info.value.path == str(path)
    assert digest(path) == before


def test_empty_file_is_initialised_by_migration(tmp_path: Path) -> None:
    path = tmp_path / "empty.sep2gw"
    path.touch()
    with SqliteEventStore(path, TEST_CATALOGUE) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.head().seq == 0
    with pytest.raises(NotAnEventLog, match="empty"):
        (tmp_path / "empty2.sep2gw").touch()
        SqliteEventStore(tmp_path / "empty2.sep2gw", TEST_CATALOGUE, readonly=True)


def test_readonly_open_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = digest(path)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        assert store.verify().ok
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.append_events(
                "x", [Deposited(account="x", amount=1)], server_time=1.0, monotonic=1.0
            )
    assert digest(path) == before


def test_max_bytes_bounds_the_files_on_disk_wal_included(tmp_path: Path) -> None:
    """Issue 16 point 5: the database, its -wal and its -shm together stay within max_bytes
    between commits, up to the append that no longer fits; space_left says how close it is."""
    path = tmp_path / "bounded.sep2gw"
    limit = 1 << 20
    store = SqliteEventStore(path, TEST_CATALOGUE, max_bytes=limit)
    left = store.space_left()
    assert left is not None and 0 < left < limit
    sizes = []
    with pytest.raises(LogFull):
        for batch in range(10_000):
            events = [Deposited(account="a" * 200, amount=i) for i in range(20)]
            store.append_events("a", events, server_time=float(batch), monotonic=0.0)
            on_disk = sum(
                p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("bounded.")
            )
            sizes.append(on_disk)
            assert on_disk == store.bytes_on_disk()
    assert max(sizes) <= limit
    assert max(sizes) > limit * 3 // 4  # it was filled, not stopped early
    assert store.space_left() == 0 or store.space_left() < 8 * 1024  # type: ignore[operator]
    assert store.verify().ok
    store.close()


def test_issue16_space_left_is_the_file_systems_free_space_without_max_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk is seen coming: the log writer sheds detail when the file system the log is
    on has less than its reserve free, not only at ``max_bytes``."""
    store = SqliteEventStore(tmp_path / "disk.sep2gw", TEST_CATALOGUE)

    class NearlyFull:
        f_bavail = 10
        f_frsize = 4096

    monkeypatch.setattr("events.sqlite_store.os.statvfs", lambda _: NearlyFull)
    assert store.space_left() == 40960
    store.close()


def test_disk_full_rolls_back_the_batch_and_keeps_every_earlier_record(tmp_path: Path) -> None:
    path = tmp_path / "small.sep2gw"
    store = SqliteEventStore(path, TEST_CATALOGUE, max_bytes=256 * 1024)
    committed = 0
    with pytest.raises(LogFull, match="small.sep2gw: disk full while appending records") as info:
        for batch in range(1000):
            events = [Deposited(account="a" * 40, amount=i) for i in range(50)]
            store.append_events("a", events, server_time=float(batch), monotonic=0.0)
            committed += len(events)
    assert committed > 0
    assert info.value.first_seq == committed + 1
    assert store.head().seq == committed
    assert [r.seq for r in store.read()] == list(range(1, committed + 1))
    assert store.verify().ok
    store.close()
    with SqliteEventStore(path, TEST_CATALOGUE) as reopened:
        assert reopened.head().seq == committed
        # With the limit lifted, appending continues where it stopped.
        reopened.append_events(
            "a", [Deposited(account="a", amount=1)], server_time=1.0, monotonic=1.0
        )
        assert reopened.verify().ok


def test_two_writers_on_one_file_get_a_conflict_not_a_fork(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    one = SqliteEventStore(path, TEST_CATALOGUE)
    two = SqliteEventStore(path, TEST_CATALOGUE)
    one.append_events("a", [Deposited(account="a", amount=1)], server_time=1.0, monotonic=1.0)
    assert two.stream_version("a") == 1
    one.append_events("a", [Deposited(account="a", amount=2)], server_time=2.0, monotonic=2.0)
    with pytest.raises(ConcurrencyConflict):
        two.append_events(
            "a",
            [Deposited(account="a", amount=3)],
            server_time=3.0,
            monotonic=3.0,
            expected_version=1,
        )
    records = two.append_events(
        "b", [Deposited(account="b", amount=4)], server_time=4.0, monotonic=4.0
    )
    assert records[0].seq == 3
    assert one.verify().ok
    one.close()
    two.close()


@pytest.mark.parametrize(
    ("sql", "first_bad", "why"),
    [
        (
            "UPDATE events SET body = replace(body, '\"amount\":4', '\"amount\":40') WHERE seq = 4",
            4,
            "hash chain broken",
        ),
        ("UPDATE events SET server_time = server_time + 60 WHERE seq = 6", 6, "hash chain broken"),
        ("UPDATE events SET stream = 'account:z' WHERE seq = 5", 5, "version"),
        ("DELETE FROM events WHERE seq = 3", 3, "sequence gap"),
        ("UPDATE events SET type = 'test.withdrawn.v1' WHERE seq = 2", 2, "row says type"),
        (
            'UPDATE events SET body = \'{"type":"test.refunded.v1"}\' WHERE seq = 7',
            7,
            "unknown event type",
        ),
        (
            'UPDATE events SET body = \'{"type":"test.deposited.v1","amount":"x"}\' WHERE seq = 8',
            8,
            "does not decode",
        ),
        ("DELETE FROM events WHERE seq = 10", 10, "head says record 10"),
    ],
)
def test_verify_names_the_first_bad_record(
    tmp_path: Path, sql: str, first_bad: int, why: str
) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    tamper(path, sql)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify()
    assert not report.ok
    assert report.problem is not None
    assert report.problem.seq == first_bad, report.describe()
    assert why in report.problem.why
    assert f"site.sep2gw: record {first_bad}:" in report.describe()


def test_verify_detects_two_rows_swapped(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    conn = sqlite3.connect(path)
    rows = {
        seq: (body, h)
        for seq, body, h in conn.execute("SELECT seq, body, hash FROM events WHERE seq IN (4, 6)")
    }
    # Swap the bodies and hashes of two records of the same stream, keeping every column plausible.
    conn.execute("UPDATE events SET body = ?, hash = ? WHERE seq = 4", rows[6])
    conn.execute("UPDATE events SET body = ?, hash = ? WHERE seq = 6", rows[4])
    conn.commit()
    conn.close()
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify()
    assert report.problem is not None and report.problem.seq == 4


def test_reading_an_unknown_tag_names_the_file_and_record(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path, 3)
    tamper(path, 'UPDATE events SET body = \'{"type":"test.refunded.v1"}\' WHERE seq = 2')
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        reader = store.read()
        assert next(reader).seq == 1
        with pytest.raises(
            Exception, match=r"site.sep2gw: record 2: unknown event type 'test.refunded.v1'"
        ):
            next(reader)


def test_withdrawn_type_round_trips_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    event = Withdrawn(account="ü", amount=-5, note='quote " and \\ backslash')
    with SqliteEventStore(path, TEST_CATALOGUE) as store:
        store.append_events("x", [event], server_time=1e9 + 0.123456789, monotonic=12.5)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        (record,) = store.read()
    assert record.event == event
    assert record.server_time == 1e9 + 0.123456789


def test_damaged_pages_fail_verification_and_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "copied.sep2gw"
    make_log(path, 2000)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    # A bad sector in the middle of the events table: one whole page of garbage.
    with path.open("r+b") as f:
        f.seek(page_size * (pages // 2))
        f.write(b"\xa5" * page_size)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify()
        assert not report.ok
        assert report.problem is not None
        assert report.describe().startswith(f"{path}: ")


def test_damaged_table_pages_name_the_last_good_record(tmp_path: Path) -> None:
    path = tmp_path / "copied.sep2gw"
    make_log(path, 2000)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    # The table's leaf pages hold the records: wreck the middle one, as a bad sector would.
    leaves = [
        row[0]
        for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno"
        )
    ]
    page = leaves[len(leaves) // 2]
    conn.close()
    with path.open("r+b") as f:
        f.seek(page_size * (page - 1))
        f.write(b"\xa5" * page_size)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify()
        assert report.problem is not None and report.problem.seq is not None
        assert 1 < report.problem.seq < 2000
        assert "damaged" in report.problem.why
        with pytest.raises(LogDamaged, match="copied.sep2gw: the file is damaged after record"):
            for _ in store.read():
                pass


def test_readers_never_see_a_batch_being_written_from_another_thread(tmp_path: Path) -> None:
    """The log actor commits in a worker thread while actors replay on the event loop's thread,
    through one connection: every read must see whole batches only."""
    import threading

    store = SqliteEventStore(tmp_path / "shared.sep2gw", TEST_CATALOGUE)
    done = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            for batch in range(150):
                store.append_events(
                    f"s{batch % 4}",
                    [Deposited(account=str(batch), amount=i) for i in range(50)],
                    server_time=float(batch),
                    monotonic=float(batch),
                )
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reads = 0
    while not done.is_set() or reads == 0:
        counts: dict[str, int] = {}
        for record in store.read():
            event = record.event
            assert isinstance(event, Deposited)
            counts[event.account] = counts.get(event.account, 0) + 1
        assert all(n == 50 for n in counts.values()), "a partial batch was visible"
        reads += 1
    thread.join()
    assert not failures, failures
    assert store.head().seq == 150 * 50 and store.verify().ok
    store.close()


def test_a_closed_writer_leaves_every_record_in_the_one_file(tmp_path: Path) -> None:
    """The ``.sep2gw`` file alone is what an operator copies off a site: a writer's close folds its
    write-ahead log in, even while a reader still holds the log open (SQLite would not then)."""
    path = tmp_path / "log.sep2gw"
    writer = SqliteEventStore(path, TEST_CATALOGUE)
    writer.append_events(
        "account:a",
        [Deposited(account="a", amount=10), Withdrawn(account="a", amount=3)],
        server_time=1.0,
        monotonic=1.0,
    )
    reader = SqliteEventStore(path, TEST_CATALOGUE, readonly=True, follow=True)
    assert reader.head().seq == 2
    writer.close()
    copy = tmp_path / "copy.sep2gw"
    copy.write_bytes(path.read_bytes())  # the main file only, no -wal
    with sqlite3.connect(copy) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (2,)
    reader.close()


def test_issue19_a_fleets_log_bounds_its_page_cache(tmp_path: Path) -> None:
    """Decision 0022f: a thousand sites' logs open at once must not each keep SQLite's default
    ~2 MiB of cache; ``cache_kib`` bounds the connection's page cache, and appends still work."""
    bounded = SqliteEventStore(tmp_path / "site.sep2gw", TEST_CATALOGUE, cache_kib=256)
    default = SqliteEventStore(tmp_path / "other.sep2gw", TEST_CATALOGUE)
    try:
        assert bounded.execute("PRAGMA cache_size").fetchone()[0] == -256
        assert default.execute("PRAGMA cache_size").fetchone()[0] != -256
        bounded.append_events(
            "site", [Deposited(account="site", amount=5)], server_time=1.0, monotonic=1.0
        )
        assert [r.event for r in bounded.read()] == [Deposited(account="site", amount=5)]
    finally:
        bounded.close()
        default.close()
    with pytest.raises(ValueError, match="cache_kib"):
        SqliteEventStore(tmp_path / "bad.sep2gw", TEST_CATALOGUE, cache_kib=0)
