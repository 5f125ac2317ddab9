"""``sep2gw sim [SCENARIO...] [--seed S] [--seeds N] [--hours H] [--log PATH] [--site DIR]``: run
simulated worlds (issue 8, scope 5); ``sep2gw sim --conformance``: the conformance family.

Each scenario (a TOML file; none: the built-in demo) runs in a seeded world (``sep2gw.world``) with
the continuous invariant monitor (``sep2gw.invariants``): ``--seed S`` runs seed S, ``--seeds N``
runs seeds S, S+1, …, S+N-1. A progress bar on stderr follows simulated time to the scenario's end;
each world prints a summary (responses per control, energy curtailed, polls, posts, invariants).
Any violation prints a failure report (with the command that reproduces it) and the exit code is 1.

The world's identity (its PKI: certificates carry random signatures, and the LFDI, which the log
records, is their hash) lives in ``--site`` (default ``~/.cache/sep2gw/sim-site``, created on first
use), so runs on one machine reproduce byte for byte. ``--log PATH`` copies each world's log into
a SQLite event log (``sep2gw log`` reads it): the same records, times and hash chain as the
in-memory log the world ran on, so the head hash printed in the summary identifies the run (the
SQLite file's own pages are not compared). With several worlds the seed and scenario go into the
file name.

``--conformance`` runs the library's conformance family (``sep2gw.simserver.library``: one
scenario per intent of the published CSIP-AUS client test procedures, each with the audits a
strict test server runs) and prints one line per intent — PASS, or FAIL with the first failed
expectation, invariant or audit — then how many passed; the exit code is 1 if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from events.errors import EventLogError
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from events.store import EventStore, copy_records

__all__ = ["default_site", "ensure_site", "register", "write_log"]


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "sim", help="run seeded simulated worlds with fault injection and invariant checks"
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="SCENARIO",
        help="scenario TOML files, or library scenarios by name (--list shows them); none: the "
        "built-in demo",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the bundled scenario library (name, family, what it shows) and exit",
    )
    parser.add_argument("--seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds per scenario")
    parser.add_argument(
        "--hours", type=float, help="simulated hours per world (default: the scenario's length)"
    )
    parser.add_argument("--log", type=Path, help="write each world's log to this SQLite file")
    parser.add_argument(
        "--site", type=Path, help="folder with the world's PKI (default ~/.cache/sep2gw/sim-site)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--sites",
        type=int,
        metavar="N",
        help="run each scenario as a fleet of N sites under one aggregator certificate (a fleet "
        "scenario's own count by default); --log then names a folder for the sites' logs",
    )
    parser.add_argument(
        "--conformance",
        action="store_true",
        help="run the conformance scenario family: one PASS/FAIL line per procedure intent",
    )
    parser.add_argument(
        "--csipaus-version",
        action="append",
        default=[],
        metavar="VERSION",
        help="serve every scenario in this CSIP-AUS version (v1.2, v1.3-beta/storage, v1.3, or "
        "'all'; repeatable; default: as each scenario says)",
    )
    parser.set_defaults(handler=_sim)


def _versions(args: argparse.Namespace) -> list[str | None] | None:
    """The CSIP-AUS versions asked for (``[None]``: each scenario's own); ``None`` after saying
    on stderr which one is unknown."""
    from transport.sep2.versions import CSIPAUS_VERSIONS

    known = [v.name for v in CSIPAUS_VERSIONS]
    asked: list[str | None] = []
    for name in args.csipaus_version:
        if name == "all":
            asked += [n for n in known if n not in asked]
        elif name in known:
            if name not in asked:
                asked.append(name)
        else:
            print(
                f"sep2gw sim: --csipaus-version {name!r} is not one of {', '.join(known)} or all",
                file=sys.stderr,
            )
            return None
    return asked or [None]


def _served(scenario: Any, version: str | None) -> Any:
    from sep2gw.simserver import under_version

    return scenario if version is None else under_version(scenario, version)


def default_site() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sep2gw" / "sim-site"


def ensure_site(site: Path) -> None:
    """Create the world's PKI in ``site/pki`` unless it is there (``sep2gw certs init``)."""
    if (site / "pki" / "device.pem").is_file():
        return
    from sep2gw.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["certs", "init", str(site / "pki")])
    if code != 0:
        raise OSError(f"could not create the simulation PKI in {site / 'pki'}")


