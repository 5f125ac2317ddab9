"""Pricing through the whole gateway (IEEE 2030.5 Pricing): the embedding runtime reads the price in
force the log recorded, the live pricing state is the fold of the log at every stop, and a restart
rebuilds it from the log."""

from __future__ import annotations

from pathlib import Path

import trio

from events.memory_store import MemoryEventStore
from events.pricing_events import PriceInForce
from events.registry import CATALOGUE
from sep2gw.simserver import parse_scenario

from .world import EPOCH, World

SCENARIO = """
name = "prices"
[server]
pin = 111115
poll_rate_s = 20

[[programs]]
id = "network"
primacy = 1
default = { opModExpLimW = 5000 }

[[tariffs]]
id = "retail"
rate_code = "R1"

[[actions]]
at_s = 0
kind = "create_price_interval"
tariff = "retail"
mrid = "7A1"
start_s = 60
duration_s = 120
price = 200

[[actions]]
at_s = 0
kind = "create_price_interval"
tariff = "retail"
mrid = "7A2"
start_s = 180
duration_s = 120
blocks = [{ start_value = 0, price = 300 }, { start_value = 2000, price = 420 }]
tou_tier = 2
"""


async def test_the_embedding_runtime_reads_the_price_the_log_recorded(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(SCENARIO, source="test"), store)
    # stopped (and checked against the fold) inside each interval, then after both
    await world.run_with_restarts(330.0, [120.0, 240.0])
    assert len(world.gateways) == 3
    recorded = [rec.event for rec in store.read() if isinstance(rec.event, PriceInForce)]
    assert [(e.interval_mrid, e.at_s - EPOCH) for e in recorded] == [
        ("000000000000000000000000000007A1", 60.0),
        ("000000000000000000000000000007A2", 180.0),
        (None, 300.0),
    ]
    # What the embedding runtime was last handed is the log's last word, with every block.
    last = world.gateways[-1].prices_in_force()
    assert last is not None and len(last.prices) == 1
    assert last.prices[0].interval_mrid is None
    assert last.prices[0].rate.rate_code == "R1"
    assert world.server is not None
    statuses = [
        (f"{int(body.subject):X}", body.status) for _t, body in world.server.state.price_responses
    ]
    assert statuses == [("7A1", 1), ("7A2", 1), ("7A1", 2), ("7A1", 3), ("7A2", 2), ("7A2", 3)]


async def test_the_price_in_force_mid_interval_is_what_the_gateway_hands_out(
    pki: Path, autojump_clock: trio.abc.Clock
) -> None:
    store = MemoryEventStore(CATALOGUE)
    world = World(pki, parse_scenario(SCENARIO, source="test"), store)
    await world.run(200.0)
    held = world.gateways[-1].prices_in_force()
    assert held is not None
    (price,) = held.prices
    assert price.interval_mrid == "000000000000000000000000000007A2"
    assert price.tou_tier == 2
    assert [(b.start_value, b.price) for b in price.blocks] == [(0, 300), (2000, 420)]


def test_the_price_invariant_holds_and_can_fail(pki: Path) -> None:
    """The world check 'prices in force were the server's' judges every recorded price; it fails
    when the server's interval differs from what the log says was in force."""
    from sep2gw.simserver.library import library
    from sep2gw.world import check, price_checks, run_world

    entry = next(e for e in library() if e.file == "pricing_revised.toml")
    result = run_world(entry.scenario, seed=3, site=pki)
    violations, judged = price_checks(result)
    assert violations == [] and judged == 3
    assert not [v for v in check(result) if v.invariant == "prices in force were the server's"]
    # Had the server published other prices, or cancelled earlier, the same log would be wrong.
    interval = result.server.state.tariffs[0].intervals[1]
    interval.blocks = ((0, 999),)
    assert [v.detail.split(": ", 2)[-1] for v in price_checks(result)[0]] == [
        "blocks (PriceBlock(consumption_block=1, start_value=0, price=300), "
        "PriceBlock(consumption_block=2, start_value=5000, price=450)) are not the server's "
        "((0, 999),)"
    ]
    interval.blocks = ((0, 300), (5000, 450))
    interval.cancelled_at = result.server.start + 100
    assert "had cancelled it" in price_checks(result)[0][0].detail


