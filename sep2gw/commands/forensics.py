"""``sep2gw replay | explain | report | export``: dispute forensics over a log copied off a site.

Integrity first: each command opens the log read-only and verifies it (``EventStore.verify``, the
same check as ``sep2gw log verify``) in the same pass that folds it through the live gateway's
folds. A log that does not verify is refused, naming the first bad record, unless ``--force``; then
every output says loudly that it did not verify.

A fleet's logs (one file per site in one directory, ``sep2gw.fleetlogs``) are read the same way:
LOG may be the directory with ``--site NAME``; a directory of one site means that site; without
``--site``, ``report`` summarises the whole fleet (``sep2gw.forensics.fleet``: which sites were
compliant when, each site's own report beside the fleet page) and the others refuse, naming the
sites.

Exit codes (``sep2gw.exits``): 0 done; 2 a bad argument (an unknown mRID or site, an unreadable
time or zone, an output that cannot be written) or a file that cannot be read as a sep2gw log; 3
the log was refused: it did not verify (a fleet summary: some site's log did not verify or could
not be read; the summary says which, and covers the others).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import tzinfo
from pathlib import Path
from typing import IO, Any

import msgspec

from events.envelope import Recorded
from events.errors import EventLogError
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.config import ConfigError, parse_config
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, OK
from sep2gw.exports import write_compliance, write_events
from sep2gw.fleetlogs import (
    FleetDir,
    FleetLogError,
    choose_site,
    named_list,
    read_fleet_dir,
    resolve_log,
)
from sep2gw.forensics.compliance import (
    ComplianceSettings,
    compliance_series,
)
from sep2gw.forensics.fleet import identity_of
from sep2gw.forensics.model import FoldFailed, Forensics, analyse
from sep2gw.forensics.render import (
    BadInstant,
    ForensicTimeline,
    explain_control,
    explain_instant,
    find_mrid,
    parse_instant,
    parse_zone,
    state_text,
    verification_lines,
)
from sep2gw.forensics.report import render_report

__all__ = ["EXIT_BAD_ARGUMENT", "EXIT_OK", "EXIT_REFUSED", "EXIT_UNREADABLE", "register"]

EXIT_OK = OK
EXIT_BAD_ARGUMENT = BAD_INPUT
EXIT_UNREADABLE = BAD_INPUT
EXIT_REFUSED = CHECK_FAILED
#: From this many sites a fleet summary uses a process per core: measured 1.8x faster in wall time
#: with 2 workers than 1 over 200 one-day sites, at the same CPU (docs/decisions/0022e); fewer
#: sites do not pay back starting the pool.
AUTO_POOL_FROM = 16


def _common(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument(
            "logs",
            nargs="+",
            metavar="LOG",
            help="the event log (opened read-only), or a fleet log directory with --site; several, "
            "or quoted globs, with --format parquet",
        )
    else:
        parser.add_argument(
            "log",
            type=Path,
            metavar="LOG",
            help="the event log (opened read-only), or a fleet log directory (<site>.sep2gw "
            "files) with --site",
        )
        parser.add_argument(
            "--site",
            metavar="NAME",
            help="the site whose log to read when LOG is a fleet log directory",
        )
    parser.add_argument(
        "--force",
        action="store_true",
        help="go on when the log does not verify (every output then says so)",
    )
    parser.add_argument(
        "--tz",
        metavar="ZONE",
        help="the site's time zone for local times: IANA name (Australia/Adelaide) or +10:30 "
        "(default: site.time_zone of --config, else UTC)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="the site's configuration: its site.time_zone is the default zone of local times "
        "(the log does not record the zone; certificates need not be present)",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="show progress on standard error (default: only when it is a terminal)",
    )


def register(commands: Any) -> None:
    replay = commands.add_parser(
        "replay", help="rebuild the state at any instant and print the log as a timeline"
    )
    _common(replay)
    replay.add_argument(
        "--at",
        metavar="TIME",
        help="print the state rebuilt at this instant (alone, unless --from/--to ask for the "
        "timeline too)",
    )
    replay.add_argument("--from", dest="start", metavar="T1", help="timeline from this instant")
    replay.add_argument("--to", dest="end", metavar="T2", help="timeline up to this instant")
    replay.add_argument(
        "--telemetry-every",
        type=float,
        default=60.0,
        metavar="S",
        help="one measurement line per S seconds (default 60)",
    )
    replay.set_defaults(handler=_handler(_replay))

    explain = commands.add_parser(
        "explain",
        help="the story of one control, or why the limits at an instant were what they were",
    )
    _common(explain)
    explain.add_argument("mrid", nargs="?", metavar="MRID", help="the control (mRID or its tail)")
    explain.add_argument("--at", metavar="TIME", help="explain the limits in force at this instant")
    _compliance_args(explain)
    explain.set_defaults(handler=_handler(_explain))

    report = commands.add_parser(
        "report",
        help="write a self-contained HTML dispute report (chart, tables, compliance)",
        description="Write one site's dispute report (-o FILE.html), or, given a fleet log "
        "directory without --site, summarise the fleet: which sites were compliant when, day by "
        "day in the site zone (printed; --json for machines; -o FOLDER writes index.html, the "
        "fleet page, and each site's report under FOLDER/sites/).",
    )
    _common(report)
    report.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the HTML file to write (one site; required); for a fleet, a new folder for the "
        "fleet page and the sites' reports",
    )
    report.add_argument(
        "--json", action="store_true", help="a fleet: print the summary as one JSON object"
    )
    report.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="a fleet: summarise the sites in N processes (default 0: one per core from "
        f"{AUTO_POOL_FROM} sites, else 1)",
    )
    _compliance_args(report)
    report.set_defaults(handler=_handler(_report))

    export = commands.add_parser(
        "export",
        help="export the verified events or the per-sample compliance series",
        description="Export one verified log as JSON Lines or CSV (--what events|compliance), or "
        "many logs (paths or quoted globs) as a Parquet dataset partitioned by site and day "
        "(--format parquet -o FOLDER; schema: docs/parquet-schema.md).",
    )
    _common(export, many=True)
    export.add_argument(
        "--what",
        choices=("events", "compliance"),
        default="events",
        help="events: every verified record; compliance: the per-sample series of limits in "
        "force against the measured site (default events)",
    )
    export.add_argument(
        "--format",
        choices=("jsonl", "csv", "parquet"),
        default="jsonl",
        help="output format (default jsonl; parquet: a dataset folder, -o, one or more logs)",
    )
    export.add_argument(
        "-o",
        "--output",
        type=Path,
        help="file to write (default: standard output); with --format parquet, the dataset's "
        "folder (required, must not exist)",
    )
    export.add_argument(
        "--site",
        help="--format parquet: the site of the one log given (default: each log's file name "
        "without its suffix)",
    )
    _compliance_args(export)
    export.set_defaults(handler=_export_handler)


def _compliance_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tolerance-w",
        type=float,
        default=ComplianceSettings().tolerance_w,
        help="excess over a limit not counted as over (W, default %(default)s)",
    )
    parser.add_argument(
        "--grace-s",
        type=float,
        default=ComplianceSettings().grace_s,
        help="seconds after a limit changed during which an excess is not counted "
        "(the DER's response time; default %(default)s)",
    )
    parser.add_argument(
        "--max-hold-s",
        type=float,
        default=None,
        help="the longest a sample stands for (default: three median sample intervals)",
    )


Command = Callable[[argparse.Namespace, SqliteEventStore, Forensics, ForensicTimeline], int]


def _instants(args: argparse.Namespace, zone: Any) -> dict[str, float | None]:
    instants = {
        name: None
        if getattr(args, name, None) is None
        else parse_instant(getattr(args, name), zone)
        for name in ("at", "start", "end")
    }
    start, end = instants["start"], instants["end"]
    if start is not None and end is not None and start > end:
        # An empty window would print nothing and look like a quiet log.
        raise BadInstant(f"--from {args.start} lies after --to {args.end}")
    return instants


def _handler(command: Command) -> Callable[[argparse.Namespace], int]:
    name = command.__name__.lstrip("_")

    def run(args: argparse.Namespace) -> int:
        try:
            zone = site_zone(args.tz, args.config)
            args.instants = _instants(args, zone)
            if name == "explain":
                # Before the log is verified and folded: a 30-day log takes a while to tell you
                # that the arguments were wrong.
                _explain_target(args)
            log = resolve_log(args.log, getattr(args, "site", None), fleet_ok=name == "report")
            if isinstance(log, FleetDir):
                return _fleet_report(args, log, zone)
            args.log = log
            _report_arguments(args, name)
            output = getattr(args, "output", None)
            if output is not None and not output.parent.is_dir():
                raise OutputUnwritable(
                    f"{output}: cannot write it: {output.parent} is not a folder"
                )
        except (BadInstant, OutputUnwritable, FleetLogError) as exc:
            print(f"sep2gw {name}: {exc}", file=sys.stderr)
            return EXIT_BAD_ARGUMENT
        try:
            store = SqliteEventStore(args.log, CATALOGUE, readonly=True)
        except EventLogError as exc:
            print(f"sep2gw {name}: {exc}", file=sys.stderr)
            return EXIT_UNREADABLE
        with store:
            try:
                at = [t for t in (args.instants["at"],) if t is not None]
                show = args.progress or sys.stderr.isatty()
                model = analyse(
                    store, at=at, force=args.force, progress=_Progress() if show else None
                )
                if not model.verified:
                    assert model.report is not None
                    if not args.force:
                        print(
                            f"sep2gw {name}: refused: the log did not verify: "
                            f"{model.report.describe()} (--force to go on regardless)",
                            file=sys.stderr,
                        )
                        return EXIT_REFUSED
                    for line in verification_lines(model):
                        print(line, file=sys.stderr)
                timeline = ForensicTimeline(zone)
                timeline.ids = model.ids
                return command(args, store, model, timeline)
            except (BadInstant, OutputUnwritable) as exc:
                print(f"sep2gw {name}: {exc}", file=sys.stderr)
                return EXIT_BAD_ARGUMENT
            except (EventLogError, FoldFailed) as exc:
                print(f"sep2gw {name}: {exc}", file=sys.stderr)
                return EXIT_REFUSED

    return run


class _Progress:
    """``\\r`` progress on standard error: records folded, share done, events per second."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(time.perf_counter() - self.started, 1e-9)
        share = done / total if total else 1.0
        bar = "#" * int(share * 30)
        sys.stderr.write(
            f"\rverifying and replaying [{bar:<30}] {share:6.1%} {done:,}/{total:,} records "
            f"{done / elapsed:,.0f}/s"
        )
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _records(store: SqliteEventStore, model: Forensics) -> Iterator[Recorded]:
    """Records for printing; after ``--force`` on a damaged log, those that still decode."""
    if not model.forced:
        yield from store.read()
        return
    for raw in store.read_raw():
        try:
            event = store.catalogue.decode(raw.body)
        except (EventLogError, msgspec.MsgspecError):
            continue
        yield Recorded(
            raw.seq, raw.stream, raw.version, raw.server_time, raw.monotonic, event, raw.hash
        )