def write_log(store: EventStore, path: Path) -> str:
    """Copy ``store``'s records into a new SQLite log at ``path``; returns its head hash (hex),
    which equals the source's: same events, times and order give the same hash chain."""
    if path.exists():
        raise FileExistsError(f"{path} exists; an event log is never overwritten")
    with SqliteEventStore(path, CATALOGUE) as target:
        return copy_records(store, target).hash.hex()


class _Progress:
    """``[#####.....] 1.2 h / 3.0 h`` on stderr, redrawn at most every 0.1 s of real time."""

    def __init__(self, out: TextIO, label: str, start: float, total_s: float) -> None:
        self.out, self.label, self.start, self.total = out, label, start, max(total_s, 1.0)
        self._drawn = 0.0

    def __call__(self, now: float) -> None:
        wall = time.perf_counter()
        if wall - self._drawn < 0.1:
            return
        self._drawn = wall
        self._draw(now - self.start)

    def _draw(self, done: float) -> None:
        frac = min(max(done / self.total, 0.0), 1.0)
        bar = "#" * round(frac * 30)
        self.out.write(f"\r{self.label} [{bar:<30}] {_span(done)} / {_span(self.total)} (sim time)")
        self.out.flush()

    def close(self) -> None:
        self._draw(self.total)
        self.out.write("\n")
        self.out.flush()


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds:.0f} s"


def _sim(args: argparse.Namespace) -> int:
    from sep2gw.expect import check_expectations
    from sep2gw.simreport import failure_report, summarize
    from sep2gw.simserver import ScenarioError, demo_scenario
    from sep2gw.world import default_duration_s, run_world

    if args.list:
        return _list(args)
    if args.seeds < 1:
        print(f"sep2gw sim: --seeds must be at least 1, got {args.seeds}", file=sys.stderr)
        return 2
    versions = _versions(args)
    if versions is None:
        return 2
    if args.conformance:
        return _conformance(args)
    # inf parsed as a float and ran a world that never ends.
    if args.hours is not None and not 0 < args.hours < math.inf:
        print(f"sep2gw sim: --hours must be positive and finite, got {args.hours}", file=sys.stderr)
        return 2
    from sep2gw.simserver.library import resolve_scenario

    worlds: list[tuple[Path | None, Any]] = []
    try:
        loaded: list[tuple[Path | None, Any]] = [
            (Path(given), resolve_scenario(given)) for given in args.scenarios
        ] or [(None, demo_scenario())]
        for path, scenario in loaded:
            worlds += [(path, _served(scenario, version)) for version in versions]
    except ScenarioError as exc:
        print(f"sep2gw sim: {exc}", file=sys.stderr)
        return 2
    site: Path = args.site or default_site()
    try:
        ensure_site(site)
    except OSError as exc:
        print(f"sep2gw sim: {exc}", file=sys.stderr)
        return 2
    if args.log is not None and not args.log.parent.is_dir():
        # Found out before the worlds run, not after the first one.
        print(
            f"sep2gw sim: cannot write the log: {args.log.parent} is not a folder", file=sys.stderr
        )
        return 2
    if args.sites is not None and not 1 <= args.sites <= 100_000:
        print(f"sep2gw sim: --sites must be 1..100000, got {args.sites}", file=sys.stderr)
        return 2
    many = len(worlds) * args.seeds > 1
    failed = 0
    unvalidated_said = False
    for path, scenario in worlds:
        for seed in range(args.seed, args.seed + args.seeds):
            seconds = args.hours * 3600 if args.hours is not None else default_duration_s(scenario)
            if args.sites is not None or scenario.fleet.sites:
                verdict = _sim_fleet(scenario, seed, seconds, site, args)
                if verdict == 2:
                    return 2
                failed += verdict
                continue
            progress = None
            if not args.quiet:
                progress = _Progress(sys.stderr, f"{scenario.name} seed {seed}", 0.0, seconds)
            started = time.perf_counter()
            result = run_world(
                scenario,
                seed=seed,
                seconds=seconds,
                site=site,
                progress=None if progress is None else _relative(progress, scenario),
            )
            if progress is not None:
                progress.close()
            if result.server.validation_off and not unvalidated_said:
                unvalidated_said = True  # said once, plainly (the worlds' server is not strict)
                print(f"sep2gw sim: {result.server.validation_off}", file=sys.stderr)
            wall = time.perf_counter() - started
            summary = summarize(result)
            # The outcomes the scenario's [expect] section demands count as violations too.
            summary.violations.extend(check_expectations(scenario, result))
            for line in summary.lines():
                print(line)
            print(f"  wall {wall:.2f} s ({seconds / max(wall, 1e-9):,.0f}x real time)")
            if args.log is not None:
                target = args.log
                if many:
                    stem = f"{args.log.stem}-{_slug(scenario.name)}-{seed}"
                    target = args.log.with_name(stem + args.log.suffix)
                try:
                    write_log(result.store, target)
                except (OSError, EventLogError) as exc:
                    print(f"sep2gw sim: cannot write the log: {exc}", file=sys.stderr)
                    return 2
                print(f"  log written to {target}")
            if summary.violations:
                failed += 1
                print(
                    failure_report(
                        result, summary.violations[0], scenario_path=path, site=args.site
                    )
                )
    total = len(worlds) * args.seeds
    print(f"{total} world(s), {failed} with violations")
    return 1 if failed else 0


