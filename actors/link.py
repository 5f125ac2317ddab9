"""The link: the gateway's one HTTPS client to the utility server, typed in 2030.5 resources.

It owns the connection (``actors.https.HttpsClient`` serialises requests), encodes and decodes
resources with the hardened codec, pages lists (``?s=&l=``), and turns every non-2xx answer into
``HttpFailure`` carrying the status the decision machines need (301/404 re-discover, 429/5xx back
off, other 4xx halt). It also knows whether the server is reachable: any HTTP answer means online, a
network failure or timeout means offline, and each change is reported once, as a ``LinkState`` message on ``reachability``.

Bounded retry on every failure path (issue 15): a resource whose request failed at the link (connect,
TLS, protocol, truncated or oversized answer, timeout), with an HTTP 5xx or 429, or with a body that
is not the resource, is held back: the next request for it within the hold fails at once with
``LinkBackingOff`` and never reaches the network. Link errors in a row, whatever resource they were
for, hold the whole link back the same way (every resource of a server that drops every
connection). The hold is the registration walk's ``BackoffPolicy`` for the failures in a row (2 s
doubling to 300 s, plus a jitter of up to a quarter drawn from the seeded ``rng``); a usable answer
clears the resource's hold, any HTTP answer the link's. Every caller gets it, so no caller's loop
(a re-poll on reconnection, queued Responses, readings) can turn a broken server into a reconnect
loop. Each hold is recorded with its draw (``link.backoff.v1``).
"""

from __future__ import annotations

import logging
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from actors.clock import Clock
from actors.https import HttpsClient
from actors.log_writer import LogWriter
from actors.messages import LinkState
from actors.rng import RandomSource
from actors.shared_gets import SharedDecodes
from events.base import Event
from events.envelope import Append
from events.link_events import (
    LINK_STREAM,
    CsipAusFault,
    CsipAusVersionSettled,
    LinkBackedOff,
    ListCapped,
)
from statemachines.registration import BackoffPolicy
from transport.errors import LinkError
from transport.http.messages import Response
from transport.http.outcome import (
    BackOff,
    ClientError,
    Created,
    Moved,
    Ok,
    ServerError,
    classify_response,
)
from transport.sep2 import Sep2CodecError, decode, encode
from transport.sep2.versions import (
    V1_2,
    CsipAusVersion,
    Learned,
    csipaus_namespaces,
    foreign_csipaus,
    version_of_namespace,
)

__all__ = [
    "HELD_RESOURCES",
    "LINK_CAP_S",
    "PAGE_SIZE",
    "BadDocument",
    "HttpFailure",
    "Link",
    "LinkBackingOff",
    "LinkHalted",
    "LinkStatistics",
    "describe_failure",
]

S = TypeVar("S", bound=msgspec.Struct)
logger = logging.getLogger(__name__)

#: Items asked for per page of a list (servers such as envoy return one item unless asked).
PAGE_SIZE: Final = 100
#: A list is read through at most this many pages: a server whose ``all`` keeps growing cannot
#: keep the walk busy forever.
MAX_PAGES: Final = 50
#: Documents remembered for ``get`` (by path): the polled resources and their pages. A server that
#: keeps inventing paths only evicts the oldest.
DECODED_CACHE: Final = 64
#: Resources whose failures in a row the link remembers (a server inventing failing paths only
#: evicts the oldest).
HELD_RESOURCES: Final = 256
#: The longest the whole link is held back after link errors in a row (a server that drops every
#: connection is tried about every 16-20 s: at most ~12 connections in 150 s, and the first request
#: after an outage within ~20 s of its end).
LINK_CAP_S: Final = 16.0


