"""Forensic replay throughput: a 30-day-like site log, verified and folded in one pass.

The log is generated directly (no simulation), shaped like what a gateway records: a telemetry
sample every 5 s, polls (DERControl lists every 60 s, the other lists every 300 s), a mirror post
every minute with its six readings, closed-loop battery writes every 10 s while a control binds,
and six controls a day (four run to completion, one is superseded before it starts, one is
cancelled while active) with their Responses in all four stages.

    python3 benchmarks/replay_bench.py [--days 30] [--log PATH] [--no-progress]
    → last line: JSON with replay_eps (target >= 200,000 events/s), verify_only_eps, …

``replay_eps`` is what ``sep2gw replay``/``explain``/``report`` pay before printing: the hash chain
verified (``EventStore.verify``) with the live folds (controls, polls) and the forensic memory
attached, progress reported on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from events.base import Event
from events.control_events import (
    ControlCancelled,
    ControlCompleted,
    ControlReceived,
    ControlScheduled,
    ControlStarted,
    ControlSuperseded,
    DefaultChanged,
    DeviceWriteResult,
    LimitsInForceChanged,
    ProgramsChanged,
    RandomizationDrawn,
    ResponseAcked,
    ResponseIntended,
    ResponseSent,
    ServerStatusSeen,
    control_event_stream,
)
from events.der_model import (
    Control,
    ControlSettings,
    DefaultControl,
    EventStatus,
    Mode,
    Program,
    ResponseStatus,
)
from events.envelope import Append
from events.hardware_events import LimitsApplied, TelemetrySampled
from events.mirror_events import ReadingPosted
from events.registration_events import Polled, PollRateSeen, Posted, PostRateSeen
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted
from events.sqlite_store import SqliteEventStore
from events.telemetry import MeasurementPoint, Quantity
from sep2gw.commands.forensics import _Progress
from sep2gw.forensics import analyse
from sep2gw.forensics.compliance import compliance_series, summarise

T0 = 1_764_115_200.0
DAY = 86_400
NETWORK, RETAILER = "D1500000000000000000000000000001", "D1500000000000000000000000000002"
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
READINGS = [
    (MeasurementPoint.SITE, Quantity.ACTIVE_POWER_W),
    (MeasurementPoint.SITE, Quantity.REACTIVE_POWER_VAR),
    (MeasurementPoint.SITE, Quantity.VOLTAGE_V),
    (MeasurementPoint.DER, Quantity.ACTIVE_POWER_W),
    (MeasurementPoint.DER, Quantity.STATE_OF_CHARGE_PCT),
    (MeasurementPoint.DER, Quantity.STORED_ENERGY_WH),
]


def _responses(mrid: str, status: ResponseStatus, t: float) -> list[Event]:
    return [
        ResponseIntended(
            mrid=mrid, status=status, lfdi=LFDI, reply_to="/rsps/1/rsp", created_s=int(t), at_s=t
        ),
        ResponseSent(mrid=mrid, status=status, at_s=t),
        ResponseAcked(mrid=mrid, status=status, http_status=201, at_s=t),
    ]


def _limits(export_w: float, source: str, t: float) -> LimitsInForceChanged:
    return LimitsInForceChanged(
        settings=ControlSettings(export_limit_w=export_w, import_limit_w=5000.0),
        sources={Mode.EXPORT_LIMIT_W: source, Mode.IMPORT_LIMIT_W: f"default:{RETAILER}"},
        next_change_s=None,
        ramps_ended=(),
        at_s=t,
    )


def _control_day(day: int) -> dict[int, list[Event]]:
    """Control events of one day, by second of the day."""
    out: dict[int, list[Event]] = {}
    base = T0 + day * DAY

    def at(s: int, *events: Event) -> None:
        out.setdefault(s, []).extend(events)

    for k in range(6):
        mrid = f"C{day:015X}{k:016X}"
        start_s = 3600 * (2 + 3 * k)
        duration = 3600
        received = start_s - 1800
        program = NETWORK if k == 4 else RETAILER
        control = Control(
            mrid=mrid,
            program_id=program,
            creation_time_s=int(base + received),
            start_s=int(base + start_s),
            duration_s=duration,
            settings=ControlSettings(export_limit_w=1500.0 + 100 * k),
            randomize_start_s=60,
            response_required=3,
            reply_to="/rsps/1/rsp",
        )
        t = base + received
        at(
            received,
            ControlReceived(control=control, at_s=t),
            RandomizationDrawn(mrid=mrid, start_offset_s=k * 7, duration_offset_s=0, at_s=t),
            ControlScheduled(
                mrid=mrid,
                effective_start_s=int(base + start_s + k * 7),
                effective_end_s=int(base + start_s + k * 7 + duration),
                at_s=t,
            ),
            *_responses(mrid, ResponseStatus.RECEIVED, t),
        )
        begin = start_s + k * 7
        t = base + begin
        if k == 3:  # superseded before it starts: 1 then 7, never 2
            at(
                begin - 60,
                ControlSuperseded(
                    mrid=mrid,
                    by="server",
                    modes_lost=(Mode.EXPORT_LIMIT_W,),
                    fully=True,
                    at_s=t - 60,
                ),
                *_responses(mrid, ResponseStatus.SUPERSEDED, t - 60),
            )
            continue
        at(
            begin,
            ControlStarted(mrid=mrid, awaiting_write=True, at_s=t),
            _limits(control.settings.export_limit_w or 0.0, f"control:{mrid}", t),
            DeviceWriteResult(mrids=(mrid,), ok=True, at_s=t),
            *_responses(mrid, ResponseStatus.STARTED, t),
            ServerStatusSeen(mrid=mrid, status=EventStatus.ACTIVE, at_s=t),
        )
        end = begin + (duration // 2 if k == 5 else duration)
        t = base + end
        if k == 5:
            at(
                end,
                ServerStatusSeen(mrid=mrid, status=EventStatus.CANCELLED, at_s=t),
                ControlCancelled(mrid=mrid, server_status=EventStatus.CANCELLED, at_s=t),
                *_responses(mrid, ResponseStatus.CANCELLED, t),
                _limits(5000.0, f"default:{RETAILER}", t),
            )
        else:
            at(
                end,
                ControlCompleted(mrid=mrid, at_s=t),
                *_responses(mrid, ResponseStatus.COMPLETED, t),
                _limits(5000.0, f"default:{RETAILER}", t),
            )
        for s in range(begin + 10, end, 10):  # closed-loop corrections while the limit binds
            at(
                s,
                LimitsApplied(
                    at_s=base + s,
                    settings=ControlSettings(export_limit_w=control.settings.export_limit_w),
                    applied=(Mode.EXPORT_LIMIT_W,),
                    setpoint_w=float(1000 + s % 500),
                    wrote=True,
                    site_limit_met=True,
                ),
            )
    return out


def generate(days: int) -> Iterator[Append]:
    def one(stream: str, events: list[Event], t: float) -> Append:
        return Append(stream=stream, events=events, server_time=t, monotonic=t - T0)

    yield one(
        "runtime", [GatewayStarted(software_version="bench", rng_seed=1, clock_synced=True)], T0
    )
    yield one(
        "controls",
        [
            ProgramsChanged(
                programs=(
                    Program(program_id=NETWORK, primacy=10, description="network"),
                    Program(program_id=RETAILER, primacy=20, description="retailer"),
                ),
                at_s=T0,
            ),
            DefaultChanged(
                program_id=RETAILER,
                default=DefaultControl(
                    program_id=RETAILER,
                    settings=ControlSettings(export_limit_w=5000.0, import_limit_w=5000.0),
                ),
                at_s=T0,
            ),
            _limits(5000.0, f"default:{RETAILER}", T0),
        ],
        T0,
    )
    yield one(
        "poll",
        [
            *(
                PollRateSeen(resource=resource, rate_s=rate, at_s=T0)
                for resource, rate in (
                    ("/derp/1/derc", 60),
                    ("/edev/1", 300),
                    ("/edev/1/fsa", 300),
                    ("/derp", 300),
                )
            ),
            PostRateSeen(mirror="/mup/1", rate_s=60, at_s=T0),
        ],
        T0,
    )
    for day in range(days):
        controls = _control_day(day)
        base = T0 + day * DAY
        for s in range(DAY):
            t = base + s
            for event in controls.get(s, ()):
                yield one(control_event_stream(event), [event], t)
            if s % 5:
                continue
            yield one(
                "hardware",
                [
                    TelemetrySampled(
                        at_s=t,
                        site_w=float(1200 + (s * 37) % 900 - 450),
                        site_v=239.5,
                        site_hz=50.0,
                        der_w=float(-2000 + (s * 13) % 4000),
                        soc_pct=50.0 + (s % 3600) / 360,
                        stored_wh=6750.0,
                        connected=True,
                    )
                ],
                t,
            )
            if s % 60 == 0:
                yield one("poll", [Polled(resource="/derp/1/derc", at_s=t)], t)
                yield one(
                    "mirror",
                    [
                        ReadingPosted(
                            point=p, quantity=q, start_s=int(t) - 60, interval_s=60, at_s=t
                        )
                        for p, q in READINGS
                    ],
                    t,
                )
                yield one("poll", [Posted(mirror="/mup/1", at_s=t)], t)
            if s % 300 == 0:
                for resource in ("/edev/1", "/edev/1/fsa", "/derp"):
                    yield one("poll", [Polled(resource=resource, at_s=t)], t)


def build(path: Path, days: int) -> int:
    with SqliteEventStore(path, CATALOGUE) as store:
        batch: list[Append] = []
        for append in generate(days):
            batch.append(append)
            if len(batch) == 5000:
                store.append(batch)
                batch = []
        if batch:
            store.append(batch)
        return store.head().seq


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--log", type=Path, help="build the log here (default: a temp dir)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--repeat", type=int, default=3, help="passes of each (best is reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.log or Path(tmp) / "site.sep2gw"
        if path.exists():
            path.unlink()
        started = time.perf_counter()
        records = build(path, args.days)
        built_s = time.perf_counter() - started
        size = path.stat().st_size
        print(
            f"built {records:,} records ({args.days} days, {size / 1e6:.0f} MB) in {built_s:.1f} s"
        )
        verify_runs: list[float] = []
        replay_runs: list[float] = []
        # CPU time too: with other processes on the cores, wall time measures them as much as us
        verify_cpu: list[float] = []
        replay_cpu: list[float] = []
        with SqliteEventStore(path, CATALOGUE, readonly=True) as store:
            # alternate the two, best of --repeat: the machine is shared and its noise is large
            for _ in range(args.repeat):
                started, cpu = time.perf_counter(), time.process_time()
                report = store.verify()
                verify_runs.append(time.perf_counter() - started)
                verify_cpu.append(time.process_time() - cpu)
                assert report.ok, report.describe()
                progress = None if args.no_progress else _Progress()
                started, cpu = time.perf_counter(), time.process_time()
                model = analyse(store, progress=progress)
                replay_runs.append(time.perf_counter() - started)
                replay_cpu.append(time.process_time() - cpu)
                assert model.verified and model.records == records
        verify_s, replay_s = min(verify_runs), min(replay_runs)
        verify_c, replay_c = min(verify_cpu), min(replay_cpu)
        print(
            "verify only (hash chain, decode), best of "
            f"{args.repeat}: {records / verify_s:,.0f} events/s "
            f"(runs: {', '.join(f'{records / r:,.0f}' for r in verify_runs)})"
        )
        print(
            f"replay (verify + controls and poll folds + forensic memory), best of {args.repeat}: "
            f"{replay_s:.2f} s, {records / replay_s:,.0f} events/s "
            f"(runs: {', '.join(f'{records / r:,.0f}' for r in replay_runs)}); "
            f"{len(model.stories)} controls, {len(model.sample_t):,} samples, "
            f"{len(model.responses)} responses"
        )
        print(
            f"by CPU time (less sensitive to other processes): verify only "
            f"{records / verify_c:,.0f} events/s, replay {records / replay_c:,.0f} events/s; "
            f"the forensic fold adds {replay_c / verify_c - 1:.0%} to verification"
        )
        started = time.perf_counter()
        summary = summarise(compliance_series(model))
        compliance_s = time.perf_counter() - started
        print(
            f"compliance series and summary: {compliance_s:.2f} s "
            f"({len(model.sample_t) / compliance_s:,.0f} samples/s, {len(summary)} suppliers)"
        )
    print(
        json.dumps(
            {
                "days": args.days,
                "records": records,
                "build_eps": round(records / built_s),
                "verify_only_eps": round(records / verify_s),
                "replay_eps": round(records / replay_s),
                "replay_eps_median": round(records / sorted(replay_runs)[len(replay_runs) // 2]),
                "replay_eps_cpu": round(records / replay_c),
                "verify_only_eps_cpu": round(records / verify_c),
                "compliance_samples_per_s": round(len(model.sample_t) / compliance_s),
                "target_replay_eps": 200_000,
            }
        )
    )


if __name__ == "__main__":
    main()
