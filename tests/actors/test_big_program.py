"""Issue 15 point 3: a program with thousands of controls never stalls the event loop. The controls
and hardware actors run together on trio's MockClock over the simulated battery; a trio Instrument
measures each task step in real time (``time.perf_counter``, here in the test only) while a
5,000-control program arrives, and the telemetry the hardware actor samples keeps its period."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest
import trio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.clock import Clock
from actors.controls import BATCH_STEP_EVENTS, ControlsActor, _batch, _batch_in_steps
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
from actors.registration import _controls_in_steps
from actors.rng import RandomSource
from events.control_events import ControlReceived
from events.der_model import Control, ControlSettings, Program
from events.hardware_events import TelemetrySampled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from statemachines.controls import RECEIPT_STEP, CoreConfig
from tests.statemachines.builders import Harness
from tests.transport.sep2.test_mapping import _control as wire_control
from transport.sep2.mapping import controls_from_wire

NOON = 1_764_158_400.0  # 2025-11-26T12:00:00Z
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"
PROGRAM = Program(program_id="A1", primacy=1)
SAMPLE_PERIOD_S = 1.0
CONTROLS = 5000


#: The log writer's task: the gateway commits its log file in a worker thread (``log_in_thread``,
#: the default), off the loop; here, under MockClock, the commit must run on the loop (a thread
#: would let the autojump clock race ahead), so its steps are the store's, not the gateway's.
LOG_WRITER_TASK = "actors.log_writer.LogWriter.run"


class StepTimer(trio.abc.Instrument):
    """The longest single task step, in real seconds, and which task took it (the log writer's
    commits, which the gateway runs in a worker thread, aside)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self.culprit = ""
        self.commit = 0.0
        self._began: float | None = None

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._began = time.perf_counter()

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self._began is None:
            return  # the step that installed the instrument began before it
        took = time.perf_counter() - self._began
        if task.name == LOG_WRITER_TASK:
            self.commit = max(self.commit, took)
        elif took > self.longest:
            self.longest, self.culprit = took, task.name


def big_program() -> tuple[Control, ...]:
    """5,000 distinct controls, back to back, alternating modes (adjacency and gaps to decide)."""
    controls = []
    at = int(NOON) + 600
    for i in range(CONTROLS):
        settings = (
            ControlSettings(export_limit_w=1000.0 + i % 7)
            if i % 2
            else ControlSettings(target_w=-500.0 - i % 5)
        )
        controls.append(
            Control(
                mrid=f"{i:08X}",
                program_id="A1",
                creation_time_s=int(NOON) - 600,
                start_s=at,
                duration_s=300,
                settings=settings,
                response_required=1,
                reply_to="/rsps/1/rsp",
            )
        )
        at += 300 + (30 if i % 3 == 0 else 0)
    return tuple(controls)


async def ack_every_response(
    inbox: MemoryObjectReceiveStream[SendResponse],
    report: MemoryObjectSendStream[ControlsInput],
    acked: list[int],
) -> None:
    async with inbox, report:
        async for command in inbox:
            r = command.response
            acked[0] += 1
            await report.send(
                ResponseOutcome(mrid=r.mrid, status=r.status, acked=True, http_status=201)
            )


async def receive(
    controls: ControlsActor,
    hardware: HardwareActor,
    server: SimModbusServer,
    accept_receive: Any,
    log: LogWriter,
    to_controls: MemoryObjectSendStream[ControlsInput],
    responder_inbox: MemoryObjectReceiveStream[SendResponse],
    timer: StepTimer,
    acked: list[int],
    program: tuple[Control, ...],
    clock: Clock,
) -> None:
    """Run the actors; the program arrives at NOON + 20; stop once every Response 1 is acknowledged."""
    with trio.fail_after(3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, accept_receive)
            await nursery.start(log.run)
            await nursery.start(controls.run)
            await nursery.start(hardware.run)
            nursery.start_soon(ack_every_response, responder_inbox, to_controls.clone(), acked)
            async with to_controls:
                await clock.sleep_until_server_time(NOON + 10)
                await to_controls.send(ProgramsSeen(programs=(PROGRAM,)))
                await clock.sleep_until_server_time(NOON + 20)
                trio.lowlevel.add_instrument(timer)
                try:
                    await to_controls.send(ControlsSeen(program_id="A1", controls=program))
                    # Until every Response 1 is acknowledged: the whole receipt, answered.
                    while acked[0] < CONTROLS:
                        await clock.sleep_until_server_time(clock.server_time() + 5)
                    await clock.sleep_until_server_time(clock.server_time() + 5)
                finally:
                    trio.lowlevel.remove_instrument(timer)
            nursery.cancel_scope.cancel()


