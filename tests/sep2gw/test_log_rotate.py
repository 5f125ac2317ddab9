"""``sep2gw log rotate`` (issue 20 point 3): rotation that keeps the evidence. A verified log is
archived read-only under a name carrying its head and a new log starts chained to it; ``log verify
NEW --previous ARCHIVE`` checks the chain; a running gateway's log, a log that does not verify and
an existing archive are refused, each with its reason."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
import trio

from events.log_events import PreviousLogArchived
from events.log_lock import LogHolder, LogLock
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, OK
from sep2gw.logrotate import predecessor_of
from sep2gw.timeline import Timeline
from tests.sep2gw.test_cli_log import make_log
from tests.sep2gw.test_log_trust import run_site, site  # noqa: F401 (the fixture)


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def archives(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if "-seq" in p.name and p.suffix == ".sep2gw")


def test_rotate_archives_read_only_by_head_and_chains_the_new_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "site.sep2gw"
    make_log(log)
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        head = store.head()
    code, out, err = cli(capsys, "log", "rotate", str(log))
    assert code == OK, err
    [archive] = archives(tmp_path)
    # site.<head time>-seq12-<hash>.sep2gw: the name alone says up to where and which head.
    assert archive.name == f"site.20251124T160012Z-seq12-{head.hash.hex()[:12]}.sep2gw"
    assert not archive.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert f"sep2gw log verify {log} --previous {archive}" in out
    with SqliteEventStore(archive, CATALOGUE, readonly=True) as kept:
        assert kept.verify().ok and kept.head() == head  # moved, untouched
    with SqliteEventStore(log, CATALOGUE, readonly=True) as new:
        [first] = list(new.read())
        assert new.verify().ok
        assert predecessor_of(new) == first.event
    assert first.event == PreviousLogArchived(
        archived_as=archive.name,
        head_seq=12,
        head_hash=head.hash.hex(),
        head_time_s=1_764_000_012.0,
        records=12,
    )
    assert "log rotated: this log continues" in (Timeline().line(first) or "")

    code, out, err = cli(capsys, "log", "verify", str(log), "--previous", str(archive))
    assert code == OK, err
    assert "ends with record 12" in out
    code, out, _ = cli(capsys, "log", "verify", str(log))
    assert code == OK and f"continues {archive.name}" in out and "--previous" in out


def test_verify_previous_fails_an_archive_that_is_not_the_predecessor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "site.sep2gw"
    make_log(log)
    assert cli(capsys, "log", "rotate", str(log))[0] == OK
    [archive] = archives(tmp_path)
    other = tmp_path / "other.sep2gw"
    make_log(other, records=11)  # the same records, one short: a log cut short
    code, _, err = cli(capsys, "log", "verify", str(log), "--previous", str(other))
    assert code == CHECK_FAILED
    assert "ends at record 11" in err and "continues record 12" in err
    # An archive edited after rotation no longer verifies: the chain to it is broken.
    archive.chmod(0o644)
    with sqlite3.connect(archive) as conn:
        conn.execute("UPDATE events SET monotonic = 99 WHERE seq = 5")
    code, _, err = cli(capsys, "log", "verify", str(log), "--previous", str(archive))
    assert code == CHECK_FAILED and "the archive does not verify" in err and "record 5" in err


def test_rotate_is_refused_while_a_gateway_holds_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "site.sep2gw"
    make_log(log)
    lock = LogLock.acquire(log, LogHolder(pid=4242, started=1_764_000_000.0, host="gw1"))
    try:
        code, _, err = cli(capsys, "log", "rotate", str(log))
    finally:
        lock.release()
    assert code == BAD_INPUT
    assert "a gateway is writing it" in err and "pid 4242" in err and "stop it first" in err
    assert archives(tmp_path) == []
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        assert store.head().seq == 12  # untouched


def test_a_log_that_does_not_verify_is_not_rotated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "site.sep2gw"
    make_log(log)
    with sqlite3.connect(log) as conn:
        conn.execute("UPDATE events SET monotonic = 99 WHERE seq = 5")
    code, _, err = cli(capsys, "log", "rotate", str(log))
    assert code == CHECK_FAILED and "not rotated" in err and "record 5" in err
    assert archives(tmp_path) == []


def test_rotate_refuses_bad_input_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = cli(capsys, "log", "rotate", str(tmp_path / "missing.sep2gw"))
    assert code == BAD_INPUT and "no such event log" in err
    log = tmp_path / "site.sep2gw"
    make_log(log)
    code, _, err = cli(capsys, "log", "rotate", str(log), "--archive-dir", str(tmp_path / "no"))
    assert code == BAD_INPUT and "does not exist" in err
    (tmp_path / "archive").mkdir()
    code, _, err = cli(
        capsys, "log", "rotate", str(log), "--archive-dir", str(tmp_path / "archive")
    )
    assert code == OK, err
    [archive] = archives(tmp_path / "archive")
    with SqliteEventStore(log, CATALOGUE, readonly=True) as new:
        named = predecessor_of(new)
    assert named is not None and named.archived_as == str(archive.resolve())  # another folder


async def test_a_gateway_runs_on_after_rotation_and_both_logs_verify_as_one_chain(
    site: Path,  # noqa: F811
    autojump_clock: trio.abc.Clock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await run_site(site, 120)
    log = site / "site.sep2gw"
    code, _, err = cli(capsys, "log", "rotate", str(log))
    assert code == OK, err
    [archive] = archives(site)
    await run_site(site, 120)  # the gateway starts on the rotated log, verifies it, runs on
    with SqliteEventStore(log, CATALOGUE, readonly=True) as store:
        events = [r.event for r in store.read()]
    assert isinstance(events[0], PreviousLogArchived)
    assert isinstance(events[1], GatewayStarted)
    assert not [p for p in os.listdir(site) if ".untrusted-" in p]  # not set aside
    code, out, err = cli(capsys, "log", "verify", str(log), "--previous", str(archive))
    assert code == OK, err
    assert "signed:" in out  # the gateway signs the new log as it did the old
