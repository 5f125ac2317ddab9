"""A simulated battery on a site with load, PV and a site meter.

Deterministic: every output is a function of the seed, the parameters, the commands and the times
passed to :meth:`SimBattery.advance` (no clock is read here). Load and PV noise are drawn per minute
from ``random.Random(f"{seed}:{kind}:{minute}")`` and interpolated, so the profile at a given instant
does not depend on how the simulation was stepped.

Physics: the converter power ramps towards its target at ``ramp_w_per_s``; the target is the
commanded setpoint (or self-consumption when released), limited by the charge/discharge rates, the
``max_limit_pct`` setting and the state-of-charge window; energy flows through one-way efficiencies.
Power signs as in ``events.telemetry``: battery positive = discharge, site positive = export.
"""

from __future__ import annotations

import math
import random

import msgspec

__all__ = ["BatteryParams", "SimBattery", "SiteParams"]

_MAX_SUBSTEP_S = 1.0
_DRAW_CACHE = 64


class BatteryParams(msgspec.Struct, frozen=True, kw_only=True):
    capacity_wh: float = 13_500.0
    max_charge_w: float = 5_000.0
    max_discharge_w: float = 5_000.0
    max_w: float = 5_000.0
    max_va: float = 5_000.0
    charge_efficiency: float = 0.95
    discharge_efficiency: float = 0.95
    ramp_w_per_s: float = 2_500.0
    soc_min_pct: float = 5.0
    soc_max_pct: float = 100.0
    initial_soc_pct: float = 50.0
    nominal_v: float = 230.0
    battery_v: float = 400.0

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"BatteryParams.{name}={value!r}: must be a finite number ≥ 0")
        if not 0 < self.charge_efficiency <= 1 or not 0 < self.discharge_efficiency <= 1:
            raise ValueError("BatteryParams efficiencies are within (0, 1]")
        if not 0 <= self.soc_min_pct <= self.initial_soc_pct <= self.soc_max_pct <= 100:
            raise ValueError("BatteryParams needs 0 ≤ soc_min ≤ initial_soc ≤ soc_max ≤ 100")


class SiteParams(msgspec.Struct, frozen=True, kw_only=True):
    """Load: a base plus morning and evening peaks; PV: a clear-sky half-sine between 06:00 and
    18:00 (local time = UTC + ``utc_offset_s``) shaded by per-minute clouds. Noise in W."""

    base_load_w: float = 500.0
    peak_load_w: float = 2_500.0
    load_noise_w: float = 300.0
    pv_peak_w: float = 6_000.0
    cloudiness: float = 0.3  # 0 = clear sky, 1 = heavy clouds
    utc_offset_s: int = 0
    nominal_v: float = 230.0
    nominal_hz: float = 50.0


