"""Fleet questions over a Parquet dataset of site logs, answered by DuckDB (issue 21).

    sep2gw export --format parquet 'logs/*.sep2gw' -o fleet
    python3 examples/fleet_duckdb.py fleet --day 2025-11-26 [--tolerance-w 50]

"Which sites exceeded their export envelope on that day, by how much, and why": per site, the
seconds and energy over the export limit (a sample counts when the site exported more than
``tolerance`` above the limit in force, as ``sep2gw export --what compliance`` judges it), the
worst excess and when, who set the limit then (a control's mRID or a program's default), and what
the battery was doing: its last write before the worst sample (the setpoint, whether the site limit
was met, the clamps it hit) and its state of charge. A battery that is full cannot charge to soak
up PV: the export exceeded the envelope because nothing on site could absorb it.

The same SQL runs on Spark or Trino over the same files (the dataset is Hive-partitioned by site
and day); DuckDB reads them in place, from a laptop.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

QUESTION = """
WITH compliance AS (
    SELECT * FROM read_parquet($compliance, hive_partitioning = true) WHERE day = $day::DATE
), over AS (
    SELECT
        site,
        count(*) FILTER (WHERE export_over_w > $tolerance) AS samples_over,
        coalesce(sum(hold_s) FILTER (WHERE export_over_w > $tolerance), 0) AS seconds_over,
        coalesce(sum(export_over_w * hold_s) FILTER (WHERE export_over_w > $tolerance), 0)
            / 3600 AS energy_over_wh,
        max(export_over_w) AS worst_over_w,
        arg_max(at_s, export_over_w) AS worst_at_s,
        arg_max(export_limit_w, export_over_w) AS limit_then_w,
        arg_max(export_source, export_over_w) AS set_by
    FROM compliance
    GROUP BY site
    HAVING seconds_over > 0
), writes AS (
    SELECT site, at_s, setpoint_w, site_limit_met, clamps
    FROM read_parquet($writes, hive_partitioning = true) WHERE day = $day::DATE
), samples AS (
    SELECT site, at_s, soc_pct
    FROM read_parquet($measurements, hive_partitioning = true) WHERE day = $day::DATE
)
SELECT
    over.*,
    (SELECT arg_max(setpoint_w, w.at_s) FROM writes w
        WHERE w.site = over.site AND w.at_s <= over.worst_at_s) AS battery_setpoint_w,
    (SELECT arg_max(site_limit_met, w.at_s) FROM writes w
        WHERE w.site = over.site AND w.at_s <= over.worst_at_s) AS site_limit_met,
    (SELECT arg_max(clamps, w.at_s) FROM writes w
        WHERE w.site = over.site AND w.at_s <= over.worst_at_s) AS clamps,
    (SELECT arg_max(soc_pct, s.at_s) FROM samples s
        WHERE s.site = over.site AND s.at_s <= over.worst_at_s) AS soc_pct
FROM over
ORDER BY seconds_over DESC, site
"""


def sites_over_export_envelope(
    dataset: Path, day: str, tolerance_w: float = 50.0
) -> list[dict[str, Any]]:
    """One row per site that exceeded its export envelope on ``day`` (UTC, ``YYYY-MM-DD``)."""
    import duckdb

    con = duckdb.connect()
    params = {
        "compliance": str(dataset / "compliance" / "**" / "*.parquet"),
        "writes": str(dataset / "battery_writes" / "**" / "*.parquet"),
        "measurements": str(dataset / "measurements" / "**" / "*.parquet"),
        "day": day,
        "tolerance": tolerance_w,
    }
    cursor = con.execute(QUESTION, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "dataset", type=Path, help="the folder sep2gw export --format parquet wrote"
    )
    parser.add_argument("--day", required=True, help="the UTC day, YYYY-MM-DD")
    parser.add_argument("--tolerance-w", type=float, default=50.0)
    args = parser.parse_args(argv)
    if not (args.dataset / "_sources.parquet").is_file():
        print(
            f"{args.dataset}: not a sep2gw Parquet dataset (no _sources.parquet)", file=sys.stderr
        )
        return 2
    rows = sites_over_export_envelope(args.dataset, args.day, args.tolerance_w)
    if not rows:
        print(f"no site exceeded its export envelope on {args.day}")
        return 0
    print(f"{len(rows)} site(s) exceeded their export envelope on {args.day}:")
    for row in rows:
        met = {True: "met", False: "NOT met", None: "unknown"}[row["site_limit_met"]]
        print(
            f"  {row['site']}: {row['seconds_over']:.0f} s over ({row['energy_over_wh']:.1f} Wh), "
            f"worst {row['worst_over_w']:.0f} W over a {row['limit_then_w']:.0f} W limit set by "
            f"{row['set_by']}; battery then: setpoint {row['battery_setpoint_w']} W, site limit "
            f"{met}, clamps {list(row['clamps'] or [])}, SoC {row['soc_pct']}%"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
