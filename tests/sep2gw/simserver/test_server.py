"""The simulated utility server over real mutual TLS, driven by ``actors.https.HttpsClient``: over
in-memory pipes on trio's autojump clock (a scripted client walk, failures, the timeline) and once
over loopback TCP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgspec
import pytest
import trio
import trio.testing
from lxml import etree

from actors.https import HttpsClient
from actors.pipe import pipe_connector, pipe_listener
from sep2gw.simserver import SimClock, SimUtilityServer, parse_scenario
from tests.tls_fixtures import PkiFiles, write_pki
from transport.errors import ConnectionReset
from transport.http.messages import SEP_XML, Response
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der
from transport.sep2 import decode, encode
from transport.sep2 import resources as r
from transport.tls import client_context

from .helpers import START, xsd_2018, xsd_csipaus

DEADLINE_S = 3600  # virtual seconds on the autojump clock; the scenarios last minutes

SCENARIO = """
name = "walk"
[server]
pin = 111115
poll_rate_s = 20
post_rate_s = 60

[[programs]]
id = "net"
primacy = 1
[[programs]]
id = "ret"
primacy = 5
default = { opModExpLimW = 5000 }

[[actions]]
at_s = 0
kind = "create_control"
mrid = "A1"
program = "ret"
start_s = 60
duration_s = 120
modes = { opModExpLimW = 1500 }

[[actions]]
at_s = 30
kind = "create_control"
mrid = "B1"
program = "net"
start_s = 300
duration_s = 60
modes = { opModConnect = false }

[[actions]]
at_s = 400
kind = "fail"
duration_s = 30
status = 503
retry_after_s = 10

[[actions]]
at_s = 500
kind = "fail"
duration_s = 30
reset = true
paths = ["/tm"]
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("sim-pki")))


def device_lfdi(pki: PkiFiles) -> str:
    return lfdi_from_der(certificate_der(pki.pki.device.certificate))


@asynccontextmanager
async def on_pipes(
    pki: PkiFiles, scenario: str = SCENARIO
) -> AsyncIterator[tuple[SimUtilityServer, HttpsClient]]:
    send, accept = pipe_listener()
    server = SimUtilityServer(parse_scenario(scenario), pki.server, clock=SimClock(START))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve_pipes, accept)
        async with HttpsClient(
            "utility.test", 443, client_context(pki.device), connector=pipe_connector(send)
        ) as client:
            yield server, client
        nursery.cancel_scope.cancel()


def ok(response: Response, status: int = 200) -> bytes:
    assert response.status == status, (response.status, response.body[:300])
    if status == 200:
        assert response.header("content-type") == SEP_XML
    return response.body


async def post(client: HttpsClient, href: str, obj: msgspec.Struct) -> Response:
    return await client.request("POST", href, body=encode(obj))


QUIRKY = (
    '\n[quirks]\npath_style = "envoy"\none_item_default_paging = true\n'
    "drop_hex_leading_zeros = true\nhttp2 = false\n"
)


