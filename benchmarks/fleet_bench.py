"""What one process costs per site when it serves a fleet (issue 19, acceptance): CPU and memory
of N sites at 1 Hz sampling and 60 s polls, the decision core's first receipt of 10,000 new
controls, and how long a notification takes to reach the battery.

    python3 benchmarks/fleet_bench.py [--sites 1000] [--minutes 10] [--warmup-minutes 3]
                                      [--store sqlite|memory] [--trace-memory] [--seed S]

Prints human lines and, last, one JSON line::

    {"sites": 1000, "cpu_pct_of_one_core": …, "rss_mb": …, "first_receipt_10k_controls_ms": …,
     "notification_to_limit_ms": …, …method fields…}

**The workload.** Every site is one gateway unit (``sep2gw.gateway.Gateway``, all its actors) with
its own simulated utility server and battery (``sep2gw.world``'s building blocks: mutual TLS and
HTTP/1.1 on in-memory pipes, the battery reached by the ``direct`` driver): a program whose default
control limits export to 5 kW, so the hardware actor runs its closed loop every second, one 5-minute
control in each measured window, pollRate and postRate 60 s, telemetry sampled at 1 Hz and recorded.
Every site runs on the one trio loop on the virtual clock (``MockClock``, autojump), the schedule
seeded, each battery with its own seed. ``--harness fleet`` (the default, :func:`run_fleet`): the
N sites are one aggregator-mode ``sep2gw.fleet.Fleet`` (one aggregator certificate, identical GETs
coalesced, decoded documents shared, telemetry detail committed in groups) against ONE simulated
server, through ``sep2gw.fleet_world.run_fleet_world``; each site's gateway runs in the task
``site <name>``. ``--harness independent`` (:func:`run_sites`): N single-site gateways, each with
its own simulated server, each in a task ``gateway:<n>``.

**CPU: the simulated world's cost model.** A trio ``Instrument`` reads the thread's CPU clock
(``time.thread_time``) before and after every task step and charges the step to the *gateway* if
the task descends from a site's gateway task (each site's ``Gateway`` runs in a task named
``gateway:<site>``), else to the *simulation* (the utility servers, their timelines, the world's
own tasks). Inside gateway steps, the battery model's physics (``SimBattery.advance``: the device,
not the gateway) is timed separately and moved to the simulation. What no task step holds is the
loop's own work (trio's scheduler, the autojump clock); it is shared out in proportion to task
steps. Only the measured window counts (after ``--warmup-minutes``, in which every site walks
discovery and registers: a start-up cost, reported apart). Then

    cpu_pct_of_one_core = 100 × (gateway CPU + its share of the loop's) / simulated seconds

i.e. the fraction of one core the N gateways would keep busy in real time, were their work
spread over the day as the virtual clock spreads it. Not in it: a real driver's Modbus framing
and sockets (the direct driver skips them; the closed loop and the telemetry decode are in), the
kernel's TCP/TLS record work outside Python (TLS itself is in: the pipes carry real TLS), and an
SQLite file's fsync wait (``--store sqlite`` writes every site's log to its own SQLite file on
tmpfs, ``synchronous=FULL`` as in production, so the commit's CPU is in but not the disk).

**The collector.** With a thousand sites' objects on one heap, a full collection of Python's
cyclic garbage collector walks all of them (0.4 s each at 300 sites), and they come more often as
the heap grows: the CPU grows faster than the number of sites. After the warm-up the harness
does what a fleet process does once its sites have started (``sep2gw run``:
``sep2gw.collector.settle_for_a_fleet``: ``gc.freeze()``, what start-up built is long-lived and never
walked again, and a youngest-generation threshold of 100 allocations per site, at least 10,000, so
the young passes' cost per site stays flat; the independent harness only freezes;
``--no-gc-freeze`` to compare). The collector's CPU in the
window (``gc.callbacks``) is printed apart; it is inside the figures above, in whichever step
or loop turn set it off.

**Memory.** ``rss_mb`` is the whole process's resident set at the end of the window, the simulated
servers and batteries included (an upper bound for the gateways alone); ``rss_per_site_kb`` is
the growth from before the first site was made, divided by N. ``--trace-memory`` also runs
``tracemalloc`` (which slows the run several times: its CPU figures are not reported) and groups
the bytes still held at the end by the package of the innermost of our frames that allocated them:
``actors``, ``events``, ``statemachines``, ``transport``, ``sep2gw`` (the gateway) against
``sep2gw.simserver`` and ``sep2gw.sim`` (the simulation); what only libraries or the interpreter
allocated is ``other``.

**First receipt of 10,000 controls** is ``benchmarks/core_bench.py``'s measurement
(``bench_first_receipt``), reused here, not copied.

**Notification to limit** (:func:`measure_notification_to_limit`): a fleet of 10 sites against a
server that notifies; a control created to start at once in the program they share (pollRate 300
s, so only the notification can bring it early); per site, the virtual milliseconds from the
record of the notification's arrival to the first ``hardware.limits_applied`` after the control
is in force; the worst site's is reported, against the control period (1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import io
import json
import logging
import os
import random
import sys
import tempfile
import time
import tracemalloc
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import trio  # noqa: E402
import trio.testing  # noqa: E402

from actors.hardware import HardwareConfig  # noqa: E402
from actors.pipe import pipe_connector, pipe_listener  # noqa: E402
from events.control_events import LimitsInForceChanged  # noqa: E402
from events.envelope import Recorded  # noqa: E402
from events.hardware_events import LimitsApplied  # noqa: E402
from events.memory_store import MemoryEventStore  # noqa: E402
from events.registry import CATALOGUE  # noqa: E402
from events.sqlite_store import SqliteEventStore  # noqa: E402
from events.store import EventStore  # noqa: E402
from events.subscription_events import ControlsNotified, NotificationReceived  # noqa: E402
from sep2gw.cli import main as cli_main  # noqa: E402
from sep2gw.collector import settle_for_a_fleet  # noqa: E402
from sep2gw.config import Config, parse_config  # noqa: E402
from sep2gw.gateway import Gateway, GatewayOptions  # noqa: E402
from sep2gw.sim import BatteryParams, SimBattery, SiteParams  # noqa: E402
from sep2gw.sim.direct_driver import SimBatteryDriver  # noqa: E402
from sep2gw.simserver import (  # noqa: E402
    Scenario,
    SimClock,
    SimUtilityServer,
    parse_scenario,
    server_material,
)
from sep2gw.simserver.quirks import Quirks  # noqa: E402
from sep2gw.trio_determinism import deterministic_trio  # noqa: E402
from sep2gw.world import DEFAULT_EPOCH  # noqa: E402

MINUTE: Final = 60
#: How often each site commits its telemetry detail (``GatewayOptions.detail_commit_s``): what a
#: fleet runs with (decision 0022f).
DETAIL_COMMIT_S: Final = 10.0
#: SQLite's page cache per site's log (``GatewayOptions.log_cache_kib``), as a fleet bounds it.
LOG_CACHE_KIB: Final = 64
#: Targets of issue 19 (acceptance) for 1,000 sites, and the per-site budget they imply.
TARGET_CPU_PCT: Final = 30.0
TARGET_RSS_MB: Final = 1024.0
TARGET_FIRST_RECEIPT_MS: Final = 1000.0
#: The name prefix of a site's gateway task: every task below it is the gateway's.
GATEWAY_TASK: Final = "gateway:"
#: Where the gateway's own code lives, by the package of a frame's file (memory grouping).
_GATEWAY_PACKAGES: Final = ("actors", "events", "statemachines", "transport", "sep2gw")
_SIMULATION_PACKAGES: Final = ("sep2gw/simserver", "sep2gw/sim")

_CONFIG: Final = """
[server]
url = "https://utility.sim:443"
pin = {pin}
profile = "csip-aus"
[tls]
certificate = "pki/device.pem"
key = "pki/device.key"
ca = "pki/ca.pem"
[battery]
driver = "sunspec"
host = "battery.sim"
[rates]
default_post_s = 60
[log]
path = "site.sep2gw"
"""


def fleet_scenario(minutes: float, warmup_minutes: float) -> Scenario:
    """One site's utility: a default export limit of 5 kW (the closed loop runs every second),
    pollRate and postRate 60 s, and a 5-minute export limit of 1.5 kW every 10 minutes from the end
    of the warm-up (announced two minutes before it starts), HTTP/1.1 as deployed servers speak."""
    lines = [
        'name = "fleet-bench-site"',
        "[server]",
        "poll_rate_s = 60",
        "post_rate_s = 60",
        "[[programs]]",
        'id = "dnsp"',
        "primacy = 20",
        "default = { opModExpLimW = 5000 }",
    ]
    start = warmup_minutes * MINUTE
    index = 0
    while start < (warmup_minutes + minutes) * MINUTE:
        lines += [
            "[[actions]]",
            f"at_s = {max(0, start - 2 * MINUTE):g}",
            'kind = "create_control"',
            f'mrid = "{f"F1{index:06X}".ljust(32, "0")}"',
            'program = "dnsp"',
            f"start_s = {start:g}",
            "duration_s = 300",
            "modes = { opModExpLimW = 1500 }",
        ]
        start += 10 * MINUTE
        index += 1
    scenario = parse_scenario("\n".join(lines), source="fleet_bench scenario")
    return _replace_quirks(scenario)


def _replace_quirks(scenario: Scenario) -> Scenario:
    import msgspec

    return msgspec.structs.replace(scenario, quirks=Quirks(http2=False))


# --- CPU attribution -------------------------------------------------------------------------


class TaskCpu(trio.abc.Instrument):
    """CPU of every task step (``time.thread_time``), charged to the gateway or the simulation by
    whether the task descends from a task named ``gateway:…`` (see the module docstring). Counts
    only while :attr:`on`."""

    def __init__(self, prefix: str = "gateway:") -> None:
        #: The name prefix of the task a site's gateway runs in (a fleet's: ``site <name>``).
        self.prefix = prefix
        self.on = False
        self.gateway_s = 0.0
        self.simulation_s = 0.0
        self.gateway_steps = 0
        self.simulation_steps = 0
        #: Time the battery model's physics took inside gateway steps (moved to the simulation).
        self.device_model_s = 0.0
        #: Gateway CPU by task (an actor's ``run`` is a task of that name).
        self.by_task: dict[str, float] = {}
        self._began = 0.0
        self._kind: weakref.WeakKeyDictionary[trio.lowlevel.Task, bool] = (
            weakref.WeakKeyDictionary()
        )

    def is_gateway(self, task: trio.lowlevel.Task) -> bool:
        known = self._kind.get(task)
        if known is not None:
            return known
        walk: trio.lowlevel.Task | None = task
        verdict = False
        while walk is not None:
            if walk.name.startswith(self.prefix):
                verdict = True
                break
            cached = self._kind.get(walk)
            if cached is not None:
                verdict = cached
                break
            nursery = walk.parent_nursery
            walk = None if nursery is None else nursery.parent_task
        self._kind[task] = verdict
        return verdict

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._began = time.thread_time()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if not self.on:
            return
        took = time.thread_time() - self._began
        if self.is_gateway(task):
            self.gateway_s += took
            self.gateway_steps += 1
            name = task.name
            self.by_task[name] = self.by_task.get(name, 0.0) + took
        else:
            self.simulation_s += took
            self.simulation_steps += 1


class GcMeter:
    """CPU spent in Python's cyclic garbage collector while on, per generation (``gc.callbacks``):
    with a thousand sites' objects on one heap a full collection walks all of them."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.thread_time()
        elif self.on:
            generation = info["generation"]
            self.seconds[generation] += time.thread_time() - self._began
            self.collections[generation] += 1


