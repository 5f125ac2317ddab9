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
