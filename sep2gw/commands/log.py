"""``sep2gw log …``: inspect, tail, export and verify an event log file without modifying it; sign
an anchor of its head (``anchor``); copy a bad log's verifiable prefix into a new file
(``salvage``); archive a verified log and start a new one chained to it (``rotate``, the one action
that changes files: ``sep2gw.logrotate``).

Exit codes (``sep2gw.exits``): 0 success (for ``verify``: the log is intact), 2 the file could not be
read as a sep2gw log (missing, foreign, corrupt, newer schema) or another input cannot be used (a
certificate, key, configuration or anchor file; an output that exists), 3 the log failed
verification (its chain, a signed checkpoint, the signer required, an anchor it no longer holds).
"""

from __future__ import annotations

import argparse
import csv
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
from cryptography.hazmat.primitives import serialization

from events.envelope import RawRecord
from events.errors import EventLogError, LogLocked
from events.log_lock import LogHolder
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from events.times import not_a_date, utc_datetime
from sep2gw.commands.ident import leaf_der
from sep2gw.config import ConfigError, load_config
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, OK
from sep2gw.fleetlogs import FleetLogError, resolve_log
from sep2gw.logrotate import NotRotated, check_predecessor, predecessor_of, rotate
from sep2gw.logtrust import (
    AnchorError,
    DeviceSigner,
    anchor_difference,
    check_checkpoints,
    make_anchor,
    read_anchor,
    salvage_report,
)
from sep2gw.preflight import PreflightFailed, load_key_password
from sep2gw.projections import PROJECTIONS
from transport.pki import PkiError, certificate_der, load_pem_chain, load_private_key

__all__ = ["register"]

EXIT_OK = OK
EXIT_UNREADABLE = BAD_INPUT
EXIT_BAD_LOG = CHECK_FAILED
FOLLOW_POLL_S = 0.5


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "log", help="inspect, tail, export, verify and rotate an event log"
    )
    sub = parser.add_subparsers(dest="log_command", metavar="ACTION", required=True)

    inspect = sub.add_parser("inspect", help="counts by type and stream, time span, size, head")
    _log_argument(inspect)
    inspect.add_argument("--json", action="store_true", help="print one JSON object")
    inspect.add_argument("--streams", type=int, default=20, help="how many streams to list")
    inspect.set_defaults(handler=_inspect)

    tail = sub.add_parser("tail", help="print the newest records")
    _log_argument(tail)
    tail.add_argument("-n", type=int, default=10, help="how many records (default 10)")
    tail.add_argument("--follow", "-f", action="store_true", help="keep printing new records")
    tail.add_argument(
        "--interval", type=float, default=FOLLOW_POLL_S, help="seconds between polls with --follow"
    )
    tail.set_defaults(handler=_tail)

    export = sub.add_parser("export", help="write every record as JSON Lines or CSV")
    _log_argument(export)
    export.add_argument(
        "--format", choices=("jsonl", "csv"), default="jsonl", help="output format (default jsonl)"
    )
    export.add_argument(
        "-o", "--output", type=Path, help="file to write (default: standard output)"
    )
    export.add_argument("--from-seq", type=int, default=1, help="first record to export")
    export.set_defaults(handler=_export)

    verify = sub.add_parser(
        "verify",
        help="check sequence, bodies, hash chain, snapshots and signed checkpoints; exit 0 only "
        "if intact",
    )
    _log_argument(verify)
    verify.add_argument(
        "--certificate",
        type=Path,
        metavar="FILE",
        help="require the checkpoints (and anchor) to be signed by this device certificate "
        "(PEM or DER)",
    )
    verify.add_argument(
        "--anchor",
        type=Path,
        metavar="FILE",
        help="an anchor made by 'sep2gw log anchor': the log must still hold that head",
    )
    verify.add_argument(
        "--previous",
        type=Path,
        metavar="ARCHIVE",
        help="the archived log a rotated log continues: it must verify and end with the head "
        "the rotation recorded",
    )
    verify.set_defaults(handler=_verify_command)

    anchor = sub.add_parser(
        "anchor", help="sign a statement of the log's head with the device key, to keep off site"
    )
    anchor.add_argument("path", type=Path, help="the event log file (SQLite)")
    anchor.add_argument(
        "--config", type=Path, help="site configuration: the device key and certificate of 'run'"
    )
    anchor.add_argument(
        "--cert", type=Path, help="device certificate chain (PEM), without --config"
    )
    anchor.add_argument("--key", type=Path, help="device private key (PEM), without --config")
    anchor.add_argument(
        "--key-password-env", metavar="VAR", help="the key's password is in this variable"
    )
    anchor.add_argument(
        "-o", "--output", type=Path, help="file to write (never overwritten; default: stdout)"
    )
    anchor.set_defaults(handler=_anchor_command)

    salvage = sub.add_parser(
        "salvage", help="copy the records of a bad log that verify into a new file, for analysis"
    )
    salvage.add_argument("old", type=Path, help="the log to read (never modified)")
    salvage.add_argument("new", type=Path, help="the new log to write (must not exist)")
    salvage.set_defaults(handler=_salvage_command)

    rotate = sub.add_parser(
        "rotate",
        help="archive a verified log (read-only, named by its head) and start a new one chained "
        "to it; refused while a gateway writes it",
    )
    rotate.add_argument("path", type=Path, help="the log to rotate (the gateway must be stopped)")
    rotate.add_argument(
        "--archive-dir",
        type=Path,
        metavar="DIR",
        help="where the archive goes (default: the log's folder)",
    )
    rotate.set_defaults(handler=_rotate_command)


