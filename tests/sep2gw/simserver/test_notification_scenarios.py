"""The notification scenarios of the library, server side alone: a stand-in subscriber (a device
client that subscribes as the gateway will, and a listener at the world's notification host through
``sep2gw.sim.notification_routes``) runs each scenario on the simulated server over pipes, and the
server's audit must meet the scenario's ``[expect.notifications]`` and show the notifications each
scenario is about. End to end (the real gateway subscribing and acting) these run as library worlds
once the gateway has its listener (``tests/sep2gw/test_library_worlds.py``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from actors.https import Handler, HttpsClient, HttpsServer, PeerInfo
from actors.pipe import pipe_connector, pipe_listener
from sep2gw.sim.notification_routes import NOTIFICATION_HOST, NOTIFICATION_URL, NotificationRoutes
from sep2gw.simserver import Scenario, SimClock, SimUtilityServer
from sep2gw.simserver.library import library
from sep2gw.simserver.notification_audit import notification_findings
from sep2gw.simserver.validation import request_validator
from tests.tls_fixtures import PkiFiles, write_pki
from transport.http.messages import Request, Response
from transport.http.router import Router
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der
from transport.sep2 import decode, encode
from transport.sep2 import resources as r
from transport.tls import client_context, server_context

from .helpers import START

SCENARIOS = {entry.scenario.name: entry.scenario for entry in library()}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("scenario-pki")))


class StubListener:
    """The gateway's listener, stood in: 201 for every Notification, each recorded."""

    def __init__(self, pki: PkiFiles, clock: SimClock) -> None:
        self.clock = clock
        self.received: list[tuple[float, r.Notification]] = []
        router: Router[Handler] = Router()
        router.add("POST", "/notify", self._handle)
        self.https = HttpsServer(router, server_context(pki.device))

    async def _handle(self, request: Request, peer: PeerInfo) -> Response:
        self.received.append((self.clock.now() - START, decode(request.body, r.Notification)))
        return Response(201)

    async def serve_notification_stream(self, stream: anyio.abc.ByteStream) -> None:
        await self.https.serve_connection(stream)


Script = Callable[[HttpsClient, SimClock], Awaitable[None]]

#: What the stand-in subscribes to: the EndDevice, its control list and default (plain paths).
SUBSCRIBED = ("/edev/1", "/derp/1/derc", "/derp/1/dderc")


async def subscribe_all(client: HttpsClient) -> list[str]:
    hrefs = []
    for resource in SUBSCRIBED:
        sub = r.Subscription(
            subscribedResource=resource,
            encoding=0,
            level="+S1",
            limit=10,
            notificationURI=NOTIFICATION_URL,
        )
        response = await client.request("POST", "/edev/1/sub", body=encode(sub))
        assert response.status == 201, response.body
        hrefs.append(response.header("location") or "")
    return hrefs


async def run(
    pki: PkiFiles, scenario: Scenario, script: Script | None = None
) -> tuple[SimUtilityServer, StubListener]:
    clock = SimClock(START)
    routes = NotificationRoutes()
    listener = StubListener(pki, clock)
    send, accept = pipe_listener()
    server = SimUtilityServer(
        scenario, pki.server, clock=clock, seed=1, notification_connector=routes.connect
    )
    assert server.notifications_possible
    lfdi = lfdi_from_der(certificate_der(pki.pki.device.certificate))
    with anyio.fail_after(24 * 3600):
        async with trio.open_nursery() as nursery:
            await nursery.start(routes.serve)
            routes.attach(NOTIFICATION_HOST, listener)
            await nursery.start(server.serve_pipes, accept)
            async with HttpsClient(
                "utility.sim", 443, client_context(pki.device), connector=pipe_connector(send)
            ) as client:
                edev = r.EndDevice(
                    sFDI=sfdi_from_lfdi(lfdi),
                    lFDI=r.HexBinary160(int(lfdi, 16)),
                    deviceCategory=r.HexBinary32(0),
                    changedTime=START,
                )
                assert (await client.request("POST", "/edev", body=encode(edev))).status == 201
                edev_doc = decode((await client.get("/edev/1")).body, r.EndDevice)
                assert edev_doc.SubscriptionListLink is not None
                await subscribe_all(client)
                if script is not None:
                    await script(client, clock)
                await clock.sleep_until(START + scenario.duration_s() + 60)
            nursery.cancel_scope.cancel()
    return server, listener


def findings(server: SimUtilityServer, scenario: Scenario) -> list[str]:
    assert scenario.expect is not None and scenario.expect.notifications is not None
    return notification_findings(
        scenario.expect.notifications,
        server.state.subscription_audit,
        server.notifier.attempts,
        server.applied,
        start=server.start,
        end=server.start + scenario.duration_s() + 60,
    )


