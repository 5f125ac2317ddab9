"""Tag driver price roles (IEEE 2030.5 Pricing): the runtime is told the price in force per kWh in
the tariff's currency, its tier, and whether any price is in force; never a strategy."""

from __future__ import annotations

import pytest

from actors.drivers import TagDriver, TagMap, TagMapError
from actors.drivers.base import PriceAware
from events.pricing_events import PriceBlock, PricesInForce, RateDetails, RatePrice

MAP = """
[options]
verify_writes = true

[write]
import_price = { tag = "Tariff.Import_per_MWh", unit = "/MWh" }
export_price = { tag = "Tariff.Export_per_kWh", unit = "/kWh" }
tou_tier = { tag = "Tariff.Tier", unit = "tier" }
price_in_force = { tag = "Tariff.Valid", unit = "bool" }
"""


class Table:
    def __init__(self) -> None:
        self.tags: dict[str, object] = {}
        self.writes: list[tuple[str, object]] = []

    def read_tag(self, name: str) -> object:
        return self.tags[name]

    def write_tag(self, name: str, value: float | bool) -> None:
        self.writes.append((name, value))
        self.tags[name] = value


def rate(mrid: str, *, flow: int | None, primacy: int = 1, reading_pow: int = 3) -> RateDetails:
    return RateDetails(
        tariff_mrid="T" + mrid,
        tariff_href="/tp/1",
        tariff_primacy=primacy,
        currency=36,
        price_power_of_ten=-3,
        rate_mrid=mrid,
        rate_href="/tp/1/rc/1",
        uom=72,
        reading_power_of_ten=reading_pow,
        flow_direction=flow,
    )


def priced(r: RateDetails, price: int | None, tier: int = 2) -> RatePrice:
    if price is None:
        return RatePrice(rate=r, interval_mrid=None)
    return RatePrice(
        rate=r,
        interval_mrid="I" + r.rate_mrid,
        tou_tier=tier,
        blocks=(PriceBlock(consumption_block=1, start_value=0, price=price),),
    )


async def test_the_prices_in_force_reach_the_runtime_in_its_units() -> None:
    table = Table()
    driver = TagDriver(table, TagMap.from_toml(MAP))
    assert isinstance(driver, PriceAware)
    await driver.prices_changed(
        PricesInForce(
            at_s=0.0,
            prices=(
                priced(rate("R1", flow=1), 450, tier=3),  # 0.45 AUD/kWh = 450 AUD/MWh
                priced(rate("R2", flow=19), 50),  # 0.05 AUD/kWh exported
                # a rate of lower priority (higher primacy value) is not the one written
                priced(rate("R3", flow=1, primacy=5), 999),
            ),
        )
    )
    assert table.tags["Tariff.Valid"] is True
    assert table.tags["Tariff.Import_per_MWh"] == pytest.approx(450.0)
    assert table.tags["Tariff.Export_per_kWh"] == pytest.approx(0.05)
    assert table.tags["Tariff.Tier"] == 3.0


async def test_a_reading_multiplier_of_one_means_prices_per_wh() -> None:
    table = Table()
    driver = TagDriver(table, TagMap.from_toml(MAP))
    # 2 (× 10^-3 AUD) per Wh = 2 AUD/kWh = 2000 AUD/MWh
    await driver.prices_changed(
        PricesInForce(at_s=0.0, prices=(priced(rate("R1", flow=None, reading_pow=0), 2),))
    )
    assert table.tags["Tariff.Import_per_MWh"] == pytest.approx(2000.0)


async def test_no_interval_in_force_writes_only_that_fact() -> None:
    table = Table()
    driver = TagDriver(table, TagMap.from_toml(MAP))
    await driver.prices_changed(PricesInForce(at_s=0.0, prices=(priced(rate("R1", flow=1), None),)))
    assert table.writes == [("Tariff.Valid", False)]


async def test_a_map_without_price_roles_writes_nothing() -> None:
    table = Table()
    driver = TagDriver(table, TagMap.from_toml("[write]\n"))
    await driver.prices_changed(PricesInForce(at_s=0.0, prices=(priced(rate("R1", flow=1), 1),)))
    assert table.writes == []


def test_a_price_role_needs_a_price_unit() -> None:
    with pytest.raises(TagMapError, match=r"\[write\] import_price.*measures power"):
        TagMap.from_toml('[write]\nimport_price = { tag = "X", unit = "kW" }\n')
