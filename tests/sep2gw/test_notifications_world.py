"""Notification → decision, through the whole gateway (issue 19 point 3): the simulated utility
(with a small subscription layer of the test's own: C1's simulated server side is built elsewhere)
offers a SubscriptionList and marks its resources subscribable; the gateway subscribes; a control
created while polling is 5 minutes away is notified, re-read at once and applied to the battery
within one control period of the notification; polling carries on at its rate (the safety net),
and a lost notification is caught by the next poll."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
import trio
import trio.testing

from actors.drivers.modbus_client import ModbusTcpClient
from actors.drivers.sunspec import SunSpecDriver
from actors.hardware import HardwareConfig
from actors.https import HttpsClient, HttpsServer, PeerInfo
from actors.pipe import byte_stream_pair, pipe_connector, pipe_listener
from events.control_events import ControlReceived
from events.hardware_events import LimitsApplied
from events.memory_store import MemoryEventStore
from events.registration_events import Polled
from events.registry import CATALOGUE
from events.subscription_events import (
    ControlsNotified,
    NotificationReceived,
    PollPrompted,
    SubscriptionAccepted,
    SubscriptionEnded,
)
from sep2gw.forensics.model import analyse
from sep2gw.forensics.render import ForensicTimeline, explain_control
from sep2gw.gateway import Gateway, GatewayOptions
from sep2gw.sim import BatteryParams, SimBattery, SiteParams
from sep2gw.sim.modbus_server import SimModbusServer
from sep2gw.simserver import SimClock, SimUtilityServer, parse_scenario, server_material
from tests.sep2gw.world import EPOCH, assert_live_state_is_the_fold, config_for, real_time_limit
from transport.http.messages import SEP_XML, Request, Response
from transport.http.router import Router
from transport.sep2 import decode, encode
from transport.sep2 import resources as r
from transport.tls import TlsMaterial, client_context, server_context


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


POLL_S = 300
CONTROL_PERIOD_S = 1.0
SCENARIO = f"""
name = "a control notified between polls"

[server]
pin = 111115
poll_rate_s = {POLL_S}
post_rate_s = 60

[[programs]]
id = "network"
primacy = 1
default = {{ opModExpLimW = 5000 }}

[[actions]]
at_s = 420
kind = "create_control"
mrid = "C0000000000000000000000000000001"
program = "network"
start_s = 420
duration_s = 600
modes = {{ opModExpLimW = 1000 }}

[[actions]]
at_s = 1500
kind = "create_control"
mrid = "C0000000000000000000000000000002"
program = "network"
start_s = 1500
duration_s = 600
modes = {{ opModExpLimW = 2000 }}
"""
NOTIFY_AT_S = 420.5
NOTIFICATIONS = """
[notifications]
url = "https://gateway.example/notify"
"""
_DOCUMENT = re.compile(rb"<([A-Za-z]+)[ >]")
_SUBSCRIPTIONS = re.compile(r"(/edev/[0-9]+)/sub(?:/([0-9]+))?")


class SubscribingUtility(SimUtilityServer):
    """The simulated utility with a SubscriptionList on each EndDevice: every resource it serves
    is marked subscribable, and subscriptions are created, read and deleted (nothing is notified:
    the test is the notifier)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: dict[str, r.Subscription] = {}

    async def _handle(self, request: Request, peer: PeerInfo) -> Response:
        path = request.target.partition("?")[0]
        match = _SUBSCRIPTIONS.fullmatch(path)
        if match is not None:
            return self._subscriptions(request, path, match.group(2))
        response = await super()._handle(request, peer)
        if request.method != "GET" or response.status != 200 or not response.body:
            return response
        return Response(response.status, response.headers, _subscribable(response.body, path))

    def _subscriptions(self, request: Request, path: str, number: str | None) -> Response:
        if request.method == "POST" and number is None:
            # As strict as the rest of the simulated server: a schema-invalid body is refused.
            invalid = self._schema_error(request, request.header("content-type"))
            assert self.validator is not None and not invalid, invalid
            subscription = decode(request.body, r.Subscription)
            location = f"{path}/{len(self.held) + 1}"
            self.held[location] = subscription
            return Response(201, (("location", location),))
        if request.method == "GET" and path in self.held:
            held = self.held[path]
            fields = {f: getattr(held, f) for f in held.__struct_fields__}
            body = encode(r.Subscription(**{**fields, "href": path}))
            return Response(200, (("content-type", SEP_XML),), body)
        if request.method == "DELETE" and self.held.pop(path, None) is not None:
            return Response(204)
        return Response(404)

    def location_of(self, resource_suffix: str) -> tuple[str, r.Subscription]:
        (found,) = [
            (k, s) for k, s in self.held.items() if s.subscribedResource.endswith(resource_suffix)
        ]
        return found