class HttpFailure(Exception):
    """The server answered, but not with success. ``retry_after_s`` from a 429/503 if it said."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        *,
        retry_after_s: float | None = None,
        why: str = "",
    ) -> None:
        detail = f": {why}" if why else ""
        super().__init__(f"{method} {path}: HTTP {status}{detail}")
        self.method = method
        self.path = path
        self.status = status
        self.retry_after_s = retry_after_s


class LinkHalted(LinkError):
    """Traffic to this server was stopped on purpose (e.g. a PIN mismatch, PROTOCOL.md §2.4)."""


class LinkBackingOff(LinkError):
    """Not sent: this resource failed just before and is held back until its back-off ends."""

    retryable = True


class BadDocument(HttpFailure):
    """2xx, but the body is not the resource we asked for (or not valid 2030.5 XML)."""

    def __init__(self, method: str, path: str, status: int, error: Exception) -> None:
        super().__init__(method, path, status, why=f"unusable body: {error}")
        self.error = error


class LinkStatistics(msgspec.Struct, frozen=True):
    requests: int
    failures: int
    reachable: bool
    #: Requests refused without touching the network because their resource was held back.
    held_back: int = 0


class Link:
    def __init__(
        self,
        client: HttpsClient,
        *,
        clock: Clock,
        reachability: MemoryObjectSendStream[LinkState] | None = None,
        versions: tuple[CsipAusVersion, ...] = (V1_2,),
        timeout_s: float | None = None,
        backoff: BackoffPolicy | None = None,
        log: LogWriter | None = None,
        rng: RandomSource | None = None,
        shared: SharedDecodes | None = None,
    ) -> None:
        """``reachability``: where each change of reachability goes, as a :class:`LinkState` message
        (offline with the typed failure that made it so); ``versions``: the CSIP-AUS versions the
        profile allows, in preference order (the first is in force until the server's is learned;
        empty: plain 2018, no CSIP-AUS elements); ``backoff``: the hold after failures in a row
        (default: the registration walk's); ``log``: where each hold and version is recorded
        (``link.backoff.v1``, ``link.csipaus_version.v1``); ``rng``: the jitter's source
        (``None``: no jitter); ``shared``: the decoded documents the sites of a fleet share
        (``actors.shared_gets``): a body another site decoded is not parsed again, and every
        site holds the same resource object instead of a copy."""
        self._shared = shared
        self._client = client
        self._clock = clock
        self._reachability = reachability
        self._versions = tuple(versions)
        self._version: CsipAusVersion | None = self._versions[0] if self._versions else None
        # Settled by the well-known document or the server's namespaces: no longer learned.
        self._version_settled = False
        self._csipaus_faults: set[tuple[str, str, str]] = set()
        self._timeout_s = timeout_s
        self._reachable: bool | None = None
        self._halted: str | None = None
        # path -> (type, body, resource): a poll whose body is byte-identical to the previous one
        # of that path is not parsed again (resources are frozen values, so sharing one is safe).
        self._decoded: dict[str, tuple[type[Any], bytes, Any]] = {}
        self.decode_hits = 0
        self._requests = 0
        self._failures = 0
        self._backoff = backoff or BackoffPolicy()
        # The whole link's hold: the same policy, capped lower, so the first request after an
        # outage comes within LINK_CAP_S (+ jitter) of its end, as a utility expects of a re-poll.
        self._link_backoff = msgspec.structs.replace(
            self._backoff, cap_s=min(self._backoff.cap_s, LINK_CAP_S)
        )
        self._link_up = True
        self._log = log
        # resource (path without query) -> (failures in a row, monotonic end of its hold)
        self._held: dict[str, tuple[int, float]] = {}
        self._held_back = 0
        self._rng = rng
        self._last_failure = ""

    def statistics(self) -> LinkStatistics:
        return LinkStatistics(
            self._requests, self._failures, bool(self._reachable), self._held_back
        )

    def held_until(self, path: str) -> float | None:
        """Monotonic end of ``path``'s hold (or the whole link's), if it is held back now."""
        now = self._clock.monotonic()
        ends = [
            held[1]
            for held in (self._held.get(_resource(path)), self._held.get(_WHOLE_LINK))
            if held is not None and held[1] > now
        ]
        return max(ends, default=None)

    async def _hold(
        self,
        method: str,
        path: str,
        error: Exception,
        http_status: int | None,
        body_bytes: int | None = None,
    ) -> None:
        """Issue 15 point 2: hold the failed resource back for the walk's back-off delay of its
        failures in a row (a resource that last failed longer ago than the cap starts again at
        one), and record why."""
        if http_status is None:
            # A link error while the link was up is this resource's failure too; once the link
            # is down, further link errors are the link's (an outage must not leave every
            # resource held for long after it ends).
            failures, hold, jitter = self._hold_key(_WHOLE_LINK, self._link_backoff)
            if self._link_up:
                own = self._hold_key(_resource(path), self._backoff)
                if own[1] + own[2] > hold + jitter:
                    failures, hold, jitter = own
            self._link_up = False
        else:
            failures, hold, jitter = self._hold_key(_resource(path), self._backoff)
        if self._log is None:
            return
        reading = self._clock.read()
        await self._record(
            LinkBackedOff(
                method=method,
                path=path,
                error=type(error).__name__,
                reason=str(error)[:_REASON_CHARS],
                http_status=http_status,
                body_bytes=body_bytes,
                failures=failures,
                hold_s=hold,
                jitter_s=jitter,
                until_s=reading.server_time + hold + jitter,
                at_s=reading.server_time,
            )
        )

    async def _record(self, event: Event) -> None:
        if self._log is None:
            return
        reading = self._clock.read()
        await self._log.append(
            [
                Append(
                    stream=LINK_STREAM,
                    events=(event,),
                    server_time=reading.server_time,
                    monotonic=reading.monotonic,
                )
            ]
        )

    @property
    def csipaus_ns(self) -> str | None:
        """The CSIP-AUS namespace requests are written in (``None``: plain 2018); what is put
        in a DER information document depends on it (PROTOCOL.md §5)."""
        return None if self._version is None else self._version.namespace

    @property
    def csipaus_version(self) -> CsipAusVersion | None:
        """The CSIP-AUS version in force (``None``: plain 2018)."""
        return self._version

    @property
    def csipaus_versions(self) -> tuple[CsipAusVersion, ...]:
        """The versions the profile allows, in preference order."""
        return self._versions

    @property
    def version_settled(self) -> bool:
        """Whether the server's version is known (by the well-known document or its namespaces)."""
        return self._version_settled

    def assume_version(self, version: CsipAusVersion) -> None:
        """Write ``version`` from now on without learning another from namespaces, unrecorded
        (discovery records it once its DeviceCapability answered, or falls back)."""
        self._version = version
        self._version_settled = True

    async def settle_version(
        self,
        version: CsipAusVersion,
        learned: Learned,
        *,
        path: str = "",
        dcap_path: str = "",
        offered: tuple[str, ...] = (),
        fallback: str = "",
        fallback_kind: str = "",
    ) -> None:
        """Issue 18 point 2: from now on write every CSIP-AUS element in ``version``'s namespace,
        recorded as ``link.csipaus_version.v1``. ``Learned.CONFIGURED`` leaves the version open to
        what the server's namespaces say next."""
        self._version = version
        self._version_settled = learned is not Learned.CONFIGURED
        logger.info("CSIP-AUS %s in force (%s)", version.name, learned.value)
        await self._record(
            CsipAusVersionSettled(
                version=version.name,
                namespace=version.namespace,
                learned=learned.value,
                path=path,
                dcap_path=dcap_path,
                offered=offered,
                fallback=fallback,
                fallback_kind=fallback_kind,
                at_s=self._clock.server_time(),
            )
        )

    async def _observe_namespaces(self, path: str, body: bytes) -> None:
        """PROTOCOL.md §5 and issue 18 point 2: learn the server's version from the CSIP-AUS
        namespace of what it sends, and report (once each) a namespace the codec does not know
        with the elements it dropped, a version the profile does not allow, or a version other
        than the one in force."""
        declared = csipaus_namespaces(body)
        if not declared or self._version is None:
            return
        for foreign in foreign_csipaus(body):
            dropped = ", ".join(foreign.dropped) or "no elements"
            logger.warning(
                "server fault: %s is in CSIP-AUS namespace %s, which this gateway does not know: "
                "not read: %s",
                path,
                foreign.namespace,
                dropped,
            )
            await self._csipaus_fault(
                path, "unknown-namespace", foreign.namespace, dropped=foreign.dropped
            )
        for namespace in declared:
            seen = version_of_namespace(namespace)
            if seen is None or seen == self._version:
                continue
            if seen not in self._versions:
                await self._csipaus_fault(path, "not-allowed", namespace)
            elif self._version_settled:
                await self._csipaus_fault(path, "mixed", namespace)
            else:
                await self.settle_version(seen, Learned.NAMESPACES, path=_resource(path))
        if not self._version_settled and self._version.namespace in declared:
            await self.settle_version(self._version, Learned.NAMESPACES, path=_resource(path))

    async def _csipaus_fault(
        self, path: str, kind: str, namespace: str, *, dropped: tuple[str, ...] = ()
    ) -> None:
        key = (_resource(path), kind, namespace)
        if key in self._csipaus_faults or len(self._csipaus_faults) >= CSIPAUS_FAULTS:
            return
        self._csipaus_faults.add(key)
        if kind != "unknown-namespace":
            logger.warning(
                "server fault: %s is in CSIP-AUS namespace %s (%s); writing %s",
                path,
                namespace,
                kind,
                self._version,
            )
        await self._record(
            CsipAusFault(
                path=_resource(path),
                kind=kind,
                namespace=namespace,
                in_force="" if self._version is None else self._version.name,
                dropped=dropped,
                at_s=self._clock.server_time(),
            )
        )

    @property
    def last_failure(self) -> str:
        """The latest link failure, typed (``UnknownCA: …``, ``LinkTimeout: …``, ``ConnectFailed:
        …``): why the server is unreachable when it is. Empty before any failure."""
        return self._last_failure

    @property
    def reachable(self) -> bool | None:
        """``None`` until the first request has an outcome."""
        return self._reachable

    @property
    def connected(self) -> bool:
        """Whether the client holds an open connection to the server."""
        return self._client.connected

    async def aclose(self) -> None:
        await self._client.aclose()

    def halt(self, reason: str) -> None:
        """Refuse every further request without touching the network, with ``reason``."""
        self._halted = reason

    @property
    def halted(self) -> str | None:
        return self._halted

    async def _mark(self, reachable: bool) -> None:
        if reachable != self._reachable:
            self._reachable = reachable
            if self._reachability is not None:
                reason = "" if reachable else self.last_failure
                await self._reachability.send(LinkState(online=reachable, reason=reason))

    def _hold_key(self, key: str, policy: BackoffPolicy) -> tuple[int, float, float]:
        """One more failure in a row for ``key`` (a resource, or the whole link): its count, the
        policy's delay and the jitter drawn. A failure longer than the cap after the previous
        hold ended starts again at one."""
        now = self._clock.monotonic()
        previous = self._held.pop(key, None)
        failures = 1
        if previous is not None and now - previous[1] < policy.cap_s:
            failures = previous[0] + 1
        hold = policy.base_delay(failures)
        jitter = 0.0
        if self._rng is not None:
            jitter = self._rng.integer(0, int(hold * policy.jitter_fraction * 1000)) / 1000
        if len(self._held) >= HELD_RESOURCES:
            del self._held[next(iter(self._held))]  # the oldest
        self._held[key] = (failures, now + hold + jitter)
        return failures, hold, jitter

    async def _exchange(
        self, method: str, path: str, body: bytes = b"", *, accept: str = "application/sep+xml"
    ) -> Response:
        if self._halted is not None:
            raise LinkHalted(f"{method} {path}: traffic to the server is halted: {self._halted}")
        until = self.held_until(path)
        if until is not None:
            self._held_back += 1
            raise LinkBackingOff(
                f"{method} {path}: held back {until - self._clock.monotonic():.1f} s more after "
                "failures in a row"
            )
        self._requests += 1
        try:
            response = await self._client.request(
                method,
                path,
                body=body,
                headers=(("accept", accept),),
                timeout_s=self._timeout_s,
            )
        except LinkError as error:
            self._failures += 1
            self._last_failure = describe_failure(error)
            # Recorded before the reachability change, so the log says why before COMMS LOST.
            await self._hold(method, path, error, None)
            await self._mark(False)
            raise
        await self._mark(True)
        self._held.pop(_WHOLE_LINK, None)  # an HTTP answer: the link itself works
        self._link_up = True
        outcome = classify_response(response, now_epoch_s=self._clock.server_time())
        match outcome:
            case Ok() | Created():
                return response  # the caller clears the hold once the answer is usable
            case BackOff(status=status, retry_after_s=retry):
                self._failures += 1
                failure = HttpFailure(method, path, status, retry_after_s=retry)
                await self._hold(method, path, failure, status, len(response.body))
                raise failure
            case Moved(status=status, location=location):
                self._failures += 1
                raise HttpFailure(
                    method, path, status, why=f"moved to {location}" if location else "moved"
                )
            case ServerError(status=status):
                self._failures += 1
                failure = HttpFailure(method, path, status, why=_reason(response))
                await self._hold(method, path, failure, status, len(response.body))
                raise failure
            case ClientError(status=status):
                self._failures += 1
                raise HttpFailure(method, path, status, why=_reason(response))
        raise AssertionError(outcome)

    async def get(self, path: str, cls: type[S]) -> S:
        """GET and decode. Most polls return what the previous poll of ``path`` returned: the same
        bytes are the same document, so its decoded resource is reused (the caller sees and records
        the poll exactly as before; only the XML parse and validation are skipped)."""
        response = await self._exchange("GET", path)
        body = response.body
        cached = self._decoded.get(path)
        if cached is not None and cached[0] is cls and cached[1] == body:
            self._held.pop(_resource(path), None)
            self.decode_hits += 1
            resource: S = cached[2]
            return resource
        await self._observe_namespaces(path, body)
        try:
            shared = None if self._shared is None else self._shared.decoded(cls, body)
            if shared is None:
                resource = decode(body, cls)
            else:
                body, resource = shared  # the fleet's one copy of the bytes is the one kept
        except Sep2CodecError as exc:
            self._failures += 1
            self._decoded.pop(path, None)
            failure = BadDocument("GET", path, response.status, exc)
            await self._hold("GET", path, failure, response.status, len(body))
            raise failure from exc
        if path not in self._decoded and len(self._decoded) >= DECODED_CACHE:
            del self._decoded[next(iter(self._decoded))]  # the oldest
        self._decoded[path] = (cls, bytes(body), resource)
        if self._shared is not None and shared is None:
            self._shared.remember(cls, body, resource)
        self._held.pop(_resource(path), None)
        return resource

    async def fetch(self, path: str, *, accept: str) -> Response:
        """GET ``path`` as is (no decoding), for what is not a 2030.5 document (the v1.3
        well-known JSON). Non-2xx answers raise :class:`HttpFailure` as for any request."""
        response = await self._exchange("GET", path, accept=accept)
        self._held.pop(_resource(path), None)
        return response

    async def get_list(
        self, path: str, cls: type[S], items: str, *, pages: int = MAX_PAGES
    ) -> tuple[S, list[Any]]:
        """Every item of a paged list (``items`` names the repeated element field): the first page's
        resource (for ``pollRate``, ``all``) and all items in server order; ``pages``: read at most
        that many pages (fewer than :data:`MAX_PAGES`: the caller reads the rest, or not, itself).

        Bounded whatever the server sends (issue 15), each cut recorded as ``link.list_capped.v1``:
        a page holds at most the :data:`PAGE_SIZE` items asked for (the rest are dropped), a page
        repeating the previous one ends the list, and a list is at most :data:`MAX_PAGES` pages.
        A list whose ``all`` announces more than that is a server fault: only its first page (the
        first items in server order: for a DERControlList, the earliest controls) is read, so a
        hostile ``all`` cannot make every poll cycle fetch the whole cap."""
        if pages < 1:
            raise ValueError(f"get_list reads at least one page, asked for {pages}")
        collected: list[Any] = []
        first: S | None = None
        previous: list[Any] | None = None
        for _ in range(min(pages, MAX_PAGES)):
            page = await self.get(_paged(path, len(collected), PAGE_SIZE), cls)
            first = first or page
            got = list(getattr(page, items) or ())
            if len(got) > PAGE_SIZE:
                await self._capped(
                    path,
                    f"a page of {len(got)} items; {PAGE_SIZE} were asked for",
                    len(collected) + PAGE_SIZE,
                )
                got = got[:PAGE_SIZE]
            if got and got == previous:
                await self._capped(path, "a page repeats the previous one", len(collected))
                break
            previous = got
            collected.extend(got)
            total = getattr(page, "all", None)
            if not got or total is None or len(collected) >= int(total):
                break
            if int(total) > MAX_PAGES * PAGE_SIZE:
                await self._capped(
                    path,
                    f"all={total}, beyond the {MAX_PAGES * PAGE_SIZE} items a list may hold: "
                    "only its first page is read",
                    len(collected),
                )
                break
        assert first is not None
        return first, collected

    async def _capped(self, path: str, reason: str, kept: int) -> None:
        logger.warning("server fault: list %s cut: %s", path, reason)
        await self._record(
            ListCapped(path=path, reason=reason, kept=kept, at_s=self._clock.server_time())
        )

    async def post(self, path: str, resource: msgspec.Struct) -> str | None:
        """POST; returns the ``Location`` of a 201 (absolute paths only: the link has one origin)."""
        return (await self.post_answered(path, resource))[1]

    async def post_answered(self, path: str, resource: msgspec.Struct) -> tuple[int, str | None]:
        """POST; returns the HTTP status the server answered (2xx) and the ``Location``, if any."""
        response = await self._exchange("POST", path, encode(resource, csipaus_ns=self.csipaus_ns))
        self._held.pop(_resource(path), None)
        location = response.header("location")
        return response.status, (_path_of(location) if location else None)

    async def put(self, path: str, resource: msgspec.Struct) -> None:
        await self._exchange("PUT", path, encode(resource, csipaus_ns=self.csipaus_ns))
        self._held.pop(_resource(path), None)

    async def delete(self, path: str) -> int:
        """DELETE (a subscription the gateway no longer wants); returns the 2xx status."""
        response = await self._exchange("DELETE", path)
        self._held.pop(_resource(path), None)
        return response.status


#: CSIP-AUS faults remembered, so each (path, kind, namespace) is recorded once (a server inventing
#: paths only stops new ones being recorded, with a warning each).
CSIPAUS_FAULTS: Final = 256

#: A recorded reason is cut to this many characters (a server's error text is not ours to keep whole).
_REASON_CHARS: Final = 300


#: The key of the whole link's hold (never a path: paths start with "/").
_WHOLE_LINK: Final = "*"


def _resource(path: str) -> str:
    """The resource a request is for: its path without the query (pages of a list are one)."""
    return path.partition("?")[0]


def _paged(path: str, start: int, limit: int) -> str:
    separator = "&" if "?" in path else "?"
    return f"{path}{separator}s={start}&l={limit}"


def _path_of(location: str) -> str:
    """A Location may be absolute (``https://host/edev/3``) or a path; keep the path (and query)."""
    parts = urlsplit(location)
    if not parts.scheme:
        return location
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _reason(response: Response) -> str:
    text = response.body[:200].decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else ""


def describe_failure(exc: LinkError) -> str:
    """A link failure in one short line: its type (the classification) and why."""
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else f"{text[:300]}…"
