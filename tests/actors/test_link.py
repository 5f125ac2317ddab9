"""The link's reuse of a decoded document for byte-identical polls (actors.link.Link.get)."""

from __future__ import annotations

from typing import cast

import pytest

from actors.clock import Clock
from actors.https import HttpsClient
from actors.link import DECODED_CACHE, BadDocument, Link
from transport.errors import UnknownCA
from transport.http.messages import Headers, Response
from transport.sep2 import encode
from transport.sep2 import resources as r


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
    """Answers every GET with ``body`` (200) and counts the requests."""

    def __init__(self, body: bytes) -> None:
        self.body = body
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
        return Response(200, (("content-type", "application/sep+xml"),), self.body)


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


async def test_an_unusable_body_forgets_the_path_and_a_good_one_is_decoded_again() -> None:
    server = Server(time_doc(1_700_000_000))
    link = link_to(server)
    await link.get("/tm", r.Time)
    server.body = b"<Time"
    with pytest.raises(BadDocument):
        await link.get("/tm", r.Time)
    server.body = time_doc(1_700_000_000)
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
    seen: list[bool] = []

    async def on_reachable(online: bool) -> None:
        seen.append(online)

    link = Link(
        cast(HttpsClient, Unreachable(b"")),
        clock=Clock(wall_at_start=1_700_000_000.0),
        on_reachable=on_reachable,
    )
    assert link.last_failure == ""
    with pytest.raises(UnknownCA):
        await link.get("/tm", r.Time)
    assert seen == [False]
    assert link.last_failure == (
        "UnknownCA: the server's chain does not verify against the configured CA"
    )