def _subscribable(body: bytes, path: str) -> bytes:
    """Mark the document subscribable; give an EndDevice its SubscriptionListLink."""
    match = _DOCUMENT.search(body)
    if match is None:
        return body
    name = match.group(1).decode()
    if name not in ("EndDevice", "FunctionSetAssignmentsList", "DERProgramList",
                    "DERControlList", "DefaultDERControl"):
        return body
    head_end = body.index(b">", match.start())
    head = body[match.start() : head_end]
    if b"subscribable=" in head:
        head = re.sub(rb'subscribable="[0-9]+"', b'subscribable="1"', head)
    else:
        head = head + b' subscribable="1"'
    body = body[: match.start()] + head + body[head_end:]
    if name == "EndDevice":
        link = f'<SubscriptionListLink href="{path}/sub" all="0"/>'.encode()
        body = body.replace(b"</EndDevice>", link + b"</EndDevice>")
    return body


@dataclass
class Run:
    store: MemoryEventStore
    server: SubscribingUtility
    gateway: Gateway
    notified: list[Response]


async def run_world(
    site: Path,
    *,
    notify: bool,
    seconds: float = 2400,
    copies: int = 1,
    tcp: bool = False,
    route: bool = False,
    scenario: str = SCENARIO,
    notify_suffix: str = "/derc",
) -> Run:
    """``tcp``: the gateway listens on a loopback port (``notifications.listen``) and the notifier
    connects there, instead of a pipe handed to ``Gateway.serve_notification_stream``."""
    store = MemoryEventStore(CATALOGUE)
    clock = SimClock(EPOCH)
    server = SubscribingUtility(
        parse_scenario(scenario, source="test"), server_material(site / "pki"), clock=clock
    )
    sim = SimBattery(BatteryParams(), SiteParams(), seed=5, start_s=EPOCH)
    http_send, http_accept = pipe_listener()
    modbus_send, modbus_accept = pipe_listener()
    modbus = SimModbusServer(sim, clock=clock.now)
    notified: list[Response] = []
    with real_time_limit():
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, http_accept)
            await nursery.start(modbus.serve_pipes, modbus_accept)
            gateway = Gateway(
                config_for(
                    site,
                    extra=NOTIFICATIONS + ('listen = "127.0.0.1:0"\n' if tcp else ""),
                ),
                SunSpecDriver(ModbusTcpClient("battery", 502, connector=pipe_connector(modbus_send))),
                options=GatewayOptions(
                    wall_at_start=clock.now(),
                    seed=7,
                    store=store,
                    http_connector=pipe_connector(http_send),
                    hardware=HardwareConfig(
                        control_period_s=CONTROL_PERIOD_S, sample_period_s=5.0, post_interval_s=60
                    ),
                    log_in_thread=False,
                ),
            )
            async with gateway:
                if notify:
                    await clock.sleep_until(EPOCH + NOTIFY_AT_S)
                    for _ in range(copies):  # more than one: the server duplicated it
                        notified.append(
                            await _notify(
                                site, gateway, server, notify_suffix, tcp=tcp, route=route
                            )
                        )
                await clock.sleep_until(EPOCH + seconds)
                for _ in range(1000):
                    await trio.testing.wait_all_tasks_blocked()
                    if gateway.actors["controls"].idle:
                        break
                assert_live_state_is_the_fold(gateway, store)
            nursery.cancel_scope.cancel()
    return Run(store, server, gateway, notified)


async def _notify(
    site: Path,
    gateway: Gateway,
    server: SubscribingUtility,
    suffix: str,
    *,
    tcp: bool = False,
    route: bool = False,
) -> Response:
    """The utility's notifier: its own certificate as the client's, through a pipe the world hands
    to ``Gateway.serve_notification_stream`` (fleet contract point 4)."""
    location, subscription = server.location_of(suffix)
    body = encode(
        r.Notification(
            subscribedResource=subscription.subscribedResource,
            subscriptionURI=location,
            status=0,
        )
    )
    material = client_context(server_material(site / "pki"))
    if tcp:
        assert gateway.notifications_port is not None
        async with HttpsClient("127.0.0.1", gateway.notifications_port, material) as client:
            return await client.request(
                "POST", "/notify", body=body, headers=(("content-type", SEP_XML),)
            )
    near, far = byte_stream_pair()

    async def connect() -> anyio.abc.ByteStream:
        return near

    async with anyio.create_task_group() as group:
        if route:
            # Aggregator mode: one listener of its own serving each site's route.
            found = gateway.notification_route()
            assert found is not None
            router: Router[Any] = Router()
            router.add("POST", *found)
            device = TlsMaterial(
                str(site / "pki" / "device.pem"),
                str(site / "pki" / "device.key"),
                str(site / "pki" / "ca.pem"),
            )
            shared = HttpsServer(router, server_context(device))
            group.start_soon(shared.serve_connection, far)
        else:
            group.start_soon(gateway.serve_notification_stream, far)
        async with HttpsClient("gateway.example", 443, material, connector=connect) as client:
            response = await client.request(
                "POST", "/notify", body=body, headers=(("content-type", SEP_XML),)
            )
    return response