def controls_notified(listener: StubListener) -> list[tuple[float, str, list[int]]]:
    """(when, subscribedResource, mRIDs of the list) of each control-list notification."""
    return [
        (at, n.subscribedResource, [int(c.mRID) for c in n.Resource.DERControl])
        for at, n in listener.received
        if isinstance(n.Resource, r.DERControlList)
    ]


def test_every_notification_scenario_is_in_the_library() -> None:
    names = {entry.scenario.name for entry in library() if entry.family == "notifications"}
    assert names == {
        "subscriptions_refused_to_a_device",
        "notifications_basic",
        "notification_loss_polling_recovers",
        "notification_duplicates",
        "subscriptions_server_restart",
    }


async def test_notifications_basic_pushes_the_control_when_it_is_created(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = SCENARIOS["notifications_basic"]
    server, listener = await run(pki, scenario)
    assert controls_notified(listener) == [(125, "/derp/1/derc", [0x5B << 120 | 0xA1])]
    assert findings(server, scenario) == []
    validator = request_validator(scenario.quirks.csipaus_ns)
    for _, notification in listener.received:
        assert validator.check(encode(notification)) is None


async def test_notification_loss_drops_inside_the_window_only(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = SCENARIOS["notification_loss_polling_recovers"]
    server, listener = await run(pki, scenario)
    assert [(at, mrids) for at, _, mrids in controls_notified(listener)] == [
        (380, [0x5B << 120 | 0xB1, 0x5B << 120 | 0xB2])
    ]
    dropped = [a for a in server.notifier.attempts if a.outcome == "dropped"]
    assert [a.time - START for a in dropped] == [150]
    assert findings(server, scenario) == []


async def test_notification_duplicates_arrive_twice(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = SCENARIOS["notification_duplicates"]
    server, listener = await run(pki, scenario)
    times = [at for at, _ in listener.received]
    assert times == [125, 125, 240, 240]
    assert listener.received[0][1] == listener.received[1][1]
    assert isinstance(listener.received[2][1].Resource, r.DefaultDERControl)
    assert findings(server, scenario) == []


async def test_subscriptions_server_restart_forgets_until_the_subscriber_comes_back(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = SCENARIOS["subscriptions_server_restart"]

    async def verify_and_resubscribe(client: HttpsClient, clock: SimClock) -> None:
        # What the gateway will do: check its subscription at its next poll, find it gone.
        await clock.sleep_until(START + 240)
        assert (await client.get("/edev/1/sub/2")).status == 404
        await subscribe_all(client)

    server, listener = await run(pki, scenario, verify_and_resubscribe)
    assert [(at, mrids) for at, _, mrids in controls_notified(listener)] == [
        (400, [0x5B << 120 | 0xD1])
    ]
    assert findings(server, scenario) == []


async def test_without_resubscribing_the_restart_expectation_fails(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = SCENARIOS["subscriptions_server_restart"]
    server, listener = await run(pki, scenario)
    assert controls_notified(listener) == []
    assert findings(server, scenario) == [
        "0 notifications delivered, expected at least 1",
        "no subscription accepted within 240 s of the ForgetSubscriptions at +150 s",
    ]


def test_a_device_certificate_shown_the_link_is_refused_with_the_reason(pki: PkiFiles) -> None:
    from sep2gw.simserver import UtilityState

    scenario = SCENARIOS["subscriptions_refused_to_a_device"]
    state = UtilityState(scenario, start=START)
    lfdi = lfdi_from_der(certificate_der(pki.pki.device.certificate))
    edev = r.EndDevice(
        sFDI=sfdi_from_lfdi(lfdi),
        lFDI=r.HexBinary160(int(lfdi, 16)),
        deviceCategory=r.HexBinary32(0),
        changedTime=START,
    )
    assert state.handle("POST", "/edev", encode(edev), lfdi, START).status == 201
    seen = decode(state.handle("GET", "/edev/1", b"", lfdi, START).body, r.EndDevice)
    assert seen.SubscriptionListLink is not None
    sub = r.Subscription(
        subscribedResource="/derp/1/derc",
        encoding=0,
        level="+S1",
        limit=1,
        notificationURI=NOTIFICATION_URL,
    )
    reply = state.handle("POST", "/edev/1/sub", encode(sub), lfdi, START)
    assert reply.status == 403 and "only aggregator certificates" in reply.reason
    assert scenario.expect is not None and scenario.expect.notifications is not None
    assert (
        notification_findings(
            scenario.expect.notifications, state.subscription_audit, [], [], start=START, end=START
        )
        == []
    )
