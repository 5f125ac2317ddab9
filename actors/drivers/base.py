"""The driver interface the hardware actor uses, and the values it exchanges.

A driver reads telemetry and nameplate/settings from the battery system, applies the limits in force
(``events.der_model.ControlSettings``: a ``None`` field is a mode not constrained) and says which
modes it can dispatch; the hardware actor answers every other mode "not applicable"
(``ResponseStatus.NOT_APPLICABLE``, IEEE 2030.5 §10.10.4.3 / CSIP-AUS §2.4).

Every written value is clamped to nameplate and settings (``statemachines.site_limit``); NaN and
out-of-range limits are refused with :class:`statemachines.site_limit.InvalidLimit` before any write.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, runtime_checkable

import msgspec

from events.der_model import ControlSettings, Mode
from events.pricing_events import PricesInForce
from events.telemetry import MeasurementPoint, OperatingState, Quantity, Sample
from statemachines.site_limit import (
    POWER_MODES,
    Clamp,
    DerRating,
    LoopConfig,
    LoopDecision,
    LoopState,
    rating_at_charge,
    step,
)

__all__ = [
    "closed_loop",
    "loop_rating",
    "ApplyReport",
    "DerDriver",
    "DriverError",
    "Nameplate",
    "PriceAware",
    "Telemetry",
    "WriteNotVerified",
    "reading_at",
    "usable_settings",
]


class DriverError(Exception):
    """Base of driver-level errors that are not transport errors."""


class WriteNotVerified(DriverError):
    """The value read back after a write differs from the value written."""

    def __init__(self, what: str, wrote: object, read: object) -> None:
        super().__init__(f"{what}: wrote {wrote!r} but read back {read!r}")
        self.what = what
        self.wrote = wrote
        self.read = read


class Nameplate(msgspec.Struct, frozen=True, kw_only=True):
    """Ratings (nameplate) and current settings of the DER, in W / Wh; ``None`` = not reported."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    rated_w: float | None = None
    rated_va: float | None = None
    rated_var: float | None = None
    rated_charge_w: float | None = None
    rated_discharge_w: float | None = None
    capacity_wh: float | None = None
    max_w: float | None = None  # setMaxW
    max_charge_w: float | None = None  # setMaxChargeRateW
    max_discharge_w: float | None = None  # setMaxDischargeRateW
    soc_min_pct: float | None = None  # the state of charge it will not discharge below
    soc_max_pct: float | None = None  # the state of charge it will not charge above

    def rating(self) -> DerRating:
        """What the DER may be asked for: the lesser of each rating and its setting.

        A DER that reports neither for a direction is given 0 W there: never command what we cannot
        bound.
        """
        # The closed loop asks every control period for the same (frozen) nameplate, one per site:
        # remembered per nameplate (one entry for the whole process missed every time in a fleet,
        # where each site's loop asks in turn, issue 19).
        known = _RATINGS.get(id(self))
        if known is not None and known[0] is self:
            return known[1]
        rating = self._rating()
        if len(_RATINGS) >= _RATINGS_KEPT:
            _RATINGS.clear()  # nameplates read again (restarts): start over, never grow
        _RATINGS[id(self)] = (self, rating)
        return rating

    def _rating(self) -> DerRating:

        def least(*values: float | None) -> float:
            known = [v for v in values if v is not None and math.isfinite(v) and v >= 0]
            return min(known) if known else 0.0

        max_w = least(self.rated_w, self.max_w)
        return DerRating(
            max_discharge_w=least(self.rated_discharge_w, self.max_discharge_w, max_w),
            max_charge_w=least(self.rated_charge_w, self.max_charge_w, max_w),
            max_w=max_w,
        )


#: ``Nameplate.rating`` remembered per nameplate object (its id; the entry holds the object, so
#: the id cannot be reused while it is there), at most ``_RATINGS_KEPT`` of them.
_RATINGS: dict[int, tuple[Nameplate, DerRating]] = {}
_RATINGS_KEPT: Final = 4096


class Telemetry(msgspec.Struct, frozen=True, kw_only=True):
    """One reading of the site meter and the DER. Power signs as in ``events.telemetry``.

    Status (what DERStatus reports, ``actors.der_info.status``): ``connected`` the DER's AC
    connection, ``storage_connected`` the battery's (``None``: not reported), ``state`` what the
    converter is doing, ``operating`` the device's own name for it (SunSpec 701 ``InvSt``),
    ``alarms`` the active alarm names."""

    at_s: float
    site_w: float | None = None
    site_var: float | None = None
    site_v: float | None = None
    site_hz: float | None = None
    der_w: float | None = None
    der_var: float | None = None
    der_v: float | None = None
    der_hz: float | None = None
    soc_pct: float | None = None
    stored_wh: float | None = None
    connected: bool | None = None
    operating: str | None = None
    alarms: tuple[str, ...] = ()
    state: OperatingState | None = None
    storage_connected: bool | None = None

    def samples(self) -> list[Sample]:
        """The numeric readings as ``Sample`` values (missing readings are skipped)."""
        at_s = self.at_s
        values = (
            self.site_w,
            self.site_var,
            self.site_v,
            self.site_hz,
            self.der_w,
            self.der_var,
            self.der_v,
            self.der_hz,
            self.soc_pct,
            self.stored_wh,
        )
        return [
            Sample(at_s=at_s, point=point, quantity=quantity, value=value)
            for (point, quantity), value in zip(_SAMPLED, values, strict=True)
            if value is not None and math.isfinite(value)
        ]