@pytest.fixture
def own_heap() -> Iterator[None]:
    """What earlier tests left on the heap is no part of this gateway: set it aside, so a full
    collection during the test scans (and the step measure charges) only what this gateway holds."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def test_a_5000_control_program_is_received_without_stalling_the_loop_or_telemetry(
    autojump_clock: trio.testing.MockClock, own_heap: None
) -> None:
    """Issue 15 point 3 (PROTOCOL.md §4 rule 2, receipt): no task step longer than ~100 ms while
    the program is received and answered; telemetry keeps its period (no gap over two periods).
    Virtual time also runs at the real rate, so a stall shows as a gap in the samples. The log
    writer's commit is the store's work, in a worker thread in the gateway (``LOG_WRITER_TASK``)."""
    autojump_clock.rate = 1.0
    store = MemoryEventStore(CATALOGUE)
    clock = Clock(wall_at_start=NOON)
    sim = SimBattery(BatteryParams(), SiteParams(), seed=3, start_s=NOON)
    server = SimModbusServer(sim, clock=clock.server_time)
    accept_send, accept_receive = pipe_listener()
    log = LogWriter(store, offload=False)
    limits: Latest[ApplyLimits] = Latest()
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](16)
    to_responder, responder_inbox = anyio.create_memory_object_stream[SendResponse](16)
    controls = ControlsActor(
        config=CoreConfig(lfdi=LFDI, device_category=0x40000, set_max_w=5000),
        store=store,
        log=log,
        clock=clock,
        rng=RandomSource(7),
        inbox=controls_inbox,
        to_hardware=limits,
        to_responder=to_responder,
    )
    hardware = HardwareActor(
        driver=SunSpecDriver(
            ModbusTcpClient("sim", 0, timeout_s=2.0, connector=pipe_connector(accept_send))
        ),
        log=log,
        clock=clock,
        limits=limits,
        to_controls=to_controls.clone(),
        config=HardwareConfig(
            control_period_s=1.0, sample_period_s=SAMPLE_PERIOD_S, post_interval_s=60
        ),
    )
    program = big_program()
    timer = StepTimer()
    acked = [0]
    await receive(
        controls,
        hardware,
        server,
        accept_receive,
        log,
        to_controls,
        responder_inbox,
        timer,
        acked,
        program,
        clock,
    )
    assert sum(1 for r in store.read() if isinstance(r.event, ControlReceived)) == CONTROLS
    assert timer.longest < 0.1, f"a task step took {timer.longest * 1e3:.0f} ms ({timer.culprit})"
    samples = [r.event.at_s for r in store.read() if isinstance(r.event, TelemetrySampled)]
    during = [t for t in samples if t >= NOON + 15]
    assert len(during) >= 10
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    assert max(gaps) <= 2 * SAMPLE_PERIOD_S, f"telemetry stalled: a gap of {max(gaps):.1f} s"


async def test_a_big_decision_is_put_together_in_steps_and_persisted_as_one_batch() -> None:
    """Issue 15 point 3: the Appends of a receipt of thousands of controls are put together in
    steps of BATCH_STEP_EVENTS events, the loop let go between them; the result is the one batch
    a small decision gets (a decision is atomic in the log)."""
    events = Harness(programs=(PROGRAM,)).poll(10, *big_program()[:800])
    assert len(events) > 2 * BATCH_STEP_EVENTS
    counter = TaskSteps(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(counter)
    try:
        appends = await _batch_in_steps(events, NOON, 5.0)
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert appends == _batch(events, NOON, 5.0)
    assert counter.steps == (len(events) - 1) // BATCH_STEP_EVENTS


class TaskSteps(trio.abc.Instrument):
    def __init__(self, task: trio.lowlevel.Task) -> None:
        self.task = task
        self.steps = 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task is self.task:
            self.steps += 1


async def test_the_registration_actor_reads_a_big_control_list_in_steps() -> None:
    """Issue 15 point 3: 250 DERControls are converted in steps of RECEIPT_STEP, the loop let go
    between them, with what one conversion of the whole list gives."""
    wire = [wire_control()] * 250
    counter = TaskSteps(trio.lowlevel.current_task())
    trio.lowlevel.add_instrument(counter)
    try:
        converted = await _controls_in_steps(wire, "P")
    finally:
        trio.lowlevel.remove_instrument(counter)
    assert converted == controls_from_wire(wire, "P")
    assert counter.steps == (250 - 1) // RECEIPT_STEP
