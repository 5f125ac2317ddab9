"""The link's reuse of a decoded document for byte-identical polls (actors.link.Link.get)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import anyio
import pytest
import trio

from actors.clock import Clock
from actors.https import HttpsClient
from actors.link import (
    DECODED_CACHE,
    MAX_PAGES,
    PAGE_SIZE,
    BadDocument,
    HttpFailure,
    Link,
    LinkBackingOff,
)
from actors.log_writer import LogWriter
from actors.messages import LinkState
from events.link_events import ListCapped
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from statemachines.registration import BackoffPolicy
from transport.errors import ConnectionReset, UnknownCA
from transport.http.messages import Headers, Response
from transport.sep2 import encode
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary128


def time_doc(current: int) -> bytes:
    return encode(
        r.Time(
            href="/tm",
            currentTime=current,
            dstEndTime=0,
            dstOffset=0,
            dstStartTime=0,
            quality=7,
            tzOffset=0,
            pollRate=900,
        )
    )


class Server:
    """Answers every GET with ``body`` (``status``; ``reset``: drops the connection instead) and
    counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.status = 200
        self.reset = False
        self.requests: list[str] = []
        self.connected = True

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Headers = (),
        timeout_s: float | None = None,
    ) -> Response:
        self.requests.append(f"{method} {target}")
        if self.reset:
            raise ConnectionReset("dropped", by_peer=True)
        return Response(self.status, (("content-type", "application/sep+xml"),), self.body)


def link_to(server: Server) -> Link:
    return Link(cast(HttpsClient, server), clock=Clock(wall_at_start=1_700_000_000.0))


async def test_a_byte_identical_poll_is_requested_again_but_not_decoded_again() -> None:
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    first = await link.get("/tm", r.Time)
    second = await link.get("/tm", r.Time)
    assert server.requests == ["GET /tm", "GET /tm"]  # every poll still goes to the server
    assert second == first and link.decode_hits == 1


async def test_a_changed_document_is_decoded_afresh() -> None:
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    await link.get("/tm", r.Time)
    server.body = time_doc(1_700_000_060)
    assert (await link.get("/tm", r.Time)).currentTime == 1_700_000_060
    assert link.decode_hits == 0


async def test_the_same_bytes_asked_for_as_another_type_are_still_refused() -> None:
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    await link.get("/tm", r.Time)
    with pytest.raises(BadDocument, match="/tm"):
        await link.get("/tm", r.DERProgramList)


async def test_an_unusable_body_forgets_the_path_and_a_good_one_is_decoded_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    await link.get("/tm", r.Time)
    server.body = b"<Time"
    with pytest.raises(BadDocument):
        await link.get("/tm", r.Time)
    server.body = time_doc(1_700_000_000)
    await trio.sleep(BackoffPolicy().base_s)  # the unusable answer held /tm back (issue 15)
    assert (await link.get("/tm", r.Time)).currentTime == 1_700_000_000
    assert link.decode_hits == 0


async def test_the_remembered_documents_are_bounded() -> None:
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    for i in range(DECODED_CACHE + 10):
        await link.get(f"/tm/{i}", r.Time)
    await link.get("/tm/0", r.Time)  # evicted long ago: decoded again
    assert link.decode_hits == 0
    await link.get(f"/tm/{DECODED_CACHE + 9}", r.Time)  # the newest: still remembered
    assert link.decode_hits == 1


async def until_released(link: Link, path: str) -> None:
    held = link.held_until(path)
    if held is not None:
        await trio.sleep_until(held)


