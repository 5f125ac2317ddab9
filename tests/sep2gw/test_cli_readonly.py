"""Read-only means read-only (issue 16 point 7): the log and forensic commands open a log copied off a
site without creating or changing any file next to it, and work on read-only media.

Read-only media are a folder and file without write permission, read by an unprivileged user: the
test runs the commands as that user (as root, which permissions do not stop: root without the
capabilities that override them, through ``setpriv``; the suite's own user otherwise).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from events.registry import CATALOGUE
from events.runtime_events import RUNTIME_STREAM, GatewayStarted, GatewayStopped
from events.sqlite_store import SqliteEventStore
from sep2gw.cli import main

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_764_000_000.0
#: As root, the commands run without the capabilities that let root ignore permission bits, so a
#: folder and files without write permission stop them as they stop any user (switching to
#: ``nobody`` would also lose the interpreter when it lives under root's 0700 home, as in CI).
UNPRIVILEGED = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"]


def _append(store: SqliteEventStore, i: int) -> None:
    event = (
        GatewayStarted(software_version="t", rng_seed=i, clock_synced=False)
        if i % 2
        else GatewayStopped(reason="stopped")
    )
    store.append_events(RUNTIME_STREAM, [event], server_time=T0 + i, monotonic=float(i))


def log_at_rest(folder: Path, records: int = 4) -> Path:
    """A log as a gateway that stopped leaves it: one file, no -wal."""
    path = folder / "site.sep2gw"
    with SqliteEventStore(path, CATALOGUE) as store:
        for i in range(1, records + 1):
            _append(store, i)
    return path


def log_copied_with_its_wal(folder: Path, scratch: Path, records: int = 4) -> Path:
    """A copy taken off a running gateway: the file and its -wal (holding the last records), no -shm."""
    live = scratch / "live.sep2gw"
    store = SqliteEventStore(live, CATALOGUE)
    store.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(1, records + 1):
        _append(store, i)
    path = folder / "site.sep2gw"
    shutil.copyfile(live, path)
    shutil.copyfile(f"{live}-wal", f"{path}-wal")
    store.close()
    return path


def _commands(path: Path, out: Path) -> list[list[str]]:
    return [
        ["log", "inspect", str(path), "--json"],
        ["log", "tail", str(path), "-n", "2"],
        ["log", "export", str(path)],
        ["log", "verify", str(path)],
        ["replay", str(path)],
        ["explain", str(path), "--at", str(T0 + 2)],
        ["report", str(path), "-o", str(out / "report.html")],
        ["export", str(path), "--what", "compliance"],
    ]


def _state(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("make", ["at_rest", "copied_with_its_wal"])
def test_read_only_tools_create_and_change_no_file_next_to_the_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str
) -> None:
    site, out = tmp_path / "site", tmp_path / "out"
    site.mkdir()
    out.mkdir()
    path = log_at_rest(site) if make == "at_rest" else log_copied_with_its_wal(site, tmp_path)
    before = _state(site)
    for argv in _commands(path, out):
        assert main(argv) == 0, argv
        assert _state(site) == before, argv
    inspected = capsys.readouterr().out.splitlines()[0]
    assert json.loads(inspected)["records"] == 4  # the WAL's records were read too


RUNNER = """
import json, sys
from sep2gw.cli import main
codes = [main(argv) for argv in json.loads(sys.argv[1])]
print(json.dumps(codes))
"""


@pytest.fixture
def media() -> Iterator[Path]:
    """A folder another user can reach (pytest's own are private to the suite's user)."""
    folder = Path(tempfile.mkdtemp(prefix="sep2gw-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        for p in [folder, *folder.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(folder)


@pytest.mark.parametrize("make", ["at_rest", "copied_with_its_wal"])
def test_read_only_tools_work_on_read_only_media(media: Path, tmp_path: Path, make: str) -> None:
    site, out = media / "site", media / "out"
    site.mkdir()
    out.mkdir(mode=0o777)
    out.chmod(0o777)
    path = log_at_rest(site) if make == "at_rest" else log_copied_with_its_wal(site, tmp_path)
    for p in site.iterdir():
        p.chmod(0o444)
    site.chmod(0o555)
    before = _state(site)
    as_user = (
        UNPRIVILEGED if os.geteuid() == 0 else []
    )
    done = subprocess.run(
        [*as_user, sys.executable, "-c", RUNNER, json.dumps(_commands(path, out))],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(out), "TMPDIR": str(out)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [0] * 8, done.stderr
    assert "Traceback" not in done.stderr
    assert _state(site) == before
    # the user really could not write there: what the tools did not do, it could not have done
    probe = subprocess.run(
        [*as_user, sys.executable, "-c", f"open({str(site / 'x')!r}, 'w')"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode != 0 and "Permission denied" in probe.stderr
