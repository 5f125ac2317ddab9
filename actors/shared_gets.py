"""Discovery once for a fleet: identical GETs in flight at the same time go to the server once.

The sites of a fleet (``sep2gw.fleet``) that talk on the aggregator certificate read the same
resources — DeviceCapability, Time, the EndDeviceList, a shared program's lists — often at the same
instant (they all start together, and polls at one pollRate stay in step). :class:`SharedGets` is
the single-flight table their HTTPS clients share: the first GET of a target goes to the server,
and every other site asking for that target (with the same certificate and ``Accept``) while it is
in flight waits for that answer instead of sending its own. Nothing is kept afterwards: there is no
cache and no TTL, so no site is ever handed a stale document — a GET that starts after the answer
arrived goes to the server. Each site's link still records and decodes the response it used, at
the instant it received it.

Only a site whose own connection is free leads (a site whose connection is busy — a slow mirror POST
— sends its GET itself, so nobody waits on another site's queue). A failure that any site's request
would have had (the server unreachable, a TLS refusal, a body over the limit) is every waiter's
failure; a failure of the leader's own connection (a reset kept-alive connection, its own deadline,
broken framing) is not: each waiter then sends its own GET, as it does when its own deadline runs out
while waiting — a site's link failure is always one of a request it sent. A leader cancelled by its
own site (a restart) hands nothing over: the waiters ask again, one of them leading.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import anyio

from actors.https import HttpsClient
from transport.errors import BodyTooLarge, ConnectFailed, LinkError, TlsError
from transport.http.messages import Headers, Response

__all__ = ["CoalescingClient", "SharedDecodes", "SharedGets", "SharedGetsStatistics"]

#: (certificate identity, target, Accept): answers are only shared between equal requests made
#: with the same client certificate (the server answers per certificate).
_Key = tuple[str, str, str]


@dataclass(slots=True)
class _Flight:
    done: anyio.Event = field(default_factory=anyio.Event)
    response: Response | None = None
    error: LinkError | None = None


@dataclass(frozen=True, slots=True)
class SharedGetsStatistics:
    sent: int  # GETs that went to the server through the table
    joined: int  # GETs answered by a request another site had in flight
    decoded: int = 0  # documents a site took decoded from another site instead of parsing
    own: int = 0  # GETs a site sent itself: its connection was busy, or the shared one failed it


#: Decoded documents a fleet keeps for its sites to share (the oldest forgotten first). Each entry
#: is a document some site holds anyway; the table only lets the others hold the same object.
SHARED_DECODED: Final = 1024


class SharedDecodes:
    """Documents decoded once for every site of a fleet: keyed by the resource type and the exact
    bytes (equal bytes decode to equal frozen resources, so sharing one object is safe). Without
    it, every site decoded and held its own copy of each shared document — at 1,000 sites each held
    every page of the aggregator's EndDeviceList: memory that grew with the square of the fleet."""

    def __init__(self, capacity: int = SHARED_DECODED) -> None:
        self._capacity = capacity
        self._decoded: dict[tuple[type[Any], bytes], tuple[bytes, Any]] = {}
        self.hits = 0

    def decoded(self, cls: type[Any], body: bytes) -> tuple[bytes, Any] | None:
        """The document these bytes decode to, with the fleet's one copy of the bytes: a site
        that keeps the bytes of its last poll (to know the next one unchanged) keeps that copy,
        not its own (at 1,000 sites each kept every page of the aggregator's MirrorUsagePointList,
        some 700 kB a site)."""
        key = (cls, body)
        found = self._decoded.pop(key, None)
        if found is not None:
            self.hits += 1
            self._decoded[key] = found  # the most recently used is the last to go
        return found

    def remember(self, cls: type[Any], body: bytes, resource: Any) -> None:
        if len(self._decoded) >= self._capacity:
            # The least recently used: what every site reads again (a shared list's pages) stays
            # while each site's own changing documents (its Time) pass through.
            del self._decoded[next(iter(self._decoded))]
        body = bytes(body)
        self._decoded[(cls, body)] = (body, resource)


#: Failures of the shared request that any site's own request would have had (the same server, the
#: same certificate, the same document): handed to every waiter. Any other failure belongs to the
#: leader's connection (a reset, broken framing, its own deadline): each waiter asks itself.
_SHARED_FAILURES: Final = (BodyTooLarge, ConnectFailed, TlsError)


