"""The codec: corpus documents shaped like real servers' output, typed errors, hostile input."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import msgspec
import pytest

from transport.sep2 import codec, decoding, encoding
from transport.sep2 import resources as r
from transport.sep2.errors import (
    DocumentRejected,
    MalformedXml,
    SchemaViolation,
    Sep2DecodeError,
    Sep2EncodeError,
    UnexpectedDocument,
)
from transport.sep2.hexbinary import HexBinary32, HexBinary128, HexBinary160

CORPUS = Path(__file__).parent / "corpus"


def _corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_envoy_style_list_with_2023_status_and_newer_elements_parses() -> None:
    doc = codec.decode(_corpus("envoy_dercontrol_list.xml"), r.DERControlList)
    assert (doc.all, doc.results) == (3, 1)  # one-item default paging
    (ctl,) = doc.DERControl
    assert ctl.EventStatus.currentStatus == 5  # 2023 Completed
    assert ctl.responseRequired == 3  # "3": a dropped leading zero, compared numerically
    assert ctl.deviceCategory == 0
    base = ctl.DERControlBase
    assert base.opModMaxLimW == 9950  # 2023 control type with a "disabled" attribute: value kept
    assert base.rampTms == 2500
    assert base.opModImpLimW == r.ActivePower(multiplier=1, value=150)
    assert base.opModExpLimW == r.ActivePower(multiplier=0, value=1500)
    assert base.opModStorageTargetW == r.ActivePower(multiplier=0, value=-2000)
    assert ctl.randomizeStart == -30


def test_hex_is_compared_numerically_when_servers_drop_leading_zeros() -> None:
    programs = codec.decode(_corpus("derprogram_list.xml"), r.DERProgramList)
    assert programs.DERProgram[0].mRID == 0xABC
    assert programs.pollRate == 60


def test_end_device_list_reads_csipaus_connection_point_link_and_lfdi_width() -> None:
    edevs = codec.decode(_corpus("end_device_list.xml"), r.EndDeviceList)
    (edev,) = edevs.EndDevice
    assert edev.sFDI == 167261211391
    assert edev.lFDI == 0x3E4F45AB31EDFE5B67E343E5E4562E31984E23E5
    assert edev.ConnectionPointLink == r.Link(href="/edev/3/cp")
    out = codec.encode(edev)
    assert b"<lFDI>3E4F45AB31EDFE5B67E343E5E4562E31984E23E5</lFDI>" in out
    assert b"<deviceCategory>00</deviceCategory>" in out
    assert b"<csipaus:ConnectionPointLink" in out


def test_2018_and_2023_documents_both_read() -> None:
    tm = codec.decode(_corpus("time_2023.xml"), r.Time)
    assert tm.currentTime == 1700000000 and tm.quality == 7
    dcap = codec.decode(_corpus("dcap.xml"), r.DeviceCapability)
    assert dcap.EndDeviceListLink == r.EndDeviceListLink(href="/edev", all=1)


def test_notification_resource_is_typed_by_xsi_type() -> None:
    note = codec.decode(_corpus("notification.xml"), r.Notification)
    assert isinstance(note.Resource, r.DERControlList)
    assert note.Resource.href == "/derp/1/derc"
    again = codec.decode(codec.encode(note), r.Notification)
    assert again == note


def test_default_der_control_reads_csipaus_default_limits() -> None:
    dflt = codec.decode(_corpus("default_der_control.xml"), r.DefaultDERControl)
    assert dflt.setGradW == 27 and dflt.DERControlBase.opModEnergize is True
    assert dflt.mRID == 0xD0E


def test_serialiser_writes_schema_order_hex_widths_and_namespaces() -> None:
    edev = r.EndDevice(
        changedTime=1700000000,
        sFDI=167261211391,
        lFDI=HexBinary160(0x3E4F45AB31EDFE5B67E343E5E4562E31984E23E5),
        deviceCategory=HexBinary32(0),
    )
    out = codec.encode(edev)
    assert out == (
        b'<EndDevice xmlns="urn:ieee:std:2030.5:ns" xmlns:csipaus="https://csipaus.org/ns">'
        b"<deviceCategory>00</deviceCategory>"
        b"<lFDI>3E4F45AB31EDFE5B67E343E5E4562E31984E23E5</lFDI>"
        b"<sFDI>167261211391</sFDI><changedTime>1700000000</changedTime></EndDevice>"
    )


def test_absent_fields_are_omitted_and_mrid_keeps_full_width() -> None:
    rsp = r.DERControlResponse(endDeviceLFDI=HexBinary160(1), subject=HexBinary128(0xABC), status=1)
    out = codec.encode(rsp)
    assert b"<subject>00000000000000000000000000000ABC</subject>" in out
    assert b"createdDateTime" not in out and b"href" not in out


def test_csipaus_namespace_follows_the_profile() -> None:
    base = r.DERControlBase(opModExpLimW=r.ActivePower(multiplier=0, value=1))
    dflt = r.DefaultDERControl(mRID=HexBinary128(1), DERControlBase=base)
    out = codec.encode(dflt, csipaus_ns=codec.CSIPAUS_NS_V13)
    assert b'xmlns:csipaus="https://csipaus.org/ns/v1.3"' in out
    assert codec.decode(out, r.DefaultDERControl) == dflt


def _capability(**extensions: Any) -> r.DERCapability:
    return r.DERCapability(
        modesSupported=HexBinary32(0x500088),
        rtgMaxW=r.ActivePower(multiplier=0, value=5000),
        type=80,
        **extensions,
    )


@pytest.mark.parametrize(
    ("obj", "element"),
    [
        (
            _capability(doeModesSupported=r.HexBinary8(1), vppModesSupported=r.HexBinary8(1)),
            "vppModesSupported",
        ),
        (
            r.DERSettings(
                setGradW=27,
                setMaxW=r.ActivePower(multiplier=0, value=5000),
                updatedTime=0,
                vppModesEnabled=r.HexBinary8(1),
            ),
            "vppModesEnabled",
        ),
        (
            r.DERSettings(
                setGradW=27,
                setMaxW=r.ActivePower(multiplier=0, value=5000),
                updatedTime=0,
                setMinWh=r.WattHour(multiplier=0, value=1),
            ),
            "setMinWh",
        ),
        (
            r.DERControl(
                mRID=HexBinary128(1),
                creationTime=0,
                EventStatus=r.EventStatus(currentStatus=0, dateTime=0, potentiallySuperseded=False),
                interval=r.DateTimeInterval(duration=60, start=0),
                DERControlBase=r.DERControlBase(
                    opModStorageTargetW=r.ActivePower(multiplier=0, value=1)
                ),
            ),
            "opModStorageTargetW",
        ),
    ],
)
def test_only_elements_the_csipaus_namespace_defines_are_written(
    obj: msgspec.Struct, element: str
) -> None:
    """PROTOCOL.md §5: a v1.3 storage element under v1.2's namespace makes the request
    schema-invalid, so it is refused, naming the element and the namespace; the storage
    namespace (and v1.3, which keeps the storage elements) writes it."""
    with pytest.raises(Sep2EncodeError) as err:
        codec.encode(obj, csipaus_ns=codec.CSIPAUS_NS)
    assert f"csipaus:{element}" in str(err.value)
    assert codec.CSIPAUS_NS in str(err.value)
    for ns in (codec.CSIPAUS_NS_V13_STORAGE, codec.CSIPAUS_NS_V13):
        assert f"<csipaus:{element}>".encode() in codec.encode(obj, csipaus_ns=ns)


def test_a_mandatory_csipaus_element_must_be_written() -> None:
    """PROTOCOL.md §5: CSIP-AUS makes ``doeModesSupported`` mandatory in DERCapability."""
    with pytest.raises(Sep2EncodeError, match="csipaus:doeModesSupported is mandatory"):
        codec.encode(_capability(), csipaus_ns=codec.CSIPAUS_NS)
    out = codec.encode(_capability(doeModesSupported=r.HexBinary8(0)))
    assert b"<csipaus:doeModesSupported>00</csipaus:doeModesSupported>" in out


def test_plain_2018_writes_no_csipaus_element_and_an_unknown_namespace_is_refused() -> None:
    assert b"csipaus" not in codec.encode(_capability(), csipaus_ns=None)
    with pytest.raises(Sep2EncodeError, match="csipaus:doeModesSupported is not an element"):
        codec.encode(_capability(doeModesSupported=r.HexBinary8(0)), csipaus_ns=None)
    with pytest.raises(Sep2EncodeError, match="needs a CSIP-AUS namespace"):
        codec.encode(r.ConnectionPointType(connectionPointId="1"), csipaus_ns=None)
    with pytest.raises(Sep2EncodeError, match="'urn:x' is not a CSIP-AUS namespace"):
        codec.encode(_capability(), csipaus_ns="urn:x")


def test_wrong_type_names_the_element_path() -> None:
    bad = _corpus("envoy_dercontrol_list.xml").replace(b"<duration>300", b"<duration>soon")
    with pytest.raises(SchemaViolation) as err:
        codec.decode(bad, r.DERControlList)
    assert err.value.path == "/DERControlList/DERControl[1]/interval/duration"


def test_out_of_range_value_is_a_schema_violation() -> None:
    bad = _corpus("envoy_dercontrol_list.xml").replace(b"<currentStatus>5<", b"<currentStatus>256<")
    with pytest.raises(SchemaViolation) as err:
        codec.decode(bad, r.DERControlList)
    assert err.value.path.endswith("/EventStatus/currentStatus")


def test_missing_required_element_is_named() -> None:
    bad = _corpus("derprogram_list.xml").replace(b"<primacy>1</primacy>", b"")
    with pytest.raises(SchemaViolation) as err:
        codec.decode(bad, r.DERProgramList)
    assert err.value.path == "/DERProgramList/DERProgram[1]"
    assert "primacy" in err.value.reason


def test_hex_with_prefix_or_too_wide_is_refused() -> None:
    doc = _corpus("derprogram_list.xml")
    for text in (b"0xABC", b"-1", b"AB C", b"1" * 33):
        with pytest.raises(SchemaViolation) as err:
            codec.decode(doc.replace(b"<mRID>ABC", b"<mRID>" + text), r.DERProgramList)
        assert err.value.path.endswith("/mRID")


def test_unexpected_document_element_is_refused() -> None:
    with pytest.raises(UnexpectedDocument):
        codec.decode(_corpus("dcap.xml"), r.Time)


def test_quotes_and_backslashes_in_text_cannot_inject_fields() -> None:
    hostile = _corpus("derprogram_list.xml").replace(
        b"<description>Site DOE", b'<description>x","primacy":"9'
    )
    prog = codec.decode(hostile, r.DERProgramList).DERProgram[0]
    assert prog.description == 'x","primacy":"9' and prog.primacy == 1


def test_blanks_around_numbers_are_collapsed_as_xsd_says() -> None:
    doc = _corpus("derprogram_list.xml").replace(b"<primacy>1<", b"<primacy>\n  1 <")
    assert codec.decode(doc, r.DERProgramList).DERProgram[0].primacy == 1


# ------------------------------------------------------------------------------------ hostile input


def _rejects(data: bytes, error: type[Sep2DecodeError]) -> None:
    # How fast each case is refused is measured by benchmarks/xml_fuzz.py (no timed asserts here).
    with pytest.raises(error):
        codec.decode(data, r.DERControlList)


def test_billion_laughs_is_rejected_before_expansion() -> None:
    lol = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
            for i in range(1, 10)
        )
        + b']><DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0">&lol9;'
        b"</DERControlList>"
    )
    _rejects(lol, DocumentRejected)


def test_external_entity_is_rejected() -> None:
    xxe = (
        b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0">&e;</DERControlList>'
    )
    _rejects(xxe, DocumentRejected)


def test_dtd_in_utf16_is_rejected_after_parse() -> None:
    doc = (
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE DERControlList []>'
        '<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0"/>'
    ).encode("utf-16")
    _rejects(doc, DocumentRejected)


def test_undeclared_entity_reference_is_malformed() -> None:
    doc = b'<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0">&e;</DERControlList>'
    _rejects(doc, MalformedXml)


def test_hundred_megabyte_body_is_rejected_by_size() -> None:
    _rejects(b"<" + b"a" * (100 * 1024 * 1024), DocumentRejected)


def test_ten_thousand_deep_nesting_is_rejected() -> None:
    deep = (
        b'<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0">'
        + b"<a>" * 10_000
        + b"</a>" * 10_000
        + b"</DERControlList>"
    )
    _rejects(deep, DocumentRejected)


def test_default_depth_limit_is_libxml2s_256() -> None:
    def nested(depth: int) -> bytes:
        inner = depth - 1
        return (
            b'<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0">'
            + b"<a>" * inner
            + b"</a>" * inner
            + b"</DERControlList>"
        )

    assert codec.decode(nested(256), r.DERControlList).all == 0
    with pytest.raises(DocumentRejected):
        codec.decode(nested(257), r.DERControlList)
    with pytest.raises(ValueError):
        codec.Limits(max_depth=257)


def test_depth_limit_is_configurable() -> None:
    doc = (
        b'<DERControlList xmlns="urn:ieee:std:2030.5:ns" all="0" results="0">'
        + b"<a><b><c/></b></a></DERControlList>"
    )
    assert codec.decode(doc, r.DERControlList).all == 0
    with pytest.raises(DocumentRejected):
        codec.decode(doc, r.DERControlList, codec.Limits(max_depth=3))


def test_size_limit_is_configurable() -> None:
    doc = _corpus("dcap.xml")
    with pytest.raises(DocumentRejected):
        codec.decode(doc, r.DeviceCapability, codec.Limits(max_bytes=len(doc) - 1))


def test_2023_modes_responded_round_trips_and_encode_refuses_a_too_wide_hex() -> None:
    from transport.sep2.errors import Sep2EncodeError

    bad = r.DERControlResponse(
        endDeviceLFDI=HexBinary160(1), subject=HexBinary128(1), modesResponded=HexBinary32(1)
    )
    assert codec.decode(codec.encode(bad), r.DERControlResponse) == bad
    # Struct construction does not validate (only decoding does), so a caller can pass 512.
    forged = r.ConnectStatusType(dateTime=0, value=1 << 9)
    with pytest.raises(Sep2EncodeError):
        codec.encode(r.DERStatus(readingTime=0, genConnectStatus=forged))


def test_encode_refuses_values_the_schema_cannot_hold() -> None:
    from transport.sep2.errors import Sep2EncodeError

    program = codec.decode(_corpus("derprogram_list.xml"), r.DERProgramList).DERProgram[0]
    too_long = msgspec.structs.replace(program, description="x" * 33)  # String32
    with pytest.raises(Sep2EncodeError) as err:
        codec.encode(too_long)
    assert "description" in err.value.reason
    out_of_range = msgspec.structs.replace(program, primacy=256)  # UInt8
    with pytest.raises(Sep2EncodeError) as err:
        codec.encode(out_of_range)
    assert "primacy" in err.value.reason


def test_bytes_like_input_is_accepted_and_text_is_refused() -> None:
    doc = _corpus("dcap.xml")
    assert codec.decode(bytearray(doc), r.DeviceCapability) == codec.decode(
        memoryview(doc), r.DeviceCapability
    )
    with pytest.raises(DocumentRejected):
        codec.decode(doc.decode(), r.DeviceCapability)  # type: ignore[arg-type]


def test_decoding_from_several_threads_at_once_gives_the_same_values() -> None:
    from concurrent.futures import ThreadPoolExecutor

    doc = _corpus("envoy_dercontrol_list.xml")
    expected = codec.decode(doc, r.DERControlList)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: codec.decode(doc, r.DERControlList), range(200)))
    assert all(result == expected for result in results)


def test_curves_registration_error_and_connection_point_documents_read() -> None:
    curves = codec.decode(_corpus("dercurve_list.xml"), r.DERCurveList)
    (curve,) = curves.DERCurve
    assert [(p.xvalue, p.yvalue) for p in curve.CurveData] == [(9200, 3000), (10800, -3000)]
    assert curve.mRID == 0xB0 and curve.xMultiplier == -2
    rg = codec.decode(_corpus("registration.xml"), r.Registration)
    assert rg.pIN == 111115 and rg.pollRate == 86400
    err = codec.decode(_corpus("error.xml"), r.Error)
    assert (err.reasonCode, err.maxRetryDuration) == (1, 60)
    cp = codec.decode(_corpus("connection_point.xml"), r.ConnectionPointType)
    assert cp.connectionPointId == "4310012345"
    out = codec.encode(cp)
    assert out.startswith(b"<csipaus:ConnectionPoint ")
    assert b"<csipaus:connectionPointId>4310012345</csipaus:connectionPointId>" in out


def test_lower_case_and_short_hex_echoed_by_servers_compare_numerically() -> None:
    mups = codec.decode(_corpus("mirror_usage_point_list.xml"), r.MirrorUsagePointList)
    (mup,) = mups.MirrorUsagePoint
    assert mup.roleFlags == 0x03 and mup.mRID == 0xABC00037244
    assert mup.deviceLFDI == 0x3E4F45AB31EDFE5B67E343E5E4562E31984E23E5
    out = codec.encode(mup)
    assert b"<roleFlags>03</roleFlags>" in out
    assert b"<mRID>000000000000000000000ABC00037244</mRID>" in out


def test_attribute_errors_are_named_with_at() -> None:
    bad = _corpus("envoy_dercontrol_list.xml").replace(b'all="3"', b'all="many"')
    with pytest.raises(SchemaViolation) as err:
        codec.decode(bad, r.DERControlList)
    assert err.value.path == "/DERControlList/@all"
    bad = _corpus("envoy_dercontrol_list.xml").replace(
        b'responseRequired="3"', b'responseRequired="0x3"'
    )
    with pytest.raises(SchemaViolation) as err:
        codec.decode(bad, r.DERControlList)
    assert err.value.path == "/DERControlList/DERControl[1]/@responseRequired"


def test_notification_resource_errors_name_the_path_inside_the_resource() -> None:
    bad = _corpus("notification.xml").replace(b'all="0"', b'all="none"')
    with pytest.raises(SchemaViolation) as err:
        codec.decode(bad, r.Notification)
    assert err.value.path == "/Notification/Resource/@all"
    blanks = _corpus("notification.xml").replace(b'all="0"', b'all=" 0 "')
    assert codec.decode(blanks, r.Notification).Resource == r.DERControlList(
        href="/derp/1/derc", all=0, results=0
    )


@pytest.mark.parametrize("bad", ["\x00", "a\x1fb", "\ud800", "\uffff"])
def test_encode_refuses_characters_xml_cannot_carry(bad: str) -> None:
    from transport.sep2.errors import Sep2EncodeError

    program = codec.decode(_corpus("derprogram_list.xml"), r.DERProgramList).DERProgram[0]
    with pytest.raises(Sep2EncodeError):
        codec.encode(msgspec.structs.replace(program, description=bad))


def test_a_duplicated_single_element_reads_the_same_on_both_decode_paths() -> None:
    """The last occurrence wins whether or not the document forces the escaping stylesheet."""
    doc = _corpus("default_der_control.xml").replace(
        b"<value>5000</value>", b"<value>1</value><value>5000</value>"
    )
    fast = codec.decode(doc, r.DefaultDERControl)
    forced_safe = codec.decode(doc.replace(b"<mRID>", b"<!-- \\ --><mRID>"), r.DefaultDERControl)
    assert fast.DERControlBase.opModExpLimW == r.ActivePower(multiplier=0, value=5000)
    assert forced_safe == fast


def test_a_missing_required_leaf_is_reported_as_missing_on_the_fast_path_too() -> None:
    doc = _corpus("default_der_control.xml").replace(b"<multiplier>0</multiplier>", b"")
    with pytest.raises(SchemaViolation) as err:
        codec.decode(doc, r.DefaultDERControl)
    assert err.value.path == "/DefaultDERControl/DERControlBase/opModExpLimW"
    assert "multiplier" in err.value.reason


def test_cdata_comments_and_character_references_read_as_their_text() -> None:
    doc = (
        _corpus("derprogram_list.xml")
        .replace(b"<description>Site DOE", b'<description><![CDATA[Site "DOE" <1>]]>')
        .replace(b"<primacy>1<", b"<primacy><!-- c -->1<")
    )
    prog = codec.decode(doc, r.DERProgramList).DERProgram[0]
    assert prog.description == 'Site "DOE" <1>' and prog.primacy == 1
    refs = _corpus("derprogram_list.xml").replace(b"Site DOE", b"Site&#32;&#x44;OE &amp; co")
    assert codec.decode(refs, r.DERProgramList).DERProgram[0].description == "Site DOE & co"


def test_the_hex_cache_stays_bounded_under_many_distinct_values() -> None:
    from transport.sep2.hexbinary import HexBinary128

    for i in range(decoding._HEX_CACHE_MAX + 500):
        assert decoding._hex_hook(HexBinary128, f"{i:X}") == i
    assert len(decoding._HEX_CACHE) <= decoding._HEX_CACHE_MAX


def test_serialisers_are_generated_on_first_use_not_at_import() -> None:
    # Start-up budget (issue #7 scope 11): importing the codec generates no serialiser.
    code = (
        "from transport.sep2 import codec, resources as r\n"
        "from transport.sep2 import encoding\nbefore = sorted(encoding._ENCODERS)\n"
        "codec.encode(r.Time(currentTime=1, dstEndTime=0, dstOffset=0, dstStartTime=0,"
        " quality=7, tzOffset=0))\n"
        "print(before, sorted(name for name, _ns in encoding._ENCODERS))"
    )
    root = Path(__file__).resolve().parents[3]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert out.split() == ["[]", "['Time']"]


def test_a_serialiser_is_generated_once_when_threads_race_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(encoding, "_ENCODERS", {})
    generate = encoding._compile_encoder
    calls: list[str] = []
    second = threading.Event()

    def slow_generate(type_name: str, csipaus_ns: str | None) -> Any:
        calls.append(type_name)
        if len(calls) > 1:
            second.set()
        else:  # hold the first generation open long enough for an unguarded rival to start
            second.wait(timeout=0.2)
        return generate(type_name, csipaus_ns)

    monkeypatch.setattr(encoding, "_compile_encoder", slow_generate)
    edev = r.EndDevice(href="/edev/1", sFDI=1, lFDI=2, changedTime=0)
    start = threading.Barrier(8)
    outputs: list[bytes] = []

    def encode() -> None:
        start.wait(timeout=10)
        outputs.append(codec.encode(edev))

    threads = [threading.Thread(target=encode) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert calls == ["EndDevice"]
    assert len(outputs) == 8 and len(set(outputs)) == 1
