"""``sep2gw log`` over real log files, in-process (and one real subprocess for --follow)."""

from __future__ import annotations

import csv
import io
import json
import os
import select
import sqlite3
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from events.log_events import Snapshot
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main


def make_log(path: Path, records: int = 12) -> None:
    with SqliteEventStore(path, CATALOGUE) as store:
        for i in range(1, records + 1):
            store.append_events(
                f"snapshot:p{i % 3}",
                [
                    Snapshot(
                        projection=f"p{i % 3}",
                        through_seq=i - 1,
                        state=msgspec.Raw(b'{"n":%d}' % i),
                    )
                ],
                server_time=1_764_000_000.0 + i,
                monotonic=float(i),
            )


def readline_within(proc: subprocess.Popen[str], seconds: float) -> str:
    """One line of the child's output, or fail (never hang) if none comes within ``seconds``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    assert ready, f"no output within {seconds} s"
    return proc.stdout.readline()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_counts_types_streams_and_time_span(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    code, out, _ = run(capsys, "log", "inspect", str(path), "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["records"] == 12
    assert summary["types"] == {"log.snapshot.v1": 12}
    assert summary["streams"] == {"snapshot:p0": 4, "snapshot:p1": 4, "snapshot:p2": 4}
    assert summary["stream_kinds"] == {"snapshot": 12}
    assert summary["first_time"] == "2025-11-24T16:00:01.000Z"
    assert summary["last_time"] == "2025-11-24T16:00:12.000Z"
    assert summary["head_seq"] == 12 and len(summary["head_hash"]) == 64
    assert summary["bytes"] > 0
    code, out, _ = run(capsys, "log", "inspect", str(path))
    assert code == 0 and "records:        12 in 3 streams" in out and "log.snapshot.v1" in out


def test_tail_prints_the_newest_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    code, out, _ = run(capsys, "log", "tail", str(path), "-n", "3")
    lines = out.splitlines()
    assert code == 0 and len(lines) == 3
    assert lines[0].split()[0] == "10" and lines[-1].split()[0] == "12"
    assert "2025-11-24T16:00:12.000Z  snapshot:p0  log.snapshot.v1" in lines[-1]


def test_tail_follow_prints_records_appended_later(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path, 2)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sep2gw",
            "log",
            "tail",
            str(path),
            "-n",
            "1",
            "--follow",
            "--interval",
            "0.05",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None
        assert readline_within(proc, 20).split()[0] == "2"
        with SqliteEventStore(path, CATALOGUE) as store:
            store.append_events(
                "snapshot:p9",
                [Snapshot(projection="p9", through_seq=2, state=msgspec.Raw(b"{}"))],
                server_time=1_764_000_100.0,
                monotonic=3.0,
            )
        assert readline_within(proc, 20).split()[:4] == [
            "3",
            "2025-11-24T16:01:40.000Z",
            "snapshot:p9",
            "log.snapshot.v1",
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_export_jsonl_and_csv_carry_every_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    code, out, _ = run(capsys, "log", "export", str(path), "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["seq"] for r in rows] == list(range(1, 13))
    assert rows[0]["event"] == {
        "type": "log.snapshot.v1",
        "projection": "p1",
        "through_seq": 0,
        "state": {"n": 1},
    }
    assert rows[0]["server_time_iso"] == "2025-11-24T16:00:01.000Z"
    target = tmp_path / "out.csv"
    code, _, _ = run(capsys, "log", "export", str(path), "--format", "csv", "-o", str(target))
    table = list(csv.DictReader(io.StringIO(target.read_text())))
    assert code == 0 and len(table) == 12
    assert table[5]["hash"] == rows[5]["hash"]
    assert json.loads(table[5]["event"]) == rows[5]["event"]
    assert not list(tmp_path.glob("*.partial"))


def test_verify_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    code, out, _ = run(capsys, "log", "verify", str(path))
    assert code == 0 and "intact: 12 records" in out
    conn = sqlite3.connect(path)
    conn.execute("UPDATE events SET monotonic = 99 WHERE seq = 5")
    conn.commit()
    conn.close()
    code, out, err = run(capsys, "log", "verify", str(path))
    assert code == 3 and out == ""
    assert f"{path}: record 5: hash chain broken" in err


def test_unreadable_files_exit_2_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sep2gw"
    foreign = tmp_path / "foreign.sep2gw"
    foreign.write_bytes(b"\x00garbage" * 1000)
    for command in ("inspect", "tail", "export", "verify"):
        code, _, err = run(capsys, "log", command, str(missing))
        assert code == 2 and "missing.sep2gw: no such event log" in err
        code, _, err = run(capsys, "log", command, str(foreign))
        assert code == 2 and "foreign.sep2gw: not a sep2gw event log" in err
    assert not missing.exists()


def test_log_commands_do_not_modify_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.sep2gw"
    make_log(path)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    for argv in (("inspect",), ("tail",), ("export",), ("verify",)):
        run(capsys, "log", *argv, str(path))
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
