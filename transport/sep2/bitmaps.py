"""Mode bitmaps of DERCapability/DERSettings: which control modes a DER supports or has enabled.

Bit positions are those documented in the public schemas: ``DERControlType`` (2030.5-2018
``modesSupported``/``modesEnabled``), CSIP-AUS ``DOEControlType`` (``doeModesSupported``/``Enabled``)
and ``VPPControlType`` (v1.3 storage extension, ``vppModesSupported``/``Enabled``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from events.der_model import Mode

__all__ = [
    "DER_CONTROL_BITS",
    "DOE_BITS",
    "VPP_BITS",
    "der_control_type",
    "doe_control_type",
    "vpp_control_type",
]

#: ``DERControlType`` bit per mode (bits 0 and 1 are the charge and discharge capabilities).
DER_CONTROL_BITS: Final[dict[Mode, int]] = {
    Mode.CONNECT: 2,
    Mode.ENERGIZE: 3,
    Mode.FIXED_PF_ABSORB: 4,
    Mode.FIXED_PF_INJECT: 5,
    Mode.FIXED_VAR: 6,
    Mode.FIXED_W_PCT: 7,
    Mode.FREQ_DROOP: 8,
    Mode.FREQ_WATT: 9,
    Mode.HFRT_MAY_TRIP: 10,
    Mode.HFRT_MUST_TRIP: 11,
    Mode.HVRT_MAY_TRIP: 12,
    Mode.HVRT_MOMENTARY_CESSATION: 13,
    Mode.HVRT_MUST_TRIP: 14,
    Mode.LFRT_MAY_TRIP: 15,
    Mode.LFRT_MUST_TRIP: 16,
    Mode.LVRT_MAY_TRIP: 17,
    Mode.LVRT_MOMENTARY_CESSATION: 18,
    Mode.LVRT_MUST_TRIP: 19,
    Mode.MAX_LIMIT_PCT: 20,
    Mode.TARGET_VAR: 21,
    Mode.TARGET_W: 22,
    Mode.VOLT_VAR: 23,
    Mode.VOLT_WATT: 24,
    Mode.WATT_PF: 25,
    Mode.WATT_VAR: 26,
}
CHARGE_BIT: Final = 0
DISCHARGE_BIT: Final = 1
DOE_BITS: Final[dict[Mode, int]] = {
    Mode.EXPORT_LIMIT_W: 0,
    Mode.IMPORT_LIMIT_W: 1,
    Mode.GENERATION_LIMIT_W: 2,
    Mode.LOAD_LIMIT_W: 3,
}
VPP_BITS: Final[dict[Mode, int]] = {Mode.STORAGE_TARGET_W: 0}


def _bits(modes: Iterable[Mode], table: dict[Mode, int]) -> int:
    value = 0
    for mode in modes:
        bit = table.get(mode)
        if bit is not None:
            value |= 1 << bit
    return value


def der_control_type(modes: Iterable[Mode], *, can_charge: bool, can_discharge: bool) -> int:
    """``modesSupported``: the 2030.5 modes in ``modes`` plus the charge/discharge capability bits."""
    value = _bits(modes, DER_CONTROL_BITS)
    if can_charge:
        value |= 1 << CHARGE_BIT
    if can_discharge:
        value |= 1 << DISCHARGE_BIT
    return value


def doe_control_type(modes: Iterable[Mode]) -> int:
    return _bits(modes, DOE_BITS)


def vpp_control_type(modes: Iterable[Mode]) -> int:
    return _bits(modes, VPP_BITS)