@pytest.mark.parametrize("fault", ["reset", "503", "garbled"])
async def test_bounded_retry_a_failing_resource_is_held_back_with_the_walks_backoff(
    autojump_clock: trio.abc.Clock, fault: str
) -> None:
    """Issue 15 point 2: a resource that failed (link error, 5xx, unusable body) is not asked
    again before the registration walk's back-off for its failures in a row (2, 4, 8 … 300 s);
    a request within the hold fails at once without reaching the server; a success clears it."""
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    server.reset, server.status = fault == "reset", 503 if fault == "503" else 200
    server.body = b"<Time" if fault == "garbled" else server.body
    attempts: list[float] = []
    for _ in range(12):
        before = len(server.requests)
        with pytest.raises((ConnectionReset, HttpFailure, LinkBackingOff)):
            await link.get("/dcap?s=0&l=1", r.Time)
        if len(server.requests) > before:
            attempts.append(trio.current_time())
        with pytest.raises(LinkBackingOff):
            await link.get("/dcap?s=1&l=1", r.Time)  # another page of the same resource
        await until_released(link, "/dcap")
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    if fault == "reset":  # nothing but link errors: the link is down, held LINK_CAP_S at most
        assert gaps == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0, 16.0, 16.0, 16.0, 16.0, 16.0]
    else:
        assert gaps == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0, 300.0, 300.0]
    assert len(server.requests) == 12 and link.statistics().held_back == 12
    server.reset, server.status, server.body = False, 200, time_doc(1_700_000_000)
    await link.get("/dcap", r.Time)
    await link.get("/dcap", r.Time)  # cleared: asked again at once
    assert link.held_until("/dcap") is None


async def test_bounded_retry_link_errors_in_a_row_hold_the_whole_link_back(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 15 point 2: a server that drops every connection is not asked for another resource
    either until the hold ends; any HTTP answer clears the whole link's hold."""
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    server.reset = True
    with pytest.raises(ConnectionReset):
        await link.get("/a", r.Time)
    with pytest.raises(LinkBackingOff):
        await link.get("/b", r.Time)
    assert server.requests == ["GET /a"]
    await until_released(link, "/b")
    server.reset, server.status = False, 404
    with pytest.raises(HttpFailure):
        await link.get("/b", r.Time)
    assert link.held_until("/c") is None


async def test_bounded_retry_a_resource_that_drops_the_link_while_others_answer_backs_off_to_the_cap(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 15 point 2: the reconnect loop of the issue: one resource drops the connection, the
    others answer (the link comes back, and every caller asks again at once). Its hold still
    doubles to the walk's cap, while the rest of the server is asked as usual."""
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    attempts: list[float] = []
    for _ in range(10):
        server.reset = True
        try:
            await link.get("/derc", r.Time)
            raise AssertionError("the resource answered")
        except ConnectionReset:
            attempts.append(trio.current_time())
        except LinkBackingOff:
            pass
        server.reset = False
        await until_released(link, "/other")
        await link.get("/other", r.Time)
        await until_released(link, "/derc")
    gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
    assert gaps == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 300.0]


class Pages:
    """A DERControlList server: ``pages(start, limit)`` gives the controls of a page and ``all``."""

    def __init__(self, total: int, page: Callable[[int, int], list[int]]) -> None:
        self.total, self.page = total, page
        self.requests: list[str] = []
        self.connected = True

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Headers = (),
        timeout_s: float | None = None,
    ) -> Response:
        self.requests.append(target)
        query = dict(p.split("=") for p in target.partition("?")[2].split("&"))
        ids = self.page(int(query["s"]), int(query["l"]))
        doc = r.DERControlList(
            href="/derc",
            all=self.total,
            results=len(ids),
            DERControl=tuple(
                r.DERControl(
                    mRID=HexBinary128(i + 1),
                    creationTime=0,
                    EventStatus=r.EventStatus(
                        currentStatus=0, dateTime=0, potentiallySuperseded=False
                    ),
                    interval=r.DateTimeInterval(duration=60, start=0),
                    DERControlBase=r.DERControlBase(),
                )
                for i in ids
            ),
        )
        return Response(200, (("content-type", "application/sep+xml"),), encode(doc))


async def capped(server: Pages) -> tuple[list[int], list[str]]:
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        link = Link(cast(HttpsClient, server), clock=Clock(wall_at_start=1.7e9), log=log)
        _, items = await link.get_list("/derc", r.DERControlList, "DERControl")
        nursery.cancel_scope.cancel()
    reasons = [e.event.reason for e in store.read() if isinstance(e.event, ListCapped)]
    return [int(c.mRID) - 1 for c in items], reasons


