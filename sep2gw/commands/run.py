"""``sep2gw run``: run the gateway.

With ``--config FILE`` it runs against the configured utility server and battery until stopped
(Ctrl-C or SIGTERM: the log is flushed and the stop recorded). With no arguments it runs the
embedded demo: a demo PKI, the simulated utility server (real IEEE 2030.5 over mutual TLS on
loopback) with a short schedule — a normal control, one superseded, one cancelled — and the
simulated battery's SunSpec Modbus TCP server on loopback, with the gateway between them, printing
a live timeline. ``--speed`` runs the demo's clock faster than real time.

A ``--config`` run goes through anyio on asyncio by default (``--loop trio`` for trio): asyncio is
the production embedding's loop and is loaded anyway (pymodbus imports it), so trio's modules (~5 MB
resident) stay out of a running gateway (issue #7 scope 11). The demo needs trio's mock clock.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import msgspec

from actors.sd_notify import SystemdNotifier, watchdog_interval_s
from events.control_events import CommsLost
from events.envelope import Recorded
from events.errors import EventLogError
from events.registry import CATALOGUE
from events.sqlite_store import SqliteEventStore
from sep2gw.collector import settle_for_a_fleet
from sep2gw.config import (
    Config,
    ConfigError,
    MetricsConfig,
    load_config,
    metrics_problems,
    parse_config,
)
from sep2gw.diagnostics import LoggingOptions
from sep2gw.diagnostics import configure as configure_logging
from sep2gw.exits import BAD_INPUT
from sep2gw.gateway import Gateway
from sep2gw.preflight import (
    PreflightFailed,
    check_driver,
    check_identity,
    check_profile,
    errors_of,
)
from sep2gw.stopping import stop_on_signals

if TYPE_CHECKING:
    from sep2gw.simserver import Scenario
    from sep2gw.timeline import Timeline

# The demo's simulators, scenario and mock clock (trio, trio.testing) are imported by the demo
# alone, the timeline only when printed: `sep2gw run --config … --quiet` carries none of them
# (start-up and memory budget, issue #7 scope 11).

__all__ = ["register"]

DEMO_CONFIG = """\
# Written by `sep2gw run` for its embedded demo; edit the copy, not this one.
[server]
url = "https://127.0.0.1:{http_port}"
dcap_path = "/dcap"
{pin}profile = "csip-aus"

