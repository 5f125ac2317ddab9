"""Crash test for the event log: SIGKILL a writer at random moments, check nothing acknowledged is lost.

The parent starts a child that appends batches of random size to random streams of one log file and
prints ``ack <last seq>`` after each ``append`` returns (that is the durability promise). The parent
kills it with SIGKILL after a random delay, reads every ack the child managed to write, then opens the
log and checks: every acknowledged record is present, no partial batch is visible, the sequence is
gapless and ``verify`` passes. Repeat ``--kills`` times on the same file.

One writer per log: the child holds the log's writer lock (``exclusive``); while it runs the parent
tries to open the same log as a second writer, which must be refused at once (``LogLocked``), and
after each kill the parent opens it as the writer, which the crash must have released.

A full disk is a degraded mode, not an exit (issue 16 point 5): ``--kills`` / ``FULL_EVERY`` runs
(at least one) start a child that writes through the gateway's log writer to a log with
``max_bytes`` = 1 MiB — telemetry detail, the hardware actor's observations and decisions, each
decision acknowledged once durable — until the log is first short of space (detail shed) and then
full (decisions wait). The child must still be running a second after the log is full; it is then
killed, and every acknowledged decision must be in the log, which must verify. (A real ENOSPC needs
a small file system, which this benchmark cannot mount; ``max_bytes`` fails the same way, with
SQLITE_FULL, and the store maps both to ``LogFull``.)

kill -9 tests the process dying between any two instructions; power loss additionally depends on the
disk honouring fsync, which ``synchronous=FULL`` asks for and this machine cannot demonstrate.

    python3 benchmarks/crash_log.py --kills 50
    → last line: {"kills": 50, "acknowledged": A, "lost": 0, "verify_failures": 0,
                  "disk_full_runs": 2, "exits_on_disk_full": 0, "second_writer_refused": true}
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio

from actors.log_writer import LogWriter
from events.base import Event
from events.catalogue import Catalogue
from events.envelope import Append
from events.errors import LogLocked
from events.hardware_events import TelemetrySampled
from events.log_events import LogShort
from events.log_lock import LogHolder
from events.registry import ALL_EVENT_TYPES
from events.sqlite_store import SqliteEventStore


class CrashProbe(Event, frozen=True, kw_only=True, tag="bench.crash_probe.v1"):
    """One event of a batch: which batch (its first seq), its position and the batch size."""

    batch: int
    index: int
    size: int
    payload: str


CATALOGUE = Catalogue((*ALL_EVENT_TYPES, CrashProbe))
FILE_EVERY = 10
#: One disk-full run per this many kills (at least one): each takes a few seconds to fill its log.
FULL_EVERY = 25
#: The disk-full runs' log limit (the smallest ``log.max_bytes`` the configuration accepts).
FULL_MAX_BYTES = 1 << 20
#: How long a child must go on running once its log is full.
FULL_SURVIVE_S = 1.0


def child(path: str, seed: int) -> None:
    rng = random.Random(seed)
    store = SqliteEventStore(path, CATALOGUE, exclusive=_holder())
    out = sys.stdout
    out.write("locked\n")
    out.flush()
    while True:
        first = store.head().seq + 1
        size = rng.choice((1, 1, 2, 10, 50, 200))
        appends: list[Append] = []
        index = 0
        # One batch may span several streams: the whole batch is one transaction.
        while index < size:
            part = min(size - index, rng.randint(1, size))
            events = [
                CrashProbe(
                    batch=first, index=index + i, size=size, payload="x" * rng.randint(0, 200)
                )
                for i in range(part)
            ]
            appends.append(
                Append(
                    stream=f"s{rng.randint(0, 7)}",
                    events=events,
                    server_time=1_764_000_000.0 + first,
                    monotonic=float(first),
                )
            )
            index += part
        records = store.append(appends)
        out.write(f"ack {records[-1].seq}\n")
        out.flush()


def disk_full_child(path: str, seed: int) -> None:
    """Write as a gateway does through its log writer until the log is full, and go on."""
    rng = random.Random(seed)
    store = SqliteEventStore(path, CATALOGUE, max_bytes=FULL_MAX_BYTES, exclusive=_holder())
    out = sys.stdout

    def say(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    writer = LogWriter(store, offload=True, on_alarm=lambda line: say(f"alarm {line}"))

    def batch(stream: str, events: list[Event], at: float) -> list[Append]:
        return [Append(stream=stream, events=events, server_time=at, monotonic=at)]

    async def detail() -> None:
        at = 1_764_000_000.0
        while True:
            at += 0.001
            samples: list[Event] = [
                TelemetrySampled(at_s=at, site_w=rng.random()) for _ in range(20)
            ]
            await writer.append(batch("hardware", samples, at))

    async def observations() -> None:
        for i in range(10**9):
            probe = CrashProbe(batch=0, index=i, size=1, payload="o" * rng.randint(0, 200))
            await writer.append(batch("observed", [probe], 1.0 + i), observation=True)
            await anyio.sleep(0.002)

    async def decisions() -> None:
        for i in range(10**9):
            probe = CrashProbe(batch=-1, index=i, size=1, payload="d" * rng.randint(0, 1000))
            records = await writer.append(batch("decisions", [probe], 1.0 + i))
            say(f"ack {records[-1].seq}")
            await anyio.sleep(0.001)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            await tasks.start(writer.run)
            tasks.start_soon(detail)
            tasks.start_soon(observations)
            tasks.start_soon(decisions)

    say("locked")
    anyio.run(main)


def disk_full_run(path: str, seed: int) -> tuple[bool, int, bool, str]:
    """(exited, decisions acknowledged, log intact with every acknowledged decision, problem)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--disk-full", path, "--seed", str(seed)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    acked: set[int] = set()
    full = False
    for line in proc.stdout:
        if line.startswith("ack "):
            acked.add(int(line.split()[1]))
        elif line.startswith("alarm the event log is full"):
            full = True
            break
    exited = True
    if full:
        time.sleep(FULL_SURVIVE_S)
        exited = proc.poll() is not None
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate()
    acked |= {int(line.split()[1]) for line in rest.splitlines() if line.startswith("ack ")}
    with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
        present = {r.seq for r in store.read(stream="decisions")}
        short = any(isinstance(r.event, LogShort) for r in store.read(stream="log"))
        report = store.verify()
    problem = "" if report.ok else report.describe()
    if not acked <= present:
        problem += f" acknowledged decisions lost: {sorted(acked - present)[:5]}"
    if not short:
        problem += " no log.short_of_space.v1 record"
    if not full:
        problem += " the log never reported full"
    return exited, len(acked), not problem, problem