def _log_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "path",
        type=Path,
        help="the event log file (SQLite), or a fleet log directory (<site>.sep2gw files) with "
        "--site",
    )
    parser.add_argument(
        "--site", metavar="NAME", help="the site whose log to read when the path is a directory"
    )


Handler = Callable[[argparse.Namespace, SqliteEventStore], int]


def _opened(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Run ``handler`` with the log at ``args.path`` opened read-only; unreadable logs exit 2."""

    def run(args: argparse.Namespace) -> int:
        try:
            resolved = resolve_log(args.path, getattr(args, "site", None))
        except FleetLogError as exc:
            print(f"sep2gw log: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        assert isinstance(resolved, Path)  # without fleet_ok, a fleet is refused above
        args.path = resolved
        try:
            # --follow reads a live writer's appends through SQLite's shared memory; the rest open
            # the file as it is, creating nothing next to it (read-only media, copies off a site).
            follow = bool(getattr(args, "follow", False))
            store = SqliteEventStore(args.path, CATALOGUE, readonly=True, follow=follow)
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


def _fail(message: str, code: int) -> int:
    print(f"sep2gw log: {message}", file=sys.stderr)
    return code


def _verify_command(args: argparse.Namespace) -> int:
    """Read the --certificate and --anchor files first: a bad one is named before a long verify."""
    required: bytes | None = None
    if args.certificate is not None:
        try:
            required = leaf_der(args.certificate)
        except OSError as exc:
            return _fail(f"cannot read {args.certificate}: {exc.strerror or exc}", EXIT_UNREADABLE)
        except PkiError as exc:
            return _fail(str(exc), EXIT_UNREADABLE)
    anchor = None
    if args.anchor is not None:
        try:
            anchor = read_anchor(args.anchor.read_text(encoding="utf-8"))
        except OSError as exc:
            return _fail(f"cannot read {args.anchor}: {exc.strerror or exc}", EXIT_UNREADABLE)
        except UnicodeDecodeError:
            return _fail(f"{args.anchor}: not a sep2gw log anchor (not text)", EXIT_UNREADABLE)
        except AnchorError as exc:
            return _fail(f"{args.anchor}: {exc}", EXIT_UNREADABLE)
    args.required_der, args.read_anchor = required, anchor
    return _verify(args)


@_opened
def _verify(args: argparse.Namespace, store: SqliteEventStore) -> int:
    """The chain's checks, then the keyed evidence (issue 16 point 6): every signed checkpoint must
    verify (a chain recomputed after an edit no longer matches a signed hash), by the signer given;
    an anchor kept off site must still be held (a log cut short of it or rewritten fails)."""
    report = store.verify(PROJECTIONS)
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not report.ok:
        print(f"sep2gw log verify: {report.describe()}", file=sys.stderr)
        return EXIT_BAD_LOG
    print(report.describe())
    required: bytes | None = getattr(args, "required_der", None)
    checkpoints = check_checkpoints(store, certificate_der=required)
    if not checkpoints.ok:
        print(f"sep2gw log verify: {args.path}: {checkpoints.describe()}", file=sys.stderr)
        return EXIT_BAD_LOG
    if checkpoints.checked:
        print(f"signed: {checkpoints.describe()}")
        head = store.head().seq
        if checkpoints.last_through_seq is not None and checkpoints.last_through_seq < head:
            print(
                f"        records {checkpoints.last_through_seq + 1}-{head} after it are covered "
                "by the chain only"
            )
    elif required is not None:
        print(
            f"sep2gw log verify: {args.path}: no signed checkpoint, so nothing signed by the "
            "certificate given",
            file=sys.stderr,
        )
        return EXIT_BAD_LOG
    else:
        print(f"warning: {checkpoints.describe()}", file=sys.stderr)
    previous: Path | None = getattr(args, "previous", None)
    named = predecessor_of(store)
    if previous is not None:
        problem = check_predecessor(store, previous)
        if problem is not None:
            print(
                f"sep2gw log verify: {args.path}: --previous {previous}: {problem}", file=sys.stderr
            )
            return EXIT_BAD_LOG
        assert named is not None
        print(
            f"continues: {previous} verifies and ends with record {named.head_seq}, the head this "
            "log's first record names"
        )
    elif named is not None:
        print(
            f"continues {named.archived_as} (records 1-{named.head_seq}, head hash "
            f"{named.head_hash[:16]}…); --previous ARCHIVE checks the chain to it"
        )
    anchor = getattr(args, "read_anchor", None)
    if anchor is not None:
        difference = anchor_difference(store, anchor, certificate_der=required)
        if difference is not None:
            print(
                f"sep2gw log verify: {args.path}: anchor {args.anchor}: {difference}",
                file=sys.stderr,
            )
            return EXIT_BAD_LOG
        print(
            f"anchor: record {anchor.seq} with the hash signed by LFDI {anchor.lfdi} at "
            f"{anchor.signed_at} is in the log"
        )
    return EXIT_OK


# -- anchor ----------------------------------------------------------------------------------------


class _Unusable(ValueError):
    """Arguments that cannot be used together (exit 2)."""


def _signer(args: argparse.Namespace) -> DeviceSigner:
    """The device key and certificate as ``run`` loads them (from the site configuration), or from
    --cert/--key; raises the typed error naming what cannot be used."""
    if args.config is not None:
        if args.cert is not None or args.key is not None or args.key_password_env:
            raise _Unusable("give either --config or --cert/--key, not both")
        config = load_config(args.config)
        cert_path = config.path(config.tls.certificate)
        key_path = config.path(config.tls.key)
        password = load_key_password(config, os.environ)
    else:
        if args.cert is None or args.key is None:
            raise _Unusable("the device key is needed: give --config SITE.toml or --cert and --key")
        cert_path, key_path = args.cert, args.key
        password = None
        if args.key_password_env:
            value = os.environ.get(args.key_password_env)
            if not value:
                raise _Unusable(
                    f"the environment variable {args.key_password_env} is unset or empty"
                )
            password = value.encode()
    chain = load_pem_chain(cert_path.read_bytes(), source=str(cert_path))
    key = load_private_key(key_path.read_bytes(), password, source=str(key_path))
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != chain[0].public_key().public_bytes(*spki):
        raise PkiError(
            f"{key_path} does not match the certificate {cert_path} (their public keys differ)"
        )
    return DeviceSigner(key, certificate_der(chain[0]))


def _anchor_command(args: argparse.Namespace) -> int:
    try:
        signer = _signer(args)
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(f"cannot read {exc.strerror or exc}{where}", EXIT_UNREADABLE)
    except (_Unusable, ConfigError, PreflightFailed, PkiError) as exc:
        return _fail(str(exc), EXIT_UNREADABLE)
    if args.output is not None and args.output.exists():
        return _fail(f"{args.output} exists; an anchor is never overwritten", EXIT_UNREADABLE)
    args.signer = signer
    return _anchor(args)


@_opened
def _anchor(args: argparse.Namespace, store: SqliteEventStore) -> int:
    """Only a log that verifies (chain and signed checkpoints) is anchored: signing the head of a
    tampered log would vouch for it."""
    report = store.verify(PROJECTIONS)
    if not report.ok:
        print(f"sep2gw log anchor: not anchored: {report.describe()}", file=sys.stderr)
        return EXIT_BAD_LOG
    checkpoints = check_checkpoints(store)
    if not checkpoints.ok:
        print(
            f"sep2gw log anchor: not anchored: {args.path}: {checkpoints.describe()}",
            file=sys.stderr,
        )
        return EXIT_BAD_LOG
    signer: DeviceSigner = args.signer
    text = make_anchor(store, signer, now=time.time()) + "\n"
    head = store.head()
    if args.output is None:
        sys.stdout.write(text)
    else:
        partial = args.output.with_name(args.output.name + ".partial")
        try:
            partial.write_text(text, encoding="utf-8")
            os.link(partial, args.output)  # never overwrites, even one made meanwhile
        except FileExistsError:
            return _fail(f"{args.output} exists; an anchor is never overwritten", EXIT_UNREADABLE)
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc.strerror or exc}", EXIT_UNREADABLE)
        finally:
            partial.unlink(missing_ok=True)
        print(
            f"anchored record {head.seq} (hash {head.hash.hex()}) signed by LFDI {signer.lfdi} "
            f"in {args.output}: keep it off site; 'sep2gw log verify {args.path} --anchor "
            f"{args.output}' checks the log still holds it"
        )
    return EXIT_OK


# -- salvage ---------------------------------------------------------------------------------------


def _salvage_command(args: argparse.Namespace) -> int:
    """Copy the verifiable prefix of OLD into NEW (never overwriting) and say what was kept."""
    if args.new.exists():
        return _fail(f"{args.new} exists; salvage never overwrites a file", EXIT_UNREADABLE)
    if not args.new.parent.is_dir():
        return _fail(
            f"cannot write {args.new}: the folder {args.new.parent} does not exist", EXIT_UNREADABLE
        )
    try:
        done = salvage_report(args.old, args.new, CATALOGUE)
    except FileExistsError as exc:
        return _fail(str(exc), EXIT_UNREADABLE)
    except EventLogError as exc:
        return _fail(str(exc), EXIT_UNREADABLE)
    if done.finding is None:
        print(f"{args.old} verifies whole: all {done.copied} records copied to {args.new}")
    else:
        print(
            f"kept records 1-{done.copied} of {done.records} from {args.old} in {args.new} "
            f"(head hash {done.head.hash.hex()}); the first bad: {done.finding}"
        )
    return EXIT_OK


# -- rotate ----------------------------------------------------------------------------------------


def _rotate_command(args: argparse.Namespace) -> int:
    """Archive the log and start the next (``sep2gw.logrotate``); a running gateway is named."""
    holder = LogHolder(
        pid=os.getpid(), started=time.time(), host=socket.gethostname(), program="sep2gw log rotate"
    )
    try:
        done = rotate(
            args.path,
            archive_dir=args.archive_dir,
            holder=holder,
            server_time=time.time(),
            monotonic=time.monotonic(),
        )
    except LogLocked as exc:
        return _fail(
            f"{args.path}: not rotated: a gateway is writing it ({exc.holder}); stop it first "
            "(systemctl stop sep2gw), rotate, then start it again",
            EXIT_UNREADABLE,
        )
    except NotRotated as exc:
        return _fail(str(exc), EXIT_BAD_LOG if exc.check_failed else EXIT_UNREADABLE)
    except EventLogError as exc:
        return _fail(str(exc), EXIT_UNREADABLE)
    except OSError as exc:
        return _fail(f"{args.path}: not rotated: {exc.strerror or exc}", EXIT_UNREADABLE)
    signed = (
        "no signed checkpoint"
        if done.signed_through is None
        else f"signed through record {done.signed_through}"
    )
    print(
        f"archived {done.records} records (head {done.head.seq}, hash {done.head.hash.hex()}, "
        f"{iso(done.head_time_s)}; {signed}) read-only as {done.archive}"
    )
    print(f"started {done.new}, chained to it; check both with:")
    print(f"  sep2gw log verify {done.new} --previous {done.archive}")
    return EXIT_OK