class _TimedPhysics(SimBatteryDriver):
    """The direct driver, with the battery model's physics timed apart (it is the device's work,
    which a real site's battery does, not the gateway's)."""

    meter: TaskCpu

    def _advance(self) -> None:
        began = time.thread_time()
        super()._advance()
        if self.meter.on:
            self.meter.device_model_s += time.thread_time() - began


# --- the site harness ------------------------------------------------------------------------


@dataclass
class SitesRun:
    """What :func:`run_sites` measured."""

    sites: int
    warmup_s: float
    window_s: float
    cpu: TaskCpu
    process_window_s: float  # process CPU in the window (every thread, the loop included)
    wall_window_s: float
    startup_process_s: float  # process CPU of the warm-up: every site's start, walk, registration
    rss_before_mb: float
    rss_end_mb: float
    records: int  # log records written by all sites in the window
    limits_applied: int  # hardware.limits_applied records in the window
    stores: list[EventStore] = field(repr=False, default_factory=list)
    memory_by_group: dict[str, int] = field(default_factory=dict)
    gc: GcMeter = field(default_factory=GcMeter)
    gc_frozen: bool = False
    #: "fleet": one aggregator-mode Fleet against one server (:func:`run_fleet`); "independent":
    #: N single-site gateways, each with its own server (:func:`run_sites`).
    harness: str = "independent"
    #: The collector's thresholds during the window (None: the process's, unchanged).
    gc_thresholds: tuple[int, int, int] | None = None

    @property
    def loop_s(self) -> float:
        """The loop's own work: process CPU in the window that no task step holds."""
        return max(0.0, self.process_window_s - self.cpu.gateway_s - self.cpu.simulation_s)

    @property
    def gateway_cpu_s(self) -> float:
        """The gateways' CPU: their task steps less the battery physics, plus their share of the
        loop's own work (in proportion to task steps)."""
        steps = self.cpu.gateway_steps + self.cpu.simulation_steps
        share = 0.0 if steps == 0 else self.loop_s * self.cpu.gateway_steps / steps
        return self.cpu.gateway_s - self.cpu.device_model_s + share

    @property
    def cpu_pct_of_one_core(self) -> float:
        return 100.0 * self.gateway_cpu_s / self.window_s

    @property
    def ms_per_site_second(self) -> float:
        return 1000.0 * self.gateway_cpu_s / self.window_s / self.sites


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def _store_for(kind: str, folder: Path, site: int) -> EventStore:
    if kind == "memory":
        return MemoryEventStore(CATALOGUE)
    return SqliteEventStore(folder / f"site-{site:04d}.sep2gw", CATALOGUE, cache_kib=LOG_CACHE_KIB)