def test_a_server_offering_too_many_tariffs_is_cut_and_the_cut_recorded_once(pki: Path) -> None:
    """Bounded work per poll (issue 15): 20 tariffs → the first 16 are read each walk, and the cut
    is one server-fault record, not one per walk."""
    from actors.pricing import MAX_TARIFFS
    from events.pricing_events import PricingCapped, RateSeen
    from sep2gw.world import run_world

    tariffs = "".join(f'[[tariffs]]\nid = "t{i}"\n\n' for i in range(20))
    scenario = parse_scenario(
        '[server]\npoll_rate_s = 20\n\n[[programs]]\nid = "p"\nprimacy = 1\n\n' + tariffs,
        source="test",
    )
    result = run_world(scenario, seed=1, site=pki, seconds=200.0)
    events = [rec.event for rec in result.store.read(stream="pricing")]
    capped = [e for e in events if isinstance(e, PricingCapped)]
    assert len(capped) == 1 and "20 tariffs, the first 16 read" in capped[0].what
    assert len({e.rate.rate_mrid for e in events if isinstance(e, RateSeen)}) == MAX_TARIFFS
    tp_lists = [q for q in result.server.requests if q.path == "/tp"]
    assert len(tp_lists) >= 5  # walked at the pollRate, each walk bounded


async def test_the_reading_type_cache_holds_only_the_last_walks_rates(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Bounded memory against a server that names a new ReadingType href on every walk: the
    actor's walk forgets the ReadingTypes it did not ask for."""
    from typing import Any, cast

    from actors.clock import Clock
    from actors.mailbox import Latest
    from actors.messages import TariffLinks
    from actors.pricing import PricingActor
    from actors.rng import RandomSource
    from statemachines.responses import CSIP_AUS
    from transport.sep2 import resources as r
    from transport.sep2.hexbinary import HexBinary16, HexBinary128

    class FakeLink:
        halted = None

        def __init__(self) -> None:
            self.walk = 0
            self.reading_gets: list[str] = []

        async def get_list(self, href: str, cls: Any, items: str) -> tuple[Any, list[Any]]:
            if cls is r.TariffProfileList:
                self.walk += 1
                tariff = r.TariffProfile(
                    href="/tp/1",
                    mRID=HexBinary128(1),
                    primacy=1,
                    serviceCategoryKind=0,
                    RateComponentListLink=r.RateComponentListLink(href="/tp/1/rc", all=1),
                )
                return r.TariffProfileList(href=href, all=1, results=1, pollRate=60), [tariff]
            if cls is r.RateComponentList:
                rate = r.RateComponent(
                    href="/tp/1/rc/1",
                    mRID=HexBinary128(2),
                    roleFlags=HexBinary16(0),
                    ReadingTypeLink=r.ReadingTypeLink(href=f"/rt/{self.walk}"),
                    TimeTariffIntervalListLink=r.TimeTariffIntervalListLink(href="/tti", all=0),
                )
                return r.RateComponentList(href=href, all=1, results=1), [rate]
            return r.TimeTariffIntervalList(href=href, all=0, results=0), []

        async def get(self, href: str, cls: Any) -> Any:
            self.reading_gets.append(href)
            return r.ReadingType(href=href, uom=72)

    class FakeLog:
        async def append(self, appends: Any) -> None:
            return None

    link = FakeLink()
    targets: Latest[TariffLinks] = Latest()
    actor = PricingActor(
        link=cast(Any, link),
        log=cast(Any, FakeLog()),
        clock=Clock(wall_at_start=1_700_000_000.0),
        rng=RandomSource(1),
        store=MemoryEventStore(CATALOGUE),
        lfdi="AB" * 20,
        profile=CSIP_AUS,
        targets=targets,
    )
    actor._links = TariffLinks(hrefs=("/tp",))
    for _ in range(30):
        await actor._walk()
    assert link.walk == 30 and len(link.reading_gets) == 30
    assert list(actor._reading_types) == ["/rt/30"]
