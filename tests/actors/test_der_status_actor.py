"""The DER status actor with the hardware actor on the autojump clock (PROTOCOL.md §2 step 7):
DERStatus follows the device — from the first reading, on every change whatever caused it,
promptly, retried until the server has it, each PUT logged with its reason."""

from __future__ import annotations

import math

import anyio
import msgspec
import trio
import trio.testing

from actors.clock import Clock
from actors.der_status import DerStatusActor
from actors.drivers.base import ApplyReport, DriverError, Nameplate, Telemetry
from actors.hardware import HardwareActor, HardwareConfig
from actors.link import HttpFailure, LinkHalted
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import ApplyLimits, ControlsInput, DerStatusTarget, DeviceStatus
from events.der_model import ControlSettings, Mode
from events.der_status_events import DerStatusPut
from events.hardware_events import DeviceStatusChanged
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.telemetry import OperatingState
from transport.errors import LinkError
from transport.sep2 import resources as r

EPOCH = 1_700_000_100.0
HREF = "/edev/1/der/1/ders"


class Inverter:
    """A DER whose converter state the test sets; ``reports_state`` False: a device that cannot
    say whether it is running (the control's effect is then the fallback); ``silent`` True: reads
    fail as a dead Modbus link's would."""

    def __init__(self, *, reports_state: bool = True) -> None:
        self.state = OperatingState.OPERATING
        self.reports_state = reports_state
        self.silent = False
        self.refuse = False  # writes fail (the device refuses the limits)

    def dispatchable_modes(self) -> frozenset[Mode]:
        return frozenset({Mode.ENERGIZE, Mode.CONNECT})

    async def read_nameplate(self) -> Nameplate:
        return Nameplate(rated_w=5000.0)

    async def read_telemetry(self, *, now: float) -> Telemetry:
        if self.silent:
            raise DriverError("no answer")
        return Telemetry(
            at_s=now,
            soc_pct=60.0,
            connected=True,
            state=self.state if self.reports_state else None,
        )

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        if self.refuse:
            raise DriverError("write refused")
        return ApplyReport(
            applied=limits.modes(), not_applicable=frozenset(), setpoint_w=None, wrote=True
        )

    async def aclose(self) -> None:
        return None