def _applied_at(store: MemoryEventStore, export_limit_w: int) -> float:
    return next(
        rec.server_time
        for rec in store.read()
        if isinstance(rec.event, LimitsApplied)
        and rec.event.settings.export_limit_w == export_limit_w
    )


@pytest.mark.parametrize(
    ("tcp", "route"),
    [(False, False), (True, False), (False, True)],
    ids=["pipe", "loopback-tcp", "fleet-route"],
)
async def test_a_notified_control_is_applied_within_one_control_period(
    pki: Path, autojump_clock: trio.testing.MockClock, tcp: bool, route: bool
) -> None:
    run = await run_world(pki, notify=True, tcp=tcp, route=route)
    assert [response.status for response in run.notified] == [201]
    store = run.store
    accepted = [rec.event for rec in store.read() if isinstance(rec.event, SubscriptionAccepted)]
    resources = {e.resource for e in accepted}
    assert any(res.endswith("/derc") for res in resources)
    assert any(res.endswith("/dderc") for res in resources)
    assert any(re.fullmatch(r"/edev/[0-9]+", res) for res in resources)
    (received,) = [
        (rec.seq, rec.event) for rec in store.read() if isinstance(rec.event, NotificationReceived)
    ]
    seq, notification = received
    assert notification.http_status == 201
    (prompted,) = [rec.event for rec in store.read() if isinstance(rec.event, PollPrompted)]
    assert prompted.notification_seq == seq and prompted.poll.startswith("derp:")
    # The notified control reaches the battery within one control period of the notification.
    latency = _applied_at(store, 1000) - notification.at_s
    print(f"notification_to_limit_s={latency:.3f}")
    assert 0 <= latency <= CONTROL_PERIOD_S, latency
    # Replay and explain can say so: the control's first sight is linked to the notification.
    (linked,) = [rec.event for rec in store.read() if isinstance(rec.event, ControlsNotified)]
    assert linked.first_seen == ("C0000000000000000000000000000001",)
    assert (linked.notification_seq, linked.notified_at_s) == (seq, notification.at_s)
    # explain tells the control's story with it; replay's timeline has the line.
    model = analyse(store)
    story = "\n".join(
        explain_control(model, "C0000000000000000000000000000001", ForensicTimeline(None))
    )
    assert f"changed by notification at {_utc(notification.at_s)}" in story
    assert f"notification (record {seq})" in story
    timeline = ForensicTimeline(None)
    lines = [line for rec in store.read() if (line := timeline.describe(rec)) is not None]
    assert any("changed by notification at" in line for line in lines)
    assert any(line.startswith("notification: ") for line in lines)
    assert any(line.startswith("subscribed to ") for line in lines)
    # Polling carried on at its rate (the prompted read counted as a poll, the next one a rate on).
    polls = [
        rec.event.at_s
        for rec in store.read()
        if isinstance(rec.event, Polled) and rec.event.resource == prompted.poll
    ]
    prompted_read = min(t for t in polls if t >= prompted.at_s)
    assert prompted_read - prompted.at_s < CONTROL_PERIOD_S
    regular = [t for t in polls if t != prompted_read]
    gaps = [b - a for a, b in zip(polls, polls[1:], strict=False) if b != prompted_read]
    assert regular and all(gap >= POLL_S - 1e-6 for gap in gaps), polls
    # The second control was not notified (a lost notification): the next poll found it anyway.
    second = next(
        rec.server_time
        for rec in store.read()
        if isinstance(rec.event, ControlReceived)
        and rec.event.control.mrid == "C0000000000000000000000000000002"
    )
    assert 0 <= second - (EPOCH + 1500) <= POLL_S
    assert _applied_at(store, 2000) - second <= CONTROL_PERIOD_S


