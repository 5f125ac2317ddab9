"""The gateway against every hostile server behaviour (issue 15 point 6): memory, loop latency and
request rate, one case per behaviour of ``sep2gw.simserver.hostile``.

Each case (``sep2gw.hostile_cases.CASES``) runs the whole gateway — mutual TLS over in-memory pipes,
HTTP/1.1 or h2, SunSpec over Modbus to the simulated battery — on trio's autojump clock for 240
virtual seconds against the simulated utility turned hostile: connection-level faults (TLS, HTTP/1.1,
h2, header abuse, slow peer) and redirects from t+60 s for 150 s, document-level faults
(amplification, absurd values) for the whole run. Per case it prints what ran (the behaviour,
virtual seconds, requests and connections the server saw) and:

- ``rss_growth_mb``: this process's resident memory after the case minus before it (after a
  garbage collection each time), on the case's second run: the first run of a case leaves the
  allocator's high-water mark of its biggest document behind (a 1 MiB page of 1,500 controls: ~15 MB
  once), which repeating the case does not raise; growth that repeats is what would grow without
  bound on a site. The first run's figure is printed beside it (``rss_first_run_mb``);
- ``loop_stall_ms``: the longest single trio task step of the gateway's tasks in real time (a trio
  Instrument; the simulated server, battery and the world's own set-up task are not the gateway);
- ``requests_per_min``: the most requests the server saw in any virtual minute;
- ``problems``: what the test family (``tests/sep2gw/test_hostile_server.py``) would fail on.

The last line is JSON: ``{"cases": N, "actor_failures": 0, "max_rss_growth_mb": <=5,
"max_loop_stall_ms": <=100, "max_requests_per_min": <=60}``; the exit status is 1 when a target is
missed. ``--case NAME`` (repeatable) runs only those cases.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import trio

from sep2gw.cli import main as sep2gw_main
from sep2gw.hostile_cases import CASES, HostileCase, problems, run_case

TARGET_RSS_GROWTH_MB = 5.0
TARGET_LOOP_STALL_MS = 100.0
TARGET_REQUESTS_PER_MIN = 60
#: Tasks that are the simulated world, not the gateway (by the start of their qualified name).
_NOT_THE_GATEWAY = (
    "sep2gw.world.",
    "sep2gw.simserver.",
    "sep2gw.sim.",
    "actors.https.HttpsServer.",
    "actors.pipe.",
)


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 1e6


class StallMeter(trio.abc.Instrument):
    """The longest single step (real time) of any gateway task, and which task it was."""

    def __init__(self) -> None:
        self.worst_s = 0.0
        self.worst_task = ""
        self._began = 0.0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._began = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        took = time.perf_counter() - self._began
        if took > self.worst_s and not task.name.startswith(_NOT_THE_GATEWAY):
            self.worst_s = took
            self.worst_task = task.name


def _run(case: HostileCase, site: Path) -> dict[str, object]:
    gc.collect()
    first = _rss_mb()
    run_case(case, site)
    gc.collect()
    before = _rss_mb()
    meter = StallMeter()
    figures, result = run_case(case, site, instruments=[meter])
    del result
    gc.collect()
    growth = _rss_mb() - before
    found = problems(case, figures)
    return {
        "case": case.name,
        "class": case.fault_class,
        "ran": f"{case.description}; {figures.seconds:g} virtual s, {figures.requests} requests, "
        f"{figures.connections} connections ({figures.fault_connections} during the fault), "
        f"{figures.injected} injected",
        "actor_failures": len(figures.actor_failures),
        "rss_growth_mb": round(growth, 2),
        "rss_first_run_mb": round(before - first, 2),
        "loop_stall_ms": round(meter.worst_s * 1000, 1),
        "stalled_task": meter.worst_task,
        "requests_per_min": figures.max_requests_per_min,
        "real_s": round(figures.real_s, 2),
        "problems": found,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", default=[], help="run only this case")
    args = parser.parse_args(argv)
    known = {case.name for case in CASES}
    unknown = sorted(set(args.case) - known)
    if unknown:
        print(f"hostile_bench: unknown case(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 2
    cases = [case for case in CASES if not args.case or case.name in args.case]
    with tempfile.TemporaryDirectory(prefix="hostile-bench-") as folder:
        site = Path(folder)
        if sep2gw_main(["certs", "init", str(site / "pki")]) != 0:
            print("hostile_bench: could not make the demo PKI", file=sys.stderr)
            return 2
        run_case(CASES[0], site)  # warm-up: imports, codec stylesheets, TLS contexts
        rows = []
        for case in cases:
            row = _run(case, site)
            rows.append(row)
            print(json.dumps(row), flush=True)
    summary = {
        "cases": len(rows),
        "actor_failures": sum(int(str(row["actor_failures"])) for row in rows),
        "max_rss_growth_mb": max(float(str(row["rss_growth_mb"])) for row in rows),
        "max_loop_stall_ms": max(float(str(row["loop_stall_ms"])) for row in rows),
        "max_requests_per_min": max(int(str(row["requests_per_min"])) for row in rows),
    }
    missed = [
        name
        for name, ok in (
            ("actor_failures", summary["actor_failures"] == 0),
            ("max_rss_growth_mb", summary["max_rss_growth_mb"] <= TARGET_RSS_GROWTH_MB),
            ("max_loop_stall_ms", summary["max_loop_stall_ms"] <= TARGET_LOOP_STALL_MS),
            ("max_requests_per_min", summary["max_requests_per_min"] <= TARGET_REQUESTS_PER_MIN),
        )
        if not ok
    ]
    if missed:
        print(f"targets missed: {', '.join(missed)}", file=sys.stderr)
    print(json.dumps(summary))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
