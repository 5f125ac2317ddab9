"""Several DER behind one connection point: one site loop, its setpoint shared by rating, and a DER
that stops answering (or reports itself disconnected) left out while the others carry the limit."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actors.der_info import capability
from actors.drivers.base import DriverError, Nameplate, Telemetry
from actors.drivers.composite import CompositeDriver, DerMember
from actors.messages import DerSnapshot
from events.der_model import ControlSettings, Mode
from sep2gw.sim import BatteryParams, SiteParams
from sep2gw.sim.multi_der import SharedSite, SwitchableDriver

NOON = 1_764_158_400.0  # 2025-11-26T12:00:00Z: PV is up, the site exports
SUNNY = SiteParams(pv_peak_w=6_000.0, cloudiness=0.0, load_noise_w=0.0)
EXPORT_LIMIT = ControlSettings(export_limit_w=1_000.0)


class Site:
    def __init__(self, *, second: BatteryParams | None = None) -> None:
        self.now = NOON
        self.site = SharedSite(
            [BatteryParams(), second or BatteryParams()], SUNNY, seed=5, start_s=NOON
        )
        a, b = self.site.drivers(lambda: self.now)
        self.a, self.b = SwitchableDriver(a), SwitchableDriver(b)
        self.driver = CompositeDriver(
            [DerMember(name="bat1", driver=self.a), DerMember(name="bat2", driver=self.b)]
        )

    async def run(self, limits: ControlSettings, seconds: int) -> list[float]:
        """Sample and apply once a second as the hardware actor does; the meter each second."""
        meter: list[float] = []
        for _ in range(seconds):
            self.now += 1.0
            try:
                reading = await self.driver.read_telemetry(now=self.now)
            except DriverError:
                reading = None
            await self.driver.apply(limits, now=self.now, reading=reading)
            self.site.advance(self.now)
            meter.append(self.site.site_w())
        return meter


async def test_the_site_loop_meets_the_export_limit_with_both_ders_sharing_by_rating() -> None:
    site = Site(second=BatteryParams(max_charge_w=2_500.0, max_w=2_500.0, max_va=2_500.0))
    await site.driver.read_nameplate()
    meter = await site.run(EXPORT_LIMIT, 60)
    assert max(meter[-20:]) <= 1_000.0
    first, second = (b.power_w for b in site.site.batteries)
    assert first < 0 and second < 0  # both charge
    assert first / second == pytest.approx(2.0, rel=0.05)  # 5 kW and 2.5 kW of charge rating


async def test_a_der_that_stops_answering_is_excluded_and_the_other_carries_the_limit() -> None:
    """Issue 19 point 2: one DER disconnects while another stays up; the site still meets the
    export limit where the remaining DER can, and the one that went is reported as such."""
    site = Site()
    await site.driver.read_nameplate()
    await site.run(EXPORT_LIMIT, 30)
    site.b.down = True
    meter = await site.run(EXPORT_LIMIT, 60)
    assert max(meter[-20:]) <= 1_000.0
    status = {m.der: m for m in site.driver.members()}
    assert status["bat1"].available
    assert not status["bat2"].available
    assert "does not answer" in status["bat2"].reason
    site.b.down = False
    await site.run(EXPORT_LIMIT, 30)
    assert site.driver.members()[1].available  # back in the split once it answers


async def test_a_der_that_reports_itself_disconnected_is_excluded_and_says_why() -> None:
    site = Site()
    await site.driver.read_nameplate()
    await site.run(EXPORT_LIMIT, 30)
    site.site.batteries[1].operator(connect=False)
    meter = await site.run(EXPORT_LIMIT, 60)
    assert max(meter[-20:]) <= 1_000.0
    bat2 = site.driver.members()[1]
    assert (bat2.available, bat2.reason) == (False, "reports itself disconnected")


async def test_reading_fails_only_when_no_der_answers() -> None:
    site = Site()
    await site.driver.read_nameplate()
    site.a.down = True
    reading = await site.driver.read_telemetry(now=NOON + 1)
    assert reading.site_w is not None  # the meter read through the DER still answering
    site.b.down = True
    with pytest.raises(DriverError, match="bat1: read telemetry"):
        await site.driver.read_telemetry(now=NOON + 2)


async def test_site_reading_sums_the_ders_and_weights_the_state_of_charge() -> None:
    site = Site(second=BatteryParams(capacity_wh=6_750.0, initial_soc_pct=80.0))
    await site.driver.read_nameplate()
    reading = await site.driver.read_telemetry(now=NOON)
    a = await site.a.read_telemetry(now=NOON)
    b = await site.b.read_telemetry(now=NOON)
    assert reading.der_w == (a.der_w or 0) + (b.der_w or 0)
    # 13.5 kWh at 50 % and 6.75 kWh at 80 %: 60 % of the 20.25 kWh behind the site.
    assert reading.soc_pct == pytest.approx(60.0, abs=0.2)


async def test_site_nameplate_is_the_sum_and_modes_are_the_sites() -> None:
    site = Site(second=BatteryParams(max_charge_w=2_500.0, max_w=2_500.0, max_va=2_500.0))
    plate = await site.driver.read_nameplate()
    assert (plate.rated_w, plate.rated_charge_w) == (7_500.0, 7_500.0)
    modes = site.driver.dispatchable_modes()
    assert {Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W, Mode.CONNECT} <= modes


def test_names_must_be_unique() -> None:
    site = Site()
    with pytest.raises(ValueError, match="unique"):
        CompositeDriver([DerMember(name="x", driver=site.a), DerMember(name="x", driver=site.b)])


async def test_applying_fails_only_when_no_der_takes_the_limits() -> None:
    """The hardware actor records a failed write (and Response 252's cause) only when the site
    took nothing; one DER failing is the other's to carry, recorded per DER."""
    site = Site()
    await site.driver.read_nameplate()
    await site.run(EXPORT_LIMIT, 5)
    site.a.down = True
    await site.driver.apply(EXPORT_LIMIT, now=site.now + 1)  # bat2 still takes it
    assert [m.reachable for m in site.driver.members()] == [False, True]
    site.b.down = True
    with pytest.raises(DriverError, match="no DER of the site (answered|took the limits)"):
        await site.driver.apply(EXPORT_LIMIT, now=site.now + 2)


def test_a_pv_der_is_reported_as_a_photovoltaic_system_and_a_battery_as_storage() -> None:
    """IEEE 2030.5 DERType: 4 photovoltaic system, 80 storage (``ders[].role``)."""
    plate = Nameplate(rated_w=6000.0, rated_discharge_w=6000.0, rated_charge_w=0.0)
    pv = capability(DerSnapshot(nameplate=plate, modes=frozenset(), role="pv"))
    battery = capability(DerSnapshot(nameplate=plate, modes=frozenset()))
    assert (pv.der_type, battery.der_type) == (4, 80)


class Silent(SwitchableDriver):
    """A device that stops answering without refusing: every request hangs."""

    async def read_telemetry(self, *, now: float) -> Telemetry:
        await trio.sleep_forever()
        raise AssertionError("unreachable")


async def test_silent_ders_cost_the_site_one_member_timeout_not_one_each(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Two of three DER hang: the site's reading comes from the third after one member timeout
    (3 s), inside the hardware actor's 5 s deadline, not after 6 s."""
    now = NOON
    site = SharedSite([BatteryParams()] * 3, SUNNY, seed=5, start_s=NOON)
    first, second, third = site.drivers(lambda: now)
    driver = CompositeDriver(
        [
            DerMember(name="a", driver=Silent(first)),
            DerMember(name="b", driver=Silent(second)),
            DerMember(name="c", driver=third),
        ],
        member_timeout_s=3.0,
    )
    await driver.read_nameplate()
    began = trio.current_time()
    reading = await driver.read_telemetry(now=now)
    assert trio.current_time() - began == pytest.approx(3.0)
    assert reading.site_w is not None
    assert [m.available for m in driver.members()] == [False, False, True]
    assert "TimeoutError" in driver.members()[0].reason
