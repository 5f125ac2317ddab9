"""Several simulated batteries behind one site meter (issue 19 point 2).

The first battery carries the site's load and PV (its :class:`SiteParams`) and the site meter;
every other battery is a battery only (no load or PV of its own) whose output that meter reads
(``SimBattery.shared_with``), so every battery's driver, and the world's invariants, see the one
connection point the utility limits. Released to its own logic, the first battery does
self-consumption of the site's load and PV (as on a single-battery site); the others, with
nothing of their own to consume, idle.

:class:`SwitchableDriver` takes a member's communications down and up (a DER that disconnects
while the others stay up), as a device that stops answering would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from actors.drivers.base import ApplyReport, DerDriver, DriverError, Nameplate, Telemetry
from events.der_model import ControlSettings, Mode
from sep2gw.sim.battery import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import SimBatteryDriver
from statemachines.site_limit import LoopConfig

__all__ = ["BATTERY_ONLY", "SharedSite", "SwitchableDriver"]

#: The site of a battery that shares another's meter: no load, no PV.
BATTERY_ONLY = SiteParams(base_load_w=0.0, peak_load_w=0.0, load_noise_w=0.0, pv_peak_w=0.0)


class SharedSite:
    """Batteries on one meter (see the module docstring)."""

    def __init__(
        self, batteries: Sequence[BatteryParams], site: SiteParams, *, seed: int, start_s: float
    ) -> None:
        if not batteries:
            raise ValueError("a site needs at least one battery")
        self.batteries = [
            SimBattery(params, site if i == 0 else BATTERY_ONLY, seed=seed + i, start_s=start_s)
            for i, params in enumerate(batteries)
        ]
        self.batteries[0].shared_with = self.batteries[1:]

    @property
    def meter(self) -> SimBattery:
        """The battery whose site the meter measures (the first)."""
        return self.batteries[0]

    def advance(self, now_s: float) -> None:
        self.meter.advance(now_s)

    def site_w(self) -> float:
        """Power at the connection point, positive = export."""
        return self.meter.site_w()

    def drivers(
        self, clock: Callable[[], float], *, loop: LoopConfig | None = None
    ) -> list[SimBatteryDriver]:
        """One model driver per battery."""
        return [SimBatteryDriver(b, clock=clock, loop=loop) for b in self.batteries]


class SwitchableDriver:
    """A member driver whose communications can be taken down (``down = True``, or while
    ``is_down()`` says so): every operation then fails as a device that does not answer."""

    def __init__(self, driver: DerDriver, *, is_down: Callable[[], bool] | None = None) -> None:
        self.driver = driver
        self.down = False
        self._is_down = is_down

    def _check(self, operation: str) -> None:
        if self.down or (self._is_down is not None and self._is_down()):
            raise DriverError(f"{operation}: the device does not answer (simulated)")

    def dispatchable_modes(self) -> frozenset[Mode]:
        return self.driver.dispatchable_modes()

    async def read_nameplate(self) -> Nameplate:
        self._check("read nameplate")
        return await self.driver.read_nameplate()

    async def read_telemetry(self, *, now: float) -> Telemetry:
        self._check("read telemetry")
        return await self.driver.read_telemetry(now=now)

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        self._check("apply")
        return await self.driver.apply(limits, now=now, reading=reading)

    async def aclose(self) -> None:
        await self.driver.aclose()
