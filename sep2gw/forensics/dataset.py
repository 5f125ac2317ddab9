"""Fleet logs as a Parquet dataset (issue 21): verified logs written as Hive-partitioned Parquet
tables (``<table>/site=<site>/day=<YYYY-MM-DD>/<file>.parquet``) that DuckDB, Spark or Trino query
in place. The schema is documented and versioned in docs/parquet-schema.md (:data:`SCHEMA_VERSION`).

Integrity first, as every forensic command: each log is verified (``EventStore.verify``, the check
of ``sep2gw log verify``) in the pass that folds it (``sep2gw.forensics.model.analyse``); a log that
does not verify stops the export and nothing is left behind. Every file carries in its metadata the
schema version, its source log, that log's head hash and record count, and the compliance settings,
so a dataset states what it was made from; ``_sources.parquet`` lists the sources once more.

Tables (one row per):

- ``records``: record of the log, with its envelope and hash (the body as its JSON);
- ``controls``: mode in force per interval (a limit period, cut at UTC midnight), with its supplier;
- ``responses``: Response the gateway owed (PROTOCOL.md §4 rule 16) with its four stages;
- ``battery_writes``: write to the DER (``hardware.limits_applied.v1``);
- ``measurements``: telemetry sample (``hardware.telemetry.v1``);
- ``compliance``: sample judged against the limits in force (the rows of
  ``sep2gw export --what compliance``, column for column).

The site of a log is the name it is given (default: its file name without suffix); the day of a
row is the UTC date of its time. ``site`` and ``day`` are partition columns: they are in the paths,
not inside the files (Hive layout, which the engines read as columns).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
from msgspec.structs import astuple

from events.errors import EventLogError
from events.hardware_events import TelemetrySampled
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.exports import round_compliance
from sep2gw.forensics.compliance import ComplianceRow, ComplianceSettings, compliance_series
from sep2gw.forensics.model import Forensics, analyse

__all__ = [
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "TABLES",
    "DatasetError",
    "ExportedLog",
    "LogRefused",
    "export_dataset",
    "schemas",
    "site_name",
    "valid_site",
]

#: The dataset's schema: bump the version when a column changes meaning or type (adding a nullable
#: column at the end does not); docs/parquet-schema.md describes every version.
SCHEMA_NAME: Final = "sep2gw.parquet"
SCHEMA_VERSION: Final = 1
TABLES: Final = (
    "records",
    "controls",
    "responses",
    "battery_writes",
    "measurements",
    "compliance",
)
_TELEMETRY_TAG: Final = str(TelemetrySampled.__struct_config__.tag)
_SAFE: Final = re.compile(r"[^A-Za-z0-9._-]+")


class DatasetError(Exception):
    """The export cannot be done as asked (bad input: a log unreadable, an output in the way)."""


class LogRefused(Exception):
    """A log did not verify: nothing is exported from a log that may have been altered."""


@dataclass(frozen=True)
class ExportedLog:
    path: Path
    site: str
    head_hash: str
    records: int
    rows: dict[str, int]


def valid_site(name: str) -> bool:
    """A site name usable as a partition value: letters, digits, ``.``, ``_`` and ``-``."""
    return bool(name) and not _SAFE.search(name) and not name.startswith(".")


def site_name(path: Path) -> str:
    """The default site of a log: its file name without suffix, made safe for a partition path."""
    return _SAFE.sub("-", path.stem).strip("-.") or "site"


def schemas() -> dict[str, Any]:
    """The Arrow schema of each table (without the partition columns)."""
    import pyarrow as pa

    f64, i64, text, flag = pa.float64(), pa.int64(), pa.string(), pa.bool_()
    compliance = []
    for name in ComplianceRow.__struct_fields__:
        compliance.append(pa.field(name, text if name.endswith("_source") else f64))
    return {
        "records": pa.schema(
            [
                ("seq", i64),
                ("stream", text),
                ("version", i64),
                ("type", text),
                ("server_time", f64),
                ("monotonic", f64),
                ("hash", text),
                ("body", text),
            ]
        ),
        "controls": pa.schema(
            [
                ("seq", i64),
                ("start_s", f64),
                ("end_s", f64),
                ("period_start_s", f64),
                ("period_end_s", f64),
                ("mode", text),
                ("value", f64),
                ("value_json", text),
                ("source", text),
            ]
        ),
        "responses": pa.schema(
            [
                ("mrid", text),
                ("status", i64),
                ("intended_seq", i64),
                ("intended_s", f64),
                ("first_sent_s", f64),
                ("attempts", i64),
                ("acked_s", f64),
                ("http_status", i64),
                ("failures", i64),
                ("outcome", text),
            ]
        ),
        "battery_writes": pa.schema(
            [
                ("seq", i64),
                ("at_s", f64),
                ("setpoint_w", f64),
                ("wrote", flag),
                ("site_limit_met", flag),
                ("applied", pa.list_(text)),
                ("not_applicable", pa.list_(text)),
                ("clamps", pa.list_(text)),
                ("settings_json", text),
            ]
        ),
        # seq, then every field of hardware.telemetry.v1 in its order (rows are built that way)
        "measurements": pa.schema(
            [("seq", i64)]
            + [
                (name, flag if name == "connected" else f64)
                for name in TelemetrySampled.__struct_fields__
            ]
        ),
        "compliance": pa.schema(compliance),
    }


_DAYS: dict[int, str] = {}


def _day(t: float) -> str:
    """The UTC date of ``t``, ``YYYY-MM-DD`` (``none`` for a time that is not a date)."""
    if not math.isfinite(t):
        return "none"
    index = int(t // 86_400)
    day = _DAYS.get(index)
    if day is None:
        day = _DAYS[index] = (
            dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=index)
        ).strftime("%Y-%m-%d")
    return day


def _midnights(start: float, end: float) -> Iterable[tuple[float, float]]:
    """``[start, end)`` cut at every UTC midnight inside it."""
    while True:
        day = dt.datetime.fromtimestamp(start, dt.UTC).date() + dt.timedelta(days=1)
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        if end <= midnight:
            yield start, end
            return
        yield start, midnight
        start = midnight


class _Rows:
    """Rows of one table of one log, by day (tuples, turned into columns when written)."""

    def __init__(self, names: Sequence[str]) -> None:
        self.names = names
        self.days: dict[str, list[tuple[Any, ...]]] = {}

    def add(self, day: str, values: tuple[Any, ...]) -> None:
        rows = self.days.get(day)
        if rows is None:
            rows = self.days[day] = []
        rows.append(values)

    def columns(self, day: str) -> dict[str, list[Any]]:
        rows = self.days[day]
        return {
            name: list(column)
            for name, column in zip(self.names, zip(*rows, strict=True), strict=True)
        }

    def count(self) -> int:
        return sum(len(rows) for rows in self.days.values())


def _tables(
    store: SqliteEventStore, model: Forensics, settings: ComplianceSettings, names: dict[str, Any]
) -> dict[str, _Rows]:
    rows = {table: _Rows(names[table].names) for table in TABLES}
    decode = CATALOGUE.decode
    telemetry = rows["measurements"]
    records = rows["records"]
    for raw in store.read_raw():
        records.add(
            _day(raw.server_time),
            (
                raw.seq,
                raw.stream,
                raw.version,
                raw.type,
                raw.server_time,
                raw.monotonic,
                raw.hash.hex(),
                raw.body.decode(),
            ),
        )
        if raw.type == _TELEMETRY_TAG:
            sample = decode(raw.body)
            assert isinstance(sample, TelemetrySampled)
            # the schema's columns: seq, then the event's fields in order (at_s first)
            telemetry.add(_day(sample.at_s), (raw.seq, *astuple(sample)))
    last = model.last_s if model.last_s is not None else math.inf
    for period in model.limits:
        end = period.end_s if period.end_s is not None else last
        values = msgspec.to_builtins(period.settings)
        for mode, value in values.items():
            number = float(value) if isinstance(value, int | float) else None
            for start, stop in _midnights(period.start_s, max(end, period.start_s)):
                rows["controls"].add(
                    _day(start),
                    (
                        period.seq,
                        start,
                        stop,
                        period.start_s,
                        period.end_s,
                        mode,
                        number,
                        json.dumps(value),
                        period.sources.get(mode),
                    ),
                )
    for response in model.responses.values():
        rows["responses"].add(
            _day(response.intended_s),
            (
                response.mrid,
                int(response.status),
                response.intended_seq,
                response.intended_s,
                response.sent_s[0] if response.sent_s else None,
                len(response.sent_s),
                response.acked_s,
                response.http_status,
                len(response.failures),
                response.outcome,
            ),
        )
    for write in model.writes:
        event = write.event
        rows["battery_writes"].add(
            _day(write.at_s),
            (
                write.seq,
                write.at_s,
                event.setpoint_w,
                event.wrote,
                event.site_limit_met,
                [str(m) for m in event.applied],
                [str(m) for m in event.not_applicable],
                # each clamp as its JSON object (json_extract-able); an old log's unreadable text as is
                [msgspec.json.encode(c).decode() for c in event.clamps]
                + list(event.unparsed_clamps),
                msgspec.json.encode(event.settings).decode(),
            ),
        )
    columns = ComplianceRow.__struct_fields__
    for row in compliance_series(model, settings):
        # the numbers of `export --what compliance`, rounded the same way
        rounded = tuple(
            round_compliance(n, v) if isinstance(v, float) else v
            for n, v in zip(columns, astuple(row), strict=True)
        )
        rows["compliance"].add(_day(row.at_s), rounded)
    return rows


def export_dataset(
    logs: Sequence[tuple[Path, str]],
    out: Path,
    *,
    settings: ComplianceSettings | None = None,
    on_log: Callable[[ExportedLog], None] | None = None,
) -> list[ExportedLog]:
    """Verify each ``(log, site)`` and write the dataset to ``out`` (a new folder).

    Written into a hidden folder beside ``out`` and renamed at the end: ``out`` either holds the
    whole dataset or does not exist. Raises :class:`LogRefused` for a log that does not verify,
    :class:`DatasetError` for a log that cannot be read or an output in the way.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    settings = settings or ComplianceSettings()
    if out.exists():
        raise DatasetError(f"{out} exists; a dataset is written to a new folder, never over one")
    if not out.parent.is_dir():
        raise DatasetError(f"{out}: cannot write it: {out.parent} is not a folder")
    sites: dict[str, Path] = {}
    for path, site in logs:
        if site in sites and sites[site] != path:
            # Two logs of one site and day would need one file each; a site per log keeps the
            # dataset's sources one to one with its partitions.
            raise DatasetError(f"{path} and {sites[site]} both name site {site!r}")
        sites[site] = path
    names = schemas()
    partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    exported: list[ExportedLog] = []
    try:
        for path, site in logs:
            try:
                store = SqliteEventStore(path, CATALOGUE, readonly=True)
            except EventLogError as exc:
                raise DatasetError(str(exc)) from None
            with store:
                model = analyse(store)
                if not model.verified:
                    assert model.report is not None
                    raise LogRefused(f"{path}: the log did not verify: {model.report.describe()}")
                head = store.head()
                rows = _tables(store, model, settings, names)
            metadata = {
                "sep2gw.schema": SCHEMA_NAME,
                "sep2gw.schema_version": str(SCHEMA_VERSION),
                "sep2gw.source": str(path),
                "sep2gw.site": site,
                "sep2gw.head_hash": head.hash.hex(),
                "sep2gw.records": str(head.seq),
                "sep2gw.verified": "true",
                "sep2gw.compliance_settings": msgspec.json.encode(settings).decode(),
            }
            stem = site + "-" + hashlib.sha256(head.hash).hexdigest()[:8]
            for table, table_rows in rows.items():
                schema = names[table].with_metadata({**metadata, "sep2gw.table": table})
                for day in sorted(table_rows.days):
                    folder = partial / table / f"site={site}" / f"day={day}"
                    folder.mkdir(parents=True, exist_ok=True)
                    columns = table_rows.columns(day)
                    pq.write_table(pa.table(columns, schema=schema), folder / f"{stem}.parquet")
            item = ExportedLog(
                path=path,
                site=site,
                head_hash=head.hash.hex(),
                records=head.seq,
                rows={table: r.count() for table, r in rows.items()},
            )
            exported.append(item)
            if on_log is not None:
                on_log(item)
        _write_sources(partial, exported, settings)
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return exported


def _write_sources(
    folder: Path, exported: Sequence[ExportedLog], settings: ComplianceSettings
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "site": [e.site for e in exported],
            "source": [str(e.path) for e in exported],
            "head_hash": [e.head_hash for e in exported],
            "records": [e.records for e in exported],
        }
    ).replace_schema_metadata(
        {
            "sep2gw.schema": SCHEMA_NAME,
            "sep2gw.schema_version": str(SCHEMA_VERSION),
            "sep2gw.table": "sources",
            "sep2gw.compliance_settings": msgspec.json.encode(settings).decode(),
        }
    )
    pq.write_table(table, folder / "_sources.parquet")
