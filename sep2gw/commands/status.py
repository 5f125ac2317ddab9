"""``sep2gw status LOG``: is a gateway running on this log, and what is it doing (issue 20 point 2).

Read-only, safe on a live log: whether a gateway runs is the writer lock's answer (its holder: PID,
host, start), the rest is the log's (``sep2gw.status``: registration, comms, limits in force, last
poll and post, last battery write, the newest measurement, alarms), each with the record it comes
from. Nothing is shown that the log does not hold.

A fleet log directory (one ``<site>.sep2gw`` per site, ``sep2gw.fleetlogs``) gives one line per
site (running, registration, comms, limits, problems) and a count line; ``--site NAME`` shows one
site as for a single log. ``--check`` on a fleet fails (exit 3) when any site is unhealthy and
names them: not running, a problem in its log, or a log that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from events.errors import EventLogError
from events.log_lock import holder_of
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.exits import BAD_INPUT, CHECK_FAILED, OK
from sep2gw.fleetlogs import FleetDir, FleetLogError, named_list, resolve_log
from sep2gw.status import SiteStatus, iso, problems, status_of_store
from sep2gw.timeline import describe_blocks, describe_settings, rate_name, whole

__all__ = ["register"]

HELP = "is a gateway running on a log; registration, comms, limits, last poll/post/write, alarms"


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "status",
        help=HELP,
        description=(
            "Say whether a gateway is writing LOG now (its writer lock: PID, host, start) and what "
            "the log says it is doing. Read-only; safe while the gateway runs."
        ),
    )
    parser.add_argument(
        "path",
        type=Path,
        metavar="LOG",
        help="the gateway's event log, or a fleet log directory (one line per site)",
    )
    parser.add_argument(
        "--site", metavar="NAME", help="the site whose log to read when LOG is a fleet directory"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 3 unless a gateway holds the log and the log shows no problem (a health "
        "check for a service manager or a container)",
    )
    parser.set_defaults(handler=_status)


def _status(args: argparse.Namespace) -> int:
    try:
        resolved = resolve_log(args.path, args.site, fleet_ok=True)
    except FleetLogError as exc:
        print(f"sep2gw status: {exc}", file=sys.stderr)
        return BAD_INPUT
    if isinstance(resolved, FleetDir):
        return _fleet_status(args, resolved)
    path: Path = resolved
    if not path.is_file():
        print(f"sep2gw status: {path}: no such log file", file=sys.stderr)
        return BAD_INPUT
    holder = holder_of(path)
    try:
        # A live writer's newest records are in its WAL: read them through SQLite's shared memory.
        with SqliteEventStore(path, CATALOGUE, readonly=True, follow=holder is not None) as store:
            status = status_of_store(store)
    except EventLogError as exc:
        print(f"sep2gw status: {exc}", file=sys.stderr)
        return BAD_INPUT
    running = _running(status, holder)
    if args.json:
        document = {
            "log": str(path),
            "running": holder is not None,
            "holder": holder,
            "process": running,
            "problems": problems(status),
            **msgspec.to_builtins(status),
        }
        print(json.dumps(document, indent=2))
        return _verdict(args.check, holder, status)
    print(f"{path}: {running}")
    for label, value in _lines(status):
        print(f"  {label:<14}{value}")
    return _verdict(args.check, holder, status)


def _verdict(check: bool, holder: object, status: SiteStatus) -> int:
    """``--check``: healthy means a gateway holds the log (it runs) and the log shows no problem."""
    if not check:
        return OK
    return OK if holder is not None and not problems(status) else CHECK_FAILED


def _running(status: SiteStatus, holder: str | None) -> str:
    if holder is not None:
        return f"RUNNING ({holder})"
    if status.started is None:
        return "not running (the log records no gateway start)"
    if status.stopped is None:
        return (
            f"NOT RUNNING, and the gateway started at {iso(status.started.at_s)} has no stop "
            "record: it was killed or crashed (or the power failed)"
        )
    return f"not running; stopped at {iso(status.stopped.at_s)}: {status.stopped.what}"


def _lines(status: SiteStatus) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    if status.started is not None:
        lines.append(
            ("software", f"sep2gw {status.software_version}, started {iso(status.started.at_s)}")
        )
    registration: str = status.registration
    if status.registration == "halted":
        registration = f"HALTED at {status.registration_step}: {status.registration_halted}"
    elif status.registration == "in progress" and status.registration_step:
        registration += f" (last step done: {status.registration_step})"
    lines.append(("registration", registration))
    comms = {"unknown": "unknown (no exchange with the server yet)", "up": "up", "lost": "LOST"}[
        status.comms
    ]
    if status.comms_since_s is not None:
        comms += f" since {iso(status.comms_since_s)}"
    if status.comms_reason:
        comms += f" ({status.comms_reason})"
    lines.append(("comms", comms))
    if status.limits_since_s is None:
        lines.append(("limits", "none received"))
    else:
        sources = sorted(set(status.limit_sources.values()))
        lines.append(
            (
                "limits",
                f"{describe_settings(status.limits)} since {iso(status.limits_since_s)}"
                + (f" (from {', '.join(sources)})" if sources else ""),
            )
        )
    for price in status.prices:
        name = rate_name(price.rate) if price.rate is not None else price.rate_mrid
        if price.interval_mrid is None:
            what = "none in force"
        else:
            what = f"{describe_blocks(price.rate, price.blocks)} (tier {price.tou_tier})"
        lines.append(("price", f"{name}: {what} since {iso(price.since_s)} (record {price.seq})"))
    if status.subscriptions or status.last_notification or status.notifications_refused:
        notified = (
            "none yet"
            if status.last_notification is None
            else _stamped(status.last_notification)
        )
        refused = (
            f"; {status.notifications_refused} refused" if status.notifications_refused else ""
        )
        lines.append(
            (
                "subscriptions",
                f"{len(status.subscriptions)} held; last notification: {notified}{refused}",
            )
        )
    lines.append(("last poll", _stamped(status.last_poll)))
    lines.append(("last post", _stamped(status.last_post)))
    write = status.last_write
    if write is None:
        lines.append(("battery write", "none"))
    else:
        what = (
            f"setpoint {whole(write.setpoint_w)} W written"
            if write.wrote and write.setpoint_w is not None
            else ("written" if write.wrote else "nothing to write (within the limits)")
        )
        if write.site_limit_met is False:
            what += "; site limit NOT met"
        elif write.site_limit_met:
            what += "; site limit met"
        lines.append(("battery write", f"{iso(write.at_s)} {what} (record {write.seq})"))
    m = status.measured
    if m is not None:
        parts = [
            f"{name} {whole(value)} {unit}"
            for name, value, unit in (
                ("site", m.site_w, "W"),
                ("battery", m.der_w, "W"),
                ("SoC", m.soc_pct, "%"),
            )
            if value is not None
        ]
        lines.append(("measured", f"{', '.join(parts) or 'nothing'} at {iso(m.at_s)}"))
    for name, der in status.ders.items():
        what = (
            "takes its share of the site's limits"
            if der.available
            else f"LEFT OUT of the site's split ({der.reason})"
        )
        lines.append((f"der {name}", f"{what} since {iso(der.since_s)} (record {der.seq})"))
    if status.device_state is not None or status.device_connected is not None:
        connected = {True: "connected", False: "DISCONNECTED", None: "connection unknown"}
        lines.append(
            (
                "battery",
                f"{(status.device_state or 'state unknown')}, {connected[status.device_connected]}",
            )
        )
    found = problems(status)
    lines.append(("alarms", "none" if not found else found[0]))
    lines.extend(("", more) for more in found[1:])
    if status.actor_failures:
        assert status.last_failure is not None
        lines.append(
            (
                "restarts",
                f"{status.actor_failures}; last at {iso(status.last_failure.at_s)}: "
                f"{status.last_failure.what}",
            )
        )
    lines.append(("log", f"record {status.seq}, newest at {iso(status.at_s)}"))
    return lines


def _stamped(stamp: Any) -> str:
    if stamp is None:
        return "none"
    return f"{iso(stamp.at_s)} {stamp.what} (record {stamp.seq})"


# -- a fleet ---------------------------------------------------------------------------------------


class SiteState(msgspec.Struct, frozen=True, kw_only=True):
    """One site of a fleet as ``status`` shows it; ``unreadable`` says why its log could not be
    read (then nothing else is known)."""

    site: str
    log: str
    running: bool
    holder: str | None
    process: str
    problems: list[str]
    unreadable: str | None = None
    status: SiteStatus | None = None

    @property
    def healthy(self) -> bool:
        return self.running and not self.problems and self.unreadable is None


def site_state(site: str, path: Path) -> SiteState:
    """The status of one site's log, never raising for what is wrong with the file."""
    holder = holder_of(path)
    try:
        with SqliteEventStore(path, CATALOGUE, readonly=True, follow=holder is not None) as store:
            status = status_of_store(store)
    except EventLogError as exc:
        return SiteState(
            site=site,
            log=str(path),
            running=holder is not None,
            holder=holder,
            process="RUNNING" if holder is not None else "unknown",
            problems=[f"unreadable: {exc}"],
            unreadable=str(exc),
        )
    return SiteState(
        site=site,
        log=str(path),
        running=holder is not None,
        holder=holder,
        process=_running(status, holder),
        problems=problems(status),
        status=status,
    )