class SimBattery:
    """The simulated battery and site. Commands take effect from the next :meth:`advance`."""

    def __init__(
        self, battery: BatteryParams, site: SiteParams, *, seed: int, start_s: float
    ) -> None:
        self.battery = battery
        self.site = site
        self.seed = seed
        self.now_s = start_s
        self.stored_wh = battery.capacity_wh * battery.initial_soc_pct / 100.0
        self.power_w = 0.0
        # Commands (the Modbus server writes these from the control registers).
        self.setpoint_w: float | None = None
        self.max_limit_pct: float | None = None
        self.connected = True  # 802 SetOp CONNECT
        self.energized = True  # 802 SetInvState not INVERTER_STOPPED
        self.standby = False  # 802 SetInvState INVERTER_STANDBY: energized, holding no power
        #: Tripped (a ``battery_fault``): no output, the fault is reported, control writes refused.
        self.tripped = False
        self.settings_max_w = battery.max_w
        self.settings_charge_w = battery.max_charge_w
        self.settings_discharge_w = battery.max_discharge_w
        self.charged_wh = 0.0
        self.discharged_wh = 0.0
        self._draws: dict[tuple[str, int], float] = {}
        # load_w and pv_w are functions of t alone; the meter asks for the same instant several
        # times per reading (W, VAR, V), so the last value of each is kept.
        self._load_at = (math.nan, 0.0)
        self._pv_at = (math.nan, 0.0)
        #: Other batteries behind this one's site meter (``sep2gw.sim.multi_der.SharedSite``):
        #: advanced with it, their output read by its meter. Empty on a single-battery site.
        self.shared_with: list[SimBattery] = []

    # -- the site -------------------------------------------------------------------------------
    def _noise(self, kind: str, t: float) -> float:
        """Smooth noise in [-1, 1]: per-minute draws, linearly interpolated."""
        minute = math.floor(t / 60.0)
        frac = t / 60.0 - minute
        a = self._draw(kind, minute)
        b = self._draw(kind, minute + 1)
        return a + (b - a) * frac

    def _draw(self, kind: str, minute: int) -> float:
        key = (kind, minute)
        value = self._draws.get(key)
        if value is None:
            if len(self._draws) > _DRAW_CACHE:
                self._draws.clear()  # bounded: only the current minutes are ever asked for again
            value = random.Random(f"{self.seed}:{kind}:{minute}").uniform(-1.0, 1.0)
            self._draws[key] = value
        return value

    def _hour(self, t: float) -> float:
        return ((t + self.site.utc_offset_s) % 86_400) / 3_600.0

    def load_w(self, t: float) -> float:
        if t == self._load_at[0]:
            return self._load_at[1]
        load = self._load_w(t)
        self._load_at = (t, load)
        return load

    def _load_w(self, t: float) -> float:
        hour = self._hour(t)
        shape = math.exp(-(((hour - 7.5) / 1.5) ** 2)) + 1.2 * math.exp(
            -(((hour - 19.0) / 2.0) ** 2)
        )
        load = self.site.base_load_w + self.site.peak_load_w * shape / 1.2
        return max(0.0, load + self.site.load_noise_w * self._noise("load", t))

    def pv_w(self, t: float) -> float:
        if t == self._pv_at[0]:
            return self._pv_at[1]
        pv = self._pv_w(t)
        self._pv_at = (t, pv)
        return pv

    def _pv_w(self, t: float) -> float:
        hour = self._hour(t)
        if not 6.0 < hour < 18.0:
            return 0.0
        clear = self.site.pv_peak_w * math.sin(math.pi * (hour - 6.0) / 12.0)
        shade = self.site.cloudiness * (0.5 + 0.5 * self._noise("cloud", t))
        return max(0.0, clear * (1.0 - shade))

    # -- the battery ----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """What the converter is doing, as a SunSpec inverter reports it (701 ``InvSt``): ``fault``
        when tripped, ``stopped`` when told to stop (``SetInvState``), ``standby`` when told to
        stand by or when disconnected (``SetOp``), else ``operating``."""
        if self.tripped:
            return "fault"
        if not self.energized:
            return "stopped"
        if self.standby or not self.connected:
            return "standby"
        return "operating"

    def operator(self, *, inverter: str | None = None, connect: bool | None = None) -> None:
        """An operator at the device (its display or local Modbus) sets ``SetInvState`` to
        ``started``/``standby``/``stopped`` or ``SetOp`` to connect/disconnect, as a remote
        command would; the register map shows it from its next refresh."""
        if inverter is not None:
            if inverter not in ("started", "standby", "stopped"):
                raise ValueError(f"inverter={inverter!r}: one of started, standby, stopped")
            self.energized = inverter != "stopped"
            self.standby = inverter == "standby"
        if connect is not None:
            self.connected = connect

    @property
    def soc_pct(self) -> float:
        return (
            100.0 * self.stored_wh / self.battery.capacity_wh if self.battery.capacity_wh else 0.0
        )

    def limits_w(self) -> tuple[float, float]:
        """(max charge, max discharge) the converter may do now, both ≥ 0."""
        if self.state != "operating":
            return 0.0, 0.0
        b = self.battery
        discharge = min(b.max_discharge_w, self.settings_discharge_w, self.settings_max_w, b.max_w)
        if self.max_limit_pct is not None:
            discharge = min(discharge, self.max_limit_pct / 100.0 * self.settings_max_w)
        charge = min(b.max_charge_w, self.settings_charge_w, self.settings_max_w, b.max_w)
        if self.soc_pct <= b.soc_min_pct:
            discharge = 0.0
        if self.soc_pct >= b.soc_max_pct:
            charge = 0.0
        return max(0.0, charge), max(0.0, discharge)

    def target_w(self, t: float) -> float:
        charge, discharge = self.limits_w()
        wanted = self.setpoint_w
        if wanted is None:
            wanted = self.load_w(t) - self.pv_w(t)  # self-consumption: keep the meter at zero
        return min(max(wanted, -charge), discharge)

    def advance(self, now_s: float) -> None:
        """Integrate the physics up to ``now_s`` (no-op if time did not move forward)."""
        for other in self.shared_with:
            other.advance(now_s)
        b = self.battery
        while self.now_s < now_s:
            dt = min(_MAX_SUBSTEP_S, now_s - self.now_s)
            t = self.now_s + dt
            target = self.target_w(t)
            step = b.ramp_w_per_s * dt
            self.power_w = min(max(target, self.power_w - step), self.power_w + step)
            if self.power_w >= 0:
                energy = self.power_w * dt / 3600.0
                drawn = energy / b.discharge_efficiency
                floor = b.capacity_wh * b.soc_min_pct / 100.0
                if self.stored_wh - drawn < floor:
                    drawn = max(0.0, self.stored_wh - floor)
                    self.power_w = drawn * b.discharge_efficiency * 3600.0 / dt
                self.stored_wh -= drawn
                self.discharged_wh += self.power_w * dt / 3600.0
            else:
                energy = -self.power_w * dt / 3600.0
                stored = energy * b.charge_efficiency
                ceiling = b.capacity_wh * b.soc_max_pct / 100.0
                if self.stored_wh + stored > ceiling:
                    stored = max(0.0, ceiling - self.stored_wh)
                    self.power_w = -stored / b.charge_efficiency * 3600.0 / dt
                self.stored_wh += stored
                self.charged_wh += -self.power_w * dt / 3600.0
            self.now_s = t

    # -- the meter ------------------------------------------------------------------------------
    def site_w(self) -> float:
        """Power at the connection point, positive = export."""
        t = self.now_s
        if self.shared_with:  # the other batteries behind the same meter
            return (
                self.pv_w(t)
                - self.load_w(t)
                + self.power_w
                + sum(o.power_w for o in self.shared_with)
            )
        return self.pv_w(t) - self.load_w(t) + self.power_w

    def site_var(self) -> float:
        return -0.25 * self.load_w(self.now_s)

    def site_v(self) -> float:
        return self.site.nominal_v + 0.0008 * self.site_w() + 1.5 * self._noise("volt", self.now_s)

    def site_hz(self) -> float:
        return self.site.nominal_hz + 0.03 * self._noise("freq", self.now_s)