#: What :meth:`Telemetry.samples` reports, in the order of its fields.
_SAMPLED: tuple[tuple[MeasurementPoint, Quantity], ...] = (
    (MeasurementPoint.SITE, Quantity.ACTIVE_POWER_W),
    (MeasurementPoint.SITE, Quantity.REACTIVE_POWER_VAR),
    (MeasurementPoint.SITE, Quantity.VOLTAGE_V),
    (MeasurementPoint.SITE, Quantity.FREQUENCY_HZ),
    (MeasurementPoint.DER, Quantity.ACTIVE_POWER_W),
    (MeasurementPoint.DER, Quantity.REACTIVE_POWER_VAR),
    (MeasurementPoint.DER, Quantity.VOLTAGE_V),
    (MeasurementPoint.DER, Quantity.FREQUENCY_HZ),
    (MeasurementPoint.DER, Quantity.STATE_OF_CHARGE_PCT),
    (MeasurementPoint.DER, Quantity.STORED_ENERGY_WH),
)


class ApplyReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one ``apply`` did: the modes applied, those answered "not applicable", the setpoint."""

    applied: frozenset[Mode]
    not_applicable: frozenset[Mode]
    setpoint_w: float | None
    wrote: bool
    clamps: tuple[Clamp, ...] = ()
    site_limit_met: bool | None = None


def usable_settings(limits: ControlSettings, dispatchable: frozenset[Mode]) -> ControlSettings:
    """The requested modes a driver can dispatch, with the ramp parameter; the others are reported
    not applicable by the caller (PROTOCOL.md §5: parsed but never dispatched is the field failure)."""
    return ControlSettings(
        **{m.value: getattr(limits, m.value) for m in limits.modes() & dispatchable},
        ramp_time_s=limits.ramp_time_s,
    )


def loop_rating(nameplate: Nameplate, telemetry: Telemetry | None) -> DerRating:
    """The rating the closed loop works with now: the nameplate's, narrowed at the battery's
    state-of-charge bounds (``statemachines.site_limit.rating_at_charge``)."""
    return rating_at_charge(
        nameplate.rating(),
        None if telemetry is None else telemetry.soc_pct,
        soc_min_pct=nameplate.soc_min_pct,
        soc_max_pct=nameplate.soc_max_pct,
    )


async def closed_loop(
    state: LoopState,
    config: LoopConfig,
    *,
    requested: frozenset[Mode],
    usable: ControlSettings,
    nameplate: Nameplate,
    now: float,
    reading: Telemetry | None,
    read: Callable[..., Awaitable[Telemetry]],
) -> tuple[LoopState, LoopDecision]:
    """One control period of ``statemachines.site_limit.step`` for a driver: the meter read only
    when a power mode is requested (the sample of this instant when there is one), the rating
    narrowed at the battery's state-of-charge bounds."""
    telemetry = await reading_at(now, reading, read) if requested & POWER_MODES else None
    return step(
        state,
        config,
        now=now,
        limits=usable,
        rating=loop_rating(nameplate, telemetry),
        site_w=None if telemetry is None else telemetry.site_w,
        der_w=None if telemetry is None else telemetry.der_w,
    )


async def reading_at(
    now: float, reading: Telemetry | None, read: Callable[..., Awaitable[Telemetry]]
) -> Telemetry:
    """The meter at ``now``: the hardware actor's sample of this very instant when it has one
    (one device read serves the sample and the closed loop), else a fresh ``read(now=now)``."""
    if reading is not None and reading.at_s == now:
        return reading
    return await read(now=now)


@runtime_checkable
class DerDriver(Protocol):
    """The battery system as the hardware actor sees it. Every method runs under the caller's
    deadline; transport failures surface as ``transport.modbus`` errors or the driver's own."""

    def dispatchable_modes(self) -> frozenset[Mode]:
        """The modes this DER can carry out; every other mode is answered "not applicable"."""
        ...

    async def read_nameplate(self) -> Nameplate: ...

    async def read_telemetry(self, *, now: float) -> Telemetry: ...

    async def apply(
        self, limits: ControlSettings, *, now: float, reading: Telemetry | None = None
    ) -> ApplyReport:
        """Apply ``limits`` (one control period of the closed loop), write and verify.

        ``reading``: telemetry the caller took at ``now``; the closed loop uses it instead of
        reading the meter again (one device read per instant serves sampling and control). A
        reading of another instant is ignored."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PriceAware(Protocol):
    """A driver that passes the prices in force on to the battery's runtime (IEEE 2030.5 Pricing).
    Optional: the hardware actor calls it only on drivers that have it."""

    async def prices_changed(self, prices: PricesInForce) -> None: ...
