"""Controls and hardware actors together on the autojump clock, over an in-memory Modbus link to
the simulated battery: decide → persist → act, responses, and a restart in the middle of an event."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.clock import Clock
from actors.controls import ControlsActor
from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareActor, HardwareConfig
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import (
    ApplyLimits,
    ControlsInput,
    ControlsSeen,
    ProgramsSeen,
    ResponseOutcome,
    SendResponse,
)
from actors.pipe import pipe_connector, pipe_listener
from actors.rng import RandomSource
from events.control_events import ControlStarted, LimitsInForceChanged, ResponseSent
from events.der_model import Control, ControlSettings, Program, ResponseStatus
from events.hardware_events import DeviceUnreachable, LimitsApplied, NameplateRead, TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.store import EventStore
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from statemachines.controls import CoreConfig

NOON = 1_764_158_400.0  # 2025-11-26T12:00:00Z
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
PROGRAM = Program(program_id="A1", primacy=1)


def discharge(mrid: str, start: float, duration: int, watts: float) -> Control:
    return Control(
        mrid=mrid,
        program_id="A1",
        creation_time_s=int(NOON) - 600,
        start_s=int(start),
        duration_s=duration,
        settings=ControlSettings(target_w=watts),
        response_required=3,
        reply_to="/rsps/1/rsp",
    )


class Site:
    """One gateway's actors around a store and a simulated battery, restartable."""

    def __init__(self, store: EventStore, sim: SimBattery, clock: Clock) -> None:
        self.store = store
        self.sim = sim
        self.clock = clock
        self.responses: list[tuple[str, ResponseStatus]] = []

    async def run(
        self, inputs: list[tuple[float, ControlsInput]], until: float, *, ack: bool = True
    ) -> None:
        """Run the actors, feed ``inputs`` at their server times, stop at ``until`` (cancel = crash)."""
        clock = self.clock
        server = self.modbus = SimModbusServer(self.sim, clock=clock.server_time)
        accept_send, accept_receive = pipe_listener()
        log = LogWriter(self.store, offload=False)
        limits: Latest[ApplyLimits] = Latest()
        to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](16)
        to_responder, responder_inbox = anyio.create_memory_object_stream[SendResponse](16)
        driver = SunSpecDriver(
            ModbusTcpClient("sim", 0, timeout_s=2.0, connector=pipe_connector(accept_send))
        )
        controls = ControlsActor(
            config=CoreConfig(lfdi=LFDI, device_category=0x40000, set_max_w=5000),
            store=self.store,
            log=log,
            clock=clock,
            rng=RandomSource(7),
            inbox=controls_inbox,
            to_hardware=limits,
            to_responder=to_responder,
        )
        hardware = HardwareActor(
            driver=driver,
            log=log,
            clock=clock,
            limits=limits,
            to_controls=to_controls.clone(),
            config=HardwareConfig(control_period_s=1.0, sample_period_s=5.0, post_interval_s=60),
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, accept_receive)
            await nursery.start(log.run)
            await nursery.start(controls.run)
            await nursery.start(hardware.run)
            nursery.start_soon(self._responder, responder_inbox, to_controls.clone(), ack)
            async with to_controls:
                for at, message in inputs:
                    await clock.sleep_until_server_time(at)
                    await to_controls.send(message)
                await clock.sleep_until_server_time(until)
            nursery.cancel_scope.cancel()

    async def _responder(
        self,
        inbox: MemoryObjectReceiveStream[SendResponse],
        report: MemoryObjectSendStream[ControlsInput],
        ack: bool,
    ) -> None:
        async with inbox, report:
            async for command in inbox:
                r = command.response
                self.responses.append((r.mrid, r.status))
                await report.send(
                    ResponseOutcome(
                        mrid=r.mrid, status=r.status, acked=ack, http_status=201 if ack else 503
                    )
                )


def events_of(store: EventStore, kind: type) -> Iterator:  # type: ignore[type-arg]
    return (r for r in store.read() if isinstance(r.event, kind))


