"""Verification in two halves (chain, bodies) gives the verdict of one record-by-record pass.

The oracle below checks each record in turn in the documented order (sequence, stream version,
decoding, tag, hash link, snapshot; then the head), the way the log's rules read. The logs span
several verification batches, so tamperings land on batch boundaries and across them.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import msgspec
import pytest

from events.errors import UnknownEventTag
from events.hashchain import GENESIS, link
from events.log_events import Snapshot, snapshot_stream
from events.replay import Projection, snapshot_of
from events.sqlite_store import SqliteEventStore
from events.store import VERIFY_BATCH
from tests.events.eventtypes import TEST_CATALOGUE, Deposited, Withdrawn

RECORDS = 2 * VERIFY_BATCH + 300


def _total(state: int, event: Any) -> int:
    return state + event.amount if isinstance(event, Deposited) else state


TOTAL = Projection(name="total", initial=0, evolve=_total, state_type=int)


def make_log(path: Path, *, bad_snapshot_at: int | None = None) -> None:
    """Deposits and withdrawals on three accounts, with a snapshot of ``TOTAL`` every 400 records
    (one of them wrong when ``bad_snapshot_at`` says where)."""
    total = 0
    with SqliteEventStore(path, TEST_CATALOGUE) as store:
        while (seq := store.head().seq + 1) <= RECORDS:
            account = "abc"[seq % 3]
            event: Any
            if seq % 7 == 0:
                event = Withdrawn(account=account, amount=seq, note="n")
            else:
                event = Deposited(account=account, amount=seq)
                total += seq
            store.append_events(
                f"account:{account}", [event], server_time=1.7e9 + seq * 0.5, monotonic=seq * 0.5
            )
            if seq % 400 == 0:
                state = total + 1 if seq == bad_snapshot_at else total
                stream, snapshot = snapshot_of(TOTAL, state, seq)
                store.append_events(stream, [snapshot], server_time=1.7e9, monotonic=seq * 0.5)


def oracle(path: Path) -> tuple[int | None, str, int]:
    """(first bad record, what kind of problem, records verified before it), record by record."""
    conn = sqlite3.connect(path)
    rows = conn.execute(
        "SELECT seq, stream, version, type, server_time, monotonic, CAST(body AS BLOB), hash "
        "FROM events ORDER BY seq"
    ).fetchall()
    head_seq, head_hash = conn.execute("SELECT seq, hash FROM head").fetchone()
    conn.close()
    previous, versions, total, totals = GENESIS, {}, 0, {0: 0}
    for count, (seq, stream, version, type_tag, server_time, monotonic, body, digest) in enumerate(
        rows
    ):
        if seq != count + 1:
            return (count + 1 if seq > count + 1 else seq), "sequence", count
        if version != versions.get(stream, 0) + 1:
            return seq, "version", count
        versions[stream] = version
        try:
            event = TEST_CATALOGUE.decode(body)
        except (UnknownEventTag, msgspec.MsgspecError):
            return seq, "decode", count
        if json.loads(body)["type"] != type_tag:
            return seq, "tag", count
        if link(previous, seq, stream, version, type_tag, server_time, monotonic, body) != digest:
            return seq, "link", count
        previous = digest
        if isinstance(event, Snapshot):
            if event.through_seq >= seq or stream != snapshot_stream(event.projection):
                return seq, "snapshot", count
            if totals.get(event.through_seq) != json.loads(bytes(event.state)):
                return seq, "snapshot", count
        total = _total(total, event)
        totals[seq] = total
    count = len(rows)
    if head_seq != count or (count and bytes(head_hash) != previous):
        return (count + 1 if head_seq > count else head_seq), "head", count
    return None, "", count


KIND_WORDS = {
    "sequence": ("sequence gap", "sequence out of order"),
    "version": ("version",),
    "decode": ("unknown event type", "does not decode"),
    "tag": ("row says type",),
    "link": ("hash chain broken",),
    "snapshot": ("snapshot",),
    "head": ("head says",),
}


def tamperings(rng: random.Random, records: int) -> list[str]:
    """One to three tamperings of kinds an attacker or a broken copy would make."""

    def row() -> int:
        # batch edges more often than their share: that is where the halves hand over
        edges = [VERIFY_BATCH - 1, VERIFY_BATCH, VERIFY_BATCH + 1, 2 * VERIFY_BATCH]
        return rng.choice(edges) if rng.random() < 0.3 else rng.randint(1, records)

    kinds = [
        lambda s: (
            f"UPDATE events SET body = replace(body, '\"amount\":', '\"amount\":1') WHERE seq = {s}"
        ),
        lambda s: f'UPDATE events SET body = \'{{"type":"test.refunded.v1"}}\' WHERE seq = {s}',
        lambda s: (
            f'UPDATE events SET body = \'{{"type":"test.deposited.v1","amount":"x"}}\' WHERE seq = {s}'
        ),
        lambda s: f"UPDATE events SET type = 'test.withdrawn.v1' WHERE seq = {s}",
        lambda s: f"UPDATE events SET stream = 'account:z' WHERE seq = {s}",
        lambda s: f"UPDATE events SET version = version + 100000 WHERE seq = {s}",
        lambda s: f"DELETE FROM events WHERE seq = {s}",
        lambda s: f"UPDATE events SET server_time = server_time + 60 WHERE seq = {s}",
        lambda s: f"UPDATE events SET hash = zeroblob(32) WHERE seq = {s}",
        lambda s: f"UPDATE events SET seq = seq + {records * 10} WHERE seq = {s}",
        lambda s: "UPDATE head SET seq = seq - 1",
    ]
    return [rng.choice(kinds)(row()) for _ in range(rng.randint(1, 3))]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("pristine") / "site.sep2gw"
    make_log(path)
    return path.read_bytes()


@pytest.mark.parametrize("seed", range(60))
def test_first_bad_record_is_what_a_record_by_record_pass_finds(
    tmp_path: Path, pristine: bytes, seed: int
) -> None:
    path = tmp_path / "site.sep2gw"
    path.write_bytes(pristine)
    conn = sqlite3.connect(path)
    records = conn.execute("SELECT max(seq) FROM events").fetchone()[0]
    for sql in tamperings(random.Random(seed), records):
        conn.execute(sql)
    conn.commit()
    conn.close()
    expected_seq, kind, verified = oracle(path)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify({TOTAL.name: TOTAL})
    if expected_seq is None:
        assert report.ok, report.describe()
        return
    assert report.problem is not None, f"expected {kind} at {expected_seq}"
    assert (report.problem.seq, report.records) == (expected_seq, verified), report.describe()
    assert any(word in report.problem.why for word in KIND_WORDS[kind]), report.describe()


def test_a_wrong_snapshot_is_found_and_the_ones_before_it_counted(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path, bad_snapshot_at=800)
    expected_seq, kind, verified = oracle(path)
    assert kind == "snapshot"
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify({TOTAL.name: TOTAL})
    assert report.problem is not None
    assert (report.problem.seq, report.records) == (expected_seq, verified)
    assert "differs from the fold" in report.problem.why
    assert report.snapshots_checked == 1  # the one through record 400, before the bad one


@pytest.mark.parametrize(
    ("sql", "first_bad"),
    [
        ("UPDATE events SET hash = zeroblob(32) WHERE seq = 700", 700),
        ('UPDATE events SET body = \'{"type":"test.refunded.v1"}\' WHERE seq = 600', 600),
        ("DELETE FROM events WHERE seq = 800", 800),
        ("UPDATE events SET type = 'test.withdrawn.v1' WHERE seq = 513", 513),
        ("UPDATE events SET stream = 'account:z' WHERE seq = 512", 512),
        ("UPDATE events SET hash = zeroblob(32) WHERE seq = 1", 1),
    ],
)
def test_projections_fold_exactly_the_records_before_the_first_bad_one(
    tmp_path: Path, pristine: bytes, sql: str, first_bad: int
) -> None:
    """The forensic fold relies on this: nothing it remembers came from an unverified record."""
    path = tmp_path / "site.sep2gw"
    path.write_bytes(pristine)
    conn = sqlite3.connect(path)
    conn.execute(sql)
    conn.commit()
    conn.close()
    folded: list[Any] = []

    def remember(state: None, event: Any) -> None:
        folded.append(event)

    watcher = Projection(name="watcher", initial=None, evolve=remember, state_type=type(None))
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify({"watcher": watcher})
        expected = [r.event for r in store.read(1, first_bad - 1)]
    assert report.problem is not None and report.problem.seq == first_bad
    assert folded == expected


def test_an_intact_log_folds_every_record_once(tmp_path: Path, pristine: bytes) -> None:
    path = tmp_path / "site.sep2gw"
    path.write_bytes(pristine)
    count = 0

    def counting(state: int, event: Any) -> int:
        nonlocal count
        count += 1
        return state + 1

    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify({"n": Projection("n", 0, counting, int), TOTAL.name: TOTAL})
        assert report.ok, report.describe()
        assert count == report.records == store.head().seq
        assert report.snapshots_checked == RECORDS // 400


def test_structure_check_runs_after_the_pass_when_asked_to(tmp_path: Path, pristine: bytes) -> None:
    path = tmp_path / "site.sep2gw"
    path.write_bytes(pristine)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        alongside = store.verify()
        after = store.verify(parallel=False)
    assert alongside == after and alongside.ok


@pytest.mark.parametrize("parallel", [True, False])
def test_a_damaged_index_is_found_by_the_structure_check(
    tmp_path: Path, pristine: bytes, parallel: bool
) -> None:
    """Every record verifies (they are read through the table, not the index); only SQLite's own
    check of pages and indexes sees the wrecked index page, in its thread or after the pass."""
    path = tmp_path / "site.sep2gw"
    path.write_bytes(pristine)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    (page,) = conn.execute(
        "SELECT max(pageno) FROM dbstat WHERE name = 'events_by_server_time' AND pagetype = 'leaf'"
    ).fetchone()
    conn.close()
    with path.open("r+b") as f:
        f.seek(page_size * (page - 1))
        f.write(b"\xa5" * page_size)
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify(parallel=parallel)
    assert report.problem is not None and report.problem.seq is None
    assert "structure is damaged" in report.problem.why
    assert report.records == RECORDS


def test_a_damaged_page_anywhere_is_a_failed_check_never_an_exception(
    tmp_path: Path, pristine: bytes
) -> None:
    """The snapshots are looked up before the pass: a damaged page there (or a snapshot body that
    no longer decodes) must still end in a report naming the damage, as everywhere else."""
    source = tmp_path / "pristine.sep2gw"
    source.write_bytes(pristine)
    conn = sqlite3.connect(source)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    leaves = [
        row[0]
        for row in conn.execute(
            "SELECT pageno FROM dbstat WHERE name = 'events' AND pagetype = 'leaf' ORDER BY pageno"
        )
    ]
    conn.close()
    for page in leaves:
        path = tmp_path / f"page-{page}.sep2gw"
        path.write_bytes(source.read_bytes())
        with path.open("r+b") as f:
            f.seek(page_size * (page - 1))
            f.write(b"\xa5" * page_size)
        with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
            report = store.verify({TOTAL.name: TOTAL})
        assert not report.ok, page
    path = tmp_path / "bad-snapshot.sep2gw"
    path.write_bytes(pristine)
    conn = sqlite3.connect(path)
    conn.execute(
        'UPDATE events SET body = \'{"type":"log.snapshot.v1","projection":1}\' '
        "WHERE type = 'log.snapshot.v1' AND seq = (SELECT min(seq) FROM events "
        "WHERE type = 'log.snapshot.v1')"
    )
    conn.commit()
    conn.close()
    with SqliteEventStore(path, TEST_CATALOGUE, readonly=True) as store:
        report = store.verify({TOTAL.name: TOTAL})
    assert report.problem is not None and "does not decode" in report.problem.why
