"""The hash chain as ARCHITECTURE.md states it, pinned by an independent computation.

``hash[n] = SHA-256(hash[n-1] ‖ JSON[seq, stream, version, type, server_time, monotonic] ‖ body)``
from 32 zero bytes. These tests recompute it with hashlib and the standard library's json, from
the rows SQLite holds, so a writer and verifier changed together (a record no longer covering the
one before it, a head no longer compared) cannot pass unnoticed."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from events.sqlite_store import SqliteEventStore
from tests.events.eventtypes import TEST_CATALOGUE, Deposited

ROWS = "SELECT seq, stream, version, type, server_time, monotonic, CAST(body AS BLOB), hash FROM events ORDER BY seq"


def make_log(path: Path, records: int = 6) -> None:
    with SqliteEventStore(path, TEST_CATALOGUE) as store:
        for n in range(1, records + 1):
            store.append_events(
                f"account:{'ab'[n % 2]}",
                [Deposited(account="ab"[n % 2], amount=n)],
                server_time=1.7e9 + n * 0.25,
                monotonic=n * 0.25,
            )


def header(seq: int, stream: str, version: int, type_tag: str, st: float, mono: float) -> bytes:
    return json.dumps(
        [seq, stream, version, type_tag, st, mono], separators=(",", ":"), ensure_ascii=False
    ).encode()


def test_each_hash_covers_the_previous_hash_and_the_records_bytes(tmp_path: Path) -> None:
    make_log(tmp_path / "log")
    conn = sqlite3.connect(tmp_path / "log")
    previous = bytes(32)
    for seq, stream, version, type_tag, st, mono, body, stored in conn.execute(ROWS):
        previous = hashlib.sha256(
            previous + header(seq, stream, version, type_tag, st, mono) + body
        ).digest()
        assert stored == previous, f"record {seq}"
    assert conn.execute("SELECT seq, hash FROM head").fetchone() == (6, previous)


def test_an_edit_with_its_own_hash_recomputed_breaks_the_next_link(tmp_path: Path) -> None:
    """Rewriting record 3 and its hash consistently is caught at record 4, whose hash covers the
    old one: what the chaining is for."""
    make_log(tmp_path / "log")
    conn = sqlite3.connect(tmp_path / "log")
    rows = conn.execute(ROWS).fetchall()
    seq, stream, version, type_tag, st, mono, body, _ = rows[2]
    edited = body.replace(b'"amount":3', b'"amount":30000')
    assert edited != body
    rehashed = hashlib.sha256(
        rows[1][7] + header(seq, stream, version, type_tag, st, mono) + edited
    ).digest()
    conn.execute("UPDATE events SET body = ?, hash = ? WHERE seq = 3", (edited, rehashed))
    conn.commit()
    conn.close()
    with SqliteEventStore(tmp_path / "log", TEST_CATALOGUE, readonly=True) as store:
        report = store.verify()
    assert report.problem is not None and report.problem.seq == 4, report.describe()
    assert report.records == 3


def test_a_head_hash_that_differs_from_the_last_records_is_found(tmp_path: Path) -> None:
    """Only the head's hash changes (its sequence stays right): the head check must compare it."""
    make_log(tmp_path / "log")
    conn = sqlite3.connect(tmp_path / "log")
    conn.execute("UPDATE head SET hash = ? WHERE id = 1", (bytes(32),))
    conn.commit()
    conn.close()
    with SqliteEventStore(tmp_path / "log", TEST_CATALOGUE, readonly=True) as store:
        report = store.verify()
    assert not report.ok and "head" in report.describe(), report.describe()