# -- replay ----------------------------------------------------------------------------------------


def _replay(
    args: argparse.Namespace, store: SqliteEventStore, model: Forensics, tl: ForensicTimeline
) -> int:
    instants = args.instants
    for line in verification_lines(model):
        print(line)
    timeline = ForensicTimeline(tl.zone, telemetry_every_s=args.telemetry_every)
    timeline.ids = tl.ids
    start, end = instants["start"], instants["end"]
    if instants["at"] is None or start is not None or end is not None:
        for line in timeline.lines(_records(store, model), start, end):
            print(line)
    if instants["at"] is not None:
        for line in state_text(model, instants["at"], timeline):
            print(line)
    return EXIT_OK


# -- explain ---------------------------------------------------------------------------------------


def _explain_target(args: argparse.Namespace) -> None:
    """``explain`` takes a control or an instant: exactly one."""
    if args.mrid is not None and args.instants["at"] is not None:
        raise BadInstant("name either a control (MRID) or an instant (--at TIME), not both")
    if args.mrid is None and args.instants["at"] is None:
        raise BadInstant("name either a control (MRID) or an instant (--at TIME)")


def _explain(
    args: argparse.Namespace, store: SqliteEventStore, model: Forensics, tl: ForensicTimeline
) -> int:
    at = args.instants["at"]
    for line in verification_lines(model):
        print(line)
    lines = (
        explain_control(model, find_mrid(model, args.mrid), tl, _settings(args))
        if args.mrid is not None
        else explain_instant(model, at, tl)
    )
    for line in lines:
        print(line)
    return EXIT_OK