async def _sites(
    count: int,
    *,
    seed: int,
    warmup_s: float,
    window_s: float,
    pki: Path,
    config: Config,
    store_kind: str,
    store_dir: Path,
    meter: TaskCpu,
    run: dict[str, Any],
    detail_commit_s: float,
    gc_meter: GcMeter,
    gc_freeze: bool,
) -> None:
    epoch = float(DEFAULT_EPOCH)
    scenario = fleet_scenario(window_s / MINUTE, warmup_s / MINUTE)
    material = server_material(pki)
    hardware = HardwareConfig(control_period_s=1.0, sample_period_s=1.0, post_interval_s=60)
    device = SimClock(epoch)
    end = epoch + warmup_s + window_s
    seeds = random.Random(seed)
    stores: list[EventStore] = []

    async def gateway_of(site: int, server_send: Any, battery: SimBattery) -> None:
        store = _store_for(store_kind, store_dir, site)
        stores.append(store)
        driver = _TimedPhysics(battery, clock=device.now)
        driver.meter = meter
        options = GatewayOptions(
            wall_at_start=device.now(),
            seed=seeds.getrandbits(63),
            store=store,
            http_connector=pipe_connector(server_send),
            hardware=hardware,
            log_in_thread=False,
            detail_commit_s=detail_commit_s,
        )
        gateway = Gateway(config, driver, options=options)
        async with gateway:
            await device.sleep_until(end)

    async with trio.open_nursery() as world:
        for site in range(count):
            clock = SimClock(epoch)
            server = SimUtilityServer(scenario, material, clock=clock)
            http_send, http_accept = pipe_listener()
            await world.start(server.serve_pipes, http_accept)
            battery = SimBattery(
                BatteryParams(), SiteParams(), seed=seeds.getrandbits(32), start_s=epoch
            )
            world.start_soon(gateway_of, site, http_send, battery, name=f"{GATEWAY_TASK}{site}")
        await device.sleep_until(epoch + warmup_s)
        run["startup_process_s"] = time.process_time() - run["process0"]
        gc.collect()
        if gc_freeze:
            gc.freeze()  # what the sites built to start is long-lived: no collection walks it
        heads = [store.head().seq for store in stores]
        gc_meter.on = True
        meter.on = True
        profiler = run.get("profiler")
        if profiler is not None:
            profiler.enable()
        run["window_process0"] = time.process_time()
        run["window_wall0"] = time.perf_counter()
        await device.sleep_until(end - 0.5)  # the last instant of the window, sites still up
        meter.on = False
        gc_meter.on = False
        if profiler is not None:
            profiler.disable()
        run["process_window_s"] = time.process_time() - run["window_process0"]
        run["wall_window_s"] = time.perf_counter() - run["window_wall0"]
        run["rss_end_mb"] = _rss_mb()
        if tracemalloc.is_tracing():
            run["memory_by_group"] = memory_by_group(tracemalloc.take_snapshot())
        # Counted from the logs, after the window: nothing of the count is charged to the gateway.
        run["records"] = sum(
            store.head().seq - seq for store, seq in zip(stores, heads, strict=True)
        )
        run["limits"] = sum(
            1
            for store, seq in zip(stores, heads, strict=True)
            for _ in store.read(seq + 1, types=LIMITS_APPLIED_TAGS)
        )
        run["stores"] = stores
        world.cancel_scope.cancel()