class SharedGets(SharedDecodes):
    """The single-flight table shared by the HTTPS clients of a fleet's sites (one per process),
    and the documents they decoded (:class:`SharedDecodes`)."""

    def __init__(self) -> None:
        super().__init__()
        self._flights: dict[_Key, _Flight] = {}
        self._sent = 0
        self._joined = 0
        self._own = 0

    def statistics(self) -> SharedGetsStatistics:
        return SharedGetsStatistics(
            sent=self._sent, joined=self._joined, decoded=self.hits, own=self._own
        )

    async def get(
        self,
        key: _Key,
        fetch: Callable[[], Awaitable[Response]],
        *,
        timeout_s: float,
        may_lead: bool = True,
    ) -> Response:
        """``fetch()``'s response, or the response of the identical request in flight.

        ``may_lead``: whether ``fetch()`` would start at once (the site's connection is free); a
        site that would first queue behind its own busy connection never makes others wait."""
        while True:
            flight = self._flights.get(key)
            if flight is None:
                if not may_lead:
                    return await self._own_request(fetch)
                return await self._lead(key, fetch)
            with anyio.move_on_after(timeout_s):
                await flight.done.wait()
            if not flight.done.is_set():
                # the deadline was this site's wait for another site's GET, not a GET it sent
                return await self._own_request(fetch)
            if flight.response is not None:
                self._joined += 1
                return flight.response
            if isinstance(flight.error, _SHARED_FAILURES):
                self._joined += 1
                raise _copy_of(flight.error)
            if flight.error is not None:
                return await self._own_request(fetch)  # the leader's connection failed it
            # the leader was cancelled: ask again (one of the waiters leads now)

    async def _own_request(self, fetch: Callable[[], Awaitable[Response]]) -> Response:
        self._own += 1
        return await fetch()

    async def _lead(self, key: _Key, fetch: Callable[[], Awaitable[Response]]) -> Response:
        flight = _Flight()
        self._flights[key] = flight
        self._sent += 1
        try:
            flight.response = await fetch()
            return flight.response
        except LinkError as error:
            flight.error = error
            raise
        finally:
            del self._flights[key]
            flight.done.set()


def _copy_of(error: LinkError) -> LinkError:
    """A copy of ``error`` for one waiter (an exception object is raised, and gets a traceback,
    once). Made without calling the constructor: ``copy.copy`` rebuilds an exception from its
    ``args`` (the message), which a subclass whose constructor takes other arguments turns into
    another message — ``BodyTooLarge(limit)`` said "exceeds the message body exceeds the N-byte
    limit-byte limit"."""
    clone = type(error).__new__(type(error))
    clone.args = error.args
    clone.__dict__.update(error.__dict__)
    return clone


class CoalescingClient(HttpsClient):
    """An :class:`HttpsClient` (one site's connection) whose GETs without a body go through a
    fleet's :class:`SharedGets`; every other request is its own."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        shared: SharedGets,
        identity: str,
        request_timeout_s: float = 30.0,
        connector: Callable[[], Awaitable[anyio.abc.ByteStream]] | None = None,
    ) -> None:
        """``identity``: the client certificate's LFDI (requests of different certificates are
        never shared)."""
        super().__init__(
            host, port, context, request_timeout_s=request_timeout_s, connector=connector
        )
        self._shared = shared
        self._identity = identity
        self._default_timeout_s = request_timeout_s

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Headers = (),
        timeout_s: float | None = None,
    ) -> Response:
        if method.upper() != "GET" or body:
            return await super().request(
                method, target, body=body, headers=headers, timeout_s=timeout_s
            )
        accept = next((v for k, v in headers if k.lower() == "accept"), "")
        timeout = self._default_timeout_s if timeout_s is None else timeout_s

        async def fetch() -> Response:
            return await HttpsClient.request(
                self, method, target, body=body, headers=headers, timeout_s=timeout_s
            )

        return await self._shared.get(
            (self._identity, target, accept),
            fetch,
            timeout_s=timeout,
            may_lead=not self._lock.locked(),  # else it would wait for its own connection first
        )
