"""The CSIP-AUS version the link speaks (issue 18 points 2 and 3): learned from the well-known
document or the server's namespaces, recorded, written consistently; a CSIP-AUS namespace the
codec does not know is a logged server fault naming what it dropped."""

from __future__ import annotations

import logging
from typing import cast

import pytest
import trio

from actors.clock import Clock
from actors.discovery import discover_device_capability
from actors.https import HttpsClient
from actors.link import Link
from actors.log_writer import LogWriter
from events.link_events import CsipAusFault, CsipAusVersionSettled
from events.memory_store import MemoryEventStore
from events.registry import CATALOGUE
from transport.errors import ConnectionReset
from transport.http.messages import Headers, Response
from transport.sep2 import CSIPAUS_NS, CSIPAUS_NS_V13, encode
from transport.sep2 import resources as r
from transport.sep2.hexbinary import HexBinary128
from transport.sep2.versions import CSIPAUS_VERSIONS, V1_2, V1_3, CsipAusVersion

DCAP = encode(r.DeviceCapability(href="/dcap", TimeLink=r.TimeLink(href="/tm")))
POINT = r.ConnectionPointType(connectionPointId="4102345678")


def edev(namespace: str) -> bytes:
    return encode(
        r.EndDevice(
            href="/edev/1",
            sFDI=1,
            changedTime=0,
            ConnectionPointLink=r.Link(href="/edev/1/cp"),
        ),
        csipaus_ns=namespace,
    )


def control(namespace: str) -> bytes:
    """A DERControl whose only limit is opModExpLimW 1500 W, in ``namespace``."""
    body = encode(
        r.DERControl(
            mRID=HexBinary128(0xA1),
            creationTime=0,
            EventStatus=r.EventStatus(currentStatus=0, dateTime=0, potentiallySuperseded=False),
            interval=r.DateTimeInterval(duration=60, start=0),
            DERControlBase=r.DERControlBase(opModExpLimW=r.ActivePower(multiplier=0, value=1500)),
        )
    )
    return body.replace(CSIPAUS_NS.encode() + b'"', namespace.encode() + b'"')


class Paths:
    """Answers each path with its (status, body); records every request and PUT/POST body."""

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, str, str]] = []  # (method, path, accept)
        self.bodies: list[bytes] = []
        self.connected = True
        self.unreachable = False

    async def request(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        headers: Headers = (),
        timeout_s: float | None = None,
    ) -> Response:
        self.requests.append((method, target, dict(headers).get("accept", "")))
        if self.unreachable:
            raise ConnectionReset("dropped", by_peer=True)
        if body:
            self.bodies.append(body)
            return Response(204, (), b"")
        status, answer = self.answers.get(target, (404, b"no resource"))
        return Response(status, (("content-type", "application/sep+xml"),), answer)