@pytest.mark.parametrize(
    ("quirks", "alpn", "controls"),
    [("", "h2", "/derp/2/derc"), (QUIRKY, "http/1.1", "/edev/1/derp/2/derc")],
    ids=["plain", "envoy-quirks"],
)
async def test_scripted_client_walk_over_pipes(
    pki: PkiFiles,
    autojump_clock: trio.testing.MockClock,
    quirks: str,
    alpn: str,
    controls: str,
) -> None:
    """A client that follows hrefs and pages with ``l`` walks any of these servers alike."""
    lfdi = device_lfdi(pki)
    lfdi_hex = r.HexBinary160(int(lfdi, 16))
    documents: list[bytes] = []
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki, SCENARIO + quirks) as (server, client):
            # §2.1 DeviceCapability, §2.2 Time
            documents.append(ok(await client.get("/dcap")))
            dcap = decode(documents[-1], r.DeviceCapability)
            assert dcap.TimeLink is not None and dcap.EndDeviceListLink is not None
            assert dcap.MirrorUsagePointListLink is not None
            documents.append(ok(await client.get(dcap.TimeLink.href)))
            assert decode(documents[-1], r.Time).currentTime == START
            # §2.3 EndDeviceList (empty for us), then in-band registration
            edevs = decode(ok(await client.get(dcap.EndDeviceListLink.href)), r.EndDeviceList)
            assert edevs.all == 0
            edev_post = r.EndDevice(
                sFDI=sfdi_from_lfdi(lfdi),
                lFDI=lfdi_hex,
                deviceCategory=r.HexBinary32(0),
                changedTime=START,
            )
            created = await post(client, dcap.EndDeviceListLink.href, edev_post)
            edev_href = created.header("location")
            assert created.status == 201 and edev_href == "/edev/1"
            documents.append(ok(await client.get(edev_href)))
            edev = decode(documents[-1], r.EndDevice)
            assert edev.lFDI == lfdi_hex  # numerically, whatever the server's hex spelling
            # §2.4 Registration PIN
            assert edev.RegistrationLink is not None
            reg = decode(ok(await client.get(edev.RegistrationLink.href)), r.Registration)
            assert reg.pIN == 111115
            # §2.5 ConnectionPoint
            assert edev.ConnectionPointLink is not None
            cp = r.ConnectionPointType(connectionPointId="4102345678")
            put_cp = await client.request("PUT", edev.ConnectionPointLink.href, body=encode(cp))
            assert put_cp.status == 204
            # §2.6 FSA → programs → default, controls
            assert edev.FunctionSetAssignmentsListLink is not None
            fsas = decode(
                ok(await client.get(edev.FunctionSetAssignmentsListLink.href)),
                r.FunctionSetAssignmentsList,
            )
            program_list = fsas.FunctionSetAssignments[0].DERProgramListLink
            assert program_list is not None
            documents.append(ok(await client.get(program_list.href + "?s=0&l=255")))
            programs = decode(documents[-1], r.DERProgramList).DERProgram
            assert [p.primacy for p in programs] == [1, 5]
            retailer = programs[1]
            assert retailer.DefaultDERControlLink and retailer.DERControlListLink
            default = decode(
                ok(await client.get(retailer.DefaultDERControlLink.href)), r.DefaultDERControl
            )
            assert default.DERControlBase.opModExpLimW == r.ActivePower(value=5000, multiplier=0)
            assert retailer.DERControlListLink.href == controls
            documents.append(ok(await client.get(controls + "?s=0&l=255")))
            control = decode(documents[-1], r.DERControlList).DERControl[0]
            assert (int(control.mRID), control.EventStatus.currentStatus) == (0xA1, 0)
            assert control.replyTo is not None
            received = r.DERControlResponse(
                createdDateTime=START, endDeviceLFDI=lfdi_hex, status=1, subject=control.mRID
            )
            assert (await post(client, control.replyTo, received)).status == 201
            # the event starts on the server's clock
            await trio.sleep(60)
            active = decode(ok(await client.get(controls + "?s=0&l=255")), r.DERControlList)
            assert active.DERControl[0].EventStatus.currentStatus == 1
            started = msgspec.structs.replace(received, createdDateTime=START + 60, status=2)
            assert (await post(client, control.replyTo, started)).status == 201
            again = await post(client, control.replyTo, started)  # a client bug, recorded
            assert again.status == 201
            # §2.7 DER information
            assert edev.DERListLink is not None
            ders = decode(ok(await client.get(edev.DERListLink.href)), r.DERList)
            settings_link = ders.DER[0].DERSettingsLink
            assert settings_link is not None
            settings = r.DERSettings(
                setGradW=0, setMaxW=r.ActivePower(value=5, multiplier=3), updatedTime=START + 60
            )
            put = await client.request("PUT", settings_link.href, body=encode(settings))
            assert put.status == 204
            # §2.8 mirror usage point, then readings
            mup = r.MirrorUsagePoint(
                mRID=r.HexBinary128(0x5173),
                roleFlags=r.HexBinary16(0x03),
                serviceCategoryKind=0,
                status=1,
                deviceLFDI=lfdi_hex,
                MirrorMeterReading=(
                    r.MirrorMeterReading(
                        mRID=r.HexBinary128(0x5174), ReadingType=r.ReadingType(uom=38)
                    ),
                ),
            )
            mup_created = await post(client, dcap.MirrorUsagePointListLink.href, mup)
            mup_href = mup_created.header("location")
            assert mup_created.status == 201 and mup_href == "/mup/1"
            readings = r.MirrorMeterReading(
                mRID=r.HexBinary128(0x5174),
                MirrorReadingSet=(
                    r.MirrorReadingSet(
                        mRID=r.HexBinary128(0x5175),
                        timePeriod=r.DateTimeInterval(start=START + 60, duration=60),
                        Reading=(r.Reading(value=-1400),),
                    ),
                ),
            )
            assert (await post(client, mup_href, readings)).status == 201
            assert client.tls_info is not None and client.tls_info.alpn == alpn

    # what the server recorded
    assert server.response_statuses("A1") == [1, 2, 2]
    assert server.duplicate_responses() == [(0xA1, 2, lfdi)]
    assert server.poll_intervals(controls) == [60.0]
    assert [q.time for q in server.responses_for(0xA1)] == [START, START + 60, START + 60]
    assert len(server.polls_of(controls)) == 2
    assert all(q.alpn == alpn for q in server.requests)
    assert [q.status for q in server.posts_to("/mup/1")] == [201]
    assert server.posts_to("/mup/1")[0].body == readings
    assert server.puts_to("/edev/1/der/1/derg")[0].body == settings
    assert {q.lfdi for q in server.requests} == {lfdi}
    assert server.state.devices[0].der_settings == settings
    assert server.state.devices[0].connection_point == cp
    assert server.state.mirrors[0].readings == [(START + 60, readings)]
    # B1 was created by the timeline at +30 s while the client walked
    assert [action.at_s for _, action in server.applied][:2] == [0, 30]
    if quirks:
        return  # dropped hex zeros are not schema-valid hexBinary: the quirk is a real server's
    schema, plain = xsd_csipaus(), xsd_2018()
    for document in documents:
        tree = etree.fromstring(document)
        assert schema.validate(tree), schema.error_log.last_error
        if b"csipaus" not in document:  # DeviceCapability, Time, DERProgramList
            assert plain.validate(tree), plain.error_log.last_error