def run_sites(
    count: int,
    *,
    minutes: float,
    warmup_minutes: float = 3.0,
    seed: int = 1,
    store: str = "sqlite",
    trace_memory: bool = False,
    detail_commit_s: float = DETAIL_COMMIT_S,
    gc_freeze: bool = True,
    work: Path,
) -> SitesRun:
    """The site harness: ``count`` sites for ``warmup_minutes`` then a measured window of
    ``minutes`` (virtual), in one trio loop; see the module docstring for what is measured.
    ``work`` holds the PKI (made if missing) and, with ``store="sqlite"``, every site's log."""
    pki = work / "pki"
    if not (pki / "device.pem").exists():
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["certs", "init", str(pki)]) == 0
    config = parse_config(_CONFIG.format(pin=111115), source="fleet_bench", base_dir=work)
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    meter = TaskCpu()
    gc.collect()
    rss_before = _rss_mb()
    if trace_memory:
        tracemalloc.start(12)
    run: dict[str, Any] = {"process0": time.process_time()}
    gc_meter = GcMeter()
    gc.callbacks.append(gc_meter)
    try:
        with deterministic_trio(seed):
            trio.run(
                lambda: _sites(
                    count,
                    seed=seed,
                    warmup_s=warmup_minutes * MINUTE,
                    window_s=minutes * MINUTE,
                    pki=pki,
                    config=config,
                    store_kind=store,
                    store_dir=logs,
                    meter=meter,
                    run=run,
                    detail_commit_s=detail_commit_s,
                    gc_meter=gc_meter,
                    gc_freeze=gc_freeze,
                ),
                clock=trio.testing.MockClock(autojump_threshold=0),
                instruments=[meter],
            )
    finally:
        gc.callbacks.remove(gc_meter)
        if gc_freeze:
            gc.unfreeze()
        if trace_memory:
            tracemalloc.stop()
    return SitesRun(
        sites=count,
        warmup_s=warmup_minutes * MINUTE,
        window_s=minutes * MINUTE,
        cpu=meter,
        process_window_s=run["process_window_s"],
        wall_window_s=run["wall_window_s"],
        startup_process_s=run["startup_process_s"],
        rss_before_mb=rss_before,
        rss_end_mb=run["rss_end_mb"],
        records=run["records"],
        limits_applied=run["limits"],
        stores=run["stores"],
        memory_by_group=run.get("memory_by_group", {}),
        gc=gc_meter,
        gc_frozen=gc_freeze,
    )


