"""Measurements: what the battery side samples and what the mirror posts, in SI units."""

from __future__ import annotations

from enum import StrEnum

import msgspec

__all__ = ["IntervalSummary", "MeasurementPoint", "OperatingState", "Quantity", "Sample"]


class MeasurementPoint(StrEnum):
    """Where a quantity is measured: the connection point (site meter) or the DER terminals."""

    SITE = "site"
    DER = "der"


class Quantity(StrEnum):
    """A measured quantity and its unit (the 2030.5 ``uom`` is in parentheses)."""

    ACTIVE_POWER_W = "w"  # uom 38; positive = export at the site, discharge at a storage DER
    REACTIVE_POWER_VAR = "var"  # uom 63
    VOLTAGE_V = "v"  # uom 29
    FREQUENCY_HZ = "hz"  # uom 33
    STORED_ENERGY_WH = "wh"  # uom 72
    STATE_OF_CHARGE_PCT = "soc_pct"


class OperatingState(StrEnum):
    """What the DER's converter is doing, as the device reports it, the same for every driver.

    The SunSpec driver reads it from 701 ``InvSt`` (else 802 ``SetInvState``/``State``); a tag
    driver from its ``state`` tag. ``OFF`` is a stopped (not energized) inverter."""

    OFF = "off"
    SLEEPING = "sleeping"
    STARTING = "starting"
    OPERATING = "operating"
    THROTTLED = "throttled"
    SHUTTING_DOWN = "shutting_down"
    FAULT = "fault"
    STANDBY = "standby"
    TEST = "test"


class Sample(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One telemetry sample taken at ``at_s`` (server clock)."""

    at_s: float
    point: MeasurementPoint
    quantity: Quantity
    value: float


class IntervalSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Samples of one quantity over ``[start_s, start_s + interval_s)``, start aligned to a whole minute.

    ``mean`` is what a MirrorReadingSet posts; ``minimum``/``maximum`` are kept for forensics.
    """

    point: MeasurementPoint
    quantity: Quantity
    start_s: int
    interval_s: int
    mean: float
    minimum: float
    maximum: float
    samples: int
