"""A 30-hour log built record by record (a world of that length takes minutes to simulate): 5-s
telemetry with the state of charge, a network default of 5 kW each way, a short 1.5 kW export
control every 20 minutes (90 bands: labels must collide at the whole-log scale), a disconnect, a
target held back by an export limit, an hour over the export limit with the battery full, ten
minutes of comms loss and an hour with the gateway down.

Every instant a test asserts on is a named constant here.
"""

from __future__ import annotations

import math
from typing import Final

from events.base import Event
from events.control_events import (
    CommsLost,
    CommsRestored,
    ControlReceived,
    LimitsInForceChanged,
    ProgramsChanged,
    ResponseIntended,
)
from events.der_model import Control, ControlSettings, Mode, Program, ResponseStatus
from events.hardware_events import Clamp, LimitsApplied, NameplateRead, TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registration_events import RegistrationStep, StepDone
from events.registry import CATALOGUE
from events.runtime_events import GatewayStarted, GatewayStopped

__all__ = ["build_long_log"]

T0: Final = 1_764_158_400.0  # 2025-11-26 12:00 UTC
HOURS: Final = 30
LFDI: Final = "55F35629F07D03E6F5242674B1AE9B26FF4FC55A"
VERSION: Final = "9.9.9-test"
DEFAULT: Final = "default:NET"
#: a connect=false control (the DER at 0 W throughout)
OFF: Final = ("OFF1", T0 + 2 * 3600, T0 + 2 * 3600 + 600)
#: a 3 kW target while a 1.5 kW export limit holds the DER to 1.5 kW (clamped, recorded)
TARGET: Final = ("TGT1", T0 + 3 * 3600, T0 + 3 * 3600 + 1800)
#: over the 5 kW default export limit with the battery full (site_limit_met false)
FULL: Final = (T0 + 10 * 3600, T0 + 11 * 3600)
#: over the default export limit while comms were down
COMMS: Final = (T0 + 20 * 3600, T0 + 20 * 3600 + 600)
#: the gateway down
DOWN: Final = (T0 + 25 * 3600, T0 + 26 * 3600)
NET_DEFAULT: Final = ControlSettings(export_limit_w=5000.0, import_limit_w=5000.0)
FULL_CLAMPS: Final = (
    Clamp(mode="hold", requested=-4417.0, applied=-0.0, bound="max_charge_w"),
    Clamp(mode="hold", requested=-0.0, applied=-0.0, bound="export_limit_w"),
)


def _short_controls() -> list[tuple[str, float, float]]:
    out = []
    for k in range(HOURS * 3):
        start = T0 + 3600 + k * 1200
        if any(a - 600 <= start <= b + 600 for _, a, b in (OFF, TARGET)) or any(
            a - 600 <= start <= b + 600 for a, b in (FULL, COMMS, DOWN)
        ):
            continue
        out.append((f"C{k:031d}", start, start + 300))  # 32 hex digits, as servers send
    return out


