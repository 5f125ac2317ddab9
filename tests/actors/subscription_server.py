"""A small fake utility for the gateway's subscription tests (issue 19 point 3; C1's simulated
server is built elsewhere): an EndDevice SubscriptionList over mutual TLS on in-memory pipes, that
creates, lists, forgets (a restart) and deletes subscriptions, refuses chosen resources, and
notifies the gateway's listener as a utility's notifier would (its own client certificate)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from actors.https import HttpsClient, HttpsServer, PeerInfo
from actors.pipe import pipe_connector, pipe_listener
from tests.tls_fixtures import PkiFiles
from transport.http.messages import SEP_XML, Request, Response
from transport.http.router import Router
from transport.sep2 import decode, encode
from transport.sep2 import resources as r
from transport.tls import client_context, server_context

SUBSCRIPTIONS = "/edev/3/sub"


@dataclass
class FakeUtility:
    pki: PkiFiles
    #: resource -> HTTP status the POST of a subscription to it is refused with
    refuse: dict[str, int] = field(default_factory=dict)
    held: dict[str, r.Subscription] = field(default_factory=dict)  # location -> subscription
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    created: int = 0

    def router(self) -> Router[Any]:
        router: Router[Any] = Router()
        router.add("POST", SUBSCRIPTIONS, self._create)
        router.add("GET", SUBSCRIPTIONS + "/{id}", self._read)
        router.add("DELETE", SUBSCRIPTIONS + "/{id}", self._delete)
        return router

    def restart(self) -> None:
        """A server restart that loses every subscription (no notification is sent)."""
        self.held.clear()

    def location_of(self, resource: str) -> str:
        (location,) = [k for k, s in self.held.items() if s.subscribedResource == resource]
        return location

    async def _create(self, request: Request, peer: PeerInfo) -> Response:
        self.requests.append(("POST", request.target))
        subscription = decode(request.body, r.Subscription)
        status = self.refuse.get(subscription.subscribedResource)
        if status is not None:
            return Response(status, (("content-type", "text/plain"),), b"not subscribable here")
        self.created += 1
        location = f"{SUBSCRIPTIONS}/{self.created}"
        self.held[location] = subscription
        return Response(201, (("location", location),))

    async def _read(self, request: Request, peer: PeerInfo) -> Response:
        self.requests.append(("GET", request.target))
        subscription = self.held.get(request.target)
        if subscription is None:
            return Response(404)
        body = encode(r.Subscription(**{**_fields(subscription), "href": request.target}))
        return Response(200, (("content-type", SEP_XML),), body)

    async def _delete(self, request: Request, peer: PeerInfo) -> Response:
        self.requests.append(("DELETE", request.target))
        if self.held.pop(request.target, None) is None:
            return Response(404)
        return Response(204)


def _fields(subscription: r.Subscription) -> dict[str, Any]:
    return {f: getattr(subscription, f) for f in subscription.__struct_fields__}


@asynccontextmanager
async def utility_server(
    pki: PkiFiles, group: TaskGroup, utility: FakeUtility
) -> AsyncIterator[HttpsClient]:
    """Serve ``utility`` on pipes; yields the gateway's client to it (the device certificate)."""
    send, accept = pipe_listener()
    # A long keep-alive: a POST on a connection the server closed meanwhile is not resent (not
    # idempotent), which would make the back-off figures depend on the idle timeout.
    server = HttpsServer(utility.router(), server_context(pki.server), idle_timeout_s=86_400)
    await group.start(server.serve_pipes, accept)
    async with HttpsClient(
        "utility.test", 443, client_context(pki.device), connector=pipe_connector(send)
    ) as client:
        yield client


async def notify(
    pki: PkiFiles,
    connect: Any,
    subscription: r.Subscription,
    location: str,
    *,
    status: int = 0,
) -> Response:
    """POST a Notification as the utility's notifier (its certificate as the client's)."""
    body = encode(
        r.Notification(
            subscribedResource=subscription.subscribedResource,
            subscriptionURI=location,
            status=status,
        )
    )
    async with HttpsClient("gateway.test", 443, client_context(pki.server), connector=connect) as c:
        with anyio.fail_after(30):
            return await c.request(
                "POST",
                subscription.notificationURI.partition("gateway.test")[2] or "/notify",
                body=body,
                headers=(("content-type", SEP_XML),),
            )