#: The name of the task a fleet runs each site in (``sep2gw.fleet.Fleet.run``).
FLEET_SITE_TASK: Final = "site "


def run_fleet(
    count: int,
    *,
    minutes: float,
    warmup_minutes: float = 3.0,
    seed: int = 1,
    store: str = "sqlite",
    trace_memory: bool = False,
    gc_freeze: bool = True,
    work: Path,
) -> SitesRun:
    """The same measurement on aggregator mode itself (the default harness): ``count`` sites of
    one ``sep2gw.fleet.Fleet`` (one aggregator certificate, the sites' identical GETs coalesced,
    decoded documents shared, telemetry detail committed in groups and a page cache of 64 KiB
    per site log, as a fleet runs by default) against ONE simulated utility server, through
    ``sep2gw.fleet_world.run_fleet_world``. Each site's gateway runs in the task ``site <name>``,
    so the CPU attribution is :class:`TaskCpu`'s with that prefix; the battery model's physics
    (the direct driver's ``_advance``) is timed and moved to the simulation as in
    :func:`run_sites`. ``store="sqlite"``: each site's log is its own SQLite file in ``work``
    (``synchronous=FULL``), as a fleet writes them."""
    from sep2gw.fleet_world import run_fleet_world

    pki = work / "pki"
    if not (pki / "device.pem").exists():
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["certs", "init", str(pki)]) == 0
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    meter = TaskCpu(prefix=FLEET_SITE_TASK)
    gc_meter = GcMeter()
    stores: list[EventStore] = []
    run: dict[str, Any] = {}

    def store_of(name: str) -> EventStore:
        made: EventStore = (
            MemoryEventStore(CATALOGUE)
            if store == "memory"
            else SqliteEventStore(logs / f"{name}.sep2gw", CATALOGUE, cache_kib=LOG_CACHE_KIB)
        )
        stores.append(made)
        return made

    def window_opens() -> None:
        run["startup_process_s"] = time.process_time() - run["process0"]
        if gc_freeze:  # as sep2gw run does once a fleet's sites have started
            run["thresholds"] = settle_for_a_fleet(count)
        else:
            gc.collect()
        run["window_thresholds"] = gc.get_threshold()
        run["heads"] = [s.head().seq for s in stores]
        gc_meter.on = meter.on = True
        run["window_process0"] = time.process_time()
        run["window_wall0"] = time.perf_counter()

    def window_closes() -> None:
        meter.on = gc_meter.on = False
        run["process_window_s"] = time.process_time() - run["window_process0"]
        run["wall_window_s"] = time.perf_counter() - run["window_wall0"]
        run["rss_end_mb"] = _rss_mb()
        if tracemalloc.is_tracing():
            run["memory_by_group"] = memory_by_group(tracemalloc.take_snapshot())

    physics = SimBatteryDriver._advance

    def timed_physics(driver: SimBatteryDriver) -> None:
        began = time.thread_time()
        physics(driver)
        if meter.on:
            meter.device_model_s += time.thread_time() - began

    warmup_s = warmup_minutes * MINUTE
    window_s = minutes * MINUTE
    scenario = fleet_scenario(minutes, warmup_minutes)
    gc.collect()
    rss_before = _rss_mb()
    if trace_memory:
        tracemalloc.start(12)
    gc.callbacks.append(gc_meter)
    run["process0"] = time.process_time()
    SimBatteryDriver._advance = timed_physics  # type: ignore[method-assign]
    try:
        run_fleet_world(
            scenario,
            seed=seed,
            sites=count,
            site=work,
            seconds=warmup_s + window_s,
            monitor=False,
            keep_requests=False,
            hardware=HardwareConfig(control_period_s=1.0, sample_period_s=1.0, post_interval_s=60),
            store_of=store_of,
            at=((warmup_s, window_opens), (warmup_s + window_s - 0.5, window_closes)),
            instruments=(meter,),
        )
    finally:
        SimBatteryDriver._advance = physics  # type: ignore[method-assign]
        gc.callbacks.remove(gc_meter)
        if gc_freeze:
            gc.unfreeze()
            if "thresholds" in run:
                gc.set_threshold(*run["thresholds"])
        if trace_memory:
            tracemalloc.stop()
    heads = run["heads"]
    return SitesRun(
        sites=count,
        warmup_s=warmup_s,
        window_s=window_s,
        cpu=meter,
        process_window_s=run["process_window_s"],
        wall_window_s=run["wall_window_s"],
        startup_process_s=run["startup_process_s"],
        rss_before_mb=rss_before,
        rss_end_mb=run["rss_end_mb"],
        records=sum(s.head().seq - seq for s, seq in zip(stores, heads, strict=True)),
        limits_applied=sum(
            1
            for s, seq in zip(stores, heads, strict=True)
            for _ in s.read(seq + 1, types=LIMITS_APPLIED_TAGS)
        ),
        stores=stores,
        memory_by_group=run.get("memory_by_group", {}),
        gc=gc_meter,
        gc_frozen=gc_freeze,
        harness="fleet",
        gc_thresholds=run["window_thresholds"],
    )



