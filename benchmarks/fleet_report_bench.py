"""The fleet summary's cost (issue 19 point 4): N site logs of one day each, summarised.

Each site's log is the one-day log of ``replay_bench`` (a telemetry sample every 5 s, polls, mirror
posts, six controls with their Responses: ~35,000 records, the shape a gateway records), written
once and hard-linked N times as ``<dir>/site-NNNN.sep2gw`` (a real fleet's logs differ; their cost
does not: each is verified, folded and judged in full). The summary is ``sep2gw report DIR``'s
(``sep2gw.forensics.fleet.summarise_fleet``), per day in the site zone, with ``--workers`` processes.

    python3 benchmarks/fleet_report_bench.py [--sites 1000] [--workers 1] [--dir PATH]
    → last line: JSON {"sites", "workers", "wall_s", "cpu_s", "per_site_ms", "peak_rss_mb", …}

Peak RSS is the largest resident set of this process and (``--workers`` > 1) of any one worker
(``getrusage``): with sites summarised one at a time it must not grow with ``--sites``; run two
sizes to see it. CPU is this process's and its workers' user + system time: on a shared machine
wall time measures the neighbours as much as the summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.replay_bench import build
from sep2gw.fleetlogs import read_fleet_dir
from sep2gw.forensics.compliance import ComplianceSettings
from sep2gw.forensics.fleet import summarise_fleet
from sep2gw.forensics.render import parse_zone


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_rss_mb() -> tuple[float, float]:
    """(this process, the largest child) in MB (Linux reports ru_maxrss in KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, child


def fleet(folder: Path, sites: int) -> Path:
    """``folder`` holding ``sites`` one-day site logs (hard links of one built log)."""
    folder.mkdir(parents=True, exist_ok=True)
    one = folder / "one-day.log"  # not a site log: the summary sets it aside with a note
    if not one.exists():
        build(one, 1)
    for i in range(sites):
        link = folder / f"site-{i:04}.sep2gw"
        if not link.exists():
            os.link(one, link)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--dir", type=Path, help="the fleet folder (kept; default: a temp dir)")
    parser.add_argument("--tz", default="Australia/Adelaide")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = fleet(args.dir or Path(tmp) / "fleet", args.sites)
        logs = read_fleet_dir(folder)
        assert len(logs.sites) >= args.sites
        logs = type(logs)(logs.path, logs.sites[: args.sites], logs.ignored)
        records = _records(logs.sites[0].path)
        size_mb = logs.sites[0].path.stat().st_size / 1e6
        rss_before, _ = _peak_rss_mb()
        started, cpu = time.perf_counter(), _cpu()
        last = [started]

        def progress(site: object, done: int, total: int) -> None:
            now = time.perf_counter()
            if now - last[0] >= 10 or done == total:
                last[0] = now
                print(f"{done}/{total} sites, {now - started:.0f} s", file=sys.stderr)

        summary = summarise_fleet(
            logs,
            zone=parse_zone(args.tz),
            settings=ComplianceSettings(),
            workers=args.workers,
            on_site=progress,
        )
        wall = time.perf_counter() - started
        cpu_s = _cpu() - cpu
        own_rss, child_rss = _peak_rss_mb()
        assert all(s.state == "summarised" for s in summary.sites)
        print(
            f"{args.sites} sites x 1 day ({records:,} records, {size_mb:.1f} MB each) with "
            f"{args.workers} worker(s): {wall:.1f} s wall, {cpu_s:.1f} s CPU, "
            f"{1000 * cpu_s / args.sites:.0f} ms CPU per site, "
            f"{args.sites * records / cpu_s:,.0f} records/s of CPU; "
            f"peak RSS {own_rss:.0f} MB (before: {rss_before:.0f} MB), largest worker "
            f"{child_rss:.0f} MB; summary {len(msgspec_json(summary)) / 1e3:.0f} kB as JSON"
        )
    print(
        json.dumps(
            {
                "sites": args.sites,
                "days": 1,
                "records_per_site": records,
                "workers": args.workers,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu_s, 2),
                "per_site_ms_cpu": round(1000 * cpu_s / args.sites, 1),
                "per_site_ms_wall": round(1000 * wall / args.sites, 1),
                "peak_rss_mb": round(own_rss, 1),
                "peak_worker_rss_mb": round(child_rss, 1),
                "rss_before_mb": round(rss_before, 1),
            }
        )
    )


def _records(path: Path) -> int:
    from events.registry import CATALOGUE
    from events.sqlite_store import SqliteEventStore

    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        return store.head().seq


def msgspec_json(value: object) -> bytes:
    import msgspec

    return msgspec.json.encode(value)


if __name__ == "__main__":
    main()