# -- report ----------------------------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> ComplianceSettings:
    return ComplianceSettings(
        tolerance_w=args.tolerance_w, grace_s=args.grace_s, max_hold_s=args.max_hold_s
    )


def _report(
    args: argparse.Namespace, store: SqliteEventStore, model: Forensics, tl: ForensicTimeline
) -> int:
    settings = _settings(args)
    html = render_report(
        model,
        source=str(args.log),
        zone=tl.zone,
        settings=settings,
        identity=identity_of(store)[0],
    )
    _write_atomically(args.output, lambda out: out.write(html))
    verdict = "verified" if model.verified else "DID NOT VERIFY (forced)"
    print(f"wrote {args.output}: {len(model.stories)} controls, the log {verdict}")
    return EXIT_OK


def _report_arguments(args: argparse.Namespace, name: str) -> None:
    """One site's report is an HTML file named by -o; --json and --workers are the fleet's."""
    if name != "report":
        return
    if args.json:
        raise OutputUnwritable(
            "--json prints a fleet's summary (a fleet log directory without --site); one site's "
            "report is HTML: -o FILE"
        )
    if args.output is None:
        raise OutputUnwritable("name the HTML file to write with -o FILE")


def _fleet_report(args: argparse.Namespace, fleet: FleetDir, zone: tzinfo | None) -> int:
    """``report DIR``: the fleet summary (``sep2gw.forensics.fleet``), printed or as JSON; with
    -o, a new folder holding the fleet page and every site's report."""
    from sep2gw.forensics.fleet import fleet_lines, render_fleet_html, summarise_fleet

    output: Path | None = args.output
    report_dir: Path | None = None
    if args.workers < 0:
        raise OutputUnwritable(f"--workers {args.workers}: give 1 or more processes (0: auto)")
    workers = args.workers or (
        (os.cpu_count() or 1) if len(fleet.sites) >= AUTO_POOL_FROM else 1
    )
    if output is not None:
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise OutputUnwritable(
                f"{output}: a fleet report is a new folder (index.html and sites/); it exists "
                "and is not an empty folder"
            )
        try:
            report_dir = output / "sites"
            report_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputUnwritable(f"{output}: cannot write it: {exc.strerror or exc}") from None
    show = args.progress or sys.stderr.isatty()

    def said(site: Any, done: int, total: int) -> None:
        if show:
            sys.stderr.write(f"\r{done:,}/{total:,} sites summarised ({site.site})\x1b[K")
            if done == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    summary = summarise_fleet(
        fleet,
        zone=zone,
        settings=_settings(args),
        force=args.force,
        report_dir=report_dir,
        workers=workers,
        on_site=said,
    )
    if output is not None:
        html = render_fleet_html(summary)
        _write_atomically(output / "index.html", lambda out: out.write(html))
    if args.json:
        print(msgspec.json.format(msgspec.json.encode(summary), indent=2).decode())
    else:
        for line in fleet_lines(summary):
            print(line)
        if output is not None:
            print(f"wrote {output / 'index.html'} and {len(summary.sites)} site report(s) beside it")
    unusable = [s.site for s in summary.sites if s.state != "summarised"]
    if unusable:
        print(
            f"sep2gw report: {len(unusable)} site log(s) refused or unreadable: "
            f"{named_list(unusable)} (the others are summarised)",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return EXIT_OK


def _write_atomically(path: Path, write: Callable[[IO[str]], object]) -> None:
    """Written aside and renamed, so a failed run never leaves a plausible-looking file."""
    partial = path.with_name(path.name + ".partial")
    try:
        out_file = partial.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise OutputUnwritable(f"{path}: cannot write it: {exc.strerror or exc}") from None
    try:
        with out_file as out:
            write(out)
        os.replace(partial, path)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise OutputUnwritable(f"{path}: cannot write it: {exc.strerror or exc}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class OutputUnwritable(Exception):
    """The output file named by ``-o`` cannot be created or written (missing folder, no permission,
    disk full): reported as a bad argument naming the file, not a traceback."""


# -- export ----------------------------------------------------------------------------------------


def _export(
    args: argparse.Namespace, store: SqliteEventStore, model: Forensics, tl: ForensicTimeline
) -> int:
    def write(out: IO[str]) -> None:
        if args.what == "events":
            write_events(store.read_raw(), args.format, out, tl.zone, store.catalogue)
        else:
            write_compliance(compliance_series(model, _settings(args)), args.format, out, tl.zone)

    if args.output is None:
        write(sys.stdout)
    else:
        _write_atomically(args.output, write)
    return EXIT_OK


def _export_handler(args: argparse.Namespace) -> int:
    """``export``: one log to JSON Lines or CSV (the forensic handler), or a Parquet dataset."""
    if args.format == "parquet":
        return _export_parquet(args)
    if len(args.logs) != 1:
        print(
            f"sep2gw export: --format {args.format} exports one log; {len(args.logs)} given "
            "(--format parquet takes many)",
            file=sys.stderr,
        )
        return EXIT_BAD_ARGUMENT
    args.log = Path(args.logs[0])
    if args.site is not None and not args.log.is_dir():
        print(
            "sep2gw export: --site picks a site's log in a fleet log directory (or names the "
            "site of a log in a Parquet dataset)",
            file=sys.stderr,
        )
        return EXIT_BAD_ARGUMENT
    return _handler(_export)(args)


def _export_parquet(args: argparse.Namespace) -> int:
    """``export --format parquet LOG... -o FOLDER``: verified logs as a partitioned dataset."""
    import glob

    def bad(message: str) -> int:
        print(f"sep2gw export: {message}", file=sys.stderr)
        return EXIT_BAD_ARGUMENT

    if args.output is None:
        return bad("--format parquet writes a dataset folder: name it with -o FOLDER")
    if args.what != "events":
        return bad("--format parquet writes every table (compliance included); drop --what")
    if args.tz is not None:
        return bad("--format parquet writes UTC times and days; drop --tz")
    if args.force:
        return bad("--format parquet exports verified logs only; --force is not taken")
    try:
        from sep2gw.forensics.dataset import (
            DatasetError,
            LogRefused,
            export_dataset,
            site_name,
            valid_site,
        )
    except ImportError as exc:
        return bad(f"--format parquet needs pyarrow: pip install 'sep2gw[parquet]' ({exc})")
    paths: list[Path] = []
    named: dict[Path, str] = {}
    for given in args.logs:
        if Path(given).is_dir():
            # a fleet log directory: its site logs, each under its own name (or the one --site picks)
            try:
                fleet = read_fleet_dir(Path(given))
                chosen = fleet.sites if args.site is None else (choose_site(fleet, args.site),)
            except FleetLogError as exc:
                return bad(str(exc))
            if not chosen:
                return bad(f"{given}: a folder holding no site log (<site>.sep2gw)")
            for item in chosen:
                paths.append(item.path)
                named[item.path] = item.site
        elif glob.has_magic(given):
            matched = sorted(glob.glob(given, recursive=True))
            if not matched:
                return bad(f"{given}: the pattern matches no file")
            paths += [Path(m) for m in matched]
        else:
            paths.append(Path(given))
    paths = list(dict.fromkeys(paths))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        return bad(f"{missing[0]}: no such log file")
    if args.site is not None and len(paths) != 1:
        return bad(f"--site names the site of one log; {len(paths)} given")
    logs = [
        (p, named.get(p) or (args.site if args.site is not None else site_name(p))) for p in paths
    ]
    if args.site is not None and not valid_site(args.site):
        return bad(f"--site {args.site!r}: use letters, digits, '.', '_' and '-' only")
    show = args.progress or sys.stderr.isatty()
    started = time.perf_counter()

    def said(item: Any) -> None:
        if show:
            print(
                f"{item.path}: verified, {item.records:,} records as site {item.site} "
                f"(head {item.head_hash[:16]}…)",
                file=sys.stderr,
            )

    try:
        exported = export_dataset(logs, args.output, settings=_settings(args), on_log=said)
    except LogRefused as exc:
        print(f"sep2gw export: refused: {exc}; nothing was written", file=sys.stderr)
        return EXIT_REFUSED
    except DatasetError as exc:
        return bad(f"{exc}; nothing was written")
    except OSError as exc:
        return bad(f"{args.output}: cannot write it: {exc.strerror or exc}; nothing was written")
    records = sum(e.records for e in exported)
    wall = time.perf_counter() - started
    print(
        f"wrote {args.output}: {len(exported)} log(s), {records:,} records, "
        f"{len({e.site for e in exported})} site(s) in {wall:.1f} s"
    )
    return EXIT_OK


def site_zone(tz: str | None, config: Path | None) -> tzinfo | None:
    """The zone local times are shown in: ``--tz``, else the configuration's ``site.time_zone``,
    else UTC (``None``). A configuration that cannot be read is a bad argument naming it."""
    if tz is not None or config is None:
        return parse_zone(tz)
    try:
        data = config.read_bytes()
    except OSError as exc:
        raise BadInstant(f"--config {config}: cannot read it: {exc.strerror or exc}") from None
    try:
        parsed = parse_config(data, source=str(config), base_dir=config.parent, check_files=False)
    except ConfigError as exc:
        raise BadInstant(f"--config {exc}") from None
    return parse_zone(parsed.site.time_zone)