# --- memory by package -----------------------------------------------------------------------


def _group_of_file(filename: str) -> str | None:
    path = filename.replace(os.sep, "/")
    root = str(ROOT).replace(os.sep, "/") + "/"
    if not path.startswith(root):
        return None
    relative = path[len(root) :]
    for package in _SIMULATION_PACKAGES:
        if relative.startswith(package + "/") or relative.startswith(package + "."):
            return package.replace("/", ".")
    top = relative.split("/", 1)[0]
    if top in _GATEWAY_PACKAGES:
        return top
    return None


def memory_by_group(snapshot: tracemalloc.Snapshot) -> dict[str, int]:
    """Bytes still allocated, by the package of the innermost of our frames that allocated them
    (``other``: only libraries or the interpreter are on the stack)."""
    out: dict[str, int] = {}
    cache: dict[str, str | None] = {}
    for stat in snapshot.statistics("traceback"):
        group = "other"
        for frame in reversed(stat.traceback):  # innermost last in tracemalloc's order
            name = frame.filename
            if name not in cache:
                cache[name] = _group_of_file(name)
            found = cache[name]
            if found is not None:
                group = found
                break
        out[group] = out.get(group, 0) + stat.size
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


# --- the decision core and the notification path -------------------------------------------


def first_receipt_10k_controls_ms(seed: int = 20305) -> float:
    """``benchmarks/core_bench.py``'s first receipt (one poll bringing 10,000 new controls), in ms
    of CPU: the same function, loaded from that file."""
    spec = importlib.util.spec_from_file_location(
        "core_bench", ROOT / "benchmarks" / "core_bench.py"
    )
    assert spec is not None and spec.loader is not None
    core_bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(core_bench)
    with contextlib.redirect_stdout(io.StringIO()):
        ms: float = core_bench.bench_first_receipt(10_000, random.Random(seed))
    return ms


LIMITS_APPLIED_TAGS: Final = ("hardware.limits_applied.v2",)
#: The control period of every harness (a notified control is due on the battery within it).
CONTROL_PERIOD_MS: Final = 1000.0


def notification_to_limit_ms(
    records: Iterable[Recorded], notified: Callable[[Recorded], str | None]
) -> list[float]:
    """Issue 19 acceptance, "a notification applied to the battery within one control period":
    for every control a notification brought, the gateway's (virtual) milliseconds from the record
    of the notification's arrival to the first ``hardware.limits_applied`` after the controls core
    put that control in force (a ``control.limits_in_force`` record naming its mRID as a source).
    ``notified(record)`` is the mRID a record says a notification brought, else None
    (:func:`controls_notified` for the gateway's ``subscription.controls_notified.v1``); when that
    record names the notification's own record (``notification_seq``), the figure runs from the
    notification's arrival, not from the read it prompted. Records in log order, as
    ``EventStore.read`` gives them; a control never put in force has no figure."""
    received: dict[int, float] = {}  # seq of a notification's record → its monotonic
    arrived: dict[str, float] = {}  # mRID → monotonic of its notification
    current: set[str] = set()  # the mRIDs the newest limits in force name
    pending: list[str] = []  # notified and in force, waiting for the battery to take them
    delays: list[float] = []
    for record in records:
        event = record.event
        if isinstance(event, NotificationReceived):
            received[record.seq] = record.monotonic
        mrid = notified(record)
        if mrid is not None:
            since = received.get(getattr(event, "notification_seq", -1), record.monotonic)
            arrived.setdefault(mrid, since)
            # The gateway records what a notification brought after the receipts and the limits
            # they put in force, in the same batch: the control may already be in force here.
            if mrid in current and mrid not in pending:
                pending.append(mrid)
        elif isinstance(event, LimitsInForceChanged):
            # A source is "control:<mRID>" or "default:<program mRID>" (bare mRIDs read too).
            current = {source.rpartition(":")[2] for source in event.sources.values()}
            pending += [m for m in current if m in arrived and m not in pending]
        elif isinstance(event, LimitsApplied) and pending:
            delays += [(record.monotonic - arrived.pop(m)) * 1000 for m in pending]
            pending = []
    return delays


def controls_notified(record: Recorded) -> str | None:
    """The control a notification brought, as the gateway records it
    (``subscription.controls_notified.v1``: the first mRID its prompted read saw first)."""
    event = record.event
    if isinstance(event, ControlsNotified) and event.first_seen:
        return event.first_seen[0]
    return None


#: A control in the program every site shares, created at +125 s to start at once: the
#: notification of the changed DERControlList is the only way it can be in force before the
#: next poll (pollRate 300 s).
_NOTIFIED_SCENARIO: Final = """
name = "fleet_bench_notification"
[server]
poll_rate_s = 300
post_rate_s = 60
[fleet]
notifications = true
[[programs]]
id = "network"
primacy = 10
default = { opModExpLimW = 5000 }
[[actions]]
at_s = 125
kind = "create_control"
mrid = "5C0000000000000000000000000000B1"
program = "network"
start_s = 125
duration_s = 120
modes = { opModExpLimW = 1000 }
"""


