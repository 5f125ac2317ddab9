"""Exports and values for people (issue 20): rounded with units, times in the site's zone."""

from __future__ import annotations

import csv
import io
import json

import pytest

from sep2gw.exports import write_compliance
from sep2gw.forensics.compliance import ComplianceRow
from sep2gw.humanfmt import BadZone, iso_in_zone, parse_zone, quantity, rounded, zone_name

ADELAIDE = parse_zone("Australia/Adelaide")

ROW = ComplianceRow(
    at_s=1764115205.0000002,
    hold_s=4.9901509284973145,
    site_w=-0.0,
    der_w=-0.04,
    export_limit_w=4991.169952955278,
    export_source="control:00000001",
    export_since_s=1764115200.0,
    export_over_w=0.0,
)


def test_quantities_are_rounded_with_their_unit() -> None:
    assert quantity("export_limit_w", 4991.169952955278) == "4991.2 W"
    assert quantity("site_w", -0.04) == "0 W"
    assert quantity("soc_pct", 55.0) == "55 %"
    assert quantity("ramp_time_s", 10.0) == "10 s"
    assert quantity("connect", False) == "False"
    assert rounded(-0.0, 1) == 0.0 and str(rounded(-0.04, 1)) == "0.0"


def test_times_are_iso_8601_in_the_sites_zone() -> None:
    assert iso_in_zone(1764115200.0, ADELAIDE) == "2025-11-26T10:30:00+10:30"
    assert iso_in_zone(1764115200.0, None) == "2025-11-26T00:00:00Z"
    assert iso_in_zone(float("nan"), ADELAIDE) == "nan s (not a date: outside 1970..9999)"
    assert zone_name(ADELAIDE) == "Australia/Adelaide"
    assert zone_name(parse_zone("-03:30")) == "UTC-03:30"
    with pytest.raises(BadZone, match="'Mars/Olympus': not a time zone"):
        parse_zone("Mars/Olympus")


def test_the_compliance_csv_has_units_in_its_header_and_no_float_noise() -> None:
    out = io.StringIO()
    write_compliance([ROW], "csv", out, ADELAIDE)
    (row,) = csv.DictReader(io.StringIO(out.getvalue()))
    assert row["export_limit_w [W]"] == "4991.2"
    assert row["site_w [W]"] == "0" and row["der_w [W]"] == "0"
    assert row["hold_s [s]"] == "4.99"
    assert row["at_s [s since 1970 UTC]"] == "1764115205"
    assert row["at [Australia/Adelaide]"] == "2025-11-26T10:30:05.000+10:30"
    assert row["export_since [Australia/Adelaide]"] == "2025-11-26T10:30:00.000+10:30"
    assert row["import_limit_w [W]"] == "" and row["import_since [Australia/Adelaide]"] == ""


def test_the_compliance_json_lines_keep_the_fields_and_add_local_times() -> None:
    out = io.StringIO()
    write_compliance([ROW], "jsonl", out, None)
    item = json.loads(out.getvalue())
    assert item["export_limit_w"] == 4991.2 and item["site_w"] == 0.0
    assert "-0.0" not in out.getvalue()
    assert item["at"] == "2025-11-26T00:00:05.000Z" and item["zone"] == "UTC"
    assert item["hold_s"] == 4.99