class Server:
    """The DERStatus resource: records each PUT (server time, body); fails the first ones when
    told to (``failures``: exceptions to raise, in order)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.puts: list[tuple[float, r.DERStatus]] = []
        self.failures: list[Exception] = []

    async def put(self, path: str, resource: msgspec.Struct) -> None:
        assert path == HREF and isinstance(resource, r.DERStatus)
        if self.failures:
            raise self.failures.pop(0)
        self.puts.append((self.clock.server_time() - EPOCH, resource))


def shown(body: r.DERStatus) -> tuple[int | None, int | None]:
    gen, mode = body.genConnectStatus, body.operationalModeStatus
    return (
        None if gen is None else int(gen.value),
        None if mode is None else int(mode.value),
    )


async def world(
    driver: Inverter,
    script: object,
    *,
    until_s: float,
    failures: list[Exception] | None = None,
    target_at_s: float = 0.0,
) -> tuple[Server, MemoryEventStore]:
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    clock = Clock(wall_at_start=EPOCH)
    server = Server(clock)
    server.failures = list(failures or [])
    limits: Latest[ApplyLimits] = Latest()
    device: Latest[DeviceStatus] = Latest()
    targets: Latest[DerStatusTarget] = Latest()
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](16)
    hardware = HardwareActor(
        driver=driver,
        log=log,
        clock=clock,
        limits=limits,
        to_controls=to_controls,
        config=HardwareConfig(sample_period_s=5.0, post_interval_s=60),
        status=device,
    )
    reporter = DerStatusActor(
        link=server,  # type: ignore[arg-type]
        log=log,
        clock=clock,
        device=device,
        targets=targets,
    )
    with trio.fail_after(until_s + 60):
        async with trio.open_nursery() as nursery, controls_inbox:
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            await nursery.start(reporter.run)
            await trio.sleep_until(trio.current_time() + target_at_s)
            targets.put(DerStatusTarget(href=HREF))
            assert callable(script)
            await script(clock, limits)
            await trio.sleep_until(EPOCH + until_s - clock.server_time() + trio.current_time())
            nursery.cancel_scope.cancel()
    return server, store


async def idle(clock: Clock, limits: Latest[ApplyLimits]) -> None:
    return None


def puts_logged(store: MemoryEventStore) -> list[DerStatusPut]:
    return [rec.event for rec in store.read() if isinstance(rec.event, DerStatusPut)]


async def test_the_first_status_waits_for_the_first_reading_and_carries_every_field(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """§2.7: the first PUT used to carry only readingTime (sent before any telemetry)."""
    server, store = await world(Inverter(), idle, until_s=30)
    first_s, first = server.puts[0]
    assert first_s >= 0 and first.readingTime >= EPOCH
    assert shown(first) == (0b111, 2)
    assert first.storConnectStatus is not None and first.inverterStatus is not None
    assert first.stateOfChargeStatus is not None and first.stateOfChargeStatus.value == 6000
    assert len(server.puts) == 1  # nothing changed after it
    assert [(e.reasons, e.outcome) for e in puts_logged(store)] == [(("first",), "acked")]


async def test_a_stop_at_the_device_is_put_within_a_sample_period_and_the_debounce(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """§2.7: the operator stops the inverter on the device side; no poll is needed to report it."""
    driver = Inverter()

    async def stop(clock: Clock, limits: Latest[ApplyLimits]) -> None:
        await trio.sleep(102 - (clock.server_time() - EPOCH))
        driver.state = OperatingState.OFF

    server, store = await world(driver, stop, until_s=200)
    after = [(t, shown(body)) for t, body in server.puts if t > 100]
    assert after and after[0][1] == (0b011, 1)
    assert after[0][0] <= 102 + 5 + 2
    reported = [
        e for e in (rec.event for rec in store.read()) if isinstance(e, DeviceStatusChanged)
    ]
    assert [(e.at_s - EPOCH, e.state, e.operating) for e in reported] == [
        (5, OperatingState.OPERATING, None),
        (105, OperatingState.OFF, None),
    ]  # the device's status is recorded when it changes, not with every sample
    logged = puts_logged(store)[-1]
    assert logged.reasons == (
        "genConnectStatus",
        "storConnectStatus",
        "operationalModeStatus",
        "inverterStatus",
    )
    assert logged.from_control == ()


async def test_a_control_that_de_energizes_a_der_that_cannot_report_it_is_put_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """§2.7 and §5: opModEnergize=false; the device reports no state, so the control's effect is
    what DERStatus shows (logged as coming from the control), within the debounce."""

    async def de_energize(clock: Clock, limits: Latest[ApplyLimits]) -> None:
        await trio.sleep(60 - (clock.server_time() - EPOCH))
        limits.put(
            ApplyLimits(settings=ControlSettings(energize=False), ramps={}, at_s=EPOCH + 60, seq=1)
        )

    server, store = await world(Inverter(reports_state=False), de_energize, until_s=120)
    after = [(t, shown(body)) for t, body in server.puts if t >= 60]
    assert after and after[0][1] == (0b011, 1) and after[0][0] <= 62
    changed = next(e for e in puts_logged(store) if e.status.operational_mode_status == 1)
    assert changed.from_control == ("state",)


async def test_a_control_the_device_refused_is_not_reported_as_its_effect(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The fallback is the effect of the control the device *took*: a de-energize whose write
    failed leaves a DER that cannot report its state shown as operating."""
    driver = Inverter(reports_state=False)
    driver.refuse = True

    async def de_energize(clock: Clock, limits: Latest[ApplyLimits]) -> None:
        await trio.sleep(60 - (clock.server_time() - EPOCH))
        limits.put(
            ApplyLimits(settings=ControlSettings(energize=False), ramps={}, at_s=EPOCH + 60, seq=1)
        )

    server, _ = await world(driver, de_energize, until_s=120)
    assert {shown(body) for _, body in server.puts} == {(0b111, 2)}


async def test_a_refused_put_is_retried_with_back_off_until_the_server_has_the_last_state(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Never missed: 500, a network failure and 503 answers are retried after 2, 4 and 8 s; the
    status that finally goes out is the newest, and every attempt is logged with its outcome."""
    server, store = await world(
        Inverter(),
        idle,
        until_s=60,
        failures=[
            HttpFailure("PUT", HREF, 500),
            LinkError("connection reset"),
            HttpFailure("PUT", HREF, 503),
        ],
    )
    logged = puts_logged(store)
    assert [e.outcome for e in logged] == ["refused", "failed", "refused", "acked"]
    assert [e.retry_in_s for e in logged] == [2.0, 4.0, 8.0, None]
    assert [e.http_status for e in logged] == [500, None, 503, None]
    gaps = [b.at_s - a.at_s for a, b in zip(logged, logged[1:], strict=False)]
    assert all(math.isclose(g, w, abs_tol=0.01) for g, w in zip(gaps, [2, 4, 8], strict=True))
    assert len(server.puts) == 1 and shown(server.puts[0][1]) == (0b111, 2)


async def test_a_halted_link_ends_the_reporting_without_failing_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server, store = await world(Inverter(), idle, until_s=60, failures=[LinkHalted("PIN mismatch")])
    assert server.puts == [] and puts_logged(store) == []


async def test_a_device_that_stops_answering_is_reported_with_the_fault_bit_then_recovers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What is known is reported: a device the gateway can no longer read is not reported as
    still operating normally (fault bit set, not available), and recovers when it answers again."""
    driver = Inverter()

    async def silence(clock: Clock, limits: Latest[ApplyLimits]) -> None:
        await trio.sleep(50 - (clock.server_time() - EPOCH))
        driver.silent = True
        await trio.sleep(30)
        driver.silent = False

    server, _ = await world(driver, silence, until_s=120)
    shown_after = [(t, shown(body)) for t, body in server.puts]
    assert [s for _, s in shown_after] == [(0b111, 2), (0b10101, 2), (0b111, 2)]
    assert 50 <= shown_after[1][0] <= 57 and 80 <= shown_after[2][0] <= 87
