"""How long a notified control takes to reach the last site's battery in a fleet (issue 19 points 3
and 6, decision 0022g), and what it costs.

    python -m benchmarks.fleet_notify_bench --sites 100 1000

A fleet world (``sep2gw.fleet_world``, monitor off, direct battery path) under one aggregator
certificate, notifications on, pollRate 300 s. At +125 s the server creates a control in the program
every site shares, starting at once. Measured:

- ``action_to_last_write_s``: server (virtual) time from the action to the last site's first
  battery write carrying the control (``hardware.limits_applied`` with its export limit);
- ``notification_to_limit_s``: per site, from its ``subscription.notification_received.v1`` to that
  write (the largest of the sites), what ``benchmarks/fleet_bench.py`` reads;
- ``cpu_s``: process CPU from the action (before the server applied it and rendered every
  subscribed resource before and after) to the last site's first write of the control (the
  notifier's POSTs, every site's listener
  record, prompted read, decision, Response and write, plus whatever else the fleet did in that
  stretch);
- ``cpu_total_s`` and ``rss_mb`` for the whole run, from a cold start (registration included).

One JSON line per fleet size.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from events.envelope import Recorded
from events.hardware_events import LimitsApplied
from events.memory_store import MemoryEventStore
from events.subscription_events import NotificationReceived
from sep2gw import fleet_world
from sep2gw.simserver import SimUtilityServer
from sep2gw.simserver.scenario import parse_scenario
from sep2gw.world import _Disk

ACTION_AT_S = 125
LIMIT_W = 1000.0

SCENARIO = f"""
name = "fleet_notify_bench"
[server]
poll_rate_s = 300
post_rate_s = 300
[fleet]
notifications = true
[[programs]]
id = "network"
primacy = 10
default = {{ opModExpLimW = 5000 }}
[[actions]]
at_s = {ACTION_AT_S}
kind = "create_control"
mrid = "5C00000000000000000000000000BE01"
program = "network"
start_s = {ACTION_AT_S}
duration_s = 600
modes = {{ opModExpLimW = {LIMIT_W:g} }}
"""


def measure(sites: int, folder: Path, seconds: float) -> dict[str, Any]:
    marks: dict[str, float] = {}
    #: Each site's first write of the control: its log (by identity) -> process time then.
    first_write_cpu: dict[int, float] = {}

    class TimedServer(SimUtilityServer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["on_action"] = self._marked
            super().__init__(*args, **kwargs)

        def _apply_due(self) -> None:
            marks["due_cpu"] = time.process_time()
            super()._apply_due()

        def _marked(self, at: float, action: Any) -> None:
            marks["action_at"] = at
            marks["action_cpu"] = marks["due_cpu"]  # before the server applied and rendered it

    class WatchedDisk(_Disk):
        def __init__(
            self, disk: MemoryEventStore, on_records: Callable[[list[Recorded]], None]
        ) -> None:
            super().__init__(disk, lambda records: self._watch(id(disk), records))

        @staticmethod
        def _watch(site: int, records: list[Recorded]) -> None:
            for rec in records:
                event = rec.event
                if (
                    isinstance(event, LimitsApplied)
                    and event.settings.export_limit_w == LIMIT_W
                    and site not in first_write_cpu
                ):
                    first_write_cpu[site] = time.process_time()

    # The fleet world builds its server and each site's log view by these names: watched here.
    names = vars(fleet_world)
    original = {"SimUtilityServer": names["SimUtilityServer"], "_Disk": names["_Disk"]}
    names.update(SimUtilityServer=TimedServer, _Disk=WatchedDisk)
    start_cpu = time.process_time()
    try:
        result = fleet_world.run_fleet_world(
            parse_scenario(SCENARIO),
            seed=1,
            sites=sites,
            site=folder,
            seconds=seconds,
            monitor=False,
            keep_requests=False,
        )
    finally:
        names.update(original)
    total_cpu = time.process_time() - start_cpu
    # each site's first write of the control (a site writes it again each control period)
    per_site: list[float] = []
    latencies: list[float] = []
    for outcome in result.sites.values():
        notified = next(
            (
                r.server_time
                for r in outcome.store.read()
                if isinstance(r.event, NotificationReceived) and r.event.http_status == 201
            ),
            None,
        )
        written = next(
            (
                r.server_time
                for r in outcome.store.read()
                if isinstance(r.event, LimitsApplied) and r.event.settings.export_limit_w == LIMIT_W
            ),
            None,
        )
        if written is not None:
            per_site.append(written)
            if notified is not None:
                latencies.append(written - notified)
    last = max(per_site) if len(per_site) == sites else None
    last_cpu = max(first_write_cpu.values()) if len(first_write_cpu) == sites else None
    return {
        "sites": sites,
        "sites_written": len(per_site),
        "action_to_last_write_s": None if last is None else last - marks["action_at"],
        "notification_to_limit_s": max(latencies) if latencies else None,
        "cpu_s": None if last_cpu is None else round(last_cpu - marks["action_cpu"], 3),
        "cpu_total_s": round(total_cpu, 3),
        "seconds": seconds,
        "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "notifications_delivered": sum(
            1 for a in result.server.notifier.attempts if a.outcome == "delivered"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, nargs="+", default=[100])
    parser.add_argument("--seconds", type=float, default=ACTION_AT_S + 15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        from sep2gw.cli import main as cli

        if cli(["certs", "init", str(folder / "pki")]) != 0:
            raise SystemExit("could not create the world's PKI")
        for sites in args.sites:
            print(json.dumps(measure(sites, folder, args.seconds)), flush=True)


if __name__ == "__main__":
    main()