async def test_bounded_lists_items_beyond_the_l_asked_for_are_dropped_and_recorded() -> None:
    """Issue 15 point 3: 1,500 items on a page when 100 were asked for are not taken whole."""
    ids, reasons = await capped(Pages(1500, lambda s, n: list(range(s, 1500))))
    assert len(ids) <= MAX_PAGES * PAGE_SIZE and ids[:PAGE_SIZE] == list(range(PAGE_SIZE))
    assert ids == list(range(len(ids)))
    assert reasons[0] == f"a page of 1500 items; {PAGE_SIZE} were asked for"


async def test_bounded_lists_a_page_that_repeats_ends_the_list_and_is_recorded() -> None:
    server = Pages(1000, lambda s, n: list(range(min(n, 5))))  # always the first page
    ids, reasons = await capped(server)
    assert ids == list(range(5)) and len(server.requests) == 2
    assert reasons == ["a page repeats the previous one"]


async def test_bounded_lists_all_beyond_the_cap_is_not_followed_and_is_recorded() -> None:
    server = Pages(1_000_000, lambda s, n: list(range(s, s + n)))
    ids, reasons = await capped(server)
    assert len(ids) == PAGE_SIZE and len(server.requests) == 1  # the first page, not the cap
    assert reasons == [
        f"all=1000000, beyond the {MAX_PAGES * PAGE_SIZE} items a list may hold: "
        "only its first page is read"
    ]


class Unreachable(Server):
    """Fails every request as a server from another CA does: the TLS alert, classified."""

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Headers = (),
        timeout_s: float | None = None,
    ) -> Response:
        raise UnknownCA("the server's chain does not verify against the configured CA")


async def test_comms_loss_says_why_the_link_keeps_the_typed_failure() -> None:
    """Issue 16 point 8: the reason the server is unreachable is the link's typed failure."""
    to_controls, inbox = anyio.create_memory_object_stream[LinkState](4)
    link = Link(
        cast(HttpsClient, Unreachable(b"")),
        clock=Clock(wall_at_start=1_700_000_000.0),
        reachability=to_controls,
    )
    assert link.last_failure == ""
    with pytest.raises(UnknownCA):
        await link.get("/tm", r.Time)
    reason = "UnknownCA: the server's chain does not verify against the configured CA"
    assert link.last_failure == reason
    # The change of reachability is a message, carrying the typed failure as its reason.
    assert inbox.receive_nowait() == LinkState(online=False, reason=reason)
    with pytest.raises(anyio.WouldBlock):
        inbox.receive_nowait()


async def test_sites_of_a_fleet_keep_one_copy_of_the_bytes_of_a_shared_document() -> None:
    """Each site remembers the bytes of its last poll of a path (to know the next one unchanged);
    with the fleet's shared decodes they all keep the fleet's one copy, not one each (at 1,000
    sites, every page of the aggregator's MirrorUsagePointList once per site: ~700 kB a site)."""
    from actors.shared_gets import SharedDecodes

    shared = SharedDecodes()
    links = []
    for _ in range(3):
        server = Server(bytes(bytearray(time_doc(1_700_000_000))))  # each its own bytes object
        link = Link(
            cast(HttpsClient, server), clock=Clock(wall_at_start=1_700_000_000.0), shared=shared
        )
        await link.get("/tm", r.Time)
        links.append(link)
    kept = {id(link._decoded["/tm"][1]) for link in links}
    assert len(kept) == 1
    assert len({id(link._decoded["/tm"][2]) for link in links}) == 1  # one decoded resource too


async def test_a_list_read_asks_for_at_least_one_page() -> None:
    link = link_to(Server(time_doc(1_700_000_000)))
    with pytest.raises(ValueError, match="at least one page"):
        await link.get_list("/mup", r.MirrorUsagePointList, "MirrorUsagePoint", pages=0)
