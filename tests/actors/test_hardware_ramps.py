"""A limit's ramp starts from where the DER is (PROTOCOL.md §4 rule 11, issue 14 point 7).

Regression: with setGradW 600 (6 %/s of a 5 kW rating, 300 W/s) a 10 kW limit handing over to a
1 kW one ramped the applied limit 10000 → 9700 → … → 1000 over 30 s; for the first ~17 s it was above
what the DER could do and constrained nothing."""

from __future__ import annotations

import anyio
import pytest
import trio
import trio.testing

from actors.clock import Clock
from actors.drivers.base import ApplyReport, Nameplate, Telemetry
from actors.hardware import HardwareActor, HardwareConfig
from actors.log_writer import LogWriter
from actors.mailbox import Latest
from actors.messages import ApplyLimits, ControlsInput
from events.der_model import ControlSettings, Mode
from events.hardware_events import RampStarted
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.telemetry import IntervalSummary
from statemachines.ramps import Ramp

EPOCH = 1_700_000_100.0
RATING_W = 5000.0
RATE_W_PER_S = 300.0  # setGradW 600 of a 5 kW setMaxW


class FollowingDer:
    """A DER at its rating that follows a generation limit at once; it records its output."""

    def __init__(self, *, readable: bool = True) -> None:
        self.limit_w: float | None = None
        self.readable = readable
        self.output: list[tuple[float, float]] = []

    def dispatchable_modes(self) -> frozenset[Mode]:
        return frozenset({Mode.GENERATION_LIMIT_W})

    async def read_nameplate(self) -> Nameplate:
        return Nameplate(rated_w=RATING_W, rated_discharge_w=RATING_W, rated_charge_w=RATING_W)

    def der_w(self) -> float:
        return RATING_W if self.limit_w is None else min(RATING_W, self.limit_w)

    async def read_telemetry(self, *, now: float) -> Telemetry:
        if not self.readable:
            raise TimeoutError("the meter does not answer")
        return Telemetry(at_s=now, site_w=self.der_w(), der_w=self.der_w())

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        self.limit_w = limits.generation_limit_w
        self.output.append((now, self.der_w()))
        return ApplyReport(
            applied=frozenset({Mode.GENERATION_LIMIT_W}),
            not_applicable=frozenset(),
            setpoint_w=self.der_w(),
            wrote=True,
        )

    async def aclose(self) -> None:
        return None


async def hand_over(driver: FollowingDer) -> tuple[float, MemoryEventStore]:
    """10 kW in force for a while, then 1 kW with the controls core's ramp from the old limit.
    Returns when the handover happened."""
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    to_mirror, summaries = anyio.create_memory_object_stream[list[IntervalSummary]](64)
    to_controls, controls_inbox = anyio.create_memory_object_stream[ControlsInput](64)
    limits = Latest[ApplyLimits]()
    limits.put(
        ApplyLimits(settings=ControlSettings(generation_limit_w=10000.0), ramps={}, at_s=EPOCH)
    )
    clock = Clock(wall_at_start=EPOCH)
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery, summaries, controls_inbox:
            hardware = HardwareActor(
                driver=driver,  # type: ignore[arg-type]
                log=log,
                clock=clock,
                limits=limits,
                to_controls=to_controls,
                summaries=to_mirror,
                config=HardwareConfig(sample_period_s=5.0, control_period_s=1.0),
                store=store,
            )
            await nursery.start(log.run)
            await nursery.start(hardware.run)
            await trio.sleep(12.5)
            now = clock.server_time()
            planned = Ramp(
                mode=Mode.GENERATION_LIMIT_W,
                from_value=10000.0,
                to_value=1000.0,
                start_s=now,
                end_s=now + 9000.0 / RATE_W_PER_S,
            )
            limits.put(
                ApplyLimits(
                    settings=ControlSettings(generation_limit_w=1000.0),
                    ramps={Mode.GENERATION_LIMIT_W: planned},
                    at_s=now,
                    seq=1,
                )
            )
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
    return now, store


async def test_rule11_a_limit_ramp_starts_from_the_measured_output_and_curtails_in_the_gradients_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The DER makes 5 kW under the 10 kW limit: the ramp to 1 kW starts from 5 kW, so the output
    falls at once, at the gradient, and reaches 1 kW in (5000 − 1000) / 300 s, not 30 s."""
    driver = FollowingDer()
    start, store = await hand_over(driver)
    after = [(t - start, w) for t, w in driver.output if t >= start]
    assert after[0] == (0.0, RATING_W)
    assert all(w <= RATING_W - RATE_W_PER_S * t + 1e-6 for t, w in after if w > 1000.0)
    curtailed_at = min(t for t, w in after if w <= 1000.0)
    assert curtailed_at <= (RATING_W - 1000.0) / RATE_W_PER_S + 1.0
    (started,) = [r.event for r in store.read() if isinstance(r.event, RampStarted)]
    assert (started.measured, started.from_value, started.to_value) == (RATING_W, RATING_W, 1000.0)
    assert started.planned == 10000.0 and started.applied == 10000.0


async def test_rule11_without_a_measurement_a_limit_ramp_starts_from_the_rating(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The meter does not answer: the lesser of the old limit and the rating (5 kW) is the start."""
    driver = FollowingDer(readable=False)
    start, store = await hand_over(driver)
    (started,) = [r.event for r in store.read() if isinstance(r.event, RampStarted)]
    assert started.measured is None and started.from_value == RATING_W
    assert started.end_s - start == pytest.approx((RATING_W - 1000.0) / RATE_W_PER_S)
    curtailed_at = min(t - start for t, w in driver.output if t >= start and w <= 1000.0)
    assert curtailed_at <= (RATING_W - 1000.0) / RATE_W_PER_S + 1.0
