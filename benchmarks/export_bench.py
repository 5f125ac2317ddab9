"""Fleet logs into Parquet, and DuckDB over them (issue 21, scope 3).

    python3 benchmarks/export_bench.py [--sites 100] [--days 30] [--distinct 4] [--quick]
                                       [--dir DIR] [--keep]

How the synthetic fleet is built (said again in the output): ``--distinct`` site-month logs are
written through the real store API (``SqliteEventStore.append``, hash chain and all): a gateway
start, the network's export/import envelope as ``control.limits_in_force.v1`` records (5 kW, and
1.5 kW from 11:00 to 14:00 UTC every day), a telemetry sample every 60 s (``hardware.telemetry.v1``:
a PV bell with seeded clouds against a load, a battery soaking the midday surplus until it is full,
so some afternoons exceed the envelope), and a battery write every 5 min
(``hardware.limits_applied.v1``). The ``--sites`` logs of the fleet are symbolic links to those
files under other names (each name is a site): the export verifies and converts every one of them,
so the work is that of a fleet of that size; only their contents repeat.

Figures: records per second from logs to the dataset (``sep2gw export --format parquet``'s code:
verification, the forensic fold, the compliance series and the Parquet writes, all on one core),
the dataset's size, and DuckDB's time for two fleet questions: the per-site export excess of one
day (``examples/fleet_duckdb.py``) and the month's total excess per site. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from events.control_events import LimitsInForceChanged  # noqa: E402
from events.der_model import ControlSettings, Mode  # noqa: E402
from events.envelope import Append  # noqa: E402
from events.hardware_events import LimitsApplied, TelemetrySampled  # noqa: E402
from events.registry import CATALOGUE  # noqa: E402
from events.runtime_events import GatewayStarted  # noqa: E402
from events.sqlite_store import SqliteEventStore  # noqa: E402
from sep2gw.forensics.compliance import ComplianceSettings  # noqa: E402
from sep2gw.forensics.dataset import export_dataset  # noqa: E402

#: 2025-11-01T00:00:00Z
START = 1_761_955_200
SAMPLE_S = 60
WRITE_S = 300
BATCH = 2000


def _envelope(t: float) -> float:
    hour = (t % 86_400) / 3600
    return 1500.0 if 11 <= hour < 14 else 5000.0


def write_site_month(path: Path, days: int, seed: int) -> int:
    """One synthetic site log of ``days`` days; returns its record count."""
    rng = random.Random(seed)
    peak_pv = rng.uniform(5000, 9000)
    capacity_wh = rng.uniform(5000, 13500)
    source = "default:NETWORK"
    appends: list[Append] = []
    count = 0
    stored = capacity_wh * 0.3
    mono = 0.0

    def add(stream: str, event: object, t: float) -> None:
        nonlocal count
        appends.append(Append(stream=stream, events=(event,), server_time=t, monotonic=t - START))  # type: ignore[arg-type]
        count += 1

    with SqliteEventStore(path, CATALOGUE) as store:

        def flush() -> None:
            if appends:
                store.append(appends)
                appends.clear()

        add(
            "runtime",
            GatewayStarted(software_version="bench", rng_seed=seed, clock_synced=True),
            START,
        )
        limit = None
        cloud = 1.0
        for step in range(days * 86_400 // SAMPLE_S):
            t = float(START + step * SAMPLE_S)
            mono = t - START
            now_limit = _envelope(t)
            if now_limit != limit:
                limit = now_limit
                settings = ControlSettings(export_limit_w=limit, import_limit_w=5000.0)
                add(
                    "controls",
                    LimitsInForceChanged(
                        settings=settings,
                        sources={Mode.EXPORT_LIMIT_W: source, Mode.IMPORT_LIMIT_W: source},
                        next_change_s=None,
                        at_s=t,
                    ),
                    t,
                )
            hour = (t % 86_400) / 3600
            cloud = min(1.0, max(0.2, cloud + rng.uniform(-0.1, 0.1)))
            pv = (
                peak_pv * max(0.0, math.sin(math.pi * (hour - 6) / 12)) * cloud
                if 6 < hour < 18
                else 0.0
            )
            load = 400 + 600 * (17 <= hour < 22) + rng.uniform(-100, 100)
            surplus = pv - load
            # The battery soaks what the envelope would not take, until it is full; it covers the
            # evening load until it is empty.
            der = 0.0
            if surplus > limit:
                der = -min(surplus - limit + 200, 5000.0) if stored < capacity_wh else 0.0
            elif surplus < 0 and stored > 0:
                der = min(-surplus, 5000.0)
            stored = min(capacity_wh, max(0.0, stored - der * SAMPLE_S / 3600))
            site = surplus + der
            add(
                "hardware",
                TelemetrySampled(
                    at_s=t,
                    site_w=round(site),
                    der_w=round(der),
                    soc_pct=round(100 * stored / capacity_wh, 1),
                    stored_wh=round(stored),
                    connected=True,
                ),
                t,
            )
            if step % (WRITE_S // SAMPLE_S) == 0:
                add(
                    "hardware",
                    LimitsApplied(
                        at_s=t,
                        settings=ControlSettings(export_limit_w=limit, import_limit_w=5000.0),
                        applied=(Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W),
                        setpoint_w=round(der),
                        wrote=True,
                        site_limit_met=site <= limit,
                    ),
                    t,
                )
            if len(appends) >= BATCH:
                flush()
        flush()
    del mono
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--distinct", type=int, default=4, help="distinct site logs written")
    parser.add_argument("--quick", action="store_true", help="10 sites, 3 days")
    parser.add_argument("--dir", type=Path, default=None, help="work folder (default: a temp one)")
    parser.add_argument("--keep", action="store_true", help="keep the logs and the dataset")
    args = parser.parse_args(argv)
    if args.quick:
        args.sites, args.days = 10, 3
    if min(args.sites, args.days, args.distinct) < 1:
        parser.error("--sites, --days and --distinct must be at least 1")
    work = args.dir or Path(tempfile.mkdtemp(prefix="sep2gw-export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    logs_dir = work / "logs"
    logs_dir.mkdir(exist_ok=True)
    print(
        f"synthetic fleet: {args.distinct} distinct site logs of {args.days} days written through "
        f"SqliteEventStore.append (telemetry every {SAMPLE_S} s, a battery write every {WRITE_S} s, "
        f"the envelope twice a day), linked under {args.sites} site names"
    )
    started = time.perf_counter()
    distinct = []
    per_log = {}
    for i in range(min(args.distinct, args.sites)):
        path = work / f"distinct-{i}.sep2gw"
        path.unlink(missing_ok=True)
        per_log[path] = write_site_month(path, args.days, seed=i)
        distinct.append(path)
    built_s = time.perf_counter() - started
    fleet = []
    records = 0
    for n in range(args.sites):
        source = distinct[n % len(distinct)]
        link = logs_dir / f"site-{n:04d}.sep2gw"
        link.unlink(missing_ok=True)
        link.symlink_to(source)
        fleet.append((link, link.stem))
        records += per_log[source]
    print(f"  built in {built_s:.1f} s: {records:,} records over {args.sites} sites")
    out = work / "dataset"
    if out.exists():
        shutil.rmtree(out)
    started, cpu = time.perf_counter(), time.process_time()
    export_dataset(fleet, out, settings=ComplianceSettings())
    export_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    size = sum(f.stat().st_size for f in out.rglob("*.parquet"))
    rate = records / export_s
    print(
        f"export: {records:,} records in {export_s:.1f} s = {rate:,.0f} records/s (one core; "
        f"{records / cpu_s:,.0f} per CPU second: the rest waited for a core), "
        f"dataset {size / 1e6:.1f} MB in {sum(1 for _ in out.rglob('*.parquet')):,} files"
    )
    import duckdb

    sys.path.insert(0, str(ROOT / "examples"))
    from fleet_duckdb import sites_over_export_envelope

    day = time.strftime("%Y-%m-%d", time.gmtime(START + 86_400 * (args.days // 2)))
    started = time.perf_counter()
    rows = sites_over_export_envelope(out, day)
    day_s = time.perf_counter() - started
    started = time.perf_counter()
    month = (
        duckdb.connect()
        .execute(
            "SELECT site, sum(hold_s) FILTER (WHERE export_over_w > 50) AS seconds_over, "
            "sum(export_over_w * hold_s) FILTER (WHERE export_over_w > 50) / 3600 AS wh_over "
            "FROM read_parquet(?, hive_partitioning = true) GROUP BY site ORDER BY seconds_over DESC",
            [str(out / "compliance" / "**" / "*.parquet")],
        )
        .fetchall()
    )
    month_s = time.perf_counter() - started
    print(
        f"duckdb: sites over the envelope on {day} (with why): {len(rows)} sites in {day_s:.2f} s; "
        f"the month's excess per site: {len(month)} sites in {month_s:.2f} s"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(
        json.dumps(
            {
                "sites": args.sites,
                "days": args.days,
                "records": records,
                "export_s": round(export_s, 2),
                "records_per_s": round(rate),
                "records_per_cpu_s": round(records / cpu_s),
                "dataset_mb": round(size / 1e6, 1),
                "duckdb_day_question_s": round(day_s, 3),
                "duckdb_month_per_site_s": round(month_s, 3),
                "sites_over_on_day": len(rows),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
