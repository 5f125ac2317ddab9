"""Exports for people and tools (``sep2gw export``): the verified events and the compliance series
as JSON Lines or CSV.

Every time is given twice: epoch seconds for tools, and ISO-8601 with the site's offset for people
(the zone is named in the CSV header and in each JSON line). Quantities are rounded to what a meter
can tell (``humanfmt``: 0.1 W, 1 ms; never ``-0.0``) and the CSV header gives each column's unit.
Events are exported in their current shape: a record of an older version is upcast (e.g. a v1
``hardware.limits_applied`` whose clamps were Python repr text becomes structured clamps, a JSON
object each), and the line says the tag it was recorded under. ``sep2gw log export`` is the
byte-faithful dump (the stored bodies, hashes to re-check); this one is for reading.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from datetime import tzinfo
from typing import IO, Any, Final

import msgspec

from events.catalogue import Catalogue
from events.envelope import RawRecord
from events.errors import EventLogError
from sep2gw.forensics.compliance import ComplianceRow
from sep2gw.humanfmt import iso_in_zone, rounded, unit_of, zone_name

__all__ = ["compliance_header", "write_compliance", "write_events"]

_ENCODER: Final = msgspec.json.Encoder()
#: Epoch seconds to the millisecond: the log's clock reads no finer.
_EPOCH_DECIMALS: Final = 3


def _instant(name: str) -> bool:
    """Whether a compliance column holds an instant (epoch seconds) rather than a duration."""
    return name == "at_s" or name.endswith("_since_s")


def round_compliance(name: str, value: float) -> float:
    """A compliance column's value as every export gives it (``--what compliance``, the Parquet
    dataset): instants to the millisecond, quantities to their unit's resolution."""
    return _round(name, value)


def _round(name: str, value: float) -> float:
    if _instant(name):
        return rounded(value, _EPOCH_DECIMALS)
    unit = unit_of(name)
    return rounded(value, 3 if unit is None else unit[1])


def compliance_header(zone: tzinfo | None) -> list[str]:
    """The CSV header: each column with its unit, each instant followed by its local time."""
    where = zone_name(zone)
    header: list[str] = []
    for name in ComplianceRow.__struct_fields__:
        if _instant(name):
            header += [f"{name} [s since 1970 UTC]", f"{name[:-2]} [{where}]"]
            continue
        unit = unit_of(name)
        header.append(name if unit is None else f"{name} [{unit[0]}]")
    return header


def write_compliance(
    rows: Iterable[ComplianceRow], fmt: str, out: IO[str], zone: tzinfo | None
) -> None:
    """One line per sample: the limits commanded then, the measurement, the excess over each."""
    fields = ComplianceRow.__struct_fields__
    where = zone_name(zone)
    if fmt == "jsonl":
        for row in rows:
            item: dict[str, Any] = {}
            for name in fields:
                value = getattr(row, name)
                if isinstance(value, float):
                    value = _round(name, value)
                item[name] = value
                if _instant(name):
                    item[name[:-2]] = (
                        None if value is None else iso_in_zone(value, zone, timespec="milliseconds")
                    )
            item["zone"] = where
            out.write(_ENCODER.encode(item).decode())
            out.write("\n")
        return
    writer = csv.writer(out)
    writer.writerow(compliance_header(zone))
    for row in rows:
        cells: list[object] = []
        for name in fields:
            value = getattr(row, name)
            if isinstance(value, float):
                value = _number(_round(name, value))
            cells.append("" if value is None else value)
            if _instant(name):
                raw = getattr(row, name)
                cells.append("" if raw is None else iso_in_zone(raw, zone, timespec="milliseconds"))
        writer.writerow(cells)


def _number(value: float) -> str:
    """A rounded value as CSV text: no exponent, no trailing ``.0`` noise on whole numbers."""
    if not math.isfinite(value):
        return str(value)
    return str(int(value)) if value.is_integer() else repr(value)


class _EventLine(msgspec.Struct, omit_defaults=True):
    seq: int
    stream: str
    version: int
    type: str
    server_time: float
    time: str
    zone: str
    monotonic: float
    hash: str
    event: msgspec.Raw
    #: the tag the record was stored under, when it was upcast to ``type``
    recorded_as: str | None = None


_EVENT_COLUMNS: Final = (
    "seq",
    "stream",
    "version",
    "type",
    "recorded_as",
    "server_time [s since 1970 UTC]",
)


def write_events(
    records: Iterable[RawRecord],
    fmt: str,
    out: IO[str],
    zone: tzinfo | None,
    catalogue: Catalogue,
) -> None:
    """The records in their current shape (old versions upcast), with both times. A record that
    does not decode (only after ``--force`` on a damaged log) is left out, as the timeline does."""
    where = zone_name(zone)
    writer = None
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow((*_EVENT_COLUMNS, f"time [{where}]", "monotonic [s]", "hash", "event"))
    for raw in records:
        try:
            event = catalogue.decode(raw.body)
        except (EventLogError, msgspec.MsgspecError):
            continue
        current = catalogue.tag(event)
        body = catalogue.encode(event)
        recorded_as = raw.type if raw.type != current else None
        when = iso_in_zone(raw.server_time, zone, timespec="milliseconds")
        if writer is None:
            line = _EventLine(
                seq=raw.seq,
                stream=raw.stream,
                version=raw.version,
                type=current,
                server_time=raw.server_time,
                time=when,
                zone=where,
                monotonic=raw.monotonic,
                hash=raw.hash.hex(),
                event=msgspec.Raw(body),
                recorded_as=recorded_as,
            )
            out.write(_ENCODER.encode(line).decode())
            out.write("\n")
        else:
            writer.writerow(
                (
                    raw.seq,
                    raw.stream,
                    raw.version,
                    current,
                    recorded_as or "",
                    repr(raw.server_time),
                    when,
                    repr(raw.monotonic),
                    raw.hash.hex(),
                    body.decode(),
                )
            )
