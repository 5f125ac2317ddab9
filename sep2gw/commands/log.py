"""``sep2gw log …``: inspect, tail, export and verify an event log file without modifying it.

Exit codes: 0 success (for ``verify``: the log is intact), 1 the log failed verification, 2 the file
could not be read as a sep2gw log (missing, foreign, corrupt, newer schema).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from events.envelope import RawRecord
from events.errors import EventLogError
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from events.times import not_a_date, utc_datetime
from sep2gw.projections import PROJECTIONS

__all__ = ["register"]

EXIT_OK = 0
EXIT_BAD_LOG = 1
EXIT_UNREADABLE = 2
FOLLOW_POLL_S = 0.5


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "log", help="inspect, tail, export and verify an event log (read-only)"
    )
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    inspect = sub.add_parser("inspect", help="counts by type and stream, time span, size, head")
    inspect.add_argument("path", type=Path)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--streams", type=int, default=20, help="how many streams to list")
    inspect.set_defaults(handler=_inspect)

    tail = sub.add_parser("tail", help="print the newest records")
    tail.add_argument("path", type=Path)
    tail.add_argument("-n", type=int, default=10, help="how many records (default 10)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    tail.add_argument(
        "--interval", type=float, default=FOLLOW_POLL_S, help="seconds between polls with --follow"
    )
    tail.set_defaults(handler=_tail)

    export = sub.add_parser("export", help="write every record as JSON Lines or CSV")
    export.add_argument("path", type=Path)
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument(
        "-o", "--output", type=Path, help="file to write (default: standard output)"
    )
    export.add_argument("--from-seq", type=int, default=1, help="first record to export")
    export.set_defaults(handler=_export)

    verify = sub.add_parser(
        "verify", help="check sequence, bodies, hash chain and snapshots; exit 0 only if intact"
    )
    verify.add_argument("path", type=Path)
    verify.set_defaults(handler=_verify)


Handler = Callable[[argparse.Namespace, SqliteEventStore], int]


def _opened(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Run ``handler`` with the log at ``args.path`` opened read-only; unreadable logs exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            store = SqliteEventStore(args.path, CATALOGUE, readonly=True)
        except EventLogError as exc:
            print(f"sep2gw log: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        with store:
            try:
                return handler(args, store)
            except EventLogError as exc:
                print(f"sep2gw log: {exc}", file=sys.stderr)
                return EXIT_UNREADABLE

    return run


def iso(t: float) -> str:
    """UTC ISO-8601 with milliseconds, as the timeline and exports show server time."""
    utc = utc_datetime(t)
    if utc is None:
        return not_a_date(t)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- inspect ---------------------------------------------------------------------------------------


@_opened
def _inspect(args: argparse.Namespace, store: SqliteEventStore) -> int:
    summary = _summary(store, args.path, args.streams)
    if args.json:
        sys.stdout.write(msgspec.json.encode(summary).decode() + "\n")
        return EXIT_OK
    print(f"log:            {summary['path']}")
    print(f"size:           {summary['bytes']:,} bytes (with WAL)")
    print(f"schema version: {summary['schema_version']}")
    print(f"records:        {summary['records']:,} in {summary['stream_count']:,} streams")
    if summary["records"]:
        print(f"server time:    {summary['first_time']} .. {summary['last_time']}")
    print(f"head:           record {summary['head_seq']} hash {summary['head_hash']}")
    print("by type:")
    for tag, count in summary["types"].items():
        print(f"  {count:>10,}  {tag}")
    print("by stream kind:")
    for kind, count in summary["stream_kinds"].items():
        print(f"  {count:>10,}  {kind}")
    shown = summary["streams"]
    print(f"largest streams ({len(shown)} of {summary['stream_count']}):")
    for stream, count in shown.items():
        print(f"  {count:>10,}  {stream}")
    return EXIT_OK


def _summary(store: SqliteEventStore, path: Path, top: int) -> dict[str, Any]:
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    head = store.head()
    records, first, last = store.execute(
        "SELECT count(*), min(server_time), max(server_time) FROM events"
    ).fetchone()
    types = dict(
        store.execute(
            "SELECT type, count(*) FROM events GROUP BY type ORDER BY 2 DESC, 1"
        ).fetchall()
    )
    streams = store.execute(
        "SELECT stream, count(*) FROM events GROUP BY stream ORDER BY 2 DESC, 1"
    ).fetchall()
    kinds: dict[str, int] = {}
    for stream, count in streams:
        kind = stream.split(":", 1)[0]
        kinds[kind] = kinds.get(kind, 0) + count
    return {
        "path": str(path),
        "bytes": size,
        "schema_version": store.schema_version,
        "records": records,
        "stream_count": len(streams),
        "first_time": iso(first) if records else None,
        "last_time": iso(last) if records else None,
        "head_seq": head.seq,
        "head_hash": head.hash.hex(),
        "types": types,
        "stream_kinds": dict(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
        "streams": dict(streams[:top]),
    }


# -- tail ------------------------------------------------------------------------------------------


def _line(raw: RawRecord) -> str:
    return f"{raw.seq:>8}  {iso(raw.server_time)}  {raw.stream}  {raw.type}  {raw.body.decode()}"


@_opened
def _tail(args: argparse.Namespace, store: SqliteEventStore) -> int:
    head = store.head().seq
    after = max(head - max(args.n, 0), 0)
    for raw in store.read_raw(after + 1):
        print(_line(raw), flush=True)
        after = raw.seq
    while args.follow:
        time.sleep(args.interval)
        for raw in store.read_raw(after + 1):
            print(_line(raw), flush=True)
            after = raw.seq
    return EXIT_OK


# -- export ----------------------------------------------------------------------------------------

_CSV_COLUMNS = (
    "seq",
    "stream",
    "version",
    "type",
    "server_time",
    "server_time_iso",
    "monotonic",
    "hash",
    "event",
)


class _JsonRecord(msgspec.Struct):
    seq: int
    stream: str
    version: int
    type: str
    server_time: float
    server_time_iso: str
    monotonic: float
    hash: str
    event: msgspec.Raw


@_opened
def _export(args: argparse.Namespace, store: SqliteEventStore) -> int:
    if args.output is None:
        _write_export(store.read_raw(args.from_seq), args.format, sys.stdout)
    else:
        # Written aside and renamed, so a failed export never leaves a plausible-looking file.
        partial = args.output.with_name(args.output.name + ".partial")
        try:
            with partial.open("w", newline="", encoding="utf-8") as out:
                _write_export(store.read_raw(args.from_seq), args.format, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, args.output)
    return EXIT_OK


def _write_export(records: Iterator[RawRecord], fmt: str, out: IO[str]) -> None:
    if fmt == "jsonl":
        encode = msgspec.json.Encoder().encode
        for raw in records:
            row = _JsonRecord(
                raw.seq,
                raw.stream,
                raw.version,
                raw.type,
                raw.server_time,
                iso(raw.server_time),
                raw.monotonic,
                raw.hash.hex(),
                msgspec.Raw(raw.body),
            )
            out.write(encode(row).decode())
            out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(_CSV_COLUMNS)
    for raw in records:
        writer.writerow(
            (
                raw.seq,
                raw.stream,
                raw.version,
                raw.type,
                repr(raw.server_time),
                iso(raw.server_time),
                repr(raw.monotonic),
                raw.hash.hex(),
                raw.body.decode(),
            )
        )


# -- verify ----------------------------------------------------------------------------------------


@_opened
def _verify(args: argparse.Namespace, store: SqliteEventStore) -> int:
    report = store.verify(PROJECTIONS)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if report.ok:
        print(report.describe())
        return EXIT_OK
    print(f"sep2gw log verify: {report.describe()}", file=sys.stderr)
    return EXIT_BAD_LOG
