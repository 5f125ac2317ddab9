"""Event log throughput: durable append at batch 1, 100 and 1000; read + decode; fold.

``fold_eps`` is the gateway's own folds — the controls projection and the poll projection, what a
start rebuilds its state with — over a realistic site log (the replay benchmark's generator: telemetry,
polls, posts, controls with their Responses), counted in records of that log per second.

The floor is msgspec encoding and decoding the same events with no store at all, measured in the same
run, so the ratios say what the log itself costs on this machine today.

    python3 benchmarks/log_bench.py [--events 200000]
    → last line: JSON with append_batch1000_eps, read_decode_eps, fold_eps, floor_decode_eps, …

Targets (issue 2): durable append >= 100,000 events/s at batch 1000; read + decode >= 500,000 events/s;
fold >= 200,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgspec

from benchmarks.replay_bench import generate
from events.base import Event
from events.catalogue import Catalogue
from events.registry import ALL_EVENT_TYPES
from events.replay import fold
from events.sqlite_store import SqliteEventStore
from statemachines.controls import CONTROLS_PROJECTION
from statemachines.polling import POLL_PROJECTION


class LimitApplied(Event, frozen=True, kw_only=True, tag="bench.limit_applied.v1"):
    """Shaped like a real decision record: ids, times, a few limits and a reason."""

    mrid: str
    program_id: str
    at_s: int
    export_limit_w: float | None = None
    import_limit_w: float | None = None
    generation_limit_w: float | None = None
    ramp_time_s: float | None = None
    reason: str = ""


CATALOGUE = Catalogue((*ALL_EVENT_TYPES, LimitApplied))


def make_events(n: int) -> list[LimitApplied]:
    return [
        LimitApplied(
            mrid=f"{0xA1B2C3D4E5F60000 + i % 977:032X}",
            program_id="0F00000000000000000000000000A1F2",
            at_s=1_764_000_000 + i,
            export_limit_w=float(5000 - i % 5000),
            import_limit_w=None if i % 3 else 7000.0,
            generation_limit_w=float(i % 10_000),
            ramp_time_s=12.5,
            reason="arbitration winner (primacy 1, created 1764000000)",
        )
        for i in range(n)
    ]


def per_second(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def best_of(repeats: int, fn: object) -> float:
    assert callable(fn)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def append_rate(workdir: Path, events: list[LimitApplied], batch: int, count: int) -> float:
    path = workdir / f"append-{batch}.sep2gw"
    with SqliteEventStore(path, CATALOGUE) as store:
        subset = events[:count]
        t0 = time.perf_counter()
        for start in range(0, len(subset), batch):
            store.append_events(
                f"control:{start % 64}",
                subset[start : start + batch],
                server_time=1_764_000_000.0 + start,
                monotonic=float(start),
            )
        elapsed = time.perf_counter() - t0
    return per_second(len(subset), elapsed)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fold-days", type=int, default=3, help="days of site log to fold")
    args = parser.parse_args()
    n = args.events
    events = make_events(n)
    encoder = msgspec.json.Encoder()
    decoder = msgspec.json.Decoder(LimitApplied)
    bodies = [encoder.encode(e) for e in events]

    floor_encode = per_second(n, best_of(args.repeats, lambda: [encoder.encode(e) for e in events]))
    floor_decode = per_second(n, best_of(args.repeats, lambda: [decoder.decode(b) for b in bodies]))
    print(f"floor: msgspec encode {floor_encode:>12,.0f} ev/s, decode {floor_decode:>12,.0f} ev/s")

    with tempfile.TemporaryDirectory(prefix="sep2gw-bench-") as tmp:
        workdir = Path(tmp)
        rates = {
            1: append_rate(workdir, events, 1, min(n, 3_000)),
            100: append_rate(workdir, events, 100, min(n, 100_000)),
            1000: append_rate(workdir, events, 1000, n),
        }
        for batch, rate in rates.items():
            print(f"durable append, batch {batch:>4}: {rate:>12,.0f} ev/s")

        with SqliteEventStore(workdir / "append-1000.sep2gw", CATALOGUE, readonly=True) as store:
            read_decode = per_second(n, best_of(args.repeats, lambda: sum(1 for _ in store.read())))
            verify_s = best_of(1, store.verify)
        print(
            f"read + decode:              {read_decode:>12,.0f} ev/s  ({floor_decode / read_decode:.1f}x the decode floor)"
        )
        print(f"verify (hash chain etc.):   {per_second(n, verify_s):>12,.0f} ev/s")

    site_log = [event for append in generate(args.fold_days) for event in append.events]

    def fold_site_log() -> None:
        for projection in (CONTROLS_PROJECTION, POLL_PROJECTION):
            # as replay folds: through the projection's transient when it has one
            state, step = projection.transient(projection.initial)
            fold(site_log, step, state)

    fold_eps = per_second(len(site_log), best_of(args.repeats, fold_site_log))
    print(
        f"fold (controls + polls):    {fold_eps:>12,.0f} ev/s  ({len(site_log):,} records, {args.fold_days} days)"
    )
    result = {
        "events": n,
        "append_batch1_eps": round(rates[1]),
        "append_batch100_eps": round(rates[100]),
        "append_batch1000_eps": round(rates[1000]),
        "read_decode_eps": round(read_decode),
        "fold_eps": round(fold_eps),
        "verify_eps": round(per_second(n, verify_s)),
        "floor_encode_eps": round(floor_encode),
        "floor_decode_eps": round(floor_decode),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