def _fleet_line(state: SiteState) -> str:
    if state.unreadable is not None:
        return f"{state.site}: UNREADABLE: {state.unreadable}"
    status = state.status
    assert status is not None
    running = "RUNNING" if state.running else _short_running(status)
    limits = (
        "none received"
        if status.limits_since_s is None
        else f"{describe_settings(status.limits)} since {iso(status.limits_since_s)}"
    )
    registration = (
        status.registration.upper() if status.registration == "halted" else (status.registration)
    )
    comms = status.comms.upper() if status.comms == "lost" else status.comms
    text = f"{state.site}: {running}; registration {registration}; comms {comms}; limits {limits}"
    if state.problems:
        text += f"; PROBLEMS: {'; '.join(state.problems)}"
    return text


def _short_running(status: SiteStatus) -> str:
    if status.started is None:
        return "not running (never started)"
    if status.stopped is None:
        return f"NOT RUNNING (no stop record since {iso(status.started.at_s)}: killed or crashed)"
    return f"not running (stopped {iso(status.stopped.at_s)})"


def _fleet_status(args: argparse.Namespace, fleet: FleetDir) -> int:
    states = [site_state(s.site, s.path) for s in fleet.sites]
    running = sum(1 for s in states if s.running)
    unhealthy = [s.site for s in states if not s.healthy]
    with_problems = sum(1 for s in states if s.problems)
    count = (
        f"{len(states)} sites: {running} running, {len(states) - running} not running, "
        f"{with_problems} with problems"
    )
    if args.json:
        document = {
            "fleet": str(fleet.path),
            "sites": [
                {
                    "site": s.site,
                    "log": s.log,
                    "running": s.running,
                    "holder": s.holder,
                    "process": s.process,
                    "healthy": s.healthy,
                    "problems": s.problems,
                    "unreadable": s.unreadable,
                    **({} if s.status is None else msgspec.to_builtins(s.status)),
                }
                for s in states
            ],
            "counts": {
                "sites": len(states),
                "running": running,
                "with_problems": with_problems,
                "unhealthy": len(unhealthy),
            },
            "ignored": [{"name": i.name, "why": i.why} for i in fleet.ignored],
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"{fleet.path}: fleet of {count}")
        for state in states:
            print(f"  {_fleet_line(state)}")
        for item in fleet.ignored:
            print(f"note: {item.name} set aside: {item.why}")
    if not args.check:
        return OK
    if unhealthy:
        print(
            f"sep2gw status: {len(unhealthy)} of {len(states)} site(s) unhealthy: "
            f"{named_list(unhealthy)}",
            file=sys.stderr,
        )
        return CHECK_FAILED
    return OK