def _holder() -> LogHolder:
    return LogHolder(pid=os.getpid(), started=time.time(), host="crash-bench")


def second_writer_refused(path: str, writer_pid: int) -> bool:
    """While the child writes, a second writer on its log must be refused, naming the child."""
    try:
        SqliteEventStore(path, CATALOGUE, exclusive=_holder()).close()
    except LogLocked as exc:
        return f"pid {writer_pid}" in str(exc)
    return False


def check(path: str, acked: int) -> tuple[int, bool, str]:
    """(records lost, verify ok, problem) for a log whose writer acknowledged seq ``acked``; opened
    as the writer, which the killed child's lock must not prevent."""
    with SqliteEventStore(path, CATALOGUE, exclusive=_holder()) as store:
        head = store.head().seq
        lost = max(0, acked - head)
        batches: dict[int, list[int]] = {}
        sizes: dict[int, int] = {}
        for record in store.read():
            event = record.event
            assert isinstance(event, CrashProbe)
            batches.setdefault(event.batch, []).append(event.index)
            sizes[event.batch] = event.size
        partial = [b for b, idx in batches.items() if sorted(idx) != list(range(sizes[b]))]
        report = store.verify()
        problem = "" if report.ok else report.describe()
        if partial:
            problem += f" partial batches visible: {partial[:5]}"
        return lost, report.ok and not partial, problem


def parent(kills: int, seed: int, keep: bool) -> int:
    rng = random.Random(seed)
    workdir = Path(tempfile.mkdtemp(prefix="sep2gw-crash-"))
    path = ""
    acked_seq = 0
    acknowledged = 0
    lost_total = 0
    verify_failures = 0
    refused = 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for kill in range(kills):
        if kill % FILE_EVERY == 0:
            # A fresh file now and then keeps each full verification short; the first kills on a
            # new file can land while its schema is still being created.
            path = str(workdir / f"crash-{kill // FILE_EVERY}.sep2gw")
            acked_seq = 0
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", path, "--seed", str(rng.getrandbits(32))],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        # Let it run for a random while; kill it wherever it happens to be.
        time.sleep(0.1 + rng.random() * 0.4)
        refused += second_writer_refused(path, proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = acked_seq
        for line in proc.stdout.read().splitlines():
            if line.startswith("ack "):
                acked_seq = max(acked_seq, int(line.split()[1]))
        acknowledged += acked_seq - before
        lost, ok, problem = check(path, acked_seq)
        lost_total += lost
        verify_failures += 0 if ok else 1
        print(
            f"kill {kill + 1:>3}/{kills}: acknowledged through {acked_seq:>8}, lost {lost}, "
            f"{'intact' if ok else 'BROKEN ' + problem}",
            flush=True,
        )
    full_runs = max(1, kills // FULL_EVERY)
    exits = 0
    for run in range(full_runs):
        path = str(workdir / f"full-{run}.sep2gw")
        exited, acked, ok, problem = disk_full_run(path, rng.getrandbits(32))
        exits += exited
        verify_failures += 0 if ok else 1
        print(
            f"disk full {run + 1}/{full_runs}: {acked} decisions acknowledged, "
            f"{'exited' if exited else 'kept running'} when full, "
            f"{'intact' if ok else 'BROKEN ' + problem}",
            flush=True,
        )
    if not keep and lost_total == 0 and verify_failures == 0:
        for p in workdir.iterdir():  # the logs and their .lock sidecars
            p.unlink()
        workdir.rmdir()
    else:
        print(f"logs kept in {workdir}")
    print(
        json.dumps(
            {
                "kills": kills,
                "acknowledged": acknowledged,
                "lost": lost_total,
                "verify_failures": verify_failures,
                "disk_full_runs": full_runs,
                "exits_on_disk_full": exits,
                "second_writer_refused": refused == kills,
            }
        )
    )
    ok = (
        lost_total == 0
        and verify_failures == 0
        and acknowledged > 0
        and refused == kills
        and exits == 0
    )
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=2030_5)
    parser.add_argument("--keep", action="store_true", help="keep the log file afterwards")
    parser.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    parser.add_argument("--disk-full", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.disk_full:
        disk_full_child(args.disk_full, args.seed)
        return 0
    if args.child:
        child(args.child, args.seed)
        return 0
    return parent(args.kills, args.seed, args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