async def run(
    server: Paths, versions: tuple[CsipAusVersion, ...], work: object
) -> tuple[Link, list[object]]:
    store = MemoryEventStore(CATALOGUE)
    log = LogWriter(store, offload=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(log.run)
        link = Link(
            cast(HttpsClient, server),
            clock=Clock(wall_at_start=1.7e9),
            versions=versions,
            log=log,
        )
        await work(link)  # type: ignore[operator]
        nursery.cancel_scope.cancel()
    return link, [e.event for e in store.read()]


async def test_a_limit_in_an_unknown_csipaus_namespace_is_a_logged_server_fault_naming_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 18 point 2: never a silent drop of limits. The DERControl decodes (its other
    content is usable) without the limit, and the fault names the namespace and the element,
    once per document however often it is polled."""
    server = Paths({"/derc/1": (200, control("https://csipaus.org/ns/v9.9"))})

    async def work(link: Link) -> None:
        for _ in range(3):
            got = await link.get("/derc/1", r.DERControl)
            assert got.DERControlBase.opModExpLimW is None

    with caplog.at_level(logging.WARNING, logger="actors.link"):
        link, events = await run(server, CSIPAUS_VERSIONS, work)
    faults = [e for e in events if isinstance(e, CsipAusFault)]
    assert len(faults) == 1
    assert faults[0].kind == "unknown-namespace" and faults[0].path == "/derc/1"
    assert faults[0].namespace == "https://csipaus.org/ns/v9.9"
    assert faults[0].dropped == ("opModExpLimW",)
    assert "server fault" in caplog.text and "opModExpLimW" in caplog.text
    assert link.csipaus_version is V1_2  # an unknown namespace never changes the version


async def test_the_servers_namespace_settles_the_version_and_every_write_follows_it() -> None:
    server = Paths({"/edev": (200, edev(CSIPAUS_NS_V13)), "/old": (200, edev(CSIPAUS_NS))})

    async def work(link: Link) -> None:
        assert link.csipaus_ns == CSIPAUS_NS and not link.version_settled
        await link.get("/edev", r.EndDevice)
        await link.put("/edev/1/cp", POINT)
        await link.get("/old", r.EndDevice)  # a v1.2 document now: mixed, the version is kept
        await link.put("/edev/1/cp", POINT)

    link, events = await run(server, CSIPAUS_VERSIONS, work)
    assert link.csipaus_version is V1_3 and link.version_settled
    settled = [e for e in events if isinstance(e, CsipAusVersionSettled)]
    assert [(s.version, s.learned, s.path) for s in settled] == [("v1.3", "namespaces", "/edev")]
    assert all(b"https://csipaus.org/ns/v1.3" in body for body in server.bodies)
    [fault] = [e for e in events if isinstance(e, CsipAusFault)]
    assert (fault.kind, fault.namespace, fault.in_force) == ("mixed", CSIPAUS_NS, "v1.3")


async def test_a_version_the_profile_does_not_allow_is_a_fault_and_not_adopted() -> None:
    server = Paths({"/edev": (200, edev(CSIPAUS_NS_V13))})

    async def work(link: Link) -> None:
        await link.get("/edev", r.EndDevice)
        await link.put("/edev/1/cp", POINT)

    link, events = await run(server, (V1_2,), work)
    assert link.csipaus_version is V1_2
    [fault] = [e for e in events if isinstance(e, CsipAusFault)]
    assert (fault.kind, fault.namespace) == ("not-allowed", CSIPAUS_NS_V13)
    assert b'xmlns:csipaus="https://csipaus.org/ns"' in server.bodies[0]


def offer(*entries: tuple[str, list[str]]) -> tuple[int, bytes]:
    inner = ", ".join(f'"{ns}": {{"dcap": {paths!r}}}'.replace("'", '"') for ns, paths in entries)
    return 200, ('{"supportedSchemaVersions": {' + inner + "}}").encode()


async def discover(
    server: Paths, versions: tuple[CsipAusVersion, ...] = CSIPAUS_VERSIONS
) -> tuple[Link, list[object], str]:
    found: list[str] = []

    async def work(link: Link) -> None:
        path, _dcap = await discover_device_capability(link, "/dcap")
        found.append(path)

    link, events = await run(server, versions, work)
    return link, events, found[0]


async def test_discovery_chooses_the_newest_mutual_version_and_follows_its_link() -> None:
    server = Paths(
        {
            "/.well-known/csipaus": offer((CSIPAUS_NS, ["/dcap"]), (CSIPAUS_NS_V13, ["/v13/dcap"])),
            "/v13/dcap": (200, DCAP),
        }
    )
    link, events, path = await discover(server)
    assert path == "/v13/dcap" and link.csipaus_version is V1_3 and link.version_settled
    assert server.requests[0] == ("GET", "/.well-known/csipaus", "application/json")
    [settled] = [e for e in events if isinstance(e, CsipAusVersionSettled)]
    assert (settled.learned, settled.dcap_path, settled.fallback) == ("well-known", "/v13/dcap", "")
    assert settled.offered == (CSIPAUS_NS, CSIPAUS_NS_V13)


@pytest.mark.parametrize(
    ("well_known", "fallback", "kind"),
    [
        ((404, b"no"), "/.well-known/csipaus absent (HTTP 404)", "absent"),
        ((410, b"gone"), "/.well-known/csipaus absent (HTTP 410)", "absent"),
        ((200, b"<html/>"), "/.well-known/csipaus malformed: not JSON", "malformed"),
        (
            offer(("https://csipaus.org/ns/v9.9", ["/v99"])),
            "/.well-known/csipaus offers only https://csipaus.org/ns/v9.9; the profile allows "
            "v1.2, v1.3-beta/storage, v1.3",
            "unsupported",
        ),
        (
            offer((CSIPAUS_NS_V13, ["/v13/dcap"])),
            "v1.3 DeviceCapability /v13/dcap failed: GET /v13/dcap: HTTP 404",
            "link-failed",
        ),
    ],
)
async def test_each_discovery_failure_falls_back_to_the_configured_dcap_and_says_why(
    well_known: tuple[int, bytes], fallback: str, kind: str
) -> None:
    server = Paths({"/.well-known/csipaus": well_known, "/dcap": (200, DCAP)})
    link, events, path = await discover(server)
    assert path == "/dcap"
    assert link.csipaus_version is V1_2 and not link.version_settled  # namespaces may still say
    [settled] = [e for e in events if isinstance(e, CsipAusVersionSettled)]
    assert settled.learned == "configured" and settled.dcap_path == "/dcap"
    assert settled.fallback.startswith(fallback), settled.fallback
    assert settled.fallback_kind == kind


async def test_an_unreachable_server_is_not_a_fallback_discovery_is_tried_again() -> None:
    server = Paths({})
    server.unreachable = True
    with pytest.raises(BaseExceptionGroup) as caught:
        await discover(server)
    assert caught.group_contains(ConnectionReset)
    assert server.requests == [("GET", "/.well-known/csipaus", "application/json")]
