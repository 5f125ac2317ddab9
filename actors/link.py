"""The link: the gateway's one HTTPS client to the utility server, typed in 2030.5 resources.

It owns the connection (``actors.https.HttpsClient`` serialises requests), encodes and decodes
resources with the hardened codec, pages lists (``?s=&l=``), and turns every non-2xx answer into
``HttpFailure`` carrying the status the decision machines need (301/404 re-discover, 429/5xx back
off, other 4xx halt). It also knows whether the server is reachable: any HTTP answer means online, a
network failure or timeout means offline, and each change is reported once to ``on_reachable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import msgspec

from actors.clock import Clock
from actors.https import HttpsClient
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
from transport.sep2.codec import CSIPAUS_NS

__all__ = [
    "BadDocument",
    "HttpFailure",
    "Link",
    "LinkHalted",
    "LinkStatistics",
    "PAGE_SIZE",
    "describe_failure",
]

S = TypeVar("S", bound=msgspec.Struct)

#: Items asked for per page of a list (servers such as envoy return one item unless asked).
PAGE_SIZE: Final = 100
#: A list is read through at most this many pages: a server whose ``all`` keeps growing cannot
#: keep the walk busy forever.
MAX_PAGES: Final = 50
#: Documents remembered for ``get`` (by path): the polled resources and their pages. A server that
#: keeps inventing paths only evicts the oldest.
DECODED_CACHE: Final = 64


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


class BadDocument(HttpFailure):
    """2xx, but the body is not the resource we asked for (or not valid 2030.5 XML)."""

    def __init__(self, method: str, path: str, status: int, error: Exception) -> None:
        super().__init__(method, path, status, why=f"unusable body: {error}")
        self.error = error


class LinkStatistics(msgspec.Struct, frozen=True):
    requests: int
    failures: int
    reachable: bool


class Link:
    def __init__(
        self,
        client: HttpsClient,
        *,
        clock: Clock,
        on_reachable: Callable[[bool], Awaitable[None]] | None = None,
        csipaus_ns: str = CSIPAUS_NS,
        timeout_s: float | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._on_reachable = on_reachable
        self._csipaus_ns = csipaus_ns
        self._timeout_s = timeout_s
        self._reachable: bool | None = None
        self._halted: str | None = None
        # path -> (type, body, resource): a poll whose body is byte-identical to the previous one
        # of that path is not parsed again (resources are frozen values, so sharing one is safe).
        self._decoded: dict[str, tuple[type[Any], bytes, Any]] = {}
        self.decode_hits = 0
        self._requests = 0
        self._failures = 0
        self._last_failure = ""

    def statistics(self) -> LinkStatistics:
        return LinkStatistics(self._requests, self._failures, bool(self._reachable))

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
            if self._on_reachable is not None:
                await self._on_reachable(reachable)

    async def _exchange(self, method: str, path: str, body: bytes = b"") -> Response:
        if self._halted is not None:
            raise LinkHalted(f"{method} {path}: traffic to the server is halted: {self._halted}")
        self._requests += 1
        try:
            response = await self._client.request(
                method,
                path,
                body=body,
                headers=(("accept", "application/sep+xml"),),
                timeout_s=self._timeout_s,
            )
        except LinkError as exc:
            self._failures += 1
            self._last_failure = describe_failure(exc)
            await self._mark(False)
            raise
        await self._mark(True)
        outcome = classify_response(response, now_epoch_s=self._clock.server_time())
        match outcome:
            case Ok() | Created():
                return response
            case BackOff(status=status, retry_after_s=retry):
                self._failures += 1
                raise HttpFailure(method, path, status, retry_after_s=retry)
            case Moved(status=status, location=location):
                self._failures += 1
                raise HttpFailure(
                    method, path, status, why=f"moved to {location}" if location else "moved"
                )
            case ServerError(status=status) | ClientError(status=status):
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
            self.decode_hits += 1
            resource: S = cached[2]
            return resource
        try:
            resource = decode(body, cls)
        except Sep2CodecError as exc:
            self._failures += 1
            self._decoded.pop(path, None)
            raise BadDocument("GET", path, response.status, exc) from exc
        if path not in self._decoded and len(self._decoded) >= DECODED_CACHE:
            del self._decoded[next(iter(self._decoded))]  # the oldest
        self._decoded[path] = (cls, bytes(body), resource)
        return resource

    async def get_list(self, path: str, cls: type[S], items: str) -> tuple[S, list[Any]]:
        """Every item of a paged list (``items`` names the repeated element field): the first page's
        resource (for ``pollRate``, ``all``) and all items in server order."""
        collected: list[Any] = []
        first: S | None = None
        for _ in range(MAX_PAGES):
            page = await self.get(_paged(path, len(collected), PAGE_SIZE), cls)
            first = first or page
            got = list(getattr(page, items) or ())
            collected.extend(got)
            total = getattr(page, "all", None)
            if not got or total is None or len(collected) >= int(total):
                break
        assert first is not None
        return first, collected

    async def post(self, path: str, resource: msgspec.Struct) -> str | None:
        """POST; returns the ``Location`` of a 201 (absolute paths only: the link has one origin)."""
        response = await self._exchange("POST", path, encode(resource, csipaus_ns=self._csipaus_ns))
        location = response.header("location")
        return _path_of(location) if location else None

    async def put(self, path: str, resource: msgspec.Struct) -> None:
        await self._exchange("PUT", path, encode(resource, csipaus_ns=self._csipaus_ns))


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
