"""One writer per log (issue 16 point 4): the writer's lock, across processes and after a crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from events.errors import LogLocked, LogUnwritable
from events.log_lock import LogHolder, lock_path
from events.sqlite_store import SqliteEventStore
from tests.events.eventtypes import TEST_CATALOGUE, Deposited

ROOT = Path(__file__).resolve().parents[2]
STARTED = 1_780_000_000.0  # 2026-05-28T20:26:40Z

HOLDER = """
import os, sys
from events.log_lock import LogHolder
from events.sqlite_store import SqliteEventStore
from tests.events.eventtypes import TEST_CATALOGUE
store = SqliteEventStore(sys.argv[1], TEST_CATALOGUE,
                         exclusive=LogHolder(pid=os.getpid(), started=1780000000.0, host="site-a"))
print("locked", flush=True)
sys.stdin.read()  # hold the log until told to stop (or killed)
store.close()
"""


def _holder(path: Path) -> subprocess.Popen[str]:
    """A second process that opens ``path`` as its writer and holds it."""
    child = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "locked"
    return child


def _me() -> LogHolder:
    return LogHolder(pid=os.getpid(), started=STARTED)


def test_one_writer_per_log_a_second_process_is_refused_at_once_naming_the_holder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "site.sep2gw"
    child = _holder(path)
    try:
        with pytest.raises(LogLocked) as refused:
            SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me())
        message = str(refused.value)
        assert f"pid {child.pid}" in message
        assert "site-a" in message
        assert "2026-05-28T20:26:40Z" in message
        assert str(path) in message
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)
    # the holder stopped cleanly: the log is free again
    with SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me()) as store:
        assert store.head().seq == 0


def test_one_writer_per_log_a_crashed_writer_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    child = _holder(path)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    with SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me()) as store:
        store.append_events("a", [Deposited(account="a", amount=1)], server_time=1.0, monotonic=1.0)
    assert f'"pid":{os.getpid()}' in lock_path(path).read_text()


def test_one_writer_per_log_holds_within_one_process_too(tmp_path: Path) -> None:
    path = tmp_path / "site.sep2gw"
    with SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me()):
        with pytest.raises(LogLocked, match=f"pid {os.getpid()}"):
            SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me())
        # readers are not writers: they take no lock and are never refused
        with SqliteEventStore(path, TEST_CATALOGUE, readonly=True, follow=True) as reader:
            assert reader.head().seq == 0
    with SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me()):
        pass  # closing released it


def test_a_writer_in_a_missing_folder_is_told_so(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "site.sep2gw"
    with pytest.raises(LogUnwritable, match="no-such-folder does not exist"):
        SqliteEventStore(path, TEST_CATALOGUE, exclusive=_me())
    with pytest.raises(LogUnwritable, match="does not exist"):
        SqliteEventStore(path, TEST_CATALOGUE)