def build_long_log() -> MemoryEventStore:
    store = MemoryEventStore(CATALOGUE)
    mono = [0.0]

    def put(stream: str, t: float, *events: Event) -> None:
        mono[0] += 0.001
        store.append_events(stream, list(events), server_time=t, monotonic=t - T0 + mono[0])

    put("runtime", T0, GatewayStarted(software_version=VERSION, rng_seed=1, clock_synced=True))
    put(
        "hardware",
        T0,
        NameplateRead(
            at_s=T0,
            manufacturer="Acme",
            model="B10",
            serial="S-1",
            max_w=5000.0,
            max_charge_w=5000.0,
            max_discharge_w=5000.0,
            soc_min_pct=5.0,
            soc_max_pct=100.0,
        ),
    )
    put(
        "registration", T0, StepDone(step=RegistrationStep.DEVICE_CAPABILITY, href="/dcap", at_s=T0)
    )
    put("registration", T0, StepDone(step=RegistrationStep.END_DEVICE, href="/edev/7", at_s=T0))
    put("controls", T0, ProgramsChanged(programs=(Program(program_id="NET", primacy=1),), at_s=T0))
    changes: list[tuple[float, ControlSettings, dict[Mode, str]]] = [
        (T0, NET_DEFAULT, {Mode.EXPORT_LIMIT_W: DEFAULT, Mode.IMPORT_LIMIT_W: DEFAULT})
    ]
    controls = _short_controls()
    for mrid, a, b in controls:
        export = ControlSettings(export_limit_w=1500.0, import_limit_w=5000.0)
        changes.append(
            (a, export, {Mode.EXPORT_LIMIT_W: f"control:{mrid}", Mode.IMPORT_LIMIT_W: DEFAULT})
        )
        changes.append(
            (b, NET_DEFAULT, {Mode.EXPORT_LIMIT_W: DEFAULT, Mode.IMPORT_LIMIT_W: DEFAULT})
        )
    off = ControlSettings(export_limit_w=5000.0, import_limit_w=5000.0, connect=False)
    changes.append(
        (
            OFF[1],
            off,
            {
                Mode.EXPORT_LIMIT_W: DEFAULT,
                Mode.IMPORT_LIMIT_W: DEFAULT,
                Mode.CONNECT: "control:OFF1",
            },
        )
    )
    changes.append(
        (OFF[2], NET_DEFAULT, {Mode.EXPORT_LIMIT_W: DEFAULT, Mode.IMPORT_LIMIT_W: DEFAULT})
    )
    target = ControlSettings(export_limit_w=1500.0, import_limit_w=5000.0, target_w=3000.0)
    changes.append(
        (
            TARGET[1],
            target,
            {
                Mode.EXPORT_LIMIT_W: "control:TGT1",
                Mode.IMPORT_LIMIT_W: DEFAULT,
                Mode.TARGET_W: "control:TGT1",
            },
        )
    )
    changes.append(
        (TARGET[2], NET_DEFAULT, {Mode.EXPORT_LIMIT_W: DEFAULT, Mode.IMPORT_LIMIT_W: DEFAULT})
    )
    changes.sort(key=lambda c: c[0])
    received = Control(
        mrid="TGT1",
        program_id="NET",
        creation_time_s=int(T0),
        start_s=int(TARGET[1]),
        duration_s=1800,
        settings=target,
    )
    put("controls", T0 + 1, ControlReceived(control=received, at_s=T0 + 1))
    put(
        "response:TGT1",
        T0 + 1,
        ResponseIntended(
            mrid="TGT1",
            status=ResponseStatus.RECEIVED,
            lfdi=LFDI,
            reply_to="/rsp",
            created_s=int(T0 + 1),
            at_s=T0 + 1,
        ),
    )
    writes = [
        (
            TARGET[1],
            LimitsApplied(
                at_s=TARGET[1],
                settings=target,
                applied=(Mode.EXPORT_LIMIT_W, Mode.TARGET_W),
                setpoint_w=1450.0,
                wrote=True,
                clamps=(
                    Clamp(
                        mode="target_w", requested=3000.0, applied=1450.0, bound="export_limit_w"
                    ),
                ),
                site_limit_met=True,
            ),
        ),
        (
            TARGET[2] + 1,
            LimitsApplied(
                at_s=TARGET[2] + 1,
                settings=NET_DEFAULT,
                applied=(Mode.EXPORT_LIMIT_W,),
                setpoint_w=None,
                wrote=True,
            ),
        ),
        (
            FULL[0],
            LimitsApplied(
                at_s=FULL[0],
                settings=NET_DEFAULT,
                applied=(Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W),
                setpoint_w=0.0,
                wrote=False,
                clamps=FULL_CLAMPS,
                site_limit_met=False,
            ),
        ),
        (
            FULL[1],
            LimitsApplied(
                at_s=FULL[1],
                settings=NET_DEFAULT,
                applied=(Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W),
                setpoint_w=None,
                wrote=True,
                site_limit_met=True,
            ),
        ),
    ]
    others: list[tuple[float, str, Event]] = [
        (
            t,
            "controls",
            LimitsInForceChanged(
                ramps_ended=(), settings=s, sources=src, next_change_s=None, at_s=t
            ),
        )
        for t, s, src in changes
    ]
    others += [(t, "hardware", w) for t, w in writes]
    others += [
        (COMMS[0], "controls", CommsLost(at_s=COMMS[0], reason="timeout")),
        (COMMS[1], "controls", CommsRestored(at_s=COMMS[1])),
        (DOWN[0], "runtime", GatewayStopped(reason="stopped by the operator")),
    ]
    others.sort(key=lambda o: o[0])
    k = 0
    t = T0 + 5
    restarted = False
    while t <= T0 + HOURS * 3600:
        while k < len(others) and others[k][0] <= t:
            at, stream, event = others[k]
            put(stream, at, event)
            k += 1
        if DOWN[0] < t < DOWN[1]:
            t += 5
            continue
        if t >= DOWN[1] and not restarted:
            put(
                "runtime",
                t,
                GatewayStarted(software_version=VERSION, rng_seed=2, clock_synced=True),
            )
            restarted = True
        put("hardware", t, _sample(t, controls))
        t += 5
    return store


def _sample(t: float, controls: list[tuple[str, float, float]]) -> TelemetrySampled:
    """Site and DER power at ``t``: within every limit except over FULL and COMMS."""
    soc = min(100.0, 50.0 + (t - T0) / 600)
    der = 400.0 * math.sin((t - T0) / 3000)
    site = 1000.0 + 300.0 * math.sin((t - T0) / 700)
    if any(a <= t < b for _, a, b in controls):
        site = min(site, 1400.0)
    if OFF[1] <= t < OFF[2]:
        der = 0.0
    if TARGET[1] <= t < TARGET[2]:
        der, site = 1450.0, 1450.0
    if FULL[0] <= t < FULL[1] or COMMS[0] <= t < COMMS[1]:
        site = 5400.0
    return TelemetrySampled(at_s=t, site_w=site, der_w=der, soc_pct=round(soc, 1))