def _sim_fleet(
    scenario: Any, seed: int, seconds: float, site: Path, args: argparse.Namespace
) -> int:
    """One fleet world (``sep2gw.fleet_world``): a line per site, the fleet's discovery figures,
    the first violation naming its site. 1 if anything was violated, 2 if a log could not be
    written, else 0."""
    from sep2gw.fleet_world import check_fleet, check_fleet_expectations, run_fleet_world

    started = time.perf_counter()
    result = run_fleet_world(scenario, seed=seed, sites=args.sites, site=site, seconds=seconds)
    wall = time.perf_counter() - started
    found = check_fleet(result) + check_fleet_expectations(scenario, result)
    server = result.server
    print(
        f"{scenario.name} seed {seed}: fleet of {len(result.sites)} sites, "
        f"{len(found)} violation(s)"
    )
    controls = sorted({int(response.subject) for _, response in server.state.responses})
    for name, outcome in result.sites.items():
        answered = server.state.responses_by_end_device
        lfdi = int(outcome.lfdi, 16)
        codes = " ".join(f"{mrid:X}:{answered(mrid).get(lfdi, [])}" for mrid in controls)
        own = " own certificate" if outcome.own_certificate else ""
        print(
            f"  {name} LFDI {outcome.lfdi}{own}: starts {outcome.starts}, "
            f"{sum(1 for _ in outcome.store.read_raw())} records; Responses {codes or 'none'}"
        )
    at_start = sum(1 for q in server.polls_of("/dcap") if q.time == server.start)
    print(
        f"  discovery: {at_start} DeviceCapability GET(s) at the start for {len(result.sites)} "
        f"sites; shared GETs {result.shared_gets_sent} sent, {result.shared_gets_joined} joined"
    )
    print(f"  wall {wall:.2f} s ({seconds / max(wall, 1e-9):,.0f}x real time)")
    for name, violation in found:
        print(f"  VIOLATION {name}: {violation.invariant}: {violation.detail}")
    if args.log is not None:
        folder = args.log if args.seeds == 1 else args.log / f"{_slug(scenario.name)}-{seed}"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, outcome in result.sites.items():
                write_log(outcome.store, folder / f"{name}.sep2gw")
        except (OSError, EventLogError) as exc:
            print(f"sep2gw sim: cannot write the logs: {exc}", file=sys.stderr)
            return 2
        print(f"  logs written to {folder}/<site>.sep2gw")
    return 1 if found else 0