def measure_notification_to_limit(work: Path, *, sites: int = 10, seed: int = 1) -> list[float]:
    """Every site's milliseconds (virtual) from a notification's arrival to the battery write of
    the control it brought, in an aggregator-mode fleet of ``sites`` against one simulated server
    that notifies (``sep2gw.fleet_world``, control period 1 s, pollRate 300 s)."""
    from sep2gw.fleet_world import run_fleet_world

    pki = work / "pki"
    if not (pki / "device.pem").exists():
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli_main(["certs", "init", str(pki)]) == 0
    scenario = _replace_quirks(parse_scenario(_NOTIFIED_SCENARIO, source="fleet_bench"))
    result = run_fleet_world(
        scenario,
        seed=seed,
        sites=sites,
        site=work,
        seconds=200,
        monitor=False,
        hardware=HardwareConfig(control_period_s=1.0, sample_period_s=1.0, post_interval_s=60),
    )
    delays: list[float] = []
    for outcome in result.sites.values():
        delays += notification_to_limit_ms(outcome.store.read(), controls_notified)
    return delays


# --- the benchmark ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=10.0, help="measured window (virtual)")
    parser.add_argument("--warmup-minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--store", choices=("sqlite", "memory"), default="sqlite")
    parser.add_argument(
        "--harness",
        choices=("fleet", "independent"),
        default="fleet",
        help="fleet: one aggregator-mode Fleet against one simulated server (the product); "
        "independent: N single-site gateways each with its own server",
    )
    parser.add_argument("--trace-memory", action="store_true")
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the start-up heap to the collector (a fleet freezes it after start-up)",
    )
    parser.add_argument(
        "--gc-young",
        type=int,
        default=None,
        help="the collector's youngest-generation threshold for the warm-up (Python's: 700); "
        "the window runs with a fleet's (sep2gw.collector, decision 0022f)",
    )
    parser.add_argument(
        "--detail-commit-s",
        type=float,
        default=DETAIL_COMMIT_S,
        help="commit each site's telemetry detail at most this often (0: with every sample)",
    )
    parser.add_argument(
        "--skip-core", action="store_true", help="do not measure the decision core's first receipt"
    )
    parser.add_argument(
        "--skip-notification",
        action="store_true",
        help="do not measure notification to battery (a 10-site notifying fleet, 200 virtual s)",
    )
    args = parser.parse_args(argv)
    # A thousand sites each say once that their server has no CSIP-AUS well-known path.
    logging.getLogger("actors.discovery").setLevel(logging.ERROR)
    if args.sites < 1:
        parser.error(f"--sites: at least 1, got {args.sites}")
    if args.gc_young is not None:
        if args.gc_young < 1:
            parser.error(f"--gc-young must be positive, got {args.gc_young}")
        gc.set_threshold(args.gc_young, 10, 10)
    if args.detail_commit_s < 0:
        parser.error(f"--detail-commit-s must not be negative, got {args.detail_commit_s}")
    if args.minutes <= 0 or args.warmup_minutes < 0:
        parser.error("--minutes must be positive and --warmup-minutes not negative")
    # The decision core's figure first, on a fresh heap (after a thousand sites' run the
    # collector's passes over their leftovers would be in it).
    receipt = None if args.skip_core else first_receipt_10k_controls_ms()
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(
        prefix="sep2gw-fleet-", dir=shm if shm.is_dir() else None
    ) as tmp:
        if args.harness == "fleet":
            result = run_fleet(
                args.sites,
                minutes=args.minutes,
                warmup_minutes=args.warmup_minutes,
                seed=args.seed,
                store=args.store,
                trace_memory=args.trace_memory,
                gc_freeze=not args.no_gc_freeze,
                work=Path(tmp),
            )
        else:
            result = run_sites(
                args.sites,
                minutes=args.minutes,
                warmup_minutes=args.warmup_minutes,
                seed=args.seed,
                store=args.store,
                trace_memory=args.trace_memory,
                detail_commit_s=args.detail_commit_s,
                gc_freeze=not args.no_gc_freeze,
                work=Path(tmp),
            )
        for store in result.stores:
            close = getattr(store, "close", None)
            if close is not None:
                close()
    notified: list[float] | None = None
    if not args.skip_notification:
        with tempfile.TemporaryDirectory(prefix="sep2gw-fleet-notify-") as tmp:
            notified = measure_notification_to_limit(Path(tmp), seed=args.seed)
    print(report_lines(result, receipt, trace_memory=args.trace_memory, notified=notified))
    print(
        json.dumps(figures(result, receipt, trace_memory=args.trace_memory, notified=notified))
    )
    return 0