async def test_failure_windows_answer_503_then_reset_then_recover(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki) as (server, client):
            await trio.sleep(400)
            busy = await client.get("/dcap")
            assert (busy.status, busy.header("retry-after")) == (503, "10")
            assert b"failing /dcap" in busy.body
            await trio.sleep(100)  # +500 s: /tm connections are reset
            with pytest.raises(ConnectionReset):
                await client.get("/tm")
            assert (await client.get("/dcap")).status == 200  # another path still answers
            await trio.sleep(30)
            assert (await client.get("/tm")).status == 200
    assert [q.status for q in server.polls_of("/tm")][-2:] == [0, 200]
    assert server.https.statistics().errors.get("ConnectionReset", 0) >= 1


async def test_malformed_body_over_the_wire_is_400_with_the_reason(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki) as (server, client):
            reply = await client.request("POST", "/edev", body=b"<EndDevice><oops></EndDevice>")
    assert reply.status == 400 and reply.body.startswith(b"MalformedXml")
    assert server.requests[-1].status == 400 and server.requests[-1].body is None


async def test_unregistered_device_is_refused_beyond_registration(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki) as (_, client):
            assert (await client.get("/dcap")).status == 200
            refused = await client.get("/derp/1/derc")
    assert refused.status == 403 and b"no EndDevice" in refused.body


async def test_http11_only_quirk_negotiates_http11(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki, SCENARIO + "\n[quirks]\nhttp2 = false\n") as (server, client):
            assert (await client.get("/dcap")).status == 200
            assert client.tls_info is not None and client.tls_info.alpn == "http/1.1"
    assert server.requests[0].alpn == "http/1.1"


async def test_timeline_applies_actions_as_server_time_passes(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki) as (server, _):
            assert [a.at_s for _, a in server.applied] == [0]
            await server.wait_for(lambda s: len(s.applied) == 2)
            assert server.clock.now() == pytest.approx(START + 30)
            assert server.state.control("B1") is not None
            await server.wait_for(lambda s: len(s.applied) == 4)
    assert [t - START for t, _ in server.applied] == pytest.approx([0, 30, 400, 500])


async def test_server_serves_over_loopback_tcp(tmp_path: Path) -> None:
    pki = write_pki(tmp_path / "pki")
    server = SimUtilityServer(parse_scenario(SCENARIO), pki.server, clock=SimClock(START))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.serve_tcp)
            async with HttpsClient("127.0.0.1", port, client_context(pki.device)) as client:
                dcap = decode(ok(await client.get("/dcap")), r.DeviceCapability)
                assert dcap.EndDeviceListLink is not None
                lfdi = device_lfdi(pki)
                edev = r.EndDevice(
                    sFDI=sfdi_from_lfdi(lfdi),
                    lFDI=r.HexBinary160(int(lfdi, 16)),
                    changedTime=START,
                )
                created = await post(client, dcap.EndDeviceListLink.href, edev)
                assert created.status == 201
            nursery.cancel_scope.cancel()
    assert [(q.method, q.path, q.status) for q in server.requests] == [
        ("GET", "/dcap", 200),
        ("POST", "/edev", 201),
    ]


