"""Diagnostics: the standard ``logging`` of every command, set from the command line or the
configuration's ``[logging]`` (issue 20 point 1).

The console timeline (``sep2gw.timeline``, on standard output) stays the human view of a running
gateway; diagnostics go to standard error and, optionally, to a file, as text or as JSON (one
object per line: ``ts``, ``level``, ``logger``, ``message``, and ``seq``/``event``/``stream`` when
the message is about a record of the event log, so a log shipper can join the two).

The options are global: ``--log-level LEVEL``, ``-v``/``-vv`` (info, debug), ``-q``/``-qq`` (error,
critical), ``--log-file PATH``, ``--log-format text|json``, anywhere on the command line of any
command (they are taken out before the command's own options are parsed).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

__all__ = [
    "DIAGNOSTICS_HELP",
    "LEVELS",
    "RECORD_LOGGER",
    "JsonFormatter",
    "LoggingOptions",
    "LoggingOptionsError",
    "configure",
    "split_options",
]

LEVELS: Final = ("debug", "info", "warning", "error", "critical")
#: The logger of messages about records of the event log (they carry ``seq``).
RECORD_LOGGER: Final = "sep2gw.record"
#: For ``sep2gw --help`` (the options are taken out before parsing: see ``split_options``).
DIAGNOSTICS_HELP: Final = """\
diagnostics (any command, anywhere on the line; to standard error, the timeline stays on stdout):
  --log-level LEVEL    debug, info, warning (default, or the configuration's [logging]), error,
                       critical
  -v, -vv / -q, -qq    more (info, debug) / less (errors, critical only)
  --log-file PATH      also append diagnostics to this file (reopened when rotated away)
  --log-format FORMAT  text, or json: one object per line (ts, level, logger, message, and the
                       event log record's seq, event and stream when it is about one)
"""
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Attributes of a ``logging.LogRecord`` that JSON lines carry when a caller set them (``extra``).
_RECORD_FIELDS: Final = ("seq", "event", "stream")


class LoggingOptionsError(ValueError):
    """A logging option that cannot be used; the message names it."""


class LoggingOptions:
    """What the command line said (``None``: it did not say; the configuration or the default)."""

    __slots__ = ("file", "format", "level", "shift")

    def __init__(
        self,
        *,
        level: str | None = None,
        shift: int = 0,
        file: Path | None = None,
        format: str | None = None,
    ) -> None:
        self.level = level
        self.shift = shift  # -v counts +1 (more detail), -q -1
        self.file = file
        self.format = format

    def resolved_level(self, configured: str = "warning") -> int:
        """The level: ``--log-level``, else ``configured``, moved by ``-v``/``-q``."""
        name = self.level or configured
        index = LEVELS.index(name) - self.shift
        return getattr(logging, LEVELS[max(0, min(index, len(LEVELS) - 1))].upper())  # type: ignore[no-any-return]


_VALUED: Final = ("--log-level", "--log-file", "--log-format")


def split_options(argv: Sequence[str]) -> tuple[LoggingOptions, list[str]]:
    """The logging options of ``argv`` (anywhere before a ``--``), and the rest in order."""
    options = LoggingOptions()
    rest: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if name in _VALUED:
            if not eq:
                if i + 1 >= len(args):
                    raise LoggingOptionsError(f"{name} needs a value")
                i += 1
                value = args[i]
            _set(options, name, value)
        elif arg in ("-v", "-vv", "--verbose"):
            options.shift += 2 if arg == "-vv" else 1
        elif arg in ("-q", "-qq"):
            options.shift -= 2 if arg == "-qq" else 1
        else:
            rest.append(arg)
        i += 1
    return options, rest


def _set(options: LoggingOptions, name: str, value: str) -> None:
    if name == "--log-level":
        level = value.lower()
        if level not in LEVELS:
            raise LoggingOptionsError(f"--log-level {value!r}: choose from {', '.join(LEVELS)}")
        options.level = level
    elif name == "--log-file":
        if not value:
            raise LoggingOptionsError("--log-file needs a path")
        options.file = Path(value)
    else:
        if value not in ("text", "json"):
            raise LoggingOptionsError(f"--log-format {value!r}: choose text or json")
        options.format = value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (UTC, ms), ``level``, ``logger``, ``message``, the event
    log's ``seq``/``event``/``stream`` when the message is about a record, ``exc`` with a
    traceback."""

    def format(self, record: logging.LogRecord) -> str:
        import json  # here: every command imports this module, few format JSON
        import traceback

        document: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for field in _RECORD_FIELDS:
            value = record.__dict__.get(field)
            if value is not None:
                document[field] = value
        if record.exc_info:
            document["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(document, ensure_ascii=False, default=str)


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (a test's capture, a redirected stream),
    never to a stream closed since the handler was made."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


class _NotRecords(logging.Filter):
    """Keeps record messages off a console that prints the timeline (the same records, in the
    timeline's words): they still go to the log file."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == RECORD_LOGGER and record.levelno < logging.ERROR)


#: The handlers ``configure`` installed, removed by the next call (``run`` reconfigures once it
#: has read the configuration's ``[logging]``).
_installed: list[logging.Handler] = []


def configure(
    options: LoggingOptions,
    *,
    configured_level: str = "warning",
    configured_file: Path | None = None,
    configured_format: str = "text",
    console_records: bool = True,
    stream: TextIO | None = None,
) -> None:
    """Install the handlers on the root logger. ``console_records`` False: the console shows the
    timeline, so record messages below ERROR stay off standard error (the file still has them).

    A log file that cannot be opened raises ``LoggingOptionsError`` naming it."""
    root = logging.getLogger()
    for handler in _installed:
        root.removeHandler(handler)
        handler.close()
    _installed.clear()
    level = options.resolved_level(configured_level)
    json_lines = (options.format or configured_format) == "json"
    formatter: logging.Formatter = (
        JsonFormatter() if json_lines else logging.Formatter(_TEXT_FORMAT)
    )
    console: logging.Handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
    console.setFormatter(formatter)
    if not console_records:
        console.addFilter(_NotRecords())
    handlers: list[logging.Handler] = [console]
    path = options.file or configured_file
    if path is not None:
        # Only for a file: its import costs every command otherwise.
        from logging.handlers import WatchedFileHandler

        try:
            # Watched: a log rotated by logrotate (moved away) is reopened, not written on.
            file = WatchedFileHandler(path, encoding="utf-8")
        except OSError as exc:
            raise LoggingOptionsError(
                f"--log-file {path}: cannot open it: {exc.strerror or exc}"
            ) from None
        file.setFormatter(formatter)
        handlers.append(file)
    for handler in handlers:
        handler.setLevel(level)
        root.addHandler(handler)
        _installed.append(handler)
    root.setLevel(level)