def report_lines(
    result: SitesRun,
    receipt: float | None,
    *,
    trace_memory: bool,
    notified: list[float] | None = None,
) -> str:
    cpu = result.cpu
    lines = [
        (
            f"sites              : {result.sites} of one aggregator-mode fleet against one "
            "simulated server, each with its battery, one trio loop"
            if result.harness == "fleet"
            else f"sites              : {result.sites}, each a gateway + simulated server + "
            "battery, one trio loop"
        ),
        f"window             : {result.window_s:g} virtual s after {result.warmup_s:g} s warm-up "
        f"(wall {result.wall_window_s:.1f} s; start-up {result.startup_process_s:.1f} s CPU)",
        f"gateway tasks      : {cpu.gateway_s:.2f} s CPU in {cpu.gateway_steps} steps "
        f"(of which battery physics {cpu.device_model_s:.2f} s, moved to the simulation)",
        f"simulation tasks   : {cpu.simulation_s:.2f} s CPU in {cpu.simulation_steps} steps",
        f"loop's own work    : {result.loop_s:.2f} s CPU (shared out by steps)",
        f"garbage collector  : {sum(result.gc.seconds):.2f} s CPU in the window "
        f"(generations 0/1/2: {'/'.join(f'{s:.2f}' for s in result.gc.seconds)} s, "
        f"{'/'.join(str(c) for c in result.gc.collections)} collections; "
        f"start-up heap {'frozen' if result.gc_frozen else 'not frozen'})",
        f"gateway per site   : {result.ms_per_site_second:.3f} ms CPU per simulated second "
        f"(target < 0.3)",
        f"cpu of one core    : {result.cpu_pct_of_one_core:.1f} % for {result.sites} sites "
        f"(target < {TARGET_CPU_PCT:g} % for 1,000)",
        f"rss                : {result.rss_end_mb:.0f} MB at the end "
        f"({(result.rss_end_mb - result.rss_before_mb) * 1024 / result.sites:.0f} kB per site "
        f"with its server and battery; target < {TARGET_RSS_MB:g} MB for 1,000)",
        f"records            : {result.records} in the window "
        f"({result.records / result.window_s / result.sites:.2f} per site-second; "
        f"{result.limits_applied} limits_applied)",
    ]
    by_task = sorted(cpu.by_task.items(), key=lambda kv: -kv[1])
    lines.append("gateway CPU by task: (µs per site per simulated second)")
    for name, took in by_task[:12]:
        short = name if len(name) < 60 else "…" + name[-59:]
        lines.append(f"  {short:60s} {took * 1e6 / result.window_s / result.sites:7.1f}")
    if trace_memory:
        lines.append("memory by package  : (tracemalloc; the run's CPU is slowed by it)")
        for group, size in result.memory_by_group.items():
            lines.append(f"  {group:18s}: {size / 1024 / result.sites:8.1f} kB per site")
    if receipt is not None:
        lines.append(
            f"first receipt      : {receipt:.0f} ms CPU for 10,000 new controls "
            f"(target < {TARGET_FIRST_RECEIPT_MS:g})"
        )
    if notified is None:
        lines.append("notification       : not measured (--skip-notification)")
    elif not notified:
        lines.append("notification       : NO notified control reached a battery")
    else:
        lines.append(
            f"notification       : {max(notified):.0f} ms (virtual) at worst from a notification's "
            f"arrival to the battery write of its control, over {len(notified)} sites "
            f"(target: within one control period, {CONTROL_PERIOD_MS:g} ms)"
        )
    return "\n".join(lines)


def figures(
    result: SitesRun,
    receipt: float | None,
    *,
    trace_memory: bool,
    notified: list[float] | None = None,
) -> dict[str, Any]:
    cpu = result.cpu
    out: dict[str, Any] = {
        "sites": result.sites,
        "cpu_pct_of_one_core": None if trace_memory else round(result.cpu_pct_of_one_core, 2),
        "rss_mb": round(result.rss_end_mb, 1),
        "first_receipt_10k_controls_ms": None if receipt is None else round(receipt, 1),
        # The worst site's; None: not measured, or no notified control reached a battery.
        "notification_to_limit_ms": round(max(notified), 1) if notified else None,
        "notification_sites": 0 if notified is None else len(notified),
        "harness": result.harness,
        "cpu_method": "gateway task steps (thread CPU) less battery physics, plus the loop's own "
        "work shared by steps, over virtual seconds of the window",
        "window_s": result.window_s,
        "warmup_s": result.warmup_s,
        "gateway_ms_per_site_s": None if trace_memory else round(result.ms_per_site_second, 4),
        "gateway_task_s": round(cpu.gateway_s, 3),
        "device_model_s": round(cpu.device_model_s, 3),
        "simulation_task_s": round(cpu.simulation_s, 3),
        "loop_s": round(result.loop_s, 3),
        "gc_s": round(sum(result.gc.seconds), 3),
        "gc_full_collections": result.gc.collections[2],
        "gc_frozen": result.gc_frozen,
        "gc_thresholds": list(result.gc_thresholds or gc.get_threshold()),
        "startup_process_s": round(result.startup_process_s, 2),
        "rss_per_site_kb": round((result.rss_end_mb - result.rss_before_mb) * 1024 / result.sites),
        "records_per_site_s": round(result.records / result.window_s / result.sites, 3),
    }
    if trace_memory:
        out["memory_kb_per_site"] = {
            g: round(size / 1024 / result.sites, 1) for g, size in result.memory_by_group.items()
        }
    return out


if __name__ == "__main__":
    raise SystemExit(main())
