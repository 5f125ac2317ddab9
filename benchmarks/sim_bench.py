"""How fast the deterministic world runs (issue 8, scope 7): 72 simulated hours, target ≤ 10 s wall.

The scenario (``sim_72h_scenario``): a utility program with a default export limit of 5 kW and four
6-hour controls a day — charge from the grid overnight (``opModTargetW``: the storage target is
a v1.3 storage element the v1.2 server cannot serve), export limited to 1.5 kW in the morning,
zero export at the solar peak, discharge for the evening peak (``opModTargetW``) —,
each announced an hour before it starts; pollRate and postRate 60 s; the hardware actor samples the
battery at 1 Hz and runs its closed loop every second while an export limit is in force (the
default's and the controls'), as on a real site.

It runs through ``sep2gw.world.run_world`` (mutual TLS on the HTTP pipes, the real gateway actors),
checks the world's invariants (``check``) and that every control was answered received, started,
completed in that order (only the statuses its instant allows when ``--hours`` cuts the run short),
and that the mirror posted about one reading a minute. Prints human lines, then one JSON line with
``wall_s_72h`` (wall seconds for 72 simulated hours, extrapolated when ``--hours`` is less than 72),
``sim_speedup`` (simulated seconds per wall second), ``events``, ``requests``, ``process_s`` and the
per-hour figures.

HTTP/1.1 by default, as every deployed 2030.5 server speaks it (PROTOCOL.md §3); ``--http 2`` has
the utility offer h2 by ALPN too (the gateway then negotiates it).

    python3 benchmarks/sim_bench.py [--hours H] [--seed S] [--battery direct|registers|sunspec]
                                    [--http 1.1|2] [--profile]
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgspec  # noqa: E402

from actors.hardware import HardwareConfig  # noqa: E402
from sep2gw.cli import main as cli_main  # noqa: E402
from sep2gw.simserver import Scenario, parse_scenario  # noqa: E402
from sep2gw.simserver.quirks import Quirks  # noqa: E402
from sep2gw.world import WorldResult, check, run_world  # noqa: E402

HOUR = 3600
DAY = 24 * HOUR
SLOT = 6 * HOUR
#: (modes, TOML) of the four daily slots, 00:00, 06:00, 12:00, 18:00 UTC.
SLOTS = (
    "{ opModTargetW = -2500 }",  # charge overnight
    "{ opModExpLimW = 1500 }",  # export limited in the morning
    "{ opModExpLimW = 0 }",  # zero export at the solar peak
    "{ opModTargetW = 3000 }",  # discharge for the evening peak
)


def mrid_of(day: int, slot: int) -> str:
    return f"5B{day:02X}{slot:02X}".ljust(32, "0")


def sim_72h_scenario(days: int = 3) -> Scenario:
    lines = [
        'name = "sim-bench-72h"',
        "[server]",
        "poll_rate_s = 60",
        "post_rate_s = 60",
        "[[programs]]",
        'id = "dnsp"',
        "primacy = 20",
        "default = { opModExpLimW = 5000 }",
    ]
    for day in range(days):
        for slot, modes in enumerate(SLOTS):
            start = day * DAY + slot * SLOT
            lines += [
                "[[actions]]",
                f"at_s = {max(0, start - HOUR)}",
                'kind = "create_control"',
                f'mrid = "{mrid_of(day, slot)}"',
                'program = "dnsp"',
                # The very first starts a minute in: the gateway registers and polls first.
                f"start_s = {max(60, start)}",
                f"duration_s = {SLOT - (60 if start == 0 else 0)}",
                f"modes = {modes}",
            ]
    return parse_scenario("\n".join(lines), source="sim_bench scenario")


def expected_statuses(scenario: Scenario, seconds: float) -> dict[str, list[int]]:
    """What the utility must have received per mRID after ``seconds``: 1 once the control has
    been visible for two polls, 2 once started, 3 once ended (a minute of slack for each)."""
    out: dict[str, list[int]] = {}
    for action in scenario.actions:
        mrid = getattr(action, "mrid", None)
        start = getattr(action, "start_s", None)
        if mrid is None or start is None:
            continue
        end = start + action.duration_s  # type: ignore[union-attr]
        statuses = []
        if seconds >= action.at_s + 120:
            statuses.append(1)
        if seconds >= start + 60:
            statuses.append(2)
        if seconds >= end + 60:
            statuses.append(3)
        out[mrid] = statuses
    return out


def verify(result: WorldResult, scenario: Scenario, seconds: float) -> list[str]:
    problems = [f"{v.invariant}: {v.detail}" for v in check(result)]
    for mrid, expected in expected_statuses(scenario, seconds).items():
        got = result.server.response_statuses(mrid)
        # A control near the cut may already have its next status: the expected ones lead.
        if got[: len(expected)] != expected or len(got) > len(expected) + 1:
            problems.append(f"responses for {mrid}: {got}, expected {expected}")
    readings = sum(
        1
        for q in result.server.requests
        if q.method == "POST" and "/mup" in q.path and q.status < 300
    )
    minutes = seconds / 60
    if readings < 0.9 * minutes - 5:
        problems.append(f"only {readings} MirrorMeterReading posts in {minutes:.0f} minutes")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=72.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--battery", choices=("direct", "registers", "sunspec"), default="direct")
    parser.add_argument(
        "--http",
        choices=("1.1", "2"),
        default="1.1",
        help="1.1 (default): the utility speaks HTTP/1.1 only (quirk http2 = false), as deployed "
        "servers do; 2: it offers h2 by ALPN, which the gateway takes",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the run")
    args = parser.parse_args(argv)
    scenario = sim_72h_scenario()
    if args.http == "1.1":
        scenario = msgspec.structs.replace(scenario, quirks=Quirks(http2=False))
    seconds = args.hours * HOUR
    hardware = HardwareConfig(control_period_s=1.0, sample_period_s=1.0, post_interval_s=60)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["certs", "init", str(site / "pki")]) == 0
        profiler = cProfile.Profile() if args.profile else None
        wall0, cpu0 = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        result = run_world(
            scenario,
            seed=args.seed,
            seconds=seconds,
            site=site,
            hardware=hardware,
            battery=args.battery,
        )
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    problems = verify(result, scenario, seconds)
    events = sum(1 for _ in result.store.read_raw())
    requests = len(result.server.requests)
    hours = seconds / HOUR
    speedup = seconds / wall
    if profiler is not None:
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumulative").print_stats(
            r"sep2gw|actors|events|statemachines|transport", 60
        )
    print(
        f"battery path       : {args.battery}, HTTP/{args.http} over mutual TLS"
    )
    print(f"simulated          : {seconds:.0f} s ({hours:g} h), seed {args.seed}")
    print(f"wall               : {wall:.2f} s   (process {cpu:.2f} s; noisy: shared cores)")
    print(f"speedup            : {speedup:,.0f}x real time (target 25,000x)")
    print(f"per simulated hour : {cpu / hours * 1000:.1f} ms process time")
    print(f"events logged      : {events} ({events / hours:.0f} per hour)")
    print(f"requests           : {requests} ({requests / hours:.0f} per hour)")
    print(f"checks             : {'all passed' if not problems else f'{len(problems)} FAILED'}")
    for problem in problems[:20]:
        print(f"  - {problem}")
    print(
        json.dumps(
            {
                "wall_s_72h": round(wall * 72 / hours, 3),
                "sim_speedup": round(speedup),
                "hours": hours,
                "battery": args.battery,
                "http": args.http,
                "process_s": round(cpu, 3),
                "process_ms_per_sim_hour": round(cpu / hours * 1000, 2),
                "events": events,
                "requests": requests,
                "violations": len(problems),
            }
        )
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