[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"

[battery]
driver = "sunspec"
host = "127.0.0.1"
port = {modbus_port}

[rates]
default_post_s = 60

[log]
path = "{log}"
"""


def register(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "run", help="run the gateway (no arguments: the embedded demo on loopback)"
    )
    parser.add_argument(
        "--config", type=Path, help="gateway configuration (TOML); omit for the demo"
    )
    parser.add_argument(
        "--duration", type=float, help="stop after this many seconds of gateway time"
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=None,
        help="demo only: clock speed (default 10x; 1 = real time)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("sep2gw-demo"),
        help="demo only: where the PKI and log go",
    )
    parser.add_argument(
        "--scenario",
        help="demo only: a scenario file or library name (sep2gw sim --list) instead of the "
        "built-in one",
    )
    parser.add_argument("--quiet", action="store_true", help="do not print the timeline")
    parser.add_argument(
        "--metrics",
        metavar="HOST:PORT",
        help=(
            "serve /metrics (Prometheus) and /health (JSON) there, e.g. 127.0.0.1:9108 "
            "(default: the configuration's metrics.listen, off unless set; loopback only unless "
            "metrics.allow_remote)"
        ),
    )
    parser.add_argument(
        "--loop",
        choices=("asyncio", "trio"),
        help="event loop of a --config run (default asyncio; the demo runs on trio)",
    )
    parser.set_defaults(handler=_run)


DEMO_SPEED = 10.0


def _run(args: argparse.Namespace) -> int:
    if args.config is not None and (args.scenario or args.speed is not None):
        print("sep2gw run: --scenario and --speed are for the demo (no --config)", file=sys.stderr)
        return 2
    if args.config is None and args.loop is not None:
        print("sep2gw run: --loop is for --config runs (the demo runs on trio)", file=sys.stderr)
        return 2
    if args.metrics is not None and (
        problems := metrics_problems(MetricsConfig(listen=args.metrics), key="--metrics")
    ):
        print(f"sep2gw run: {'; '.join(problems)}", file=sys.stderr)
        return BAD_INPUT
    if args.speed is None:
        args.speed = DEMO_SPEED
    if args.speed <= 0 or not math.isfinite(args.speed):
        print("sep2gw run: --speed must be a positive number", file=sys.stderr)
        return BAD_INPUT
    if args.duration is not None and not (args.duration > 0 and math.isfinite(args.duration)):
        print(
            f"sep2gw run: --duration {args.duration:g} must be a positive number of seconds",
            file=sys.stderr,
        )
        return BAD_INPUT
    try:
        options = getattr(args, "logging", None) or LoggingOptions()
        if args.config is not None and _is_fleet(args.config):
            return _start_fleet(args, options)
        if args.config is not None:
            config = with_metrics(load_config(args.config), args.metrics)
            # The configuration's [logging], where the command line did not say; record
            # messages on the console only when the timeline is not printed there.
            configure_logging(
                options,
                configured_level=config.logging.level,
                configured_file=(
                    None if config.logging.file is None else config.path(config.logging.file)
                ),
                configured_format=config.logging.format,
                console_records=args.quiet,
            )
            _preflight(config, str(args.config))
            return anyio.run(_run_configured, config, args, backend=args.loop or "asyncio")
        configure_logging(options, console_records=args.quiet)
        return _start_demo(args)
    except ConfigError as exc:
        print(f"sep2gw run: {exc}", file=sys.stderr)
        return BAD_INPUT
    except PreflightFailed as exc:
        print(f"sep2gw run: {exc.source}: cannot run:", file=sys.stderr)
        for finding in errors_of(exc.findings):
            print(f"  {finding}", file=sys.stderr)
        print(f"  (sep2gw check-config {exc.source} checks it all)", file=sys.stderr)
        return BAD_INPUT
    # Anything else (a log another gateway holds, a damaged log, a disk full) is reported by the
    # CLI's one failure path, unwrapped from the task groups: sep2gw.exits.


def _is_fleet(path: Path) -> bool:
    """A configuration with ``[[sites]]`` runs a fleet (aggregator mode); one that cannot be read
    is left to ``load_config`` to name."""
    from sep2gw.fleet_config import is_fleet_file

    try:
        return is_fleet_file(Path(path).read_bytes())
    except OSError:
        return False


def _start_fleet(args: argparse.Namespace, options: LoggingOptions) -> int:
    """``run --config fleet.toml``: one gateway per site in this process (``sep2gw.fleet``)."""
    from sep2gw.fleet_config import load_fleet_config, site_identities

    if args.metrics is not None:
        raise ConfigError(
            "command line", ["--metrics: a fleet has no metrics endpoint yet (per-site logs)"]
        )
    fleet = load_fleet_config(args.config)
    identities = site_identities(fleet)
    configure_logging(
        options,
        configured_level=fleet.logging.level,
        configured_file=None if fleet.logging.file is None else fleet.path(fleet.logging.file),
        configured_format=fleet.logging.format,
        console_records=True,
    )
    # The aggregator identity once, then what each site brings of its own (identity, driver).
    checked: set[str] = set()
    for i, identity in enumerate(identities):
        config = fleet.site_config(i)
        key = config.tls.certificate
        findings = [*check_driver(config), *check_profile(config)]
        if key not in checked:
            checked.add(key)
            findings += check_identity(config, now=time.time(), environ=os.environ)
        where = f"{args.config} (sites[{i}] {identity.name})"
        for warning in (f for f in findings if f.warning):
            print(f"sep2gw run: {where}: {warning}", file=sys.stderr)
        if errors_of(findings):
            raise PreflightFailed(where, findings)
    return anyio.run(_run_fleet, fleet, identities, args, backend=args.loop or "asyncio")


async def _run_fleet(fleet: Any, identities: Any, args: argparse.Namespace) -> int:
    from sep2gw.fleet import Fleet

    running = Fleet(fleet, identities=identities)
    folder = fleet.path(fleet.log.dir)
    print(
        f"sep2gw: running fleet {fleet.fleet.name} ({len(identities)} sites) against "
        f"{fleet.server.url}{fleet.server.dcap_path}; logs {folder}/<site>.sep2gw",
        flush=True,
    )
    if not args.quiet:
        for identity in identities:
            own = " (own certificate)" if identity.own_certificate else ""
            print(f"  site {identity.name}: LFDI {identity.lfdi} SFDI {identity.sfdi}{own}")
    notifier = SystemdNotifier.from_environ(os.environ)
    async with anyio.create_task_group() as nursery:
        nursery.start_soon(stop_on_signals, nursery.cancel_scope)
        with notifier:
            await nursery.start(running.run)
            # What is on the heap now lives as long as the process (decision 0022f).
            settle_for_a_fleet(len(identities))
            if running.notifications_port is not None:
                print(
                    f"  notifications: one listener on port {running.notifications_port} for "
                    f"every site's notificationURI {fleet.notifications.url.rstrip('/')}/<site>",
                    flush=True,
                )
            if notifier.enabled:
                notifier.ready(f"running {len(identities)} sites")
            try:
                if args.duration is not None:
                    await anyio.sleep(args.duration)
                else:
                    await anyio.sleep_forever()
            finally:
                notifier.stopping()
        nursery.cancel_scope.cancel()
    print(f"sep2gw: fleet stopped; the logs are in {folder} (sep2gw log verify FILE checks one)")
    return 0


def with_metrics(config: Config, listen: str | None) -> Config:
    """``config`` with ``--metrics`` in place of ``metrics.listen``, checked as the file's is."""
    if listen is None:
        return config
    metrics = msgspec.structs.replace(config.metrics, listen=listen)
    problems = metrics_problems(metrics, key="--metrics")
    if problems:
        raise ConfigError("command line", problems)
    return msgspec.structs.replace(config, metrics=metrics)


def _preflight(config: Config, source: str) -> None:
    """Refuse before starting, with check-config's words, what would fail deep in the TLS stack:
    the identity as run loads it (sep2gw.preflight.check_identity)."""
    findings = [
        *check_identity(config, now=time.time(), environ=os.environ),
        *check_driver(config),
        *check_profile(config),
    ]
    for warning in (f for f in findings if f.warning):
        print(f"sep2gw run: {warning}", file=sys.stderr)
    if errors_of(findings):
        raise PreflightFailed(source, findings)


def _pin_line(scenario: Scenario) -> str:
    """The demo gateway's ``server.pin`` line: the scenario's ``[gateway] pin`` (§2.4; none when
    it says the PIN is not configured)."""
    pin = scenario.gateway.configured_pin(scenario.server)
    return "" if pin is None else f"pin = {pin}\n"


def _start_demo(args: argparse.Namespace) -> int:
    import trio
    import trio.testing

    from sep2gw.simserver import ScenarioError, demo_scenario
    from sep2gw.simserver.library import resolve_scenario

    try:
        scenario = resolve_scenario(args.scenario) if args.scenario else demo_scenario()
        # A mock clock running at --speed: sleeps and timeouts scale, real sockets still work.
        return trio.run(_run_demo, scenario, args, clock=trio.testing.MockClock(rate=args.speed))
    except ScenarioError as exc:
        print(f"sep2gw run: {exc}", file=sys.stderr)
        return 2


def _timeline(telemetry_every_s: float = 60.0, *, config: Config | None = None) -> Timeline:
    """The live console; with a configuration, its lines show the site's local time
    (``site.time_zone``) beside server time."""
    from sep2gw.humanfmt import parse_zone
    from sep2gw.timeline import Timeline

    zone = None
    if config is not None and config.site.time_zone.upper() not in ("UTC", "Z"):
        zone = parse_zone(config.site.time_zone, what="site.time_zone")
    return Timeline(zone=zone, telemetry_every_s=telemetry_every_s)


def probe_command(config: Config) -> str:
    """``sep2gw probe`` with this configuration's server and identity: the first thing to run when
    the server is unreachable (it names the TLS alert, the refusal or the timeout)."""
    tls = config.tls
    words = [
        "sep2gw",
        "probe",
        f"{config.server.url}{config.server.dcap_path}",
        "--cert",
        str(config.path(tls.certificate)),
        "--key",
        str(config.path(tls.key)),
        "--ca",
        str(config.path(tls.ca)),
    ]
    if tls.key_password_env:
        words += ["--key-password-env", tls.key_password_env]
    if not config.server.http2:
        words.append("--http1")
    for cipher in tls.extra_ciphers:
        words += ["--extra-cipher", cipher]
    return shlex.join(words)


class TimelinePrinter:
    """Prints the timeline's line for each record; after the first COMMS LOST line, once, the
    ``on_comms_lost`` hint (what to run to see why)."""

    def __init__(self, timeline: Timeline, *, quiet: bool, on_comms_lost: str | None = None):
        self.timeline = timeline
        self.quiet = quiet
        self._hint = on_comms_lost

    def show(self, record: Recorded) -> None:
        line = self.timeline.line(record)
        if line and not self.quiet:
            print(line, flush=True)
            if self._hint is not None and isinstance(record.event, CommsLost):
                print(f"  to see why, run: {self._hint}", flush=True)
                self._hint = None


async def _print_timeline(path: Path, printer: TimelinePrinter) -> None:
    """Follow the log file as the gateway writes it (a separate read-only connection).

    A record the console cannot read (a log that does not verify, about to be set aside by the
    gateway, which says so in the new log) ends the printing of that file: the display never
    stops the run; the new file is followed from its first record."""
    after = 0
    reader: SqliteEventStore | None = None
    followed: int | None = None  # the inode followed: a log set aside at start is replaced
    unreadable: int | None = None  # the inode of a file whose records the console cannot read
    show = printer.show

    def show_new() -> None:
        nonlocal after, reader, unreadable
        assert reader is not None
        try:
            for record in reader.read(after + 1):
                after = record.seq
                show(record)
        except EventLogError:
            unreadable = followed
            reader.close()
            reader = None

    try:
        while True:
            try:
                inode: int | None = (await anyio.Path(path).stat()).st_ino
            except FileNotFoundError:
                inode = None
            if reader is not None and inode is not None and inode != followed:
                reader.close()  # the gateway set that log aside; follow the new one from record 1
                reader, after = None, 0
            if reader is None and inode is not None and inode != unreadable:
                try:
                    reader = SqliteEventStore(path, CATALOGUE, readonly=True, follow=True)
                except EventLogError:
                    unreadable = inode
                else:
                    followed, after = inode, 0
            if reader is not None:
                show_new()
            await anyio.sleep(0.25)
    finally:
        if reader is not None:
            show_new()  # what arrived since the last poll
            if reader is not None:
                reader.close()


def _say_metrics(gateway: Gateway) -> None:
    if gateway.metrics_port is not None:
        host = gateway.config.metrics.listen.rpartition(":")[0] or "127.0.0.1"
        base = f"http://{host}:{gateway.metrics_port}"
        print(f"sep2gw: metrics {base}/metrics, health {base}/health", flush=True)


async def _run_configured(config: Config, args: argparse.Namespace) -> int:
    log_path = config.path(config.log.path)
    # Made before any task group: a refusal (the log held by another gateway, a damaged log) is
    # the typed error itself, not an exception group.
    gateway = Gateway(config)
    print(
        f"sep2gw: running against {config.server.url}{config.server.dcap_path}; log {log_path}",
        flush=True,
    )
    notifier = SystemdNotifier.from_environ(os.environ)
    async with anyio.create_task_group() as nursery:
        nursery.start_soon(stop_on_signals, nursery.cancel_scope)
        if not args.quiet:  # quiet: nothing would be printed, so the log is not followed at all
            printer = TimelinePrinter(
                _timeline(config=config), quiet=args.quiet, on_comms_lost=probe_command(config)
            )
            nursery.start_soon(_print_timeline, log_path, printer)
        with notifier:
            async with gateway:
                # Ready (docs/service.md): the log verified and open, the start recorded, every
                # actor started (what the log says is in force already applied, PROTOCOL.md §4
                # rule 13). Registration with the server comes after, shown in STATUS= lines.
                if notifier.enabled:
                    await _notify_systemd(nursery, notifier, log_path)
                _say_metrics(gateway)
                try:
                    if args.duration is not None:
                        await anyio.sleep(args.duration)
                    else:
                        await anyio.sleep_forever()
                finally:
                    notifier.stopping()  # before the gateway's own stop: flush, sign, unlock
        nursery.cancel_scope.cancel()
    print(f"sep2gw: stopped; the log is {log_path} (check it with: sep2gw log verify {log_path})")
    return 0


#: How often the service status line is refreshed from the log (seconds).
STATUS_EVERY_S = 2.0


async def _notify_systemd(
    nursery: anyio.abc.TaskGroup, notifier: SystemdNotifier, log_path: Path
) -> None:
    """Tell systemd the gateway is ready, then keep its watchdog fed from this event loop and
    its status line current (registration, comms, limits in force; ``sep2gw.service_status``)."""
    from sep2gw.service_status import ServiceStatus

    status = ServiceStatus()
    interval = watchdog_interval_s(os.environ, os.getpid())
    if interval is not None:
        nursery.start_soon(notifier.run_watchdog, interval)
    try:
        reader = SqliteEventStore(log_path, CATALOGUE, readonly=True, follow=True)
    except EventLogError as exc:  # the status line is advice: ready all the same
        notifier.ready(f"running; status unavailable: {exc}")
        return
    after = 0

    def refresh() -> str:
        nonlocal after
        for record in reader.read(after + 1):
            after = record.seq
            status.update(record)
        return status.line()

    notifier.ready(refresh())

    async def follow() -> None:
        try:
            while True:
                await anyio.sleep(STATUS_EVERY_S)
                try:
                    notifier.status(refresh())
                except EventLogError:
                    return  # the status line is advice; the gateway's own checks guard the log
        finally:
            reader.close()

    nursery.start_soon(follow)


async def _run_demo(scenario: Scenario, args: argparse.Namespace) -> int:
    from sep2gw.cli import main as cli  # the same command a user would run
    from sep2gw.sim import BatteryParams, SimBattery, SiteParams
    from sep2gw.sim.modbus_server import SimModbusServer
    from sep2gw.simserver import CreateControl, SimClock, SimUtilityServer, server_material

    workdir: Path = args.workdir.resolve()
    pki = workdir / "pki"
    if not (pki / "device.pem").exists():
        if cli(["certs", "init", str(pki)]) != 0:
            return 1
    log_name = f"demo-{time.strftime('%Y%m%dT%H%M%S')}.sep2gw"
    wall = time.time()
    clock = SimClock.for_scenario(scenario, wall)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=clock.now())
    duration = args.duration if args.duration is not None else scenario.duration_s() + 30
    print(
        f"sep2gw demo: scenario {scenario.name!r}, {duration:.0f} s of gateway time at {args.speed:g}x; "
        f"work folder {workdir}",
        flush=True,
    )
    async with anyio.create_task_group() as nursery:
        nursery.start_soon(stop_on_signals, nursery.cancel_scope)
        server = SimUtilityServer(scenario, server_material(pki), clock=clock)
        http_port = await nursery.start(server.serve_tcp)
        modbus_port = await nursery.start(SimModbusServer(sim, clock=clock.now).serve)
        text = DEMO_CONFIG.format(
            http_port=http_port, modbus_port=modbus_port, pin=_pin_line(scenario), log=log_name
        )
        (workdir / "demo.toml").write_text(text)
        config = with_metrics(
            parse_config(text, source=str(workdir / "demo.toml"), base_dir=workdir), args.metrics
        )
        print(
            f"utility server https://127.0.0.1:{http_port}/dcap (mutual TLS), "
            f"battery modbus://127.0.0.1:{modbus_port}",
            flush=True,
        )
        if server.validation_off:
            print(f"sep2gw demo: utility server: {server.validation_off}", file=sys.stderr)
        log_path = config.path(config.log.path)
        if not args.quiet:
            printer = TimelinePrinter(_timeline(telemetry_every_s=15), quiet=args.quiet)
            nursery.start_soon(_print_timeline, log_path, printer)
        async with Gateway(config) as gateway:
            _say_metrics(gateway)
            await anyio.sleep(duration)
        await anyio.sleep(0.3)  # let the printer catch the last records
        nursery.cancel_scope.cancel()
    statuses = {
        c.mrid: server.response_statuses(c.mrid)
        for c in scenario.actions
        if isinstance(c, CreateControl) and c.mrid is not None
    }
    print("\nresponses the utility received, per control:")
    for mrid, codes in statuses.items():
        print(f"  {mrid}: {codes}")
    print(f"\nthe log is {log_path}")
    print(f"  sep2gw log verify {log_path}\n  sep2gw log tail {log_path} -n 40")
    return 0
