"""A running fleet's one notification listener on loopback TCP (decision 0022g): the utility's
POST to a site's notificationURI lands in that site's log only; a path that is no site's is 404,
counted at the fleet and in no site's log."""

from __future__ import annotations

from pathlib import Path

import anyio
import msgspec
import trio
import trio.testing

from actors.drivers.base import DerDriver
from actors.https import HttpsClient
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from events.subscription_events import NotificationReceived
from sep2gw.fleet import Fleet, FleetOptions
from sep2gw.fleet_world import fleet_config
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.direct_driver import SimBatteryDriver
from sep2gw.simserver import SimClock
from sep2gw.simserver.library import library
from transport.http.messages import SEP_XML
from transport.sep2 import encode
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, client_context

NOON = 1_764_900_000.0


async def _refused() -> anyio.abc.ByteStream:
    raise ConnectionRefusedError("no utility in this test")


async def test_a_site_path_reaches_that_sites_log_and_an_unknown_path_no_log(
    pki: Path, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = next(e.scenario for e in library() if e.file == "fleet_notifications.toml")
    config = fleet_config(scenario, pki, ["site-000", "site-001"])
    config = msgspec.structs.replace(
        config,
        notifications=msgspec.structs.replace(config.notifications, listen="127.0.0.1:0"),
    )
    stores = {name: MemoryEventStore(CATALOGUE) for name in ("site-000", "site-001")}
    console: list[str] = []
    device = SimClock(NOON)
    drivers: dict[str, DerDriver] = {
        name: SimBatteryDriver(
            SimBattery(BatteryParams(), SiteParams(), seed=1, start_s=NOON), clock=device.now
        )
        for name in stores
    }
    fleet = Fleet(
        config,
        drivers,
        options=FleetOptions(
            wall_at_start=NOON,
            seed=1,
            stores=stores,
            http_connector=_refused,
            log_in_thread=False,
            on_console=console.append,
        ),
    )
    utility = client_context(
        TlsMaterial(
            str(pki / "pki/server.pem"), str(pki / "pki/server.key"), str(pki / "pki/ca.pem")
        )
    )
    body = encode(
        r.Notification(subscribedResource="/derp/1/derc", subscriptionURI="/edev/1/sub/1", status=0)
    )
    with trio.fail_after(120):
        async with fleet:
            await trio.sleep(1)  # the sites' actors are up (their polls are refused)
            assert fleet.notifications_port is not None
            async with HttpsClient("127.0.0.1", fleet.notifications_port, utility) as client:
                headers = (("content-type", SEP_XML),)
                to_site = await client.request(
                    "POST", "/notify/site-001", body=body, headers=headers
                )
                to_nobody = await client.request(
                    "POST", "/notify/site-009", body=body, headers=headers
                )
    # site-001 holds no subscription at /edev/1/sub/1: its own listener said 404, in its own log
    assert to_site.status == 404 and b"no subscription of ours" in to_site.body
    assert to_nobody.status == 404 and b"no site's notificationURI" in to_nobody.body

    def received(name: str) -> list[NotificationReceived]:
        return [
            rec.event for rec in stores[name].read() if isinstance(rec.event, NotificationReceived)
        ]

    (record,) = received("site-001")
    assert record.http_status == 404 and record.subscription == "/edev/1/sub/1"
    assert received("site-000") == []
    statistics = fleet.notification_statistics()
    assert statistics is not None
    assert (statistics.routed, statistics.unknown_paths) == (1, 1)
    assert any("/notify/site-009" in line for line in console)
