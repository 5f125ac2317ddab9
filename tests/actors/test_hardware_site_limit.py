"""The hardware actor records whether the DER's range can meet the site limits when that changes,
at most once a sample period (a site hovering at the edge must not flood the log)."""

from __future__ import annotations

import anyio
import trio
import trio.testing

from actors.clock import Clock
from actors.drivers.base import ApplyReport, Nameplate, Telemetry
from actors.hardware import HardwareActor, HardwareConfig
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import ApplyLimits, ControlsInput
from events.der_model import ControlSettings, Mode
from events.hardware_events import Clamp, LimitsApplied
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.telemetry import IntervalSummary

EPOCH = 1_700_000_100.0


class HoveringDriver:
    """A site at the edge of what the DER can cover: met, not met, met, … every control period."""

    clamps: tuple[Clamp, ...] = ()

    def __init__(self) -> None:
        self.applies = 0

    def dispatchable_modes(self) -> frozenset[Mode]:
        return frozenset({Mode.EXPORT_LIMIT_W})

    async def read_nameplate(self) -> Nameplate:
        return Nameplate(rated_w=5000.0)

    async def read_telemetry(self, *, now: float) -> Telemetry:
        return Telemetry(at_s=now, site_w=900.0, der_w=0.0)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        self.applies += 1
        return ApplyReport(
            applied=frozenset({Mode.EXPORT_LIMIT_W}),
            not_applicable=frozenset(),
            setpoint_w=None,
            wrote=False,
            site_limit_met=self.applies % 2 == 0,
            clamps=self.clamps,
        )

    async def aclose(self) -> None:
        return None


async def test_a_hovering_site_limit_is_recorded_when_it_changes_at_most_once_a_sample_period(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    driver = HoveringDriver()
    to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](64)
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](64)
    limits = Latest[ApplyLimits]()
    limits.put(ApplyLimits(settings=ControlSettings(export_limit_w=1000.0), ramps={}, at_s=EPOCH))
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery, summaries, controls_inbox:
            hardware = HardwareActor(
                driver=driver,  # type: ignore[arg-type]
                log=log,
                clock=Clock(wall_at_start=EPOCH),
                limits=limits,
                to_controls=to_controls,
                summaries=to_mirror,
                config=HardwareConfig(sample_period_s=5.0, control_period_s=1.0),
                store=store,
            )
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
    recorded = [
        (r.event.at_s, r.event.site_limit_met)
        for r in store.read()
        if isinstance(r.event, LimitsApplied) and r.event.settings.export_limit_w == 1000.0
    ]
    assert driver.applies >= 50  # the loop ran every second, flipping every time
    changes = [b for a, b in zip(recorded, recorded[1:], strict=False) if a[1] != b[1]]
    assert len(changes) >= 8  # the changes are recorded …
    gaps = [b[0] - a[0] for a, b in zip(recorded, recorded[1:], strict=False)]
    assert min(gaps) >= 5.0  # … but not one a second


async def test_the_clamps_are_recorded_as_structured_json(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Issue 20: each clamp was recorded as its Python repr, text json_extract cannot reach."""
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    driver = HoveringDriver()
    driver.clamps = (Clamp(mode="hold", requested=6000.0, applied=5000.0, bound="max_discharge_w"),)
    to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](64)
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](64)
    limits = Latest[ApplyLimits]()
    limits.put(ApplyLimits(settings=ControlSettings(export_limit_w=1000.0), ramps={}, at_s=EPOCH))
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery, summaries, controls_inbox:
            hardware = HardwareActor(
                driver=driver,  # type: ignore[arg-type]
                log=log,
                clock=Clock(wall_at_start=EPOCH),
                limits=limits,
                to_controls=to_controls,
                summaries=to_mirror,
                config=HardwareConfig(sample_period_s=5.0, control_period_s=1.0),
                store=store,
            )
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            await trio.sleep(3)
            nursery.cancel_scope.cancel()
    (written, *_) = [r for r in store.read() if isinstance(r.event, LimitsApplied)]
    assert written.event.clamps == driver.clamps
    body = CATALOGUE.encode(written.event)
    assert b'"clamps":[{"mode":"hold","requested":6000.0' in body
