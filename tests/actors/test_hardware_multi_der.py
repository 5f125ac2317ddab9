"""Issue 19 point 2 at the hardware actor: a site of two DER behind one meter; one stops answering
mid-control while the other stays up. The site keeps to the export limit through the DER still up,
each DER's change is recorded (``der.member_status.v1``), and each DER's own status goes to its own
DER status mailbox (the one that went reported as not answering)."""

from __future__ import annotations

import anyio
import trio
import trio.testing

from actors.clock import Clock
from actors.drivers.composite import CompositeDriver, DerMember
from actors.hardware import HardwareActor, HardwareConfig
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import ApplyLimits, ControlsInput, DerSnapshot, DeviceStatus
from events.der_events import DerMemberSampled, DerMemberStatus
from events.der_model import ControlSettings
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.telemetry import IntervalSummary
from sep2gw.sim import BatteryParams, SiteParams
from sep2gw.sim.multi_der import SharedSite, SwitchableDriver

NOON = 1_764_158_400.0
SUNNY = SiteParams(pv_peak_w=6_000.0, cloudiness=0.0, load_noise_w=0.0)


async def test_one_der_stops_answering_and_the_other_carries_the_site_limit(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    clock = Clock(wall_at_start=NOON)
    site = SharedSite([BatteryParams(), BatteryParams()], SUNNY, seed=5, start_s=NOON)
    first, second = (SwitchableDriver(d) for d in site.drivers(clock.server_time))
    driver = CompositeDriver(
        [DerMember(name="bat1", driver=first), DerMember(name="bat2", driver=second)]
    )
    statuses = {"bat1": Latest[DeviceStatus](), "bat2": Latest[DeviceStatus]()}
    der = Latest[DerSnapshot]()
    to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](64)
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](64)
    limits = Latest[ApplyLimits]()
    limits.put(ApplyLimits(settings=ControlSettings(export_limit_w=1000.0), ramps={}, at_s=NOON))
    meter: list[float] = []
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery, summaries, controls_inbox:
            hardware = HardwareActor(
                driver=driver,
                log=log,
                clock=clock,
                limits=limits,
                to_controls=to_controls,
                summaries=to_mirror,
                config=HardwareConfig(sample_period_s=5.0, control_period_s=1.0),
                store=store,
                der=der,
                member_status=statuses,
            )
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            await trio.sleep(60)
            # The second DER disconnects: off the AC side, and its controller stops answering.
            site.batteries[1].operator(connect=False)
            second.down = True
            await trio.sleep(60)
            for _ in range(20):
                await trio.sleep(1)
                site.advance(clock.server_time())
                meter.append(site.site_w())
            bat2_down = statuses["bat2"].peek()
            bat1_up = statuses["bat1"].peek()
            carried_w = site.batteries[0].power_w
            site.batteries[1].operator(connect=True)
            second.down = False
            await trio.sleep(30)
            nursery.cancel_scope.cancel()
    assert max(meter) <= 1000.0  # the DER still up carries the site's limit
    assert carried_w < -4000  # … nearly all of the 5.5 kW surplus
    assert bat2_down is not None and not bat2_down.reachable
    assert bat1_up is not None and bat1_up.reachable
    changes = [
        (r.event.der, r.event.available, r.event.reachable)
        for r in store.read()
        if isinstance(r.event, DerMemberStatus)
    ]
    assert changes == [
        ("bat1", True, True),
        ("bat2", True, True),
        ("bat2", False, False),
        ("bat2", True, True),
    ]
    went = next(
        r.event
        for r in store.read()
        if isinstance(r.event, DerMemberStatus) and not r.event.reachable
    )
    assert "read telemetry" in went.reason and "does not answer" in went.reason
    sampled = {r.event.der for r in store.read() if isinstance(r.event, DerMemberSampled)}
    assert sampled == {"bat1", "bat2"}
    snapshot = der.peek()
    assert snapshot is not None and [m.der for m in snapshot.members] == ["bat1", "bat2"]