def _list(args: argparse.Namespace) -> int:
    """``sim --list``: the library's scenarios, one line each, for ``sep2gw sim NAME``."""
    from sep2gw.simserver.library import catalogue

    given = [
        name
        for name, on in (
            ("SCENARIO", bool(args.scenarios)),
            ("--conformance", args.conformance),
            ("--log", args.log is not None),
        )
        if on
    ]
    if given:
        print(
            f"sep2gw sim: --list lists the library; it does not take {', '.join(given)}",
            file=sys.stderr,
        )
        return 2
    entries = catalogue()
    width = max(len(e.name) for e in entries)
    family_width = max(len(e.family) for e in entries)
    for entry in entries:
        print(f"{entry.name:<{width}}  {entry.family:<{family_width}}  {entry.description}")
    print(
        f"{len(entries)} scenarios; run one with: sep2gw sim NAME (e.g. sep2gw sim "
        f"{entries[0].name}); sep2gw sim-server --scenario NAME serves one"
    )
    return 0


def _conformance(args: argparse.Namespace) -> int:
    """Issue 14: every conformance intent as PASS or FAIL (with the first failure), exit 1 on any
    FAIL; ``--seed``/``--seeds`` choose the worlds (an intent passes when all its worlds do)."""
    from sep2gw.expect import check_expectations
    from sep2gw.simserver import ScenarioError
    from sep2gw.simserver.library import CONFORMANCE, library
    from sep2gw.world import check, run_world

    refused = [
        name
        for name, given in (
            ("SCENARIO", bool(args.scenarios)),
            ("--hours", args.hours is not None),
            ("--log", args.log is not None),
        )
        if given
    ]
    if refused:
        print(
            f"sep2gw sim: --conformance runs the library's conformance family; it does not take "
            f"{', '.join(refused)}",
            file=sys.stderr,
        )
        return 2
    try:
        # The conformance family, and every other library scenario that names a procedure intent
        # (the registration cases and the device-side status changes live in their own families).
        entries = [entry for entry in library() if entry.family == CONFORMANCE or entry.intent]
    except ScenarioError as exc:
        print(f"sep2gw sim: {exc}", file=sys.stderr)
        return 2
    site: Path = args.site or default_site()
    try:
        ensure_site(site)
    except OSError as exc:
        print(f"sep2gw sim: {exc}", file=sys.stderr)
        return 2
    versions = _versions(args) or [None]
    failed = 0
    width = max((len(entry.scenario.name) for entry in entries), default=0)
    for version in versions:
        for entry in entries:
            first = None
            try:
                scenario = _served(entry.scenario, version)
            except ScenarioError as exc:
                scenario, first = None, str(exc)
            for seed in range(args.seed, args.seed + args.seeds):
                if scenario is None:
                    break
                result = run_world(scenario, seed=seed, site=site)
                violations = check(result) + check_expectations(scenario, result)
                if violations:
                    v = violations[0]
                    first = f"seed {seed}: {v.invariant}: {v.detail}"
                    break
            verdict = "PASS" if first is None else "FAIL"
            served = "" if version is None else f"[{version}] "
            line = f"{verdict}  {served}{entry.scenario.name:<{width}}  {entry.intent}"
            print(line if first is None else f"{line} — {first}")
            failed += first is not None
    total = len(entries) * len(versions)
    print(f"{total - failed} of {total} conformance intents pass")
    return 1 if failed else 0


def _relative(progress: _Progress, scenario: Any) -> Any:
    from sep2gw.world import DEFAULT_EPOCH

    epoch = float(scenario.server.epoch if scenario.server.epoch is not None else DEFAULT_EPOCH)
    return lambda now: progress(now - epoch)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-") or "world"
