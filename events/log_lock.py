"""One writer per log: an exclusive OS lock held for the writer's lifetime.

The lock is ``flock(LOCK_EX | LOCK_NB)`` on a sidecar file ``<log>.lock``, not on the log itself:
SQLite takes POSIX (``fcntl``) locks on the log and closes them with any descriptor of the file, so
a lock of ours on the same file would be both at risk and in SQLite's way. ``flock`` locks belong to
the open file description, so a crash (even ``kill -9``) releases them with the process, and a second
writer is refused even in the same process. The sidecar records who holds it (PID, start time, host)
for the refusal to name; it is never removed (removing it would let two writers lock two different
files of the same name). Readers take no lock: the tools open logs read-only and never write.
"""

from __future__ import annotations

import datetime
import fcntl
import os
from pathlib import Path
from typing import Final

import msgspec

from events.errors import LogLocked, LogUnwritable

__all__ = ["LOCK_SUFFIX", "LogHolder", "LogLock", "describe_holder", "holder_of", "lock_path"]

#: The sidecar lock file is the log's path with this appended.
LOCK_SUFFIX: Final = ".lock"
_MAX_HOLDER_BYTES: Final = 4096


class LogHolder(msgspec.Struct, frozen=True, kw_only=True):
    """Who writes a log: shown to a second writer that is refused."""

    pid: int
    #: UTC epoch seconds when the writer started (read by the caller: this layer has no clock).
    started: float
    host: str = ""
    program: str = "sep2gw"


def lock_path(log: str | os.PathLike[str]) -> Path:
    return Path(f"{os.fspath(log)}{LOCK_SUFFIX}")


class LogLock:
    """The writer's exclusive lock on one log. ``acquire`` or raise; ``release`` when done."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, log: str | os.PathLike[str], holder: LogHolder) -> LogLock:
        """Take the lock on ``log`` for ``holder`` at once, or raise ``LogLocked`` naming the holder.

        A folder that cannot take the sidecar raises ``LogUnwritable`` (the writer could not have
        written the log there either).
        """
        where = os.fspath(log)
        path = lock_path(log)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise LogUnwritable(where, f"cannot create its lock file {path}: {_why(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _read_holder(fd)
            os.close(fd)
            raise LogLocked(where, text) from None
        except OSError as exc:
            os.close(fd)
            raise LogUnwritable(where, f"cannot lock {path}: {_why(exc)}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, msgspec.json.encode(holder) + b"\n", 0)
        except OSError as exc:
            os.close(fd)
            raise LogUnwritable(where, f"cannot write its lock file {path}: {_why(exc)}") from None
        return cls(path, fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __del__(self) -> None:
        self.release()  # a writer dropped without closing its store does not keep the log locked

    def release(self) -> None:
        """Give the lock up (idempotent). The sidecar stays; its stale text is overwritten next time."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor of the open file releases the flock


def holder_of(log: str | os.PathLike[str]) -> str | None:
    """Who holds the writer lock of ``log`` now (as a refusal would name it), or ``None``.

    Looks without locking (``/proc/locks`` on Linux): a check must never be the reason a gateway
    starting at the same moment is refused. ``None`` where the OS does not say.
    """
    path = lock_path(log)
    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    me = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:
            continue  # a waiter, not a holder
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == me:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return "another process"
            try:
                return _read_holder(fd)
            finally:
                os.close(fd)
    return None


def _read_holder(fd: int) -> str:
    """The holder as a refusal shows it: ``pid 1234 on host, started 2026-…Z (sep2gw)``."""
    try:
        data = os.pread(fd, _MAX_HOLDER_BYTES, 0)
        holder = msgspec.json.decode(data.strip(), type=LogHolder)
    except (OSError, msgspec.MsgspecError):
        return "another process (its lock file does not say which)"
    return describe_holder(holder)


def describe_holder(holder: LogHolder) -> str:
    try:
        started = (
            datetime.datetime.fromtimestamp(holder.started, tz=datetime.UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z")
        )
    except (ValueError, OverflowError, OSError):
        started = f"{holder.started!r} (not a valid time)"
    host = f" on {holder.host}" if holder.host else ""
    return f"{holder.program} pid {holder.pid}{host}, started {started}"


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