async def test_a_control_is_persisted_then_applied_verified_and_answered(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(CATALOGUE)
    clock = Clock(wall_at_start=NOON)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    site = Site(store, sim, clock)
    start = NOON + 120
    inputs: list[tuple[float, ControlsInput]] = [
        (NOON + 10, ProgramsSeen(programs=(PROGRAM,))),
        (NOON + 10, ControlsSeen(program_id="A1", controls=(discharge("C1", start, 600, 3000.0),))),
    ]
    with trio.fail_after(3600):
        await site.run(inputs, until=start + 900)
    assert store.verify().ok
    assert site.responses == [
        ("C1", ResponseStatus.RECEIVED),
        ("C1", ResponseStatus.STARTED),
        ("C1", ResponseStatus.COMPLETED),
    ]
    (started,) = events_of(store, ControlStarted)
    assert started.event.at_s == start
    # decide → persist → act: the limits record precedes the hardware write that carries them out.
    limits_seq = next(
        r.seq for r in events_of(store, LimitsInForceChanged) if r.event.settings.target_w == 3000.0
    )
    first_write = next(
        r for r in events_of(store, LimitsApplied) if r.event.settings.target_w == 3000.0
    )
    assert limits_seq < first_write.seq
    assert first_write.event.at_s == start and first_write.event.wrote
    assert first_write.event.setpoint_w == 3000.0
    # Response 2 is sent only after the write was recorded.
    sent_2 = next(
        r for r in events_of(store, ResponseSent) if r.event.status == ResponseStatus.STARTED
    )
    assert sent_2.seq > limits_seq
    # The battery did it: DER power at the target during the event, back to self-consumption after.
    during = [
        r.event
        for r in events_of(store, TelemetrySampled)
        if start + 30 <= r.event.at_s < start + 600
    ]
    assert during and all(abs((t.der_w or 0) - 3000.0) < 50 for t in during)
    assert next(iter(events_of(store, NameplateRead))).event.rated_w == 5000.0


async def test_a_restart_mid_event_reapplies_from_the_log_without_new_responses(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(CATALOGUE)
    clock = Clock(wall_at_start=NOON)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    start = NOON + 120
    first = Site(store, sim, clock)
    inputs: list[tuple[float, ControlsInput]] = [
        (NOON + 10, ProgramsSeen(programs=(PROGRAM,))),
        (NOON + 10, ControlsSeen(program_id="A1", controls=(discharge("C1", start, 600, 2500.0),))),
    ]
    with trio.fail_after(3600):
        await first.run(inputs, until=start + 200)  # the gateway dies in the middle of the event
    assert first.responses == [("C1", ResponseStatus.RECEIVED), ("C1", ResponseStatus.STARTED)]
    sim.setpoint_w = None  # the inverter lost its setpoint while the gateway was down
    crash_seq = store.head().seq
    second = Site(store, sim, clock)
    with trio.fail_after(3600):
        # No input at all: the server is unreachable after the restart.
        await second.run([], until=start + 900)
    writes = [r for r in events_of(store, LimitsApplied) if r.seq > crash_seq]
    assert writes[0].event.settings.target_w == 2500.0  # re-applied at once, from the log alone
    assert writes[0].event.at_s == start + 200
    assert second.responses == [("C1", ResponseStatus.COMPLETED)]  # never a second 1 or 2
    assert store.verify().ok


async def test_a_backwards_clock_step_does_not_stop_telemetry(
    autojump_clock: trio.abc.Clock,
) -> None:
    store = MemoryEventStore(CATALOGUE)
    clock = Clock(wall_at_start=NOON)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    site = Site(store, sim, clock)

    async def step_back() -> None:
        await clock.sleep_until_server_time(NOON + 200)
        clock.adopt_server_offset(clock.offset_s - 150)  # the server says we were 150 s fast

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(step_back)
            await site.run([], until=NOON + 600)
    samples = [r.event.at_s for r in events_of(store, TelemetrySampled)]
    assert any(t > NOON + 400 for t in samples)  # sampling went on after the step back


async def test_a_dead_battery_is_recorded_without_flooding_the_log(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Five minutes of a silent inverter: failures are recorded when they start, then at most once a
    minute per operation, and the first write after recovery is recorded."""
    store = MemoryEventStore(CATALOGUE)
    clock = Clock(wall_at_start=NOON)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    site = Site(store, sim, clock)
    start = NOON + 60
    inputs: list[tuple[float, ControlsInput]] = [
        (NOON + 10, ProgramsSeen(programs=(PROGRAM,))),
        (NOON + 10, ControlsSeen(program_id="A1", controls=(discharge("C1", start, 900, 2000.0),))),
    ]

    async def outage() -> None:
        await clock.sleep_until_server_time(NOON + 120)
        site.modbus.faults.silent = 10**9
        await clock.sleep_until_server_time(NOON + 420)
        site.modbus.faults.silent = 0

    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outage)
            await site.run(inputs, until=NOON + 600)
    failures = [r.event for r in events_of(store, DeviceUnreachable)]
    assert failures, "the outage was not recorded"
    assert len(failures) <= 2 * (300 / 60 + 1)  # two operations, one record a minute at most
    assert {f.operation for f in failures} <= {"apply limits", "read telemetry"}
    recovered = [r.event for r in events_of(store, LimitsApplied) if r.event.at_s >= NOON + 420]
    assert recovered and recovered[0].settings.target_w == 2000.0


async def test_a_control_starts_on_time_when_the_server_clock_jumps_while_waiting(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The controls actor sleeps until a start on the server's clock; when the Time resource moves
    that clock (here 1000 s ahead while waiting), the start happens at once, not 1000 s late."""
    store = MemoryEventStore(CATALOGUE)
    clock = Clock(wall_at_start=NOON)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    site = Site(store, sim, clock)
    start = NOON + 600
    inputs: list[tuple[float, ControlsInput]] = [
        (NOON + 10, ProgramsSeen(programs=(PROGRAM,))),
        (
            NOON + 10,
            ControlsSeen(program_id="A1", controls=(discharge("C1", start, 3600, 1000.0),)),
        ),
    ]

    async def time_sync() -> None:
        await clock.sleep_until_monotonic(clock.monotonic() + 60)
        clock.adopt_server_offset(clock.offset_s + 1000)  # now server time NOON + 1060

    with trio.fail_after(7200):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(time_sync)
            await site.run(inputs, until=NOON + 1200)
    (started,) = [r.event for r in events_of(store, ControlStarted)]
    assert NOON + 1060 <= started.at_s <= NOON + 1061