async def test_without_the_notification_the_control_waits_for_the_poll(
    pki: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The same world, nobody notifies: the control is applied only at the next poll (the figure
    the notification improves on)."""
    run = await run_world(pki, notify=False, seconds=1200)
    latency = _applied_at(run.store, 1000) - (EPOCH + NOTIFY_AT_S)
    print(f"poll_to_limit_s={latency:.3f}")
    assert latency > 60, latency
    assert not [rec for rec in run.store.read() if isinstance(rec.event, ControlsNotified)]


async def test_a_duplicated_notification_is_harmless(
    pki: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The same notification three times: each accepted and recorded, the control received and
    linked once, nothing applied twice (the re-read returns the server's state, not the message)."""
    run = await run_world(pki, notify=True, seconds=900, copies=3)
    assert [response.status for response in run.notified] == [201, 201, 201]
    store = run.store
    received = [rec.seq for rec in store.read() if isinstance(rec.event, NotificationReceived)]
    assert len(received) == 3
    receipts = [
        rec.event
        for rec in store.read()
        if isinstance(rec.event, ControlReceived)
        and rec.event.control.mrid == "C0000000000000000000000000000001"
    ]
    assert len(receipts) == 1
    (linked,) = [rec.event for rec in store.read() if isinstance(rec.event, ControlsNotified)]
    assert linked.notification_seq in received
    prompted = [rec.event for rec in store.read() if isinstance(rec.event, PollPrompted)]
    assert 1 <= len(prompted) <= 3
    assert _applied_at(store, 1000) - (EPOCH + NOTIFY_AT_S) <= CONTROL_PERIOD_S


TWO_PROGRAMS = SCENARIO.replace(
    """[[actions]]
at_s = 420""",
    """[[programs]]
id = "retail"
primacy = 2

[[actions]]
at_s = 420
kind = "create_control"
mrid = "C00000000000000000000000000000AA"
program = "retail"
start_s = 420
duration_s = 600
modes = { opModExpLimW = 3000 }

[[actions]]
at_s = 420""",
    1,
)


async def test_a_notification_credits_only_the_controls_of_the_list_it_named(
    pki: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """Review of issue 19, finding 9: the prompt was kept per poll (the DERProgramList), so every
    program's controls seen by the prompted read were credited to the notification, though it
    named one program's DERControlList. A control new in the other program is seen by the same
    read but not linked to the notification."""
    run = await run_world(
        pki, notify=True, seconds=900, scenario=TWO_PROGRAMS, notify_suffix="/1/derc"
    )
    assert [response.status for response in run.notified] == [201]
    store = run.store
    (notified,) = [rec.event for rec in store.read() if isinstance(rec.event, NotificationReceived)]
    first_seen = {
        rec.event.control.mrid: rec.server_time
        for rec in store.read()
        if isinstance(rec.event, ControlReceived)
    }
    # The same prompted read saw both programs' new controls…
    assert (
        first_seen["C0000000000000000000000000000001"]
        == first_seen["C00000000000000000000000000000AA"]
    )
    # …but only the notified list's control is linked to the notification.
    linked = [rec.event for rec in store.read() if isinstance(rec.event, ControlsNotified)]
    assert notified.resource == "/derp/1/derc"  # the network program's list
    assert [e.first_seen for e in linked] == [("C0000000000000000000000000000001",)]


async def test_a_gateway_without_notifications_closes_a_stream_handed_in(
    pki: Path, autojump_clock: trio.testing.MockClock
) -> None:
    gateway = Gateway(
        config_for(pki),
        SunSpecDriver(ModbusTcpClient("battery", 502)),
        options=GatewayOptions(store=MemoryEventStore(CATALOGUE), log_in_thread=False),
    )
    near, far = byte_stream_pair()
    with trio.fail_after(5):
        await gateway.serve_notification_stream(far)
        with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
            await near.receive()
    assert gateway.listener_context is None


async def test_a_list_failing_for_one_poll_keeps_its_subscription(
    pki: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The program's control list and default answer 500 for one poll cycle: what could not be read
    keeps its subscription (no DELETE and new POST for a passing server fault)."""
    failing = SCENARIO + """
[[actions]]
at_s = 550
kind = "fail"
duration_s = 100
status = 500
paths = ["/derp/"]
methods = ["GET"]
"""
    run = await run_world(pki, notify=False, seconds=1200, scenario=failing)
    store = run.store
    failed = [
        q for q in run.server.requests if q.path.startswith("/derp/") and q.status == 500
    ]
    assert failed, "the fault window caught no read"
    assert not [rec for rec in store.read() if isinstance(rec.event, SubscriptionEnded)]
    accepted = [rec.event for rec in store.read() if isinstance(rec.event, SubscriptionAccepted)]
    assert len(accepted) == len({e.resource for e in accepted})  # each subscribed once