async def test_body_in_another_media_type_is_415(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with on_pipes(pki) as (server, client):
            reply = await client.request(
                "POST", "/edev", body=b"{}", headers=(("content-type", "application/json"),)
            )
    assert reply.status == 415 and b"application/sep+xml" in reply.body
    assert server.requests[-1].status == 415


async def test_clock_for_a_scenario_starts_at_its_epoch(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    scenario = parse_scenario(f"[server]\nepoch = {START + 86400}\n")
    server = SimUtilityServer(scenario, pki.server, clock=SimClock.for_scenario(scenario, 5.0))
    assert server.start == START + 86400
    assert SimClock.for_scenario(parse_scenario(""), 5.0).now() == 5.0
    fast = SimClock(START, speed=10)
    await fast.sleep_until(START + 100)
    assert fast.now() == pytest.approx(START + 100)
    assert trio.current_time() == pytest.approx(10)


def test_server_runs_on_asyncio_and_reports_requests_and_actions(tmp_path: Path) -> None:
    """The embedding API runs inside asyncio: the server must too (anyio only, no trio-isms)."""
    pki = write_pki(tmp_path / "pki")
    seen: list[tuple[str, int]] = []
    actions: list[float] = []

    async def main() -> None:
        scenario = parse_scenario(SCENARIO)
        server = SimUtilityServer(
            scenario,
            pki.server,
            clock=SimClock(START, speed=1000),  # 30 server seconds pass in 30 ms
            on_request=lambda q: seen.append((q.path, q.status)),
            on_action=lambda t, a: actions.append(a.at_s),
        )
        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                port = await group.start(server.serve_tcp)
                async with HttpsClient("127.0.0.1", port, client_context(pki.device)) as client:
                    assert (await client.get("/dcap")).status == 200
                    await server.wait_for(lambda s: len(s.applied) >= 2)
                group.cancel_scope.cancel()

    anyio.run(main, backend="asyncio")
    assert seen == [("/dcap", 200)]
    assert actions[:2] == [0, 30]


async def test_timeline_on_a_scaled_clock_applies_each_action_at_its_instant(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    actions = "".join(
        f'[[actions]]\nat_s = {t}\nkind = "set_post_rate"\nseconds = {int(t) + 1}\n'
        for t in (0.1, 0.7, 1.3, 29.9, 33.3)
    )
    server = SimUtilityServer(
        parse_scenario(actions), pki.server, clock=SimClock(START + 0.1, speed=3)
    )
    with trio.fail_after(DEADLINE_S):
        await server.run_timeline()
    assert [t - server.start for t, _ in server.applied] == pytest.approx(
        [0.1, 0.7, 1.3, 29.9, 33.3], abs=1e-6
    )
    assert all(t >= server.start + a.at_s for t, a in server.applied)
    assert server.state.post_rate_s == 34


class _HairEarlyClock:
    """A clock that wakes half a microsecond before the instant it was asked to sleep to (float
    rounding of a scaled clock can do that)."""

    def __init__(self, now: float) -> None:
        self.t = now
        self.sleeps = 0

    def now(self) -> float:
        return self.t

    async def sleep_until(self, server_time: float) -> None:
        self.sleeps += 1
        assert self.sleeps < 100, "the timeline keeps sleeping to an instant it has reached"
        self.t = max(self.t, server_time - 5e-7)
        await trio.lowlevel.checkpoint()


async def test_timeline_applies_an_action_when_the_clock_reads_a_hair_early(
    pki: PkiFiles,
) -> None:
    scenario = parse_scenario(
        '[[actions]]\nat_s = 30\nkind = "cancel_control"\nmrid = "A1"\n'
        '[[actions]]\nat_s = 0\nkind = "create_control"\nmrid = "A1"\n'
        'program = "p"\nstart_s = 0\nduration_s = 60\n'
        "modes = { opModConnect = false }\n"
        '[[programs]]\nid = "p"\nprimacy = 1\n'
    )
    clock = _HairEarlyClock(START)
    server = SimUtilityServer(scenario, pki.server, clock=clock)
    await server.run_timeline()
    control = server.state.control("A1")
    assert control is not None and control.cancelled_at == START + 30  # not START + 29
    assert [t for t, _ in server.applied] == [START, START + 30]
